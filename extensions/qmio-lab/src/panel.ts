import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { legendText, METRICS, renderChip } from './chip';
import { el, formatDuration, formatQPUSeconds, formatWhen } from './format';
import { QmioModel, suspectServerExtension } from './model';
import { ChipMetric, IEmulatorState, IQPUJob, ISnapshot } from './types';

/** Jobs shown in the panel: everything not finished, then the most recent finished ones. */
const FINISHED_SHOWN = 5;
/** The columns of each job's second line (its name is the first), with their header text. */
const JOB_COLUMNS: [string, string][] = [
  ['jp-qmio-job-target', 'target'],
  ['jp-qmio-job-state', 'state'],
  ['jp-qmio-job-qpu', 'QPU s'],
  ['jp-qmio-job-age', 'age']
];

/**
 * The "QMIO" sidebar: QPU state, calibration, chip map, queue, the user's jobs (cancellable),
 * the session's own SLURM job and the emulator cluster. It only renders what the shared model polled.
 */
export class QmioPanel extends Widget {
  constructor(
    private readonly model: QmioModel,
    metric: ChipMetric
  ) {
    super();
    this.id = 'qmio-lab-panel';
    this.addClass('jp-qmio-panel');
    this.title.caption = 'QMIO: QPU and emulator';
    this._metric = metric;

    this.node.appendChild(el('h2', 'jp-qmio-title', 'QMIO'));
    this._message = el('div', 'jp-qmio-message');
    this.node.appendChild(this._message);

    this._qpu = this._section('QPU', 'jp-qmio-qpu');
    this._chipBox = this._section('Chip', 'jp-qmio-chip-section');
    this._select = el('select', 'jp-qmio-metric');
    for (const m of METRICS) {
      const option = el('option', undefined, m.label);
      option.value = m.key;
      this._select.appendChild(option);
    }
    this._select.value = metric;
    this._select.onchange = () => {
      this._metric = this._select.value as ChipMetric;
      this._renderChip();
    };
    this._chipBox.appendChild(this._select);
    this._chipView = el('div', 'jp-qmio-chip-view');
    this._chipBox.appendChild(this._chipView);
    this._jobs = this._section('My jobs', 'jp-qmio-jobs');
    this._session = this._section('Session', 'jp-qmio-session');
    (this._session.parentElement as HTMLElement).hidden = true; // until a poll finds a SLURM job
    this._emulator = this._section('Emulator', 'jp-qmio-emulator');

    model.changed.connect(this._render, this);
    model.chipChanged.connect(this._renderChip, this);
    this._render();
    this._renderChip();
  }

  set metric(metric: ChipMetric) {
    this._metric = metric;
    this._select.value = metric;
    this._renderChip();
  }

  dispose(): void {
    this.model.changed.disconnect(this._render, this);
    this.model.chipChanged.disconnect(this._renderChip, this);
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.model.refresh();
  }

  private _section(title: string, className: string): HTMLElement {
    const section = el('section', `jp-qmio-section ${className}`);
    section.appendChild(el('h3', undefined, title));
    const body = el('div', 'jp-qmio-body');
    section.appendChild(body);
    this.node.appendChild(section);
    return body;
  }

  private _render(): void {
    const snap = this.model.snapshot;
    this._message.replaceChildren();
    this._message.hidden = true;
    if (!snap) {
      this._qpu.replaceChildren(el('span', 'jp-qmio-muted', 'Connecting to the QPU service…'));
      return;
    }
    if (snap.error) {
      this._message.hidden = false;
      this._message.classList.add('jp-qmio-error');
      const hint = suspectServerExtension(this.model)
        ? ' Is the qmio_lab server extension enabled? (jupyter server extension list)'
        : ' Retrying with back-off…';
      this._message.textContent = `${snap.error}${hint}`;
    }
    this._renderQPU(snap);
    if (snap.error) {
      this._jobs.replaceChildren(el('span', 'jp-qmio-muted', 'Unknown while the QPU service is unreachable.'));
    } else {
      this._renderJobs(snap.jobs);
    }
    this._renderSession(snap.emulator);
    this._renderEmulator(snap.emulator, snap.emulatorError);
  }

