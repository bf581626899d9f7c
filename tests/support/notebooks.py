"""Reading a tutorial notebook's results back from its kernel, for the tests.

A tutorial holds only what a user would write. The tests append one cell of their own, in
memory, that gathers what they check from the kernel's variables and prints it as JSON.
"""
from __future__ import annotations

import json

import nbformat

#: What each test reads from its notebook's kernel once every cell has run: the test's own code,
#: run after the tutorial (which holds only what a user would write).
READ_BACK = {
    '01_quickstart': '''\
check = {
    "bell_tvd": bell.tvd,
    "bell_qpu_good": p_ghz(bell_qpu.get_counts(), 2),
    "ghz_qpu": [p_ghz(qpu_result.get_counts(i), n) for i, n in enumerate((3, 5, 8))],
    "ghz_emu": [p_ghz(emu_result.get_counts(i), n) for i, n in enumerate((3, 5, 8))],
    "calibration_id": qpu_result.results[0].metadata.get("calibration_id") if hasattr(qpu_result.results[0], "metadata") else None,
}
''',
    '02_calibration_explorer': '''\
weekend = [i for i, x in enumerate(times) if x.weekday() >= 5]
check = {
    "windows": [w[0].isoformat() for w in windows],
    "weekday_windows_only": all(w[0].weekday() < 5 for w in windows),
    "ecr_before_monday": ecr[weekend[-1]],
    "ecr_after_monday": ecr[weekend[-1] + 9],
    "t1_median_now_us": cal.summary()["t1_median_us"],
}
''',
    '03_hybrid_vqe_session': '''\
check = {"exact": exact, "vqe": float(opt.fun), "first": history[0], "calls": len(history),
         "transpiles": transpiles, "emulator_energy": emu_energy,
         "usage_jobs": usage["totals"]["jobs"], "usage_qpu_s": usage["totals"]["qpu_seconds"], "timing": usage["timing"]}
''',
    '04_parameter_sweep_dask': '''\
check = {"circuits": len(circuits), "results": len(result.results), "kind": cluster_kind(),
         "workers": len(workers), "slurm_jobs": slurm_jobs, "parity_corner": float(z[0, 0]),
         "in_order": [exp.metadata["index"] for exp in result.results] == list(range(len(circuits)))}
''',
    '05_noise_replay': '''\
check = {"calibration_id": cal_id, "tvd_replay": with_noise.tvd, "tvd_ideal": without.tvd,
         "replay_calibration": replayed.results[0].metadata.get("calibration_id")}
''',
    '06_characterise_the_qpu': '''\
from qmio_lab.device.generation import coherence_limited_error as _coherence_limited


def _figures(c):
    return {"t1": c.t1, "t2": c.t2, "p10": c.readout_p10, "p01": c.readout_p01, "sx_error": c.sx_error,
            "per_pulse": max(c.sx_error, _coherence_limited([c], c.sx_duration))}


check = {
    "qubits": list(qubits), "same_calibration": cal_after.id == cal_before.id,
    "pulses_per_clifford": float(pulses_per_clifford), "summary_axes": len(fig.axes),
    "fits": {str(q): {
        "t1": t1_fit[q].n, "t2": t2_fit[q].n, "t2star": t2star_fit[q].n, "ramsey_freq": ramsey_freq[q].n,
        "osc_freq": 4 / (2 * cal_before.qubits[q].t2), "p10": readout_fit[q]["p10"], "p01": readout_fit[q]["p01"],
        "epc": epc_fit[q].n, "epc_predicted": epc_predicted[q],
        "calibration": [_figures(c.qubits[q]) for c in (cal_before, cal_after)],
    } for q in qubits},
}
''',
    '07_from_qmio_to_qmio_lab': '''\
_jobs = {job["id"]: job for job in qpu.client.jobs(limit=20)}
_sampler_job, _magic_job = qpu.client.jobs(limit=2)  # newest first: the sampler's, then the magic's


def _ran_on(job_id):
    return qpu.client.result(job_id)["results"][0]["metadata"]


check = {
    "tvds": tvds, "shot_noise_tvd": shot_noise_tvd,
    "ideal_tvds": {name: tvd(p, ideal) for name, p in probs.items()},
    "shots": {name: sum(c.values()) for name, c in runs.items()},
    "tunnel_user": tunnel["user"], "tunnel_requests": served["requests"],
    "tunnel_state_after": next((t["state"] for t in qpu.client.tunnels() if t["id"] == tunnel["id"]), "closed"),
    "script_job": _jobs.get(reply["execution_metrics"]["job_id"]),
    "ran_on": {"script": _ran_on(reply["execution_metrics"]["job_id"]), "magic": _ran_on(_magic_job["id"]),
               "sampler": _ran_on(_sampler_job["id"])},
    "zmq_server_left": os.environ.get("ZMQ_SERVER"),
}
''',
    '08_beyond_one_node': '''\
check = {
    "energy": energy, "reference": reference, "estimator_energy": estimator_energy,
    "estimator_stds": float(pub_result.data.stds), "estimator_cut": "cutting" in pub_result.metadata,
    "plan": {"num_cuts": plan.num_cuts, "sampling_overhead": plan.sampling_overhead,
             "num_subexperiments": plan.num_subexperiments, "subcircuit_qubits": plan.subcircuit_qubits},
    "estimate_plan_subexperiments": estimate.plan.num_subexperiments, "shots": estimate.shots,
    "where": estimate.where(),
    "runs": [{"part": r["part"], "worker": r["worker"], "batch": r["batch"], "started": r["batch_started"],
              "finished": r["batch_finished"], "method": r["method"]} for r in estimate.metadata["runs"]],
    "cluster_workers": sorted(emulator.client().scheduler_info(n_workers=-1)["workers"]),
    "bar": bar.value, "plotted_workers": len(done.lines),
    "plotted_done": [float(line.get_ydata()[-1]) for line in done.lines],
    "plotted_batches": sum(not patch.get_fill() for patch in timeline.patches),  # one outline a batch
}
''',
}

_MARK = "QMIO_CHECK "


def with_read_back(book: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """``book`` with the reading cell for notebook ``name`` appended (the file is not changed)."""
    assert not any(_MARK.strip() in cell.source for cell in book.cells), "a tutorial holds no test plumbing"
    reader = READ_BACK[name] + f'\nimport json\nprint("{_MARK}" + json.dumps(check, default=str))\n'
    book.cells.append(nbformat.v4.new_code_cell(reader))
    return book


def read_back(book: nbformat.NotebookNode) -> dict:
    """What the reading cell of an executed ``book`` printed; the cell is removed again."""
    for out in book.cells[-1].get("outputs", []):
        if out.get("output_type") == "stream" and _MARK in out.get("text", ""):
            line = next(ln for ln in out["text"].splitlines() if ln.startswith(_MARK))
            book.cells.pop()
            return json.loads(line[len(_MARK):])
    raise AssertionError("reading the notebook's results from its kernel printed nothing")
