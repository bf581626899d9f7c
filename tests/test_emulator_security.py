"""The emulator's Dask clusters only serve clients that hold their credentials.

README: the clusters "speak TLS": the `local` one and the `slurm` one with a key made for them
(`Security.temporary()`; the SLURM worker jobs read theirs from a private directory of the lab's
home), or the site's certificates (`distributed.comm.tls.*`); `qmio lab`'s own scheduler with a
key written for each lab, which its server and kernels get through the environment. Dask runs
the pickled tasks any connecting client sends, so a client without the key must be refused:
here plain TCP, and TLS with a key of its own, as another user of the machine would try.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import dask.config
import psutil
import pytest
from distributed import Client
from distributed.security import Security

import qmio_lab.emulator as emulator
from qmio_lab.emulator import cluster as clusters
from qmio_lab.errors import EmulatorClusterError
from qmio_lab.lab import write_tls

from support.cli import get_json
from support.slurm import diagnostics, two_worker_settings
from support.cli import descendants, lab_env, start_lab  # noqa: F401  (lab_env is a fixture)

TLS_ENV = ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
           "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY", "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION")


def assert_refuses_strangers(address: str) -> None:
    """Neither plain TCP nor TLS with a key of its own gets a connection to ``address``."""
    assert address.startswith("tls://")
    with pytest.raises((OSError, TimeoutError)):  # another user, plain TCP
        Client(address.replace("tls://", "tcp://"), timeout=5, set_as_default=False)
    with pytest.raises((OSError, TimeoutError)):  # TLS, but with a key of their own
        Client(address, security=Security.temporary(), timeout=5, set_as_default=False)


def listening_hosts(port: int) -> set[str]:
    """The local addresses this process listens on at ``port``."""
    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- local ------------------------------------------------------------------------------------------
@pytest.fixture
def cluster():
    with dask.config.set({"qmio.emulator.cluster": "local", "qmio.emulator.local.n_workers": 1,
                          "qmio.emulator.local.memory_limit": "1GiB"}):
        client = emulator.get_client()
        yield client, emulator.get_cluster()
    emulator.shutdown()


def test_a_client_without_the_clusters_credentials_cannot_connect(cluster):
    client, local = cluster
    address = local.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    assert client.submit(sum, [1, 2]).result(timeout=60) == 3  # we hold the key
    assert_refuses_strangers(address)


# ---- slurm: settings ----------------------------------------------------------------------------------
def site_tls(directory: Path) -> dict[str, str]:
    """A site's certificates in the dask config: one self-signed pair for every role."""
    made = write_tls(directory)
    cert, key = made["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"], made["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]
    return {"distributed.comm.tls.ca-file": cert,
            **{f"distributed.comm.tls.{role}.{part}": path for role in ("scheduler", "worker", "client")
               for part, path in (("cert", cert), ("key", key))}}


def test_the_slurm_cluster_gets_a_temporary_key_and_a_dashboard_on_localhost(tmp_path, monkeypatch):
    monkeypatch.setenv("QMIO_LAB_HOME", str(tmp_path / "lab"))
    with dask.config.set({"jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"}}):
        kwargs = clusters.slurm_cluster_kwargs()
    assert "BEGIN CERTIFICATE" in kwargs["security"].tls_ca_file  # in memory, made for this cluster
    assert kwargs["security"].require_encryption
    assert kwargs["shared_temp_directory"] == str(tmp_path / "lab" / "slurm-tls")
    assert kwargs["scheduler_options"] == {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    with dask.config.set({"jobqueue.slurm.scheduler-options": {"dashboard_address": ":8787"},
                          "jobqueue.slurm.shared-temp-directory": str(tmp_path / "shared")}):
        kwargs = clusters.slurm_cluster_kwargs()
    assert kwargs["scheduler_options"] == {"dashboard_address": ":8787"}  # the site's choice wins
    assert kwargs["shared_temp_directory"] == str(tmp_path / "shared")


def test_the_slurm_cluster_uses_the_sites_certificates_when_configured(tmp_path):
    site = site_tls(tmp_path / "site")
    with dask.config.set(site):
        security = clusters.slurm_cluster_kwargs()["security"]
    assert security.tls_ca_file == site["distributed.comm.tls.ca-file"]
    assert security.tls_worker_key == site["distributed.comm.tls.worker.key"]
    assert security.require_encryption
    half = {k: v for k, v in site.items() if ".client." not in k}
    with dask.config.set(half), pytest.raises(EmulatorClusterError, match="distributed.comm.tls.client.cert"):
        clusters.slurm_cluster_kwargs()


# ---- slurm: the real cluster ------------------------------------------------------------------------
def one_worker_settings(workdir: Path) -> dict:
    """One 1-core worker job; the scheduler's dashboard where qmio puts it by default."""
    return {**two_worker_settings(workdir), "qmio.emulator.slurm.adapt": {"minimum": 1, "maximum": 1},
            "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"}}


