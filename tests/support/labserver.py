"""Fixtures of the lab server tests: a real local QPU service and a Jupyter server (pytest-jupyter's
``jp_fetch``) with the qmio_lab extension enabled. Import them into a test module to use them."""
from __future__ import annotations

import pytest

from qmio_lab.qpu import QPUClient
from support.services import local_service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The local service the extension finds, as an admin client (maintenance off afterwards)."""
    with local_service(tmp_path_factory.mktemp("lab-home")) as info:
        client = QPUClient(info["url"], info["token"])
        yield client
        client.set_maintenance(False)


@pytest.fixture
def jp_server_config(service):
    return {"ServerApp": {"jpserver_extensions": {"qmio_lab.labserver": True}}}
