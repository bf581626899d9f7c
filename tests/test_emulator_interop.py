"""The emulator target as Qiskit's generic tools use it (issue 15), on a real two-process LocalCluster.

Per-shot memory and seeds as ``AerSimulator`` gives them, options other tools pass, Qiskit's own
``BackendSamplerV2``/``BackendEstimatorV2``, copies and pickles of a backend that has run jobs,
OpenQASM 2 programs that define their own gates (checked against plain qiskit-aer), and the
one-line refusal of a plain script without a main guard (a real child process).
"""
from __future__ import annotations

import copy
import math
import pickle
import resource
import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from pathlib import Path

import dask.config
import numpy as np
import pytest
import qiskit.qasm2
from distributed import Client, LocalCluster
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Gate, Parameter
from qiskit.primitives import BackendEstimatorV2, BackendSamplerV2
from qiskit.quantum_info import Operator, SparsePauliOp
from qiskit_aer import AerSimulator

from qmio_lab.device import QmioDevice
from qmio_lab.emulator import EmulatorBackend
from qmio_lab.emulator.decompose import aer_names, for_aer, unrolled_size
from qmio_lab.emulator.mainguard import guarded
from qmio_lab.errors import IgnoredOptionWarning
from qmio_lab.errors import InvalidCircuitError, InvalidShotsError
from support.circuits import bell, ghz

HEADER = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'

#: Cuccaro's ripple-carry adder, as OpenQASM's own examples write it: b <- a + b, carry in cout.
ADDER = HEADER + """
gate majority a,b,c {{ cx c,b; cx c,a; ccx a,b,c; }}
gate unmaj a,b,c {{ ccx a,b,c; cx c,a; cx a,b; }}
qreg cin[1]; qreg a[4]; qreg b[4]; qreg cout[1];
creg ans[5];
{prepare}
majority cin[0],b[0],a[0];
majority a[0],b[1],a[1];
majority a[1],b[2],a[2];
majority a[2],b[3],a[3];
cx a[3],cout[0];
unmaj a[2],b[3],a[3];
unmaj a[1],b[2],a[2];
unmaj a[0],b[1],a[1];
unmaj cin[0],b[0],a[0];
measure b[0] -> ans[0]; measure b[1] -> ans[1]; measure b[2] -> ans[2]; measure b[3] -> ans[3];
measure cout[0] -> ans[4];
"""

#: A controlled-H the program defines itself (qelib1's old body), beside qelib1's own ``ch``,
#: which Aer has no kernel for either.
CONTROLLED_H = HEADER + """
gate cH a,b { h b; sdg b; cx a,b; h b; t b; cx a,b; t b; h b; s b; x b; s a; }
qreg q[3]; creg c[3];
h q[0];
cH q[0],q[1];
x q[2];
ch q[2],q[0];
measure q -> c;
"""

#: A controlled-U with parameters, defined in the program (a phase-kickback circuit).
CONTROLLED_U = HEADER + """
gate ctu(theta,phi,lam) ctl,tgt {
  u1((lam+phi)/2) ctl; u1((lam-phi)/2) tgt; cx ctl,tgt;
  u3(-theta/2,0,-(phi+lam)/2) tgt; cx ctl,tgt; u3(theta/2,phi,0) tgt;
}
qreg c[2]; qreg r[1]; creg m[3];
h c[0]; h c[1]; x r[0];
ctu(pi/3,0.2,0.7) c[0],r[0];
ctu(2*pi/3,-0.4,pi/5) c[1],r[0];
h c[0]; h c[1];
measure c[0] -> m[0]; measure c[1] -> m[1]; measure r[0] -> m[2];
"""


def adder(a: int, b: int, superpose_a0: bool = False) -> QuantumCircuit:
    prepare = [f"x a[{k}];" for k in range(4) if a >> k & 1] + [f"x b[{k}];" for k in range(4) if b >> k & 1]
    if superpose_a0:
        prepare.append("h a[0];")
    return qiskit.qasm2.loads(ADDER.format(prepare=" ".join(prepare)))


def aer_counts(circuit: QuantumCircuit, shots: int, seed: int) -> dict[str, int]:
    """What plain qiskit-aer gives: the circuit transpiled for AerSimulator, then run (as a
    statevector, the emulator's method for these widths: Aer's automatic choice would take the
    stabilizer method for Clifford circuits, which draws other shots from the same seed)."""
    sim = AerSimulator(method="statevector")
    return sim.run(transpile(circuit, sim), shots=shots, seed_simulator=seed).result().get_counts()


