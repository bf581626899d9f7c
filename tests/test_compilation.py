"""The one compile path (qmio_lab.compilation): the service's sandboxes use Qiskit's own plugins only."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, sys
    from qiskit import qasm3
    from qmio_lab.compilation import compile_for, use_qiskit_plugins_only
    from qmio_lab.device import QmioDevice
    from support.circuits import ghz
    from support.moments import MONDAY
    left_out = use_qiskit_plugins_only() if sys.argv[1] == "own" else []
    device = QmioDevice(seed=5, calibrated_at=MONDAY)  # one calibration in both children
    circuit = ghz(3)
    circuit.ccx(0, 1, 2)
    compiled = [qasm3.dumps(compile_for(circuit, device.target(device.calibration), level=level))
                for level in range(4)]
    third_party = sorted({m.split(".")[0] for m in sys.modules} & {"qiskit_experiments", "qiskit_ibm_runtime", "pandas"})
    print(json.dumps({"left_out": left_out, "compiled": compiled, "imported": third_party}))
""")


def compile_in_child(plugins: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, plugins], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sandboxes_compile_as_qiskit_does_without_importing_other_packages_plugins():
    """With qiskit-experiments and qiskit-ibm-runtime installed (their plugins import pandas and an
    HTTP stack on a pass manager's first use), a process that keeps to Qiskit's own plugins
    compiles every optimisation level to the same circuits as one that loads them all."""
    own, every = compile_in_child("own"), compile_in_child("all")
    assert "qiskit.synthesis:clifford.rb_default" in own["left_out"]  # qiskit-experiments' plugin
    assert any(name.startswith("qiskit.transpiler.translation:ibm") for name in own["left_out"])
    assert own["imported"] == []
    assert every["imported"] != []  # what the sandboxes no longer pay for
    assert own["compiled"] == every["compiled"]
