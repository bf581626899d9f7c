"""JupyterHub for QMIO lab: the QPU queue service runs as a Hub-managed service.

Every user's identity is their Hub user: user servers reach the service with their own Hub API
token (``$JUPYTERHUB_API_TOKEN``), so nobody handles QPU tokens. The lab extension and the
magics find the service through ``$QMIO_QPU_URL``, set for every user server below.

Local demo (loopback, any password accepted, servers as local processes): the dummy
authenticator only with the explicit demo switch; without it the site's authenticator (PAM by
default) decides who logs in:
    QMIO_HUB_DEMO=1 jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

At an HPC centre, user servers are SLURM jobs: QMIO_HUB_SPAWNER=slurm loads the SLURM profile
(slurm_profile.py beside this file: batchspawner's SlurmSpawner, the partition in
QMIO_HUB_PARTITION, the QPU service gated by SLURM), with the site's authenticator, e.g.:
    QMIO_HUB_SPAWNER=slurm QMIO_HUB_PARTITION=qpu jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
The Hub's public URL must then be reachable from compute nodes (QMIO_HUB_PUBLIC_URL).

Settings come from environment variables so that one file serves demos, tests and sites.
"""
import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub

env = os.environ.get
hub_ip = env("QMIO_HUB_IP", "127.0.0.1")
hub_port = int(env("QMIO_HUB_PORT", "8000"))
public_url = env("QMIO_HUB_PUBLIC_URL", f"http://{hub_ip}:{hub_port}")
qpu_port = int(env("QMIO_QPU_PORT", "8765"))
state_dir = Path(env("QMIO_HUB_STATE", "."))

c.JupyterHub.ip = hub_ip
c.JupyterHub.port = hub_port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("QMIO_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env('QMIO_HUB_PROXY_API_PORT', '8001'))}"
chp = env("QMIO_HUB_PROXY") or shutil.which("configurable-http-proxy")
if chp:
    c.ConfigurableHTTPProxy.command = [chp]

# --- who may log in -----------------------------------------------------------------------
demo = env("QMIO_HUB_DEMO", "").lower() in ("1", "true", "yes")
authenticator = env("QMIO_HUB_AUTHENTICATOR") or ("dummy" if demo else "pam")
if authenticator == "dummy" and not demo:
    raise SystemExit("the dummy authenticator lets anyone in with any password: set QMIO_HUB_DEMO=1 "
                     "for a loopback demo, or QMIO_HUB_AUTHENTICATOR to the site's authenticator")
c.JupyterHub.authenticator_class = authenticator
c.Authenticator.allow_all = demo  # at a site, allow users or groups in the site's own config
c.Authenticator.admin_users = {u for u in env("QMIO_HUB_ADMINS", "ops").split(",") if u}

# --- user servers -------------------------------------------------------------------------
spawner_setting = env("QMIO_HUB_SPAWNER", "simple")
slurm_profile = spawner_setting in ("slurm", "batchspawner.SlurmSpawner")
c.JupyterHub.spawner_class = "simple" if slurm_profile else spawner_setting  # the profile sets its own
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {
    "QMIO_QPU_URL": f"{public_url}/services/qmio-qpu",
    # each user keeps their own emulator cluster and notebooks state (a callable: JupyterHub
    # does not expand {username} in environment values)
    "QMIO_LAB_HOME": lambda spawner: str(state_dir.resolve() / "users" / spawner.user.name),
}

# Every user may use the QPU service. A user server's token gets least privilege: the Hub's
# defaults for a server, access to the QPU service, and reading its own user's model (the
# service learns name, admin flag and groups from it). Never "inherit": an admin's server token
# would then be a full Hub admin token in every kernel the admin runs.
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=qmio-qpu"]},
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server", "read:users!user",
                                  "access:services!service=qmio-qpu"]},
]

# --- the QPU queue service ----------------------------------------------------------------
c.JupyterHub.services = [
    {
        "name": "qmio-qpu",
        "url": f"http://127.0.0.1:{qpu_port}",
        "command": [sys.executable, "-m", "qmio_lab.cli", "qpu", "serve", "--hub",
                    "--db", str(state_dir / "qpu" / "queue.sqlite")],
        "environment": {k: v for k, v in os.environ.items() if k.startswith(("DASK_", "QMIO_LAB"))},
        "display": True,
        "oauth_no_confirm": True,
    }
]

# --- user servers as SLURM jobs (after the service, which the profile gates by SLURM) -------
if slurm_profile:  # a module, not a sub-config: it extends the settings above rather than replacing them
    import importlib.util

    _path = Path(__file__).with_name("slurm_profile.py")  # noqa: F821 - __file__ is set by traitlets
    _spec = importlib.util.spec_from_file_location("qmio_slurm_profile", _path)
    _profile = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_profile)
    _profile.configure(c)