  /** The SLURM job this server runs in, beside the emulator's worker jobs; hidden outside SLURM. */
  private _renderSession(state: IEmulatorState | null): void {
    const section = this._session.parentElement as HTMLElement;
    const job = state?.session_job ?? null;
    section.hidden = !job && !state?.session_error;
    if (!job) {
      this._session.replaceChildren(
        ...(state?.session_error ? [el('div', 'jp-qmio-error', state.session_error)] : [])
      );
      return;
    }
    const left =
      job.time_left_s === null ? 'no time limit' : `${formatDuration(job.time_left_s)} left`;
    const summary = el(
      'div',
      'jp-qmio-session-job',
      `SLURM job ${job.id} · ${job.partition ?? '—'} · ${job.state} · ${left}`
    );
    summary.dataset.jobId = job.id;
    summary.title = job.time_limit ? `time limit ${job.time_limit}` : '';
    const parts: HTMLElement[] = [summary];
    if (job.warning) {
      parts.push(el('div', 'jp-qmio-error jp-qmio-session-warning', job.warning));
      if (!this._warned.has(job.id)) {
        this._warned.add(job.id); // once per job: the panel re-renders every poll
        Notification.warning(job.warning, { autoClose: false });
      }
    }
    this._session.replaceChildren(...parts);
  }

  private _renderQPU(snap: ISnapshot): void {
    const s = snap.status;
    if (!s) {
      this._qpu.replaceChildren(el('span', 'jp-qmio-state', 'unreachable'));
      (this._qpu.firstChild as HTMLElement).dataset.state = 'unreachable';
      return;
    }
    const state = el('span', 'jp-qmio-state jp-qmio-qpu-state', s.state);
    state.dataset.state = s.state;
    const rows: [string, string | HTMLElement][] = [
      ['State', state],
      ['Queue', `${s.queue_depth} queued · ${s.running} running`],
      ['Calibration', `${s.calibration.id} · ${formatDuration(s.calibration.age_s)} old`],
      [
        s.calibrating_until ? 'Calibrating until' : 'Next calibration',
        s.calibrating_until
          ? formatWhen(s.calibrating_until)
          : s.next_calibration
            ? `${formatWhen(s.next_calibration.start)} – ${formatWhen(s.next_calibration.end)}`
            : 'none scheduled'
      ],
      ['Device time', formatWhen(s.device_time)]
    ];
    const table = el('table', 'jp-qmio-facts');
    for (const [key, value] of rows) {
      const tr = el('tr');
      tr.appendChild(el('th', undefined, key));
      const td = el('td');
      td.append(value);
      tr.appendChild(td);
      table.appendChild(tr);
    }
    this._qpu.replaceChildren(table);
  }

  private _renderChip(): void {
    const chip = this.model.chip;
    if (!chip) {
      const text = this.model.chipError ?? 'Loading the calibration…';
      this._chipView.replaceChildren(el('span', 'jp-qmio-muted', text));
      return;
    }
    this._chipView.replaceChildren(
      renderChip(chip, this._metric, 30),
      el('div', 'jp-qmio-legend', legendText(chip, this._metric))
    );
  }

