"""Debian packages the cluster runs on: found, or installed with apt-get when running as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from widgetsvc.ops import apt

# program -> Debian package providing it
PROGRAMS = {
    "etcd": "etcd-server",
    "patroni": "patroni",
    "haproxy": "haproxy",
    "pgbouncer": "pgbouncer",
    "nginx": "nginx",
    # metrics and alerts (widgetsvc/ops/cluster/monitoring.py)
    "prometheus": "prometheus",
    "prometheus-nginx-exporter": "prometheus-nginx-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "pgbackrest": "pgbackrest",  # every node's archive_command (bin/backup --cluster)
}
# Patroni's etcd3 client is built on python3-etcd (a Recommends, not a Depends).
PYTHON_MODULES = {"etcd": "python3-etcd"}
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


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
    apt.install(["--no-install-recommends", *missing])
    still = missing_packages()
    if still:
        raise MissingPackages("apt-get ran, but still missing: " + ", ".join(still))
