"""A private PostgreSQL cluster under ``var/``, for development, ``bin/`` and the tests.

Used only when ``DATABASE_URL`` is not set. The cluster listens on a Unix socket inside its own
directory and on no TCP port, so two clones on one machine never clash. ``initdb``/``pg_ctl``
refuse to run as root, so as root the cluster belongs to an unprivileged OS user (``postgres``
when it exists, else ``nobody``). When that user cannot reach the checkout (a clone in a private
directory), the cluster lives in a per-clone directory that survives a reboot instead (see
``reachable_dir``).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from widgetsvc.ops import apt, cmdline, plumbing, safefs, settings
from widgetsvc.ops.settings import ToolSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = REPO_ROOT / "var"
SUPERUSER = "widgetsvc"
DEFAULT_DBNAME = "widgetsvc"


class LocalDBError(RuntimeError):
    """The private cluster could not be found, installed, created or started."""


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, if any."""

    def major(path: str) -> int:
        version = Path(path).parent.parent.name
        return int(version) if version.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def ensure_bindir() -> Path:
    """Find the server binaries; as root, install Debian's ``postgresql`` when missing."""
    bindir = find_bindir()
    if bindir:
        return bindir
    if os.geteuid() != 0:
        raise LocalDBError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them, e.g. "
            "'sudo apt-get install postgresql', or set DATABASE_URL to an existing database."
        )
    apt.install(["postgresql"])
    bindir = find_bindir()
    if not bindir:
        raise LocalDBError("apt-get installed postgresql but initdb is still not found")
    return bindir


def cluster_owner(tools: ToolSettings | None = None) -> pwd.struct_passwd:
    """Who runs PostgreSQL: this user, or as root an unprivileged one."""
    tools = tools or ToolSettings.from_env()
    try:
        owner = plumbing.unprivileged_user("WIDGETSVC_PG_OS_USER", tools.pg_os_user,
                                           settings.PG_OWNERS)
    except plumbing.NoUser as exc:
        raise LocalDBError(str(exc)) from None
    return owner or pwd.getpwuid(os.geteuid())


