"""The ``qmio`` command."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from qmio_lab import __version__, config
from qmio_lab.errors import QmioError


def _iso_time(text: str) -> datetime:
    """An ISO time from the command line, as an aware UTC datetime (no offset means UTC).

    A naive datetime would reach the service's clock and fail every submission later on
    (naive and aware times cannot be compared), so it is normalised here, once.
    """
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time; write e.g. 2026-11-30T09:00:00+00:00 (no offset means UTC)"
        ) from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _cmd_demo(args: argparse.Namespace) -> int:
    from qmio_lab.demo import run_demo
    from qmio_lab.device import Topology
    from qmio_lab.device.rules import check_shots

    width = Topology().num_qubits
    if not 2 <= args.qubits <= width:  # before anything is printed, as one line, not a traceback
        raise ValueError(f"--qubits must be from 2 to {width} (a GHZ state needs two qubits or more; "
                         f"the chip has {width}); got {args.qubits}")
    check_shots(args.shots)
    run_demo(qubits=args.qubits, shots=args.shots, seed=args.seed)
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import_calibrations(args.paths)
    if args.action == "export":
        return _export_calibrations(args.paths, args.format)
    from qmio_lab.device import QmioDevice
    from qmio_lab.device.schedule import CalibrationSchedule

    at = args.at
    # The snapshot in force at `at` is the one the last window before it took (as the service's
    # device takes it), not today's drifted backwards or forwards to `at`.
    taken = CalibrationSchedule.from_config().in_force_since(at) if at is not None else None
    device = QmioDevice(seed=args.seed, calibrated_at=taken)
    cal = device.calibration_at(at)
    print(cal.to_json() if args.json else json.dumps(cal.summary(), indent=2))
    return 0


def _import_calibrations(paths: list[str]) -> int:
    """Real QMIO files into the service's history (an admin's token): read here, each checked
    by the service, which keeps all or none."""
    from pathlib import Path

    from qmio_lab.device.qmio_files import MAX_FILE_BYTES
    from qmio_lab.qpu.launcher import default_client

    if not paths:
        raise ValueError("name the files to import: qmio calibration import 2025_06_05__12_03_44.json ...")
    files = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{name}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{name} is larger than any calibration file ({MAX_FILE_BYTES} bytes at most)")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{name} is not JSON: {exc}") from None
        files.append({"name": path.name, "content": content})
    for item in default_client().import_calibrations(files):
        state = "in force" if item["in_force"] else "history"
        print(f"{item['id']}  taken {item['taken_at']}  ({state})")
        for note in item["notes"]:
            print(f"    note: {note}")
    return 0


def _export_calibrations(paths: list[str], fmt: str) -> int:
    from qmio_lab.device import Calibration
    from qmio_lab.device.qmio_files import write_file
    from qmio_lab.qpu.launcher import default_client

    if len(paths) != 1:
        raise ValueError("name one directory: qmio calibration export --format qmio DIR")
    if fmt != "qmio":
        raise ValueError(f"--format {fmt!r}: only qmio (QMIO's JSON schema, one file per snapshot) is written")
    written = [write_file(Calibration.from_dict(item["calibration"]), paths[0])
               for item in default_client().calibrations(full=True)]
    print(f"wrote {len(written)} calibration file(s) to {paths[0]}", file=sys.stderr)
    return 0


def _cmd_qpu_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qmio_lab.qpu.serve import ServeOptions, serve

    serve(ServeOptions(
        host=args.host, port=args.port, db=Path(args.db) if args.db else None,
        users_file=Path(args.users) if args.users else None, time_scale=args.time_scale,
        start_time=args.start_time,
        seed=args.seed, discovery=Path(args.discovery) if args.discovery else None,
        slurm_partition=args.slurm_partition, hub=args.hub, timing=args.timing,
    ))
    return 0


def _hms(text: str) -> float:
    """Seconds from SLURM's time formats: MM, MM:SS, HH:MM:SS (as ``sbatch --time``)."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time limit; write HH:MM:SS, e.g. 00:03:00")
    if len(parts) == 1:
        return 60.0 * int(parts[0])
    seconds = 0
    for part in parts:
        seconds = 60 * seconds + int(part)
    return float(seconds)


def _cmd_tunnel(args: argparse.Namespace) -> int:
    from qmio_lab.qpu.launcher import default_client
    from qmio_lab.qpu.tunnel_cli import close_tunnel, list_tunnels, open_tunnel, open_tunnel_in_slurm

    client = default_client()
    if args.list:
        return list_tunnels(client)
    if args.close:
        return close_tunnel(client, args.close)
    if args.slurm:
        return open_tunnel_in_slurm(client, args.time, reservation=args.reservation, port=args.port)
    if args.reservation:
        raise ValueError("--reservation names a SLURM reservation: use it with --slurm")
    return open_tunnel(client, args.time, port=args.port, hold=args.hold)


