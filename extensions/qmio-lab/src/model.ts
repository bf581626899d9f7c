import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { QmioRequestError, requestAPI } from './request';
import {
  IChip,
  IEmulatorState,
  IQPUJob,
  IQPUStatus,
  ISnapshot
} from './types';

/** Failures in a row before "is the server extension installed?" is suspected. */
const SUSPECT_AFTER = 3;
/** Drifted figures are refetched this often even when the calibration id stays. */
const CHIP_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * One poller shared by the sidebar, the status bar and the dashboard: it asks the server
 * extension for the QPU status, the user's jobs and the emulator cluster (with the session's
 * own SLURM job), backs off while they fail, and stands by while the page is hidden.
 */
export class QmioModel implements IDisposable {
  constructor(intervalSeconds = 5) {
    this._poll = this._makePoll(intervalSeconds);
  }

  get changed(): ISignal<this, ISnapshot> {
    return this._changed;
  }

  get chipChanged(): ISignal<this, IChip | null> {
    return this._chipChanged;
  }

  get snapshot(): ISnapshot | null {
    return this._snapshot;
  }

  get chip(): IChip | null {
    return this._chip;
  }

  get chipError(): string | null {
    return this._chipError;
  }

  /** Failures in a row: the panel only blames the server extension after a few. */
  get failures(): number {
    return this._failures;
  }

  /** HTTP status of the last failed poll (0: no reply at all; 503: the QPU service is down). */
  get lastErrorStatus(): number | null {
    return this._lastErrorStatus;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  set intervalSeconds(seconds: number) {
    const interval = Math.max(1, seconds) * 1000;
    if (interval !== this._poll.frequency.interval) {
      this._poll.frequency = { ...this._poll.frequency, interval, max: interval * 12 };
    }
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** Poll now (after a cancel, a submission, or when a view opens). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  async cancel(jobId: string): Promise<IQPUJob> {
    const job = await requestAPI<IQPUJob>(`qpu/jobs/${encodeURIComponent(jobId)}`, {
      method: 'DELETE'
    });
    void this.refresh();
    return job;
  }

  async loadChip(force = false): Promise<void> {
    const status = this._snapshot?.status;
    const stale =
      this._chip === null ||
      force ||
      (status && status.calibration.id !== this._chip.calibration_id) ||
      Date.now() - this._chipLoaded > CHIP_MAX_AGE_MS;
    if (!stale || this._chipLoading) {
      return;
    }
    this._chipLoading = true;
    try {
      this._chip = await requestAPI<IChip>('qpu/chip');
      this._chipError = null;
      this._chipLoaded = Date.now();
    } catch (error) {
      this._chipError = (error as Error).message;
    } finally {
      this._chipLoading = false;
    }
    this._chipChanged.emit(this._chip);
  }

  private _makePoll(intervalSeconds: number): Poll {
    const interval = Math.max(1, intervalSeconds) * 1000;
    const poll = new Poll({
      factory: () => this._tick(),
      frequency: { interval, backoff: true, max: interval * 12 },
      standby: 'when-hidden',
      name: 'qmio-lab:model'
    });
    return poll;
  }

  private async _tick(): Promise<void> {
    const [status, jobs, emulator] = await Promise.allSettled([
      requestAPI<IQPUStatus>('qpu/status'),
      requestAPI<{ jobs: IQPUJob[] }>('qpu/jobs?limit=50'),
      requestAPI<IEmulatorState>('emulator')
    ]);
    const reason = (r: PromiseSettledResult<unknown>): string | null =>
      r.status === 'rejected' ? messageOf(r.reason) : null;
    const snapshot: ISnapshot = {
      status: status.status === 'fulfilled' ? status.value : null,
      jobs: jobs.status === 'fulfilled' ? jobs.value.jobs : [],
      emulator: emulator.status === 'fulfilled' ? emulator.value : null,
      error: reason(status) ?? reason(jobs),
      emulatorError: reason(emulator),
      updated: new Date()
    };
    this._failures = snapshot.error ? this._failures + 1 : 0;
    const failed = [status, jobs].find(r => r.status === 'rejected') as
      | PromiseRejectedResult
      | undefined;
    this._lastErrorStatus =
      failed && failed.reason instanceof QmioRequestError ? failed.reason.status : null;
    this._snapshot = snapshot;
    this._changed.emit(snapshot);
    if (snapshot.status) {
      void this.loadChip();
    }
    if (snapshot.error) {
      // a rejection makes the poll back off until the service answers again
      throw new Error(snapshot.error);
    }
  }

  private _poll: Poll;
  private _snapshot: ISnapshot | null = null;
  private _chip: IChip | null = null;
  private _chipError: string | null = null;
  private _chipLoaded = 0;
  private _chipLoading = false;
  private _failures = 0;
  private _lastErrorStatus: number | null = null;
  private _changed = new Signal<this, ISnapshot>(this);
  private _chipChanged = new Signal<this, IChip | null>(this);
}

export function messageOf(error: unknown): string {
  if (error instanceof QmioRequestError && error.status === 0) {
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Several failures in a row without any answer from the server extension itself. */
export function suspectServerExtension(model: QmioModel): boolean {
  const status = model.lastErrorStatus;
  return model.failures >= SUSPECT_AFTER && (status === 0 || status === 404);
}
