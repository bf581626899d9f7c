"""The ``qmio`` command."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from qmio_lab import __version__, config


def _cmd_demo(args: argparse.Namespace) -> int:
    from qmio_lab.demo import run_demo

    run_demo(qubits=args.qubits, shots=args.shots, seed=args.seed)
    return 0


def _cmd_calibration(args: argparse.Namespace) -> int:
    from qmio_lab.device import QmioDevice

    device = QmioDevice(seed=args.seed)
    at = datetime.fromisoformat(args.at) if args.at else None
    cal = device.calibration_at(at)
    print(cal.to_json() if args.json else json.dumps(cal.summary(), indent=2))
    return 0


def _cmd_qpu_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qmio_lab.qpu.serve import ServeOptions, serve

    serve(ServeOptions(
        host=args.host, port=args.port, db=Path(args.db) if args.db else None,
        users_file=Path(args.users) if args.users else None, time_scale=args.time_scale,
        start_time=datetime.fromisoformat(args.start_time) if args.start_time else None,
        seed=args.seed, discovery=Path(args.discovery) if args.discovery else None,
        slurm_partition=args.slurm_partition, hub=args.hub,
    ))
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qmio_lab.lab import run_lab

    return run_lab(port=args.port, notebook_dir=Path(args.notebooks) if args.notebooks else None,
                   workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmio", description="QMIO lab: simulated QPU and emulator tools")
    parser.add_argument("--version", action="version", version=f"qmio_lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="print today's calibration and run a GHZ circuit on the simulated QPU")
    demo.add_argument("--qubits", type=int, default=3)
    demo.add_argument("--shots", type=int, default=4000)
    demo.add_argument("--seed", type=int, default=None, help="device seed (default from config)")
    demo.set_defaults(func=_cmd_demo)

    cal = sub.add_parser("calibration", help="show the calibration effective now (or --at TIME)")
    cal.add_argument("--seed", type=int, default=None)
    cal.add_argument("--at", help="ISO time, e.g. 2026-11-30T09:00:00+00:00")
    cal.add_argument("--json", action="store_true", help="full snapshot as JSON")
    cal.set_defaults(func=_cmd_calibration)

    lab = sub.add_parser("lab", help="JupyterLab with the QPU service and an emulator cluster running")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--notebooks", help="folder to open (default ./notebooks)")
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
    srv.add_argument("--start-time", help="device time to start the clock at (ISO), with --time-scale")
    srv.add_argument("--seed", type=int, default=None, help="device seed (default from config)")
    srv.add_argument("--discovery", help="write {url, token, pid} JSON here once listening")
    srv.add_argument("--slurm-partition", default=None,
                     help="accept submissions only from SLURM jobs running in this partition (e.g. qpu)")
    srv.add_argument("--hub", action="store_true",
                     help="run as a JupyterHub-managed service: users are Hub users, no token file")
    srv.set_defaults(func=_cmd_qpu_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, LookupError) as exc:
        print(f"qmio: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