def start_one_worker(settings: dict, timeout: float = 120) -> tuple:
    with dask.config.set(settings):
        cluster, address = clusters.make_cluster()
        client = Client(address, security=cluster.security, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        cluster.close()
        pytest.fail(f"the SLURM worker did not connect in {timeout} s\n{diagnostics()}", pytrace=False)
    return cluster, client


def assert_runs_on_a_slurm_worker(client: Client) -> None:
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    assert workers and all(w.startswith("tls://") for w in workers), workers
    job = client.submit(lambda: os.environ.get("SLURM_JOB_ID"), pure=False).result(timeout=60)
    assert job and job.isdigit()  # it ran in a SLURM job, which reached us with the key


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_slurm_workers_connect_with_the_temporary_key_and_strangers_cannot(slurm_conf, tmp_path, monkeypatch):
    lab_home = tmp_path / "lab"
    monkeypatch.setenv("QMIO_LAB_HOME", str(lab_home))
    cluster, client = start_one_worker(one_worker_settings(tmp_path / "jobqueue"))
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        assert_runs_on_a_slurm_worker(client)
        assert_refuses_strangers(address)
        # the worker jobs' key and certificate: files only we can read, in a directory only we enter
        tls_dir = lab_home / "slurm-tls"
        assert mode(tls_dir) == 0o700
        files = sorted(tls_dir.iterdir())
        assert {f.name.split(".")[3] for f in files} == {"ca_file", "cert", "key"}, files
        assert all(mode(f) == 0o600 for f in files)
        assert f"--tls-key {tls_dir}/.dask-jobqueue.worker.key." in cluster.job_script()
        # the dashboard answers on 127.0.0.1 only
        port = int(cluster.dashboard_link.split(":")[2].split("/")[0])
        assert listening_hosts(port) == {"127.0.0.1"}
    finally:
        client.close()
        cluster.close()


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_slurm_workers_connect_with_the_sites_certificates(slurm_conf, tmp_path, monkeypatch):
    lab_home = tmp_path / "lab"
    monkeypatch.setenv("QMIO_LAB_HOME", str(lab_home))
    site = site_tls(tmp_path / "site")
    cluster, client = start_one_worker({**one_worker_settings(tmp_path / "jobqueue"), **site})
    try:
        assert cluster.security.tls_scheduler_cert == site["distributed.comm.tls.scheduler.cert"]
        assert f"--tls-key {site['distributed.comm.tls.worker.key']}" in cluster.job_script()
        assert not (lab_home / "slurm-tls").exists()  # no temporary key was written
        assert_runs_on_a_slurm_worker(client)
        assert_refuses_strangers(cluster.scheduler_address)
        with dask.config.set(site):  # any client that holds the site's certificates
            with Client(cluster.scheduler_address, security=clusters.client_security(), timeout=10,
                        set_as_default=False) as other:
                assert other.submit(sum, [1, 2]).result(timeout=60) == 3
    finally:
        client.close()
        cluster.close()


# ---- qmio lab's own scheduler -------------------------------------------------------------------------
def test_the_labs_key_files_are_private(tmp_path):
    env = write_tls(tmp_path / "tls")
    assert mode(tmp_path / "tls") == 0o700
    assert {k: Path(v).name for k, v in env.items() if k != TLS_ENV[3]} == {
        TLS_ENV[0]: "cert.pem", TLS_ENV[1]: "cert.pem", TLS_ENV[2]: "key.pem"}
    assert mode(tmp_path / "tls" / "cert.pem") == mode(tmp_path / "tls" / "key.pem") == 0o600
    assert env[TLS_ENV[3]] == "True"
    key = (tmp_path / "tls" / "key.pem").read_text()
    assert "PRIVATE KEY" in key
    (tmp_path / "tls" / "key.pem").chmod(0o644)
    assert write_tls(tmp_path / "tls") == env  # a new lab: a new key, in a new 0600 file
    assert (tmp_path / "tls" / "key.pem").read_text() != key and mode(tmp_path / "tls" / "key.pem") == 0o600


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_labs_scheduler_serves_only_the_labs_server_and_kernels(lab_env):  # noqa: F811
    home = Path(lab_env["HOME"])
    lab, url, token = start_lab(lab_env, "--workers", "1")
    try:
        address = json.loads((home / "lab" / "dask" / "scheduler.json").read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        assert_refuses_strangers(address)
        # the Jupyter server (and so every kernel it starts) holds the lab's key
        jupyter = [p for p, cmd in descendants(lab.pid).items() if "jupyterlab" in cmd]
        assert len(jupyter) == 1, descendants(lab.pid)
        server_env = psutil.Process(jupyter[0]).environ()
        tls_dir = home / "lab" / "dask" / "tls"
        assert {k: server_env.get(k) for k in TLS_ENV} == {
            TLS_ENV[0]: str(tls_dir / "cert.pem"), TLS_ENV[1]: str(tls_dir / "cert.pem"),
            TLS_ENV[2]: str(tls_dir / "key.pem"), TLS_ENV[3]: "True"}
        assert mode(tls_dir) == 0o700 and mode(tls_dir / "key.pem") == 0o600
        # the lab server's view reaches the workers with it ...
        emulator_view = get_json(f"{url}/qmio/emulator", headers={"Authorization": f"token {token}"})
        assert (emulator_view["state"], emulator_view["address"]) == ("running", address)
        assert len(emulator_view["workers"]) == 1
        # ... and a kernel's environment runs a task, through qmio's own client of the address
        kernel = subprocess.run(
            [sys.executable, "-c", "from qmio_lab.emulator import get_client; "
             "print(get_client().submit(sum, [1, 2]).result(timeout=60))"],
            env=server_env, capture_output=True, text=True, timeout=120)
        assert (kernel.returncode, kernel.stdout.strip()) == (0, "3"), kernel.stderr
    finally:
        rc = lab.terminate()
    assert rc == 0, lab.log()


def test_a_tls_address_without_certificates_says_which_settings_are_missing(tmp_path):
    """Without the client's certificates, dask fails deep inside with a TypeError about an SSL
    context; the emulator says which settings to give instead, before connecting."""
    with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None,
                          "distributed.comm.tls.client.key": None, "qmio.emulator.cluster": "tls://127.0.0.1:9"}):
        with pytest.raises(EmulatorClusterError, match="distributed.comm.tls.ca-file") as refused:
            emulator.get_client()
        assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in str(refused.value)
        assert isinstance(clusters.client_security("tcp://127.0.0.1:9"), Security)  # plain TCP needs none
    env = write_tls(tmp_path)  # with them, the same address is only a place to connect to
    with dask.config.set({"distributed.comm.tls.ca-file": env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"],
                          "distributed.comm.tls.client.cert": env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
                          "distributed.comm.tls.client.key": env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]}):
        assert clusters.client_security("tls://127.0.0.1:9").tls_ca_file
