"""qmio_lab's Jupyter Server extension: the QPU and the emulator cluster, seen from JupyterLab.

``QmioLabManager`` (``manager.py``) holds the state and talks to the QPU queue service and the
Dask cluster; ``routes.py`` turns its answers into authenticated ``/qmio/...`` JSON routes that the
``qmio-lab`` JupyterLab extension polls. Installing qmio_lab enables it (``jupyter-config/``).
"""
from __future__ import annotations

from typing import Any

LABEXTENSION_NAME = "qmio-lab"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension inside the package (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": LABEXTENSION_NAME}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "qmio_lab.labserver"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from qmio_lab.labserver.manager import QmioLabManager
    from qmio_lab.labserver.routes import setup_routes

    manager = QmioLabManager()
    serverapp.web_app.settings["qmio_lab_manager"] = manager
    setup_routes(serverapp.web_app)
    serverapp.log.info("qmio_lab server extension: /qmio routes registered")


def _unload_jupyter_server_extension(serverapp: Any) -> None:
    manager = serverapp.web_app.settings.pop("qmio_lab_manager", None)
    if manager is not None:
        manager.close()
