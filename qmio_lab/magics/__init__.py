"""IPython magics: ``%%qmio`` runs a cell's circuits, ``%qmio ...`` inspects the platform.

Load with ``%load_ext qmio_lab``. ``%%qmio?`` and ``%qmio?`` document every option.
"""
from __future__ import annotations

import keyword
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from qmio_lab import config
from qmio_lab.magics.cells import read_cell
from qmio_lab.magics.interrupts import interrupt_held
from qmio_lab.magics.commands import COMMANDS, full_help, help_text
from qmio_lab.magics.running import TARGETS, RunRequest, Targets, check_request, one_line

__all__ = ["QmioMagics", "load_ipython_extension", "unload_ipython_extension"]


def _check_var(name: str | None) -> None:
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise UsageError(f"-o {name}: not a valid Python variable name")


@magics_class
class QmioMagics(Magics):
    """``%%qmio`` and ``%qmio``; keeps this kernel's backends, jobs and last result."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.targets = Targets()
        self.jobs: dict[str, Any] = {}
        self.jobs_target: dict[str, str] = {}
        self.monitors: list[Any] = []
        self.views: list[Any] = []
        self.last_result: Any = None

    @magic_arguments(name="%qmio")
    @argument("-t", "--target", choices=TARGETS, default="qpu", help="where to run (default qpu)")
    @argument("-s", "--shots", type=int, default=None,
              help=f"shots per circuit, 1..{config.get('device.max_shots')} (qmio.device.max_shots; "
                   "default: the target's qmio.device.default_shots or qmio.emulator.default_shots)")
    @argument("-O", "--optimization-level", type=int, choices=[0, 1, 2, 3], default=1,
              help="transpiler optimization level (default 1)")
    @argument("--noise", metavar="calibration:ID", default=None,
              help="emulator only: replay the noise of a QPU calibration snapshot")
    @argument("--name", default=None, help="job name shown in the queue")
    @argument("--priority", type=int, default=0, help="QPU queue priority 0..10 (default 0)")
    @argument("--circuit", metavar="NAME", default=None,
              help="Python cells: run this variable instead of the last expression")
    @argument("--async", dest="run_async", action="store_true",
              help="return the job at once; the monitor keeps updating and shows the result")
    @argument("-o", "--output", metavar="VAR", default=None,
              help="store the Result (with --async: the job) in this variable")
    @cell_magic("qmio")
    def qmio_cell(self, line: str, cell: str) -> Any:
        """Run the cell's circuits on the QPU, the emulator or the in-process simulator.

        The cell is OpenQASM 2 (``OPENQASM 2.0;``), OpenQASM 3 (``OPENQASM 3.0;``) or Python
        whose last expression (or ``--circuit NAME``) is a QuantumCircuit or a list of them.
        While the job runs a live monitor shows its state, queue position, ETA and progress, with
        a cancel button; then the result view (histogram and counts) follows.
        """
        args = parse_argstring(self.qmio_cell, line)
        _check_var(args.output)
        req = RunRequest(args.target, args.shots, args.optimization_level, args.noise, args.name, args.priority)
        check_request(req)
        circuits = read_cell(cell, self.shell.user_ns, args.circuit)
        with interrupt_held() as interrupted:  # a job submitted is a job known, so it can be cancelled
            job = self.targets.submit(circuits, req)
            job_id = job.job_id() if callable(job.job_id) else job.job_id
            self.jobs[job_id] = job
            self.jobs_target[job_id] = args.target
        if interrupted:
            _cancel_interrupted(job, job_id, None)
        return self._follow_async(job, args) if args.run_async else self._follow(job, args)

    def _follow_async(self, job: Any, args: Any) -> Any:
        from qmio_lab.widgets import JobMonitor, view

        def show_result(done_job: Any, row: Any) -> None:
            if row.job_state.state == "done":
                result = done_job.result()
                self.last_result = result
                shown = view(result, title=f"{args.target} result")
                self.views.append(shown)
                monitor.footer.children = (*monitor.footer.children, shown)

        monitor = JobMonitor(job, on_finish=show_result)
        self.monitors.append(monitor)
        display(monitor)
        if args.output:
            self.shell.user_ns[args.output] = job
        return job

    def _follow(self, job: Any, args: Any) -> None:
        from qiskit.exceptions import QiskitError

        from qmio_lab.widgets import JobMonitor, view

        job_id = job.job_id() if callable(job.job_id) else job.job_id
        monitor = None
        try:  # from submission on, an interrupt at any point cancels the job
            with interrupt_held() as interrupted:  # never inside the widget messages display sends
                monitor = JobMonitor(job)
                self.monitors.append(monitor)
                display(monitor)
            if interrupted:
                raise KeyboardInterrupt
            result = job.result()
        except KeyboardInterrupt:
            _cancel_interrupted(job, job_id, monitor)
        except QiskitError as exc:
            monitor.wait(5)
            raise UsageError(f"job {job_id} did not complete: {one_line(exc)}") from None
        monitor.wait(5)
        self.last_result = result
        if args.output:
            self.shell.user_ns[args.output] = result
        shown = view(result, title=f"{args.target} result")
        self.views.append(shown)
        display(shown)
        return None

    @magic_arguments(name="qmio")
    @argument("subcommand", nargs="?", help="status | calibration | jobs | cancel | cluster | config")
    @argument("rest", nargs="*", help="the subcommand's options (listed below)")
    @line_magic("qmio")
    def qmio_line(self, line: str) -> Any:
        """Inspect and steer the platform; ``%qmio`` alone lists the subcommands.

        status, calibration [--history] [--id ID] [--metric M], jobs [--state S] [--limit N],
        cancel ID, cluster [scale N], config.
        """
        words = line.strip().split(None, 1)
        if not words:
            print(help_text())
            return None
        name, rest = words[0], (words[1] if len(words) > 1 else "")
        if name in ("help", "-h", "--help"):
            print(help_text())
            return None
        command = COMMANDS.get(name)
        if command is None:
            raise UsageError(f"unknown subcommand {name!r}; choose one of {', '.join(COMMANDS)} (%qmio lists them)")
        return command(rest, self)


QmioMagics.qmio_line.__doc__ = f"{QmioMagics.qmio_line.__doc__}\nSubcommands\n-----------\n{full_help()}"


def _cancel_interrupted(job: Any, job_id: str, monitor: Any) -> None:
    """An interrupted cell's job: cancel it, let its monitor show that, say so."""
    cancelled = _try_cancel(job)
    if monitor is not None:
        monitor.wait(5)
    what = "cancelled" if cancelled else "not cancelled: it is already running and will finish"
    raise UsageError(f"interrupted; job {job_id} {what} (%qmio jobs shows it)") from None


def _try_cancel(job: Any) -> bool:
    try:
        return bool(job.cancel())
    except Exception:  # the service is gone or refuses: the job's state says the rest
        return False


def load_ipython_extension(ipython: Any) -> None:
    from qmio_lab.widgets.reprs import register_formatters

    ipython.register_magics(QmioMagics)
    register_formatters(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from qmio_lab.widgets.reprs import unregister_formatters

    magics = ipython.magics_manager.registry.pop("QmioMagics", None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("qmio", None)
    for monitor in getattr(magics, "monitors", []):
        monitor.stop()
    unregister_formatters(ipython)
