"""SLURM profile: every user's server is a SLURM job, as at an HPC centre (batchspawner).

``jupyterhub_config.py`` applies it (:func:`configure`, after its own settings, which it extends)
when ``QMIO_HUB_SPAWNER=slurm`` (or ``batchspawner.SlurmSpawner``). A user's JupyterLab runs
inside a job of that user in a SLURM partition (``QMIO_HUB_PARTITION``, default ``qpu``: at QMIO
the QPU is reachable only from jobs there); the QPU service stays a Hub-managed service, gated by
SLURM (``QMIO_HUB_QPU_PARTITION``).

Settings (environment of the Hub):
    QMIO_HUB_PARTITION      partition of a server started without a choice (default qpu)
    QMIO_HUB_PARTITIONS     partitions users may choose from, comma-separated (default: that one)
    QMIO_HUB_RUNTIME        walltime of a session (default 01:00:00)
    QMIO_HUB_MEMORY         memory of a session's job (default 2G)
    QMIO_HUB_CPUS           CPUs of a session's job (default 1)
    QMIO_HUB_EXEC_PREFIX    how the Hub runs sbatch/squeue/scancel as the user
                            (default batchspawner's ``sudo -E -u {username}``)
    QMIO_HUB_QPU_PARTITION  partition the QPU service requires of its callers (default qpu;
                            empty: no SLURM gate)
    QMIO_HUB_CONNECT_IP     address compute nodes reach the Hub's API at (default: hub_ip)
    QMIO_HUB_START_TIMEOUT  seconds a session may wait in the queue and start (default 300)

Hub users must be unix users known to SLURM (PAM, LDAP, ...): SLURM runs each job as its owner,
and the SLURM gate compares the job's owner with the Hub user name.
"""
from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any

import batchspawner  # noqa: F401  (importing it adds /hub/api/batchspawner, where jobs report their port)
from tornado import web


def partitions_offered(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The default partition and those users may choose; refuses a default that is not offered."""
    default = env.get("QMIO_HUB_PARTITION", "qpu")
    offered = [p.strip() for p in env.get("QMIO_HUB_PARTITIONS", default).split(",") if p.strip()]
    if default not in offered:
        raise SystemExit(f"QMIO_HUB_PARTITION={default!r} is not among QMIO_HUB_PARTITIONS="
                         f"{','.join(offered)!r}: add it there")
    return default, offered


def partition_chooser(default: str, offered: list[str]) -> Callable[[Any, dict], None]:
    """``apply_user_options``: a user picks the partition, and nothing else. batchspawner pastes
    every user option into the job script, so an unchecked one would be a user-written line."""

    def apply_partition(spawner: Any, user_options: dict | None) -> None:
        options = dict(user_options or {})
        unknown = sorted(set(options) - {"partition"})
        if unknown:
            raise web.HTTPError(400, f"unknown server option(s) {', '.join(map(repr, unknown))}; the only "
                                     f"option is 'partition' (one of {', '.join(offered)})")
        partition = options.get("partition") or default
        if partition not in offered:
            raise web.HTTPError(400, f"partition {partition!r} is not offered here; choose one of "
                                     f"{', '.join(offered)} (QMIO_HUB_PARTITIONS)")
        spawner.req_partition = partition
        spawner.user_options = {"partition": partition}

    return apply_partition


def check_unix_account(spawner: Any) -> None:
    """``pre_spawn_hook``: SLURM runs a job as a unix user, so a Hub user without an account
    would only get sbatch's "unknown user" from deep inside the spawn; say so plainly instead."""
    name = spawner.user.name
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise web.HTTPError(409, f"Hub user {name!r} has no unix account, and SLURM runs jobs as unix "
                                 f"users: create it (useradd -m {name}) or log in through the site's "
                                 "authenticator (PAM, LDAP)") from None


def options_form(default: str, offered: list[str]) -> str:
    """The spawn page's choice of partition (shown when more than one is offered)."""
    choices = "".join(f'<option value="{escape(p)}"{" selected" if p == default else ""}>{escape(p)}</option>'
                      for p in offered)
    return ('<label for="partition">SLURM partition of your session (the QPU answers jobs in "qpu")</label>'
            f'<select name="partition" class="form-control">{choices}</select>')


def configure(c: Any, env: Mapping[str, str] = os.environ) -> None:
    """Turn the Hub configured by ``jupyterhub_config.py`` into one whose servers are SLURM jobs."""
    venv_bin = Path(sys.executable).parent
    default, offered = partitions_offered(env)

    c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
    if env.get("QMIO_HUB_CONNECT_IP"):
        c.JupyterHub.hub_connect_ip = env["QMIO_HUB_CONNECT_IP"]
    c.SlurmSpawner.req_partition = default
    c.SlurmSpawner.req_runtime = env.get("QMIO_HUB_RUNTIME", "01:00:00")
    c.SlurmSpawner.req_memory = env.get("QMIO_HUB_MEMORY", "2G")  # else a job may hold the node's memory
    c.SlurmSpawner.req_nprocs = env.get("QMIO_HUB_CPUS", "1")
    c.SlurmSpawner.exec_prefix = env.get("QMIO_HUB_EXEC_PREFIX", "sudo -E -u {username}")
    # absolute paths: the job's PATH is the site's (sudo's secure_path), not this venv's
    c.SlurmSpawner.batchspawner_singleuser_cmd = str(venv_bin / "batchspawner-singleuser")
    c.SlurmSpawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
    c.SlurmSpawner.startup_poll_interval = 0.25
    c.SlurmSpawner.start_timeout = int(env.get("QMIO_HUB_START_TIMEOUT", "300"))
    c.SlurmSpawner.apply_user_options = partition_chooser(default, offered)
    c.SlurmSpawner.pre_spawn_hook = check_unix_account
    if len(offered) > 1:
        c.SlurmSpawner.options_form = options_form(default, offered)
        c.SlurmSpawner.options_from_form = lambda form: {"partition": form.get("partition", [default])[0]}

    # What a job inherits besides the Hub's own variables and c.Spawner.environment: the SLURM the
    # Hub uses (the emulator submits its Dask workers there) and the site's DASK_* settings.
    forwarded = ["SLURM_CONF", *sorted(k for k in env if k.startswith("DASK_"))]
    c.SlurmSpawner.env_keep = ["JUPYTERHUB_SINGLEUSER_APP", *(k for k in forwarded if k in env)]
    # A job keeps qmio_lab's own default QMIO_LAB_HOME, ~/.local/share/qmio_lab: the user's home,
    # which compute nodes share, is theirs to write; the Hub's state directory stays private.
    c.Spawner.environment = {k: v for k, v in c.Spawner.environment.items() if k != "QMIO_LAB_HOME"}

    # the QPU service: gated by SLURM, and able to ask it
    qpu_partition = env.get("QMIO_HUB_QPU_PARTITION", "qpu")
    for service in c.JupyterHub.services:
        if service["name"] != "qmio-qpu":
            continue
        if qpu_partition:
            service["command"] = [*service["command"], "--slurm-partition", qpu_partition]
        if env.get("SLURM_CONF"):
            service["environment"] = {**service["environment"], "SLURM_CONF": env["SLURM_CONF"]}