def searchable(directory: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may traverse ``directory``, by its mode bits (no ACLs here)."""
    info = directory.stat()
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & 0o100)
    if info.st_gid == user.pw_gid:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def relocation_base(tools: ToolSettings | None = None) -> Path:
    """Where per-clone directories go when the checkout is out of reach: a place that survives
    a reboot (unlike the temp directory), ``/var/lib/widgetsvc`` as root, else the user's state
    directory (``$XDG_STATE_HOME``, by default ``~/.local/state``)."""
    if os.geteuid() == 0:
        return Path("/var/lib/widgetsvc")
    state = (tools or ToolSettings.from_env()).state_home or Path.home() / ".local" / "state"
    return state / "widgetsvc"


def reachable_dir(wanted: Path, user: pwd.struct_passwd | None = None) -> Path:
    """``wanted`` (a directory under the checkout's ``var/``), or, when ``user`` (by default the
    cluster's owner) could not get there, the same name in a per-clone directory under
    ``relocation_base()``. Only computes the path: ``make_dir`` creates it.

    Reachable means every existing directory on the way is searchable by ``user`` and, when
    this process is not root (it creates the directories as itself), the nearest existing one
    is writable.
    """
    wanted = Path(wanted).resolve()
    user = user or cluster_owner()
    existing = [path for path in (wanted, *wanted.parents) if path.exists()]
    if all(searchable(path, user) for path in existing) and (
        os.geteuid() == 0 or os.access(existing[0], os.W_OK)
    ):
        return wanted
    digest = hashlib.sha256(str(wanted.parent).encode()).hexdigest()[:16]
    return relocation_base() / digest / wanted.name


def make_dir(path: Path, owner: pwd.struct_passwd | None = None, mode: int = 0o700) -> Path:
    """Create ``path`` with ``mode`` (and, as root, give it to ``owner`` when one is named); the
    parents it has to create are searchable by everyone (0755), whatever the umask, so that
    an unprivileged user can get through them. Never through another user's link, and an
    existing directory that is neither ours nor ``owner``'s, or that others can write (a
    predictable name in /tmp made first by someone else), is refused (``safefs.make_dir``)."""
    try:
        return safefs.make_dir(path, owner, mode)
    except safefs.UnsafePath as exc:
        raise LocalDBError(str(exc)) from None


class PrivatePostgres:
    """One private PostgreSQL server (its own ``initdb`` cluster) in ``root``: data, socket,
    log, created and started on demand. Not the HA ``cluster.Cluster``."""

    def __init__(self, root: Path, port: int = 5432, tools: ToolSettings | None = None):
        self.tools = tools or ToolSettings.from_env()
        self.owner = cluster_owner(self.tools)
        self.root = reachable_dir(root, self.owner)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port
        self.socket_dir = plumbing.socket_dir(self.root / "run", ".s.PGSQL.65535")
        self._bindir: Path | None = None

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = ensure_bindir()
        return self._bindir

    def url(self, dbname: str = DEFAULT_DBNAME) -> str:
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{quote(dbname)}?host={host}&port={self.port}"

    # -- running commands as the cluster's owner ------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        env = {
            "PATH": self.tools.path,
            "HOME": str(self.root),
            "LC_ALL": "C.UTF-8",
        }
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            env=env,
            cwd=str(self.root),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise LocalDBError(
                f"{args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                + self._log_tail()
            )
        return result

    def _log_tail(self) -> str:
        text = safefs.read_text(self.log_file)  # the owner's directory: not through a link
        if text is None:
            return ""
        return "\n--- postgres.log ---\n" + "\n".join(text.splitlines()[-20:])

    def _make_dirs(self) -> None:
        for directory in (self.root, self.socket_dir):
            make_dir(directory, self.owner)

    @property
    def lock_path(self) -> Path:
        return self.root.parent / f".{self.root.name}.lock"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        if not self.root.parent.exists():
            make_dir(self.root.parent, mode=0o755)
        with open(self.lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle --------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def start(self) -> PrivatePostgres:
        """Create (first time) and start the cluster; safe to call when it already runs."""
        with self._lock():
            self._make_dirs()
            if not self.is_initialized():
                self._run(
                    "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                    # C collation (byte order, fast); UTF-8 character classes, so that
                    # lower() folds non-ASCII letters for the case-insensitive e-mail index.
                    "--encoding=UTF8", "--locale=C", "--lc-ctype=C.UTF-8", "--no-sync",
                )
            if not self.is_running():
                options = " ".join([
                    "-c listen_addresses=''",
                    f"-c unix_socket_directories='{self.socket_dir}'",
                    "-c unix_socket_permissions=0700",
                    f"-p {self.port}",
                    "-c max_connections=200",
                    "" if self.tools.pg_fsync else "-c fsync=off",
                ])
                self._run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                    "-l", str(self.log_file), "-o", options,
                )
            self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            return self._run("pg_isready", "-q", "-h", str(self.socket_dir), "-p",
                             str(self.port), check=False).returncode == 0

        if not plumbing.poll(ready, timeout=timeout, interval=0.1):
            raise LocalDBError("PostgreSQL did not become ready" + self._log_tail())

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        if self.socket_dir != self.root / "run":
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self.lock_path.unlink(missing_ok=True)
        if self.root.is_relative_to(relocation_base(self.tools)):
            with suppress(OSError):  # the clone's relocated directory, when nothing else is left
                self.root.parent.rmdir()

    def _client_args(self) -> list[str]:
        return ["-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER]

    def create_database(self, dbname: str) -> str:
        """Create ``dbname`` if missing (with the server's own ``createdb``); return its URL."""
        result = self._run("createdb", *self._client_args(), dbname, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise LocalDBError(f"createdb {dbname} failed: {result.stderr.strip()}")
        return self.url(dbname)

    def drop_database(self, dbname: str) -> None:
        self._run("dropdb", *self._client_args(), "--if-exists", "--force", dbname)


def dev_cluster() -> PrivatePostgres:
    """The clone's development server, shared by bin/serve, bin/add-user and bin/migrate."""
    return PrivatePostgres(VAR_DIR / "pg")


def ensure_dev_database() -> str:
    """Start the development server and its database; return the URL to use."""
    cluster = dev_cluster().start()
    return cluster.create_database(DEFAULT_DBNAME)


def database_url(tools: ToolSettings) -> str:
    """``DATABASE_URL`` when set; otherwise the local development database, started if needed."""
    return tools.database_url or ensure_dev_database()


def main(argv: list[str] | None = None) -> int:
    """``bin/localdb start|stop|status|url``: the development cluster's lifecycle by hand."""
    parser = cmdline.Parser(
        "bin/localdb", "See, reach, start and stop the private development PostgreSQL "
        "(var/pg).",
        details="""
The private cluster is what bin/serve, bin/migrate, bin/add-user and bin/purge-revoked use
when DATABASE_URL is not set. It is started (and created, the first time) on demand and
keeps running after bin/serve exits, so the next command starts at once and psql can reach
it: stop it with `bin/localdb stop`. It listens on a Unix socket only (no TCP port).

  psql "$(bin/localdb url)"     # reach it by hand""",
        environment=[
            ("WIDGETSVC_PG_OS_USER", "as root: the unprivileged user that owns the cluster"),
            ("WIDGETSVC_PG_FSYNC", "off: run the cluster with fsync=off (tests only)"),
            ("XDG_STATE_HOME", "where a clone the owner cannot reach keeps its cluster"),
        ],
        exit_codes=[(0, "done (status: running)"), (1, "failed (one line says why)"),
                    (3, "status: stopped or not created")])
    commands = parser.add_commands(required=False)
    commands.add_parser("status", help="running or stopped, its directory and URL (exit 3: "
                                       "stopped; the default)")
    commands.add_parser("url", help="print the libpq URL of its database (starts nothing)")
    commands.add_parser("start", help="create (first time) and start it; print the URL")
    commands.add_parser("stop", help="stop it (its data stays; the next command restarts it)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return cmdline.run(lambda: _command(args.command or "status"), (LocalDBError,))


def _command(command: str) -> int:
    ToolSettings.from_env()
    cluster = dev_cluster()
    if command == "start":
        print(ensure_dev_database())
    elif command == "stop":
        was_running = cluster.is_running()
        cluster.stop()
        print(f"stopped ({cluster.data_dir})" if was_running else "was not running")
    elif command == "url":
        print(cluster.url())
    else:
        running = cluster.is_running()
        state = "running" if running else (
            "stopped" if cluster.is_initialized() else "not created yet")
        print(f"{state}\ndata: {cluster.data_dir}\nurl:  {cluster.url()}")
        return 0 if running else 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
