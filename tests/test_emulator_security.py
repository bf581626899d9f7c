"""The emulator's local Dask cluster only serves clients that hold its credentials."""
from __future__ import annotations

import dask.config
import pytest
from distributed import Client
from distributed.security import Security

import qmio_lab.emulator as emulator


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
    with pytest.raises((OSError, TimeoutError)):  # another local user, plain TCP
        Client(address.replace("tls://", "tcp://"), timeout=5, set_as_default=False)
    with pytest.raises((OSError, TimeoutError)):  # TLS, but with a key of their own
        Client(address, security=Security.temporary(), timeout=5, set_as_default=False)
