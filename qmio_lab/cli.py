"""The ``qmio`` command."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from qmio_lab import __version__


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