def tvd(p: dict[str, int], q: dict[str, int]) -> float:
    n, m = sum(p.values()), sum(q.values())
    return 0.5 * sum(abs(p.get(k, 0) / n - q.get(k, 0) / m) for k in set(p) | set(q))


@pytest.fixture(scope="module")
def local():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster, set_as_default=False) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def backend(local) -> EmulatorBackend:
    cluster, client = local
    return EmulatorBackend(client=client, cluster=cluster)


# ---- memory, seeds, options --------------------------------------------------------------------
def test_memory_is_per_shot_and_matches_aer_for_the_same_seed(backend):
    circuit = QuantumCircuit(QuantumRegister(3), ClassicalRegister(2, "x"), ClassicalRegister(1, "y"))
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.h(2)
    circuit.measure([0, 1], [0, 1])
    circuit.measure(2, 2)
    result = backend.run(circuit, shots=300, memory=True, seed_simulator=17).result()
    memory = result.get_memory()
    assert len(memory) == 300 and Counter(memory) == result.get_counts()
    assert set(memory) <= {"0 00", "0 11", "1 00", "1 11"}  # Qiskit's layout: registers spaced
    # the emulator's method is statevector (Aer's automatic choice would take the stabilizer)
    expected = AerSimulator(method="statevector").run(circuit, shots=300, memory=True,
                                                      seed_simulator=17).result().get_memory()
    assert memory == expected


def test_without_memory_there_is_none(backend):
    result = backend.run(bell(), shots=50).result()
    with pytest.raises(Exception, match="(?i)memory"):
        result.get_memory()


def test_a_seed_reproduces_counts_and_memory_and_another_seed_does_not(backend):
    circuit = QuantumCircuit(4)
    circuit.h(range(4))
    circuit.measure_all()
    first = backend.run(circuit, shots=2000, memory=True, seed_simulator=5).result()
    again = backend.run(circuit, shots=2000, memory=True, seed_simulator=5).result()
    other = backend.run(circuit, shots=2000, memory=True, seed_simulator=6).result()
    assert first.get_memory() == again.get_memory() and first.get_counts() == again.get_counts()
    assert first.get_memory() != other.get_memory()


def test_options_meant_for_aer_or_hardware_are_ignored_with_a_warning_naming_them(backend):
    with pytest.warns(IgnoredOptionWarning, match=r"'init_qubits'.*'rep_delay'"):
        job = backend.run(bell(), shots=100, init_qubits=True, rep_delay=0.0001)
    assert set(job.result().get_counts()) <= {"00", "11"}
    with pytest.warns(IgnoredOptionWarning, match=r"'shot' \(did you mean 'shots'\?\)"):
        backend.run(bell(), shots=10, shot=5).result()