  private _renderJobs(jobs: IQPUJob[]): void {
    const active = jobs.filter(j => j.state === 'queued' || j.state === 'running');
    const finished = jobs.filter(j => !active.includes(j)).slice(0, FINISHED_SHOWN);
    const shown = [...active, ...finished];
    if (shown.length === 0) {
      this._jobs.replaceChildren(el('span', 'jp-qmio-muted', 'No jobs yet.'));
      return;
    }
    const list = el('ul', 'jp-qmio-job-list');
    const header = el('li', 'jp-qmio-job-row jp-qmio-job-header');
    for (const [cls, text] of JOB_COLUMNS) {
      header.appendChild(el('span', cls, text));
    }
    list.appendChild(header);
    const now = Date.now();
    for (const job of shown) {
      const item = el('li', 'jp-qmio-job-row jp-qmio-job');
      item.dataset.jobId = job.id;
      item.dataset.state = job.state;
      item.appendChild(el('span', 'jp-qmio-job-name', job.name || job.id));
      item.appendChild(el('span', 'jp-qmio-job-target', 'qpu'));
      const where =
        job.state === 'queued' && job.queue_position !== null
          ? `queued #${job.queue_position}` +
            (job.eta_s !== null ? ` · ~${formatDuration(job.eta_s)}` : '')
          : job.state === 'running' && job.num_circuits > 1
            ? `running · ${job.circuits_done ?? 0}/${job.num_circuits}`
            : job.state;
      item.appendChild(el('span', `jp-qmio-job-state jp-qmio-job-${job.state}`, where));
      // an ended job shows what it held; one that ended without holding the QPU (cancelled
      // while queued) shows no figure rather than an estimate nobody was charged
      const waiting = job.state === 'queued' || job.state === 'running';
      const held = job.qpu_seconds !== null && job.qpu_seconds !== undefined;
      const qpu = el(
        'span',
        'jp-qmio-job-qpu',
        formatQPUSeconds(job.qpu_seconds, waiting ? job.estimated_qpu_seconds : null)
      );
      qpu.title = held
        ? 'QPU seconds the job held (charged to its account)'
        : waiting
          ? 'QPU seconds the job is expected to hold'
          : 'the job never held the QPU';
      item.appendChild(qpu);
      const age = job.created_at ? (now - new Date(job.created_at).getTime()) / 1000 : null;
      item.appendChild(el('span', 'jp-qmio-job-age', age === null ? '—' : formatDuration(age)));
      if (job.state === 'queued') {
        const cancel = el('button', 'jp-Button jp-mod-styled jp-mod-warn jp-qmio-cancel', 'Cancel');
        cancel.title = `Cancel job ${job.id}`;
        cancel.onclick = () => this._cancel(job, cancel);
        item.appendChild(cancel);
        item.classList.add('jp-qmio-job-cancellable'); // its name leaves the button room
      }
      item.title = `${job.id} · ${job.num_circuits} circuit(s) × ${job.shots} shots` +
        (job.error ? ` · ${job.error}` : '');
      list.appendChild(item);
    }
    this._jobs.replaceChildren(list);
  }

  private async _cancel(job: IQPUJob, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await this.model.cancel(job.id);
      Notification.info(`QPU job ${job.name || job.id} cancelled`, { autoClose: 3000 });
    } catch (error) {
      button.disabled = false;
      Notification.error(`Cannot cancel ${job.id}: ${(error as Error).message}`, {
        autoClose: 6000
      });
    }
  }

  private _renderEmulator(state: IEmulatorState | null, error: string | null): void {
    if (!state) {
      this._emulator.replaceChildren(el('span', 'jp-qmio-muted', error ?? '—'));
      return;
    }
    const summary = el('div', 'jp-qmio-emulator-state');
    summary.dataset.state = state.state;
    summary.textContent = `${state.kind ?? 'unknown'} cluster · ${state.state}` +
      (state.state === 'running' ? ` · ${state.workers.length} worker(s)` : '');
    const parts: HTMLElement[] = [summary];
    if (state.address) {
      parts.push(el('div', 'jp-qmio-muted', state.address));
    }
    if (state.error) {
      parts.push(el('div', 'jp-qmio-error', state.error));
    }
    if (state.kind === 'slurm') {
      const jobs = state.slurm_jobs.map(j => `${j.id} (${j.state})`).join(', ');
      parts.push(el('div', 'jp-qmio-slurm-jobs', `SLURM jobs: ${jobs || 'none'}`));
      if (state.slurm_error) {
        parts.push(el('div', 'jp-qmio-error', state.slurm_error));
      }
    }
    this._emulator.replaceChildren(...parts);
  }

  private _metric: ChipMetric;
  private _message: HTMLElement;
  private _qpu: HTMLElement;
  private _chipBox: HTMLElement;
  private _chipView: HTMLElement;
  private _select: HTMLSelectElement;
  private _jobs: HTMLElement;
  private _emulator: HTMLElement;
  private _session: HTMLElement;
  private _warned = new Set<string>();
}
