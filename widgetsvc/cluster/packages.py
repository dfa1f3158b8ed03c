"""Debian packages the cluster runs on: found, or installed with apt-get when running as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# program -> Debian package providing it
PROGRAMS = {
    "etcd": "etcd-server",
    "patroni": "patroni",
    "haproxy": "haproxy",
    "pgbouncer": "pgbouncer",
    "nginx": "nginx",
}
# Patroni's etcd3 client is built on python3-etcd (a Recommends, not a Depends).
PYTHON_MODULES = {"etcd": "python3-etcd"}
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


class MissingPackages(RuntimeError):
    """Programs the cluster needs are not installed and cannot be installed here."""


def which(program: str) -> str | None:
    """``program`` on PATH or in the sbin directories (root's PATH may lack them)."""
    found = shutil.which(program)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / program
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _system_python_has(module: str) -> bool:
    result = subprocess.run(["/usr/bin/python3", "-c", f"import {module}"],
                            capture_output=True, check=False)
    return result.returncode == 0


def missing_packages() -> list[str]:
    missing = [pkg for prog, pkg in PROGRAMS.items() if not which(prog)]
    missing += [pkg for mod, pkg in PYTHON_MODULES.items() if not _system_python_has(mod)]
    return missing


def ensure_packages() -> None:
    """Install what is missing. The packages' own services are kept from starting: Debian would
    otherwise start a system etcd, nginx and HAProxy on their default ports."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise MissingPackages(
            "bin/cluster needs " + ", ".join(missing) + ": install them "
            f"(sudo apt-get install {' '.join(missing)}) or run bin/cluster as root"
        )
    print(f"cluster: installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    made_policy = False
    if not _POLICY_RC_D.exists():
        _POLICY_RC_D.write_text("#!/bin/sh\n# bin/cluster: no service starts during install\n"
                                "exit 101\n")
        _POLICY_RC_D.chmod(0o755)
        made_policy = True
    try:
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
            subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            _POLICY_RC_D.unlink(missing_ok=True)
    still = missing_packages()
    if still:
        raise MissingPackages("apt-get ran, but still missing: " + ", ".join(still))
