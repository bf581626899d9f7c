"""%%qmio on the emulator (a real Dask LocalCluster with one worker) and the in-process simulator."""
from __future__ import annotations

import pytest

from support.circuits import BELL_QASM2, BELL_QASM3
from support.kernels import Kernel

MG = "get_ipython().magics_manager.registry['QmioMagics']"
@pytest.fixture(scope="module")
def k(tmp_path_factory):
    kernel = Kernel(tmp_path_factory.mktemp("qmio_home"), DASK_QMIO__EMULATOR__LOCAL__N_WORKERS="1",
                    DASK_QMIO__EMULATOR__LOCAL__MEMORY_LIMIT="2GiB")
    kernel.execute("%load_ext qmio_lab\nfrom qmio_lab.qpu import default_client")
    yield kernel
    kernel.execute("import qmio_lab.emulator as _e; _e.shutdown()")
    kernel.close()


def test_emulator_qasm2_noiseless(k):
    k.execute(f"%%qmio --target emulator -s 500 -o e\n{BELL_QASM2}", timeout=120)
    counts = k.value("e.get_counts()")
    assert sum(counts.values()) == 500 and set(counts) <= {"00", "11"}
    row = k.value(f"(lambda r: [r.state.value, r.progress.value, r.progress.max, r.label.value])"
                  f"({MG}.monitors[-1].rows[0])")
    assert row[0] == "<b>done</b>" and row[1] == row[2] == 1 and "emulator" in row[3]


def test_emulator_replays_a_calibration_and_compares(k):
    k.execute(f"%%qmio --target emulator -s 2000 -o e_ideal\n{BELL_QASM2}", timeout=120)
    cal_id = k.value("default_client().calibration().id")
    k.execute(f"%%qmio -t emulator -s 2000 --noise calibration:{cal_id} -o en\n{BELL_QASM3}", timeout=120)
    assert k.value("en._metadata['calibration_id']") == cal_id
    counts = k.value("en.get_counts()")
    assert {"01", "10"} & set(counts)  # the replayed noise flips some shots
    k.execute("from qmio_lab.widgets import compare\ncmp = compare(e_ideal, en, labels=('ideal', 'noisy'))")
    tvd, summary, table = k.value("[cmp.tvd, cmp.summary.value, cmp.table.value]")
    assert 0 < tvd < 0.3 and f"{tvd:.4f}" in summary and "p(noisy)" in table
    message = k.usage_error(f"%%qmio -t emulator --noise calibration:cal-nope\n{BELL_QASM2}")
    assert "emulator refused the job" in message and "cal-nope" in message


def test_emulator_async_python_cell(k):
    body = ("from qiskit import QuantumCircuit\nqcs = []\nfor n in range(2, 6):\n"
            "    qc = QuantumCircuit(n); qc.h(0); [qc.cx(0, i) for i in range(1, n)]; qc.measure_all(); qcs.append(qc)\n"
            "qcs\n")
    out = k.execute(f"%%qmio -t emulator --async -s 100 -o ej\n{body}", timeout=120)
    assert "qmio-job" in out["result"]["text/html"]
    k.wait_for(f"len({MG}.monitors[-1].footer.children) == 1", timeout=20)
    row = k.value(f"(lambda r: [r.state.value, r.progress.value, r.progress.max])({MG}.monitors[-1].rows[0])")
    assert row == ["<b>done</b>", 4, 4]
    assert k.value(f"len({MG}.monitors[-1].footer.children[0].selector.options)") == 4


def test_simulator_target(k):
    k.execute(f"%%qmio -t simulator -s 300 -o s\n{BELL_QASM2}", timeout=120)
    assert sum(k.value("s.get_counts()").values()) == 300


def test_cluster_line_magic(k):
    info = k.execute("ci = %qmio cluster\nci", timeout=120)["result"]
    assert "qmio-cluster" in info["text/html"]
    assert k.value("[ci['kind'], ci['workers']]") == ["local", 1]
    assert "%qmio cluster scale N" in k.usage_error("%qmio cluster 3")
    assert "worker count N >= 0" in k.usage_error("%qmio cluster scale")
    assert "worker count N >= 0" in k.usage_error("%qmio cluster scale -1")
    assert "unknown cluster action 'grow'" in k.usage_error("%qmio cluster grow 2")
    assert "invalid int value: 'two'" in k.usage_error("%qmio cluster scale two")