def _cmd_usage(args: argparse.Namespace) -> int:
    from qmio_lab.qpu.launcher import default_client
    from qmio_lab.qpu.usage_report import usage_table

    if args.user and args.all:
        raise ValueError("--user NAME or --all, not both")
    report = default_client().usage(days=args.days, user=args.user, everyone=args.all)
    print(json.dumps(report, indent=2) if args.json else usage_table(report))
    if args.plot:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from qmio_lab.qpu.usage_report import plot_usage

        fig = Figure(figsize=(7, 3), dpi=96)
        FigureCanvasAgg(fig)
        plot_usage(report, fig.add_subplot(1, 1, 1))
        fig.savefig(args.plot, bbox_inches="tight")  # the format follows the name: .png, .svg, .pdf
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qmio_lab.lab import run_lab

    if args.notebooks:
        root = Path(args.notebooks).resolve()
        if not root.is_dir():
            raise ValueError(f"--notebooks {args.notebooks}: no such directory")
    else:
        # ./notebooks (the repository's, as `make lab` runs it), else the current directory:
        # JupyterLab refuses a root that does not exist, after the URL has been printed
        root = Path.cwd() / "notebooks"
        root = root if root.is_dir() else Path.cwd()
    return run_lab(port=args.port, notebook_dir=root, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmio", description="QMIO lab: simulated QPU and emulator tools")
    parser.add_argument("--version", action="version", version=f"qmio_lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="print today's calibration and run a GHZ circuit on the simulated QPU")
    demo.add_argument("--qubits", type=int, default=3)
    demo.add_argument("--shots", type=int, default=4000)
    demo.add_argument("--seed", type=int, default=None, help="device seed (default from config)")
    demo.set_defaults(func=_cmd_demo)

    cal = sub.add_parser("calibration", help="show the calibration effective now (or --at TIME); import or "
                                             "export QMIO calibration files")
    cal_files = cal.add_subparsers(dest="action")
    imp = cal_files.add_parser("import", help="real QMIO calibration files into the service's history (admin)")
    imp.add_argument("paths", nargs="+", metavar="FILE", help="YYYY_MM_DD__HH_MM_SS.json files")
    exp = cal_files.add_parser("export", help="the service's history as QMIO files, one per snapshot")
    exp.add_argument("paths", nargs=1, metavar="DIR")
    exp.add_argument("--format", default="qmio", help="file format (qmio: the centre's JSON schema)")
    cal.add_argument("--seed", type=int, default=None)
    cal.add_argument("--at", type=_iso_time, help="ISO time, e.g. 2026-11-30T09:00:00+00:00 (UTC if no offset)")
    cal.add_argument("--json", action="store_true", help="full snapshot as JSON")
    cal.set_defaults(func=_cmd_calibration)

    lab = sub.add_parser("lab", help="JupyterLab with the QPU service and an emulator cluster running")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--notebooks", help="folder to open (default ./notebooks, else the current folder)")
    lab.add_argument("--workers", type=int, default=None, help="emulator Dask workers (default 2)")
    lab.set_defaults(func=_cmd_lab)

    qpu = sub.add_parser("qpu", help="the QPU queue service").add_subparsers(dest="qpu_command", required=True)
    srv = qpu.add_parser("serve", help="run the queue service in front of the simulated QPU")
    srv.add_argument("--host", default=config.get("qpu.host"))
    srv.add_argument("--port", type=int, default=int(config.get("qpu.port")), help="0 picks a free port")
    srv.add_argument("--db", help="SQLite file (default $QMIO_LAB_HOME/qpu/queue.sqlite)")
    srv.add_argument("--users", help="YAML file {users: {name: {token: ..., role: user|admin}}}")
    srv.add_argument("--time-scale", type=float, default=None,
                     help="device seconds per real second, e.g. 3600 = one hour per second")
    srv.add_argument("--timing", default=None, metavar="hardware|instant",
                     help="hardware: a job holds the QPU as long as QMIO's hardware would (scaled by --time-scale); "
                          "instant: only as long as its simulation (default: qmio.device.timing)")
    srv.add_argument("--start-time", type=_iso_time,
                     help="device time to start the clock at (ISO, UTC if no offset), with --time-scale")
    srv.add_argument("--seed", type=int, default=None, help="device seed (default from config)")
    srv.add_argument("--discovery", help="write {url, token, pid} JSON here once listening")
    srv.add_argument("--slurm-partition", default=None,
                     help="accept submissions only from SLURM jobs running in this partition (e.g. qpu)")
    srv.add_argument("--hub", action="store_true",
                     help="run as a JupyterHub-managed service: users are Hub users, no token file")
    srv.set_defaults(func=_cmd_qpu_serve)

    tun = sub.add_parser("tunnel", help="open a QMIO tunnel: an endpoint for QMIO's own qmio client (ZMQ_SERVER)")
    tun.add_argument("--time", type=_hms, default=_hms("00:03:00"),
                     help="how long it stays open, HH:MM:SS (default 00:03:00, at most 00:15:00)")
    tun.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    tun.add_argument("--slurm", action="store_true",
                     help="open it from a SLURM job in the QPU partition, as QMIO's client does")
    tun.add_argument("--reservation", default=None, help="SLURM reservation for the tunnel job (with --slurm)")
    tun.add_argument("--hold", action="store_true",
                     help="stay until the tunnel ends, and close it on Ctrl-C (SLURM's qpu.sh uses this)")
    tun.add_argument("--list", action="store_true", help="list your tunnels")
    tun.add_argument("--close", metavar="ID", help="close one of your tunnels")
    tun.set_defaults(func=_cmd_tunnel)

    use = sub.add_parser("usage", help="QPU seconds used per day and account, with the budgets that apply")
    use.add_argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
    use.add_argument("--user", default=None, help="another user's usage (admins)")
    use.add_argument("--all", action="store_true", help="everyone's usage (admins)")
    use.add_argument("--json", action="store_true", help="the report as JSON")
    use.add_argument("--plot", metavar="FILE", default=None,
                     help="also draw QPU seconds per day by account into FILE (.png, .svg or .pdf)")
    use.set_defaults(func=_cmd_usage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, LookupError, QmioError) as exc:
        print(f"qmio: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
