"""Debian packages the project's own scripts install as root when missing (PostgreSQL, nginx,
the cluster's parts): one way for all of them. The packages' own services are kept from
starting meanwhile (``policy-rc.d``): Debian would otherwise start a system PostgreSQL, nginx,
etcd or HAProxy on their default ports, which nothing here uses."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Two of the project's installs at once (the parallel test workers) take turns: the one that
# wrote policy-rc.d must not remove it while the other's packages are still being set up.
_OWN_LOCK = Path("/run/lock/widgetsvc-apt.lock")
# Another apt-get (a second bin/ script, unattended upgrades) may hold dpkg's lock: wait for it.
_WAIT_FOR_LOCK = ["-o", "DPkg::Lock::Timeout=300"]


def install(packages: list[str]) -> None:
    """``apt-get install`` the packages (as root), their services not started."""
    print(f"widgetsvc: installing {' '.join(packages)} with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _OWN_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with _OWN_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install(packages, env)


def _install(packages: list[str], env: dict[str, str]) -> None:
    made_policy = False
    if not _POLICY_RC_D.exists():
        _POLICY_RC_D.write_text("#!/bin/sh\n# widgetsvc: no service starts during install\n"
                                "exit 101\n")
        _POLICY_RC_D.chmod(0o755)
        made_policy = True
    try:
        for cmd in (["apt-get", *_WAIT_FOR_LOCK, "update", "-q"],
                    ["apt-get", *_WAIT_FOR_LOCK, "install", "-y", "-q", *packages]):
            subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            _POLICY_RC_D.unlink(missing_ok=True)
