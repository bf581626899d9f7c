import { Widget } from '@lumino/widgets';

import { formatMetric, legendText, METRICS, renderChip } from './chip';
import { el, formatDuration, formatWhen } from './format';
import { QmioModel } from './model';
import { requestAPI } from './request';
import { ICalibrationSummary, IChip } from './types';

/**
 * The calibration dashboard: the chip coloured by each metric, per-qubit figures, and the
 * calibration history (from the QPU service, drifted to its device time).
 */
export class CalibrationDashboard extends Widget {
  constructor(private readonly model: QmioModel) {
    super();
    this.id = 'qmio-lab-calibration';
    this.addClass('jp-qmio-dashboard');
    this.title.label = 'QMIO calibration';
    this.title.closable = true;
    model.chipChanged.connect(this._render, this);
  }

  dispose(): void {
    this.model.chipChanged.disconnect(this._render, this);
    super.dispose();
  }

  protected onAfterAttach(): void {
    void this.reload();
  }

  async reload(): Promise<void> {
    await this.model.loadChip(true);
    try {
      this._history = (await requestAPI<{ calibrations: ICalibrationSummary[] }>('qpu/calibrations'))
        .calibrations;
    } catch (error) {
      this._history = [];
      this._historyError = (error as Error).message;
    }
    this._render();
  }

  private _render(): void {
    const chip = this.model.chip;
    if (!chip) {
      this.node.replaceChildren(
        el('p', 'jp-qmio-error', this.model.chipError ?? 'Loading the calibration…')
      );
      return;
    }
    const header = el(
      'h2',
      undefined,
      `Calibration ${chip.calibration_id} · taken ${formatWhen(chip.taken_at)} · ` +
        `${formatDuration(chip.age_s)} old`
    );
    const maps = el('div', 'jp-qmio-maps');
    for (const m of METRICS) {
      const figure = el('figure', 'jp-qmio-map');
      figure.appendChild(renderChip(chip, m.key, 26));
      figure.appendChild(el('figcaption', undefined, legendText(chip, m.key)));
      maps.appendChild(figure);
    }
    this.node.replaceChildren(header, maps, this._qubitTable(chip), this._historyTable());
  }

  private _qubitTable(chip: IChip): HTMLElement {
    const table = el('table', 'jp-qmio-table');
    const head = el('tr');
    for (const h of ['Qubit', ...METRICS.map(m => m.label), 'Frequency (GHz)']) {
      head.appendChild(el('th', undefined, h));
    }
    table.appendChild(head);
    for (const q of chip.qubits) {
      const tr = el('tr');
      tr.appendChild(el('td', undefined, String(q.id)));
      for (const m of METRICS) {
        tr.appendChild(el('td', undefined, formatMetric(m.key, q[m.key])));
      }
      tr.appendChild(el('td', undefined, (q.frequency / 1e9).toFixed(3)));
      table.appendChild(tr);
    }
    return table;
  }

  private _historyTable(): HTMLElement {
    const box = el('section');
    box.appendChild(el('h3', undefined, 'History'));
    if (this._historyError) {
      box.appendChild(el('p', 'jp-qmio-error', this._historyError));
      return box;
    }
    const table = el('table', 'jp-qmio-table');
    const keys = ['t1_median_us', 't2_median_us', 'readout_error_median', 'ecr_error_median'];
    const head = el('tr');
    for (const h of ['Id', 'Taken', ...keys]) {
      head.appendChild(el('th', undefined, h));
    }
    table.appendChild(head);
    for (const cal of this._history.slice(0, 30)) {
      const tr = el('tr');
      tr.appendChild(el('td', undefined, cal.id));
      tr.appendChild(el('td', undefined, formatWhen(cal.taken_at)));
      const summary = (cal.summary ?? cal) as Record<string, unknown>;
      for (const key of keys) {
        const value = summary[key];
        tr.appendChild(el('td', undefined, typeof value === 'number' ? value.toPrecision(3) : '—'));
      }
      table.appendChild(tr);
    }
    box.appendChild(table);
    return box;
  }

  private _history: ICalibrationSummary[] = [];
  private _historyError: string | null = null;
}
