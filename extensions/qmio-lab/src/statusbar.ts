import { Widget } from '@lumino/widgets';

import { formatDuration } from './format';
import { QmioModel } from './model';
import { ISnapshot } from './types';

/** "QPU online · 3 queued · calibrated 2 h ago" */
export function statusText(snap: ISnapshot | null): string {
  if (!snap) {
    return 'QPU …';
  }
  const s = snap.status;
  if (!s) {
    return 'QPU unreachable';
  }
  return `QPU ${s.state} · ${s.queue_depth} queued · calibrated ${formatDuration(s.calibration.age_s)} ago`;
}

export class QmioStatusItem extends Widget {
  constructor(
    private readonly model: QmioModel,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-qmio-status');
    this.node.title = 'QMIO QPU: click to open the QMIO panel';
    this.node.onclick = onClick;
    model.changed.connect(this._update, this);
    this._update();
  }

  dispose(): void {
    this.model.changed.disconnect(this._update, this);
    super.dispose();
  }

  private _update(): void {
    const snap = this.model.snapshot;
    this.node.textContent = statusText(snap);
    this.node.dataset.state = snap?.status?.state ?? (snap ? 'unreachable' : 'loading');
  }
}
