/**
 * Replies of the qmio_lab server extension (qmio_lab/labserver/routes.py), as TypeScript types.
 */

/** GET /qmio/qpu/status: the queue service's status plus its URL. */
export interface IQPUStatus {
  state: 'online' | 'calibrating' | 'maintenance' | 'reserved' | string;
  queue_depth: number;
  running: number;
  calibration: { id: string; taken_at: string; age_s: number };
  calibrating_until: string | null;
  next_calibration: { start: string; end: string } | null;
  device_time: string;
  num_qubits: number;
  url: string;
}

/** One job of GET /qmio/qpu/jobs. */
export interface IQPUJob {
  id: string;
  name: string | null;
  user: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  queue_position: number | null;
  eta_s: number | null;
  calibration_id: string | null;
  shots: number;
  num_circuits: number;
  /** Circuits simulated so far (climbs while a job of several circuits runs). */
  circuits_done?: number;
  created_at: string | null;
  error: string | null;
  /** Device seconds the service expects the job to hold the QPU (its timing mode's estimate). */
  estimated_qpu_seconds?: number | null;
  /** Device seconds the job held the QPU, once it has ended (what its account is charged). */
  qpu_seconds?: number | null;
}

export interface IQubitFigures {
  id: number;
  x: number;
  y: number;
  /** seconds */
  t1: number;
  /** seconds (echo) */
  t2: number;
  readout_error: number;
  sx_error: number;
  /** hertz */
  frequency: number;
}

/** GET /qmio/qpu/chip: layout and the calibration in force now. */
export interface IChip {
  calibration_id: string;
  taken_at: string;
  age_s: number;
  qubits: IQubitFigures[];
  couplers: { control: number; target: number; ecr_error: number }[];
  summary: Record<string, number | string>;
}

/** One entry of GET /qmio/qpu/calibrations. */
export interface ICalibrationSummary {
  id: string;
  taken_at: string;
  [key: string]: unknown;
}

/** GET /qmio/emulator. */
export interface IEmulatorState {
  kind: 'local' | 'slurm' | 'address' | null;
  state: 'not started' | 'running' | 'misconfigured';
  address: string | null;
  workers: { name: string; address: string; memory_limit: number | null; nthreads: number | null }[];
  slurm_jobs: { id: string; state: string; name?: string; partition?: string; elapsed?: string }[];
  slurm_error?: string;
  error?: string;
  /** the SLURM job this server runs in; null outside SLURM */
  session_job?: ISessionJob | null;
  session_error?: string;
}

/** The SLURM job this Jupyter server runs in (a Hub session, `srun jupyter lab`). */
export interface ISessionJob {
  id: string;
  partition: string | null;
  /** squeue's state in lower case; 'ended' once SLURM no longer lists the job */
  state: string;
  /** seconds until the walltime, when the poll asked; null without a time limit */
  time_left_s: number | null;
  time_limit: string | null;
  /** set from ten minutes before the walltime: what to do before SLURM ends the session */
  warning: string | null;
}

/** What one poll learned; `error` is set when the QPU service or the server extension is unreachable. */
export interface ISnapshot {
  status: IQPUStatus | null;
  jobs: IQPUJob[];
  emulator: IEmulatorState | null;
  error: string | null;
  emulatorError: string | null;
  updated: Date;
}

/** The settings of schema/plugin.json. */
export interface IQmioSettings {
  refreshInterval: number;
  defaultTarget: 'qpu' | 'emulator';
  defaultShots: number;
  chipMetric: ChipMetric;
}

/** Named as the calibration names its per-qubit figures. */
export type ChipMetric = 't1' | 't2' | 'readout_error' | 'sx_error';