def test_wrong_values_of_known_options_are_refused_with_the_fix(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these may be waved through as "ignored"
        with pytest.raises(InvalidShotsError, match="positive integer"):
            backend.run(bell(), shots=0)
        with pytest.raises(ValueError, match="memory must be True or False"):
            backend.run(bell(), shots=10, memory="yes")
        with pytest.raises(ValueError, match="seed_simulator must be a non-negative integer"):
            backend.run(bell(), shots=10, seed_simulator=-3)
        with pytest.raises(ValueError, match=r"method must be None \(chosen per circuit\) or one of \['statevector'"):
            backend.run(bell(), shots=10, method="gpu")
        with pytest.raises(ValueError, match="meas_level=2"):
            backend.run(bell(), shots=10, meas_level=1)
        with pytest.raises(ValueError, match="one dict"):
            backend.run(bell(), shots=10, parameter_binds=[{}, {}])
    counts = backend.run(bell(), shots=np.int64(20), seed_simulator=np.uint32(3)).result().get_counts()
    assert sum(counts.values()) == 20  # numpy integers, as numpy-built sweeps pass them, are fine


def test_parameter_binds_run_each_value_in_aers_order(backend):
    theta, phi = Parameter("theta"), Parameter("phi")
    first = QuantumCircuit(1, name="first")
    first.rx(theta, 0)
    first.measure_all()
    second = QuantumCircuit(1, name="second")
    second.ry(phi, 0)
    second.measure_all()
    binds = [{theta: [0.0, math.pi]}, {phi: [math.pi, 0.0, math.pi]}]
    ours = backend.run([first, second], shots=64, parameter_binds=binds).result()
    aers = AerSimulator(method="statevector").run([first, second], shots=64, parameter_binds=binds).result()
    assert len(ours.results) == len(aers.results) == 5
    assert [ours.get_counts(i) for i in range(5)] == [aers.get_counts(i) for i in range(5)]
    assert [r.header["name"] for r in ours.results] == ["first", "first", "second", "second", "second"]


# ---- Qiskit's backend primitives ------------------------------------------------------------------
def test_backend_sampler_v2_gives_bell_counts(backend):
    sampler = BackendSamplerV2(backend=backend)
    result = sampler.run([bell()], shots=4000).result()
    counts = result[0].data.meas.get_counts()
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 4000
    assert abs(counts["00"] / 4000 - 0.5) < 0.05  # 6.3 standard deviations
    seeded = BackendSamplerV2(backend=backend, options={"seed_simulator": 123})
    one = seeded.run([ghz(3)], shots=500).result()[0].data.meas.get_bitstrings()
    two = seeded.run([ghz(3)], shots=500).result()[0].data.meas.get_bitstrings()
    assert one == two and set(one) == {"000", "111"}


def test_backend_estimator_v2_gives_the_bell_state_correlations(backend):
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    estimator = BackendEstimatorV2(backend=backend, options={"seed_simulator": 9})
    estimator.options.default_precision = 0.02
    observables = [SparsePauliOp("ZZ"), SparsePauliOp("XX"), SparsePauliOp("ZI"), SparsePauliOp("YY")]
    evs = estimator.run([(circuit, observables)]).result()[0].data.evs
    assert evs[0] == pytest.approx(1.0, abs=1e-12) and evs[1] == pytest.approx(1.0, abs=1e-12)
    assert abs(evs[2]) < 0.1 and evs[3] == pytest.approx(-1.0, abs=1e-12)


# ---- copies and pickles --------------------------------------------------------------------------
def test_a_used_backend_deep_copies_and_pickles_and_the_copies_run(backend, local):
    _, client = local
    backend.run(bell(), shots=10).result()  # it has talked to its cluster
    copied = copy.deepcopy(backend)
    unpickled = pickle.loads(pickle.dumps(backend))
    for twin in (copied, unpickled):
        assert twin is not backend and twin.name == backend.name
        assert twin.client() is client  # same process: the same connection, not a new cluster
        counts = twin.run(bell(), shots=100, seed_simulator=4).result().get_counts()
        assert counts == backend.run(bell(), shots=100, seed_simulator=4).result().get_counts()
    assert pickle.loads(pickle.dumps(copied)).options.shots == backend.options.shots


def test_an_unpickled_backend_in_another_process_reconnects_to_the_scheduler(backend, tmp_path: Path):
    backend.run(bell(), shots=10).result()
    (tmp_path / "backend.pickle").write_bytes(pickle.dumps(backend))
    script = textwrap.dedent("""
        import pickle, sys
        backend = pickle.loads(open(sys.argv[1], "rb").read())
        result = backend.run(__import__("support.circuits").circuits.ghz(3), shots=200).result()
        print(sorted(result.get_counts()), result.backend_name)
    """)
    child = _child([sys.executable, "-c", script, str(tmp_path / "backend.pickle")], tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["['000',", "'111']", "qmio_emulator"]


# ---- OpenQASM 2 with its own gates, against plain qiskit-aer -------------------------------------
@pytest.mark.parametrize("a,b", [(1, 15), (5, 9), (0, 0), (7, 6)])
def test_a_majority_unmajority_ripple_carry_adder_adds(backend, a, b):
    circuit = adder(a, b)
    result = backend.run(circuit, shots=64, seed_simulator=1).result()
    assert result.get_counts() == {format(a + b, "05b"): 64}
    assert result.get_counts() == aer_counts(circuit, 64, 1)
    assert result.backend_name == backend.name == "qmio_emulator"


def test_the_adder_on_a_superposition_matches_aer(backend):
    circuit = adder(2, 3, superpose_a0=True)  # a = 2 or 3: sums 5 and 6, half each
    counts = backend.run(circuit, shots=4000, seed_simulator=8).result().get_counts()
    assert set(counts) == {format(5, "05b"), format(6, "05b")}
    assert counts == aer_counts(circuit, 4000, 8)


def test_a_user_defined_controlled_h_matches_aer_and_the_library_gate(backend):
    circuit = qiskit.qasm2.loads(CONTROLLED_H)
    counts = backend.run(circuit, shots=8000, seed_simulator=21).result().get_counts()
    assert counts == aer_counts(circuit, 8000, 21)
    exact = _exact_distribution(circuit)
    assert all(key[0] == "1" for key in counts)  # x q[2]
    assert tvd(counts, {k: round(v * 8000) for k, v in exact.items()}) < 0.03
    # the user's cH is the library's CH, as Aer simulates it after unrolling
    mine = for_aer(qiskit.qasm2.loads(HEADER + "gate cH a,b { h b; sdg b; cx a,b; h b; t b; cx a,b; "
                                              "t b; h b; s b; x b; s a; }\nqreg q[2];\ncH q[0],q[1];\n"),
                   aer_names())
    library = QuantumCircuit(2)
    library.ch(0, 1)
    assert Operator(mine).equiv(Operator(library))


def test_a_user_defined_controlled_h_on_a_superposition_matches_aer(backend):
    circuit = qiskit.qasm2.loads(HEADER + """
gate cH a,b { h b; sdg b; cx a,b; h b; t b; cx a,b; t b; h b; s b; x b; s a; }
qreg q[2]; creg c[2];
h q[0]; cH q[0],q[1]; measure q -> c;
""")
    counts = backend.run(circuit, shots=8000, seed_simulator=2).result().get_counts()
    assert counts == aer_counts(circuit, 8000, 2)
    ideal = {"00": 0.5, "01": 0.25, "11": 0.25}  # q0 = 0: q1 = 0; q0 = 1: q1 in |+>
    assert tvd(counts, {k: int(v * 8000) for k, v in ideal.items()}) < 0.03


def test_a_user_defined_controlled_u_matches_aer(backend):
    circuit = qiskit.qasm2.loads(CONTROLLED_U)
    counts = backend.run(circuit, shots=8000, seed_simulator=13).result().get_counts()
    assert counts == aer_counts(circuit, 8000, 13)
    exact = _exact_distribution(circuit)
    assert tvd(counts, {k: round(v * 8000) for k, v in exact.items()}) < 0.03


def test_custom_instructions_built_in_python_run_as_on_aer(backend):
    sub = QuantumCircuit(2, 1, name="entangle_and_read")
    sub.h(0)
    sub.cx(0, 1)
    sub.measure(1, 0)
    inner = QuantumCircuit(1, name="flip")
    inner.x(0)
    flip = inner.to_gate()
    twice = QuantumCircuit(1, name="flip_twice")
    twice.append(flip, [0])
    twice.append(flip, [0])
    circuit = QuantumCircuit(3, 2)
    circuit.append(sub.to_instruction(), [0, 1], [0])
    circuit.append(twice.to_gate(), [2])
    circuit.append(flip, [2])
    circuit.measure(2, 1)
    counts = backend.run(circuit, shots=2000, seed_simulator=3).result().get_counts()
    assert counts == aer_counts(circuit, 2000, 3)
    assert set(counts) == {"10", "11"}


def test_a_method_that_lacks_a_gate_gets_it_unrolled(backend):
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.crx(math.pi / 2, 0, 1)  # in Aer's statevector, not in its matrix product state
    circuit.cx(1, 2)
    circuit.measure_all()
    assert "crx" not in aer_names("matrix_product_state")
    mps = backend.run(circuit, shots=4000, method="matrix_product_state", seed_simulator=3).result()
    sv = backend.run(circuit, shots=4000, method="statevector", seed_simulator=3).result()
    assert mps.results[0].metadata["method"] == "matrix_product_state"
    assert tvd(mps.get_counts(), sv.get_counts()) < 0.05


def test_replay_runs_user_defined_gates_with_memory(backend, device: QmioDevice):
    circuit = adder(1, 2)
    result = backend.run(circuit, shots=1000, noise=device.calibration, memory=True, seed_simulator=4).result()
    counts = result.get_counts()
    assert max(counts, key=counts.get) == format(3, "05b")  # noisy, yet mostly the sum
    memory = result.get_memory()
    assert len(memory) == 1000 and Counter(memory) == counts
    assert result.backend_name == "qmio_emulator"
    again = backend.run(circuit, shots=1000, noise=device.calibration, memory=True, seed_simulator=4).result()
    assert again.get_memory() == memory


# ---- limits after unrolling --------------------------------------------------------------------
def _doubling_program(levels: int) -> str:
    lines = [HEADER, "gate g0 a { x a; }"]
    lines += [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, levels + 1)]
    lines += ["qreg q[1]; creg c[1];", f"g{levels} q[0];", "measure q -> c;"]
    return "\n".join(lines)


def test_a_small_program_that_unrolls_past_the_limit_is_refused_before_it_runs(backend):
    bomb = qiskit.qasm2.loads(_doubling_program(40))  # 2**40 x gates in 45 lines
    with pytest.raises(InvalidCircuitError, match=r"more than 1000000 operations.*qmio\.emulator\.max_operations"):
        backend.run(bomb, shots=10)
    small = qiskit.qasm2.loads(_doubling_program(4))  # 16 x gates: even, so back to |0>
    assert unrolled_size(small, aer_names()) == 17
    assert backend.run(small, shots=10).result().get_counts() == {"0": 10}
    with dask.config.set({"qmio.emulator.max_operations": 16}):
        with pytest.raises(InvalidCircuitError, match="more than 16 operations"):
            backend.run(small, shots=10)
        plain = QuantumCircuit(1)  # the limit is on unrolling: a plain circuit is not counted
        for _ in range(40):
            plain.x(0)
        plain.measure_all()
        assert backend.run(plain, shots=10).result().get_counts() == {"0": 10}


def test_an_unknown_operation_without_a_definition_is_refused_naming_it(backend):
    circuit = QuantumCircuit(1)
    circuit.append(Gate("mystery", 1, []), [0])
    circuit.measure_all()
    with pytest.raises(InvalidCircuitError, match="'mystery'.*no definition"):
        backend.run(circuit, shots=10)


def test_definitions_nested_too_deep_are_refused(backend):
    with dask.config.set({"qmio.emulator.max_nesting": 5}):
        with pytest.raises(InvalidCircuitError, match=r"nest deeper than 5 levels.*qmio\.emulator\.max_nesting"):
            backend.run(qiskit.qasm2.loads(_doubling_program(8)), shots=10)


# ---- a script without a main guard ---------------------------------------------------------------
def _limit_memory() -> None:
    """The child (and its Dask workers) may not take the test machine's memory."""
    limit = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _child(argv: list[str], home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "QMIO_LAB_HOME": str(home / "lab"), "HOME": str(home),
           "DASK_QMIO__EMULATOR__LOCAL__N_WORKERS": "1", "DASK_QMIO__CALIBRATION__WEEKDAYS": "[]",
           "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limit_memory)


SCRIPT = """\
import qmio_lab
from qiskit import QuantumCircuit

circuit = QuantumCircuit(2)
circuit.h(0)
circuit.cx(0, 1)
circuit.measure_all()
{body}
"""


def test_a_plain_script_without_a_main_guard_is_told_what_to_do_in_one_line(tmp_path: Path):
    script = tmp_path / "bell_script.py"
    script.write_text(SCRIPT.format(body='print(qmio_lab.get_backend("emulator").run(circuit, shots=100).result().get_counts())'))
    child = _child([sys.executable, str(script)], tmp_path)
    assert child.returncode != 0
    last = child.stderr.strip().splitlines()[-1]
    assert last.startswith("qmio_lab.errors.EmulatorClusterError: ")
    assert 'put that code under `if __name__ == "__main__":`' in last and "notebook" in last
    assert str(script) in last and "(line 8)" in last
    assert "bootstrapping" not in child.stderr and "Nanny failed" not in child.stderr
    assert child.stderr.count("Traceback") == 1  # ours only: no worker's traceback


def test_the_same_script_with_a_main_guard_runs(tmp_path: Path):
    script = tmp_path / "guarded_script.py"
    body = ('if __name__ == "__main__":\n'
            '    print(sorted(qmio_lab.get_backend("emulator").run(circuit, shots=100).result().get_counts()))')
    script.write_text(SCRIPT.format(body=body))
    child = _child([sys.executable, str(script)], tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "['00', '11']"


@pytest.mark.parametrize("source,line,expected", [
    ("import x\nrun()\n", 2, False),
    ('if __name__ == "__main__":\n    run()\n', 2, True),
    ("if '__main__' == __name__:\n    a = 1\n    run()\n", 3, True),
    ('if __name__ != "__main__":\n    pass\nelse:\n    run()\n', 4, True),
    ('if __name__ != "__main__":\n    run()\n', 2, False),
    ('if __name__ == "__main__" and fast:\n    run()\nrun()\n', 3, False),
    ('if debug:\n    run()\n', 2, False),
])
def test_guarded_reads_the_main_idiom(source: str, line: int, expected: bool):
    assert guarded(source, line) is expected


def _exact_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Ideal probabilities of the measured bits, from qiskit's Statevector of the unmeasured
    circuit (every qubit here is measured into the clbit of its own index)."""
    from qiskit.quantum_info import Statevector

    state = Statevector(circuit.remove_final_measurements(inplace=False))
    probabilities = state.probabilities_dict()
    return {key: p for key, p in probabilities.items() if p > 1e-12}
