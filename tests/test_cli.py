"""The command line as operators and DBAs meet it (issue 24): every ``bin/`` command's
``--help`` changes nothing, an unknown option is exit 2 and does nothing, every setting of the
README's configuration table is refused with one line, a busy port and an unreachable database
are named, and the README's by-hand migration is exactly ``bin/migrate``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.rows import dict_row

from tests.helpers import SECRET, LiveServer
from tests.helpers_sql import TESTING_QUERIES
from widgetsvc import __version__
from widgetsvc.ops import cli, localdb, plumbing
from widgetsvc.ops.cluster import cli as cluster_cli
from widgetsvc.ops.localdb import REPO_ROOT, VAR_DIR, PrivatePostgres

pytestmark = pytest.mark.e2e  # runs bin/ commands or creates databases (tests/tiers.py)

BIN = REPO_ROOT / "bin"
# Every command: a new bin/ script is covered without editing this list.
COMMANDS = sorted(p.name for p in BIN.iterdir() if not p.name.startswith("_"))
# What preparing .venv (the very first command of a clone) may leave in var/.
VENV_FILES = {".venv.lock", "pip-install.log"}
LINE = re.compile(r"^widgetsvc: (?P<name>[A-Z_]+)=(?P<value>.*): (?P<what>.+) \((?P<allowed>.+)\)$")
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"


# -- helpers ------------------------------------------------------------------------------------

def table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(TESTING_QUERIES["catalog_table_exists"],
                            {"name": name}).fetchone()["present"]


# What the run itself keeps in var/ meanwhile, in a parallel run on the other workers too:
# each worker's throwaway cluster and scratch named by its pid (test-<pid>, outage-<pid>,
# cluster-test-<pid>, bench-<pid>, ...), the generated clients' cache (clients-<hash>), and
# their locks (.test-<pid>.lock, .clients.lock).
RUN_SCRATCH = re.compile(r"^\.?(?:[a-z-]+-\d+(?:-[a-z-]+)?|clients-[0-9a-f]+|clients)(?:\.lock)?$")


def var_snapshot() -> tuple[frozenset[str], bool]:
    """Top-level names in var/ (not the run's own scratch: ``RUN_SCRATCH``), and whether the
    private development cluster runs."""
    names = frozenset(p.name for p in VAR_DIR.iterdir()
                      if p.name not in VENV_FILES and not RUN_SCRATCH.match(p.name))
    return names, (VAR_DIR / "pg" / "data" / "postmaster.pid").exists()


def session_members(sid: int) -> list[int]:
    """Processes still alive in the session a command ran in (it was its leader)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found


def run(argv: list[str], env: dict[str, str], timeout: float = 120,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                            start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    left = session_members(proc.pid)
    assert not left, f"{argv} left processes running: {left}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture
def untouched_db(pg_cluster):
    """A fresh database nothing has migrated: a command that did nothing leaves it empty."""
    name = f"cli_{uuid.uuid4().hex[:12]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


def base_env(database_url: str, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in README_VARIABLES}
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "WIDGETSVC_ENV": "test",
                "BCRYPT_ROUNDS": "4", "HOST": "127.0.0.1", "PORT": str(plumbing.free_port()),
                **values})
    return env


# -- the README's configuration table -----------------------------------------------------------

def readme_variables() -> list[str]:
    """Every variable named in the first column of README.md's "Configuration" table."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ")[0])
    return names


README_VARIABLES = set(readme_variables())


# -- --help, --version, unknown options ---------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_the_usage_and_changes_nothing(command, untouched_db):
    before = var_snapshot()
    result = run([str(BIN / command), "--help"], base_env(untouched_db))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: bin/{command} ")
    assert "\nexit codes:\n" in result.stdout and "  2  usage error" in result.stdout
    assert not table_exists(untouched_db, "schema_migrations")  # nothing migrated
    assert var_snapshot() == before  # no cluster created or started, no runtime directory


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_exit_2_and_does_nothing(command, untouched_db):
    before = var_snapshot()
    result = run([str(BIN / command), "--no-such-option"], base_env(untouched_db))
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    assert "--no-such-option" in result.stderr and "usage:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not table_exists(untouched_db, "schema_migrations")
    assert var_snapshot() == before


@pytest.mark.parametrize("command", COMMANDS)
def test_version(command):
    result = run([str(BIN / command), "--version"], base_env(UNREACHABLE))
    assert (result.returncode, result.stdout) == (0, f"widgetsvc {__version__}\n")


@pytest.mark.parametrize(("command", "abbreviation", "rest"), [
    ("migrate", "--dry", []), ("migrate", "--stat", []), ("serve", "--no-mig", []),
    ("serve", "--dir", []), ("add-user", "--adm", ["a@example.com"]),
])
def test_options_are_never_matched_by_prefix(command, abbreviation, rest, untouched_db):
    result = run([str(BIN / command), abbreviation, *rest], base_env(untouched_db),
                 stdin="Secret-pass-1\n")
    assert result.returncode == 2, result.stderr
    assert abbreviation in result.stderr
    assert not table_exists(untouched_db, "schema_migrations")


# -- every setting in the README's table --------------------------------------------------------

@pytest.fixture(scope="module")
def key_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("keys")
    private = folder / "signing.pem"
    private.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    not_a_dir = folder / "a-file"
    not_a_dir.write_text("")
    return {"signing": str(private), "file": str(not_a_dir)}


PRODUCTION = {"WIDGETSVC_ENV": "production", "BCRYPT_ROUNDS": "12"}
EDDSA = {"TOKEN_ALGORITHM": "EdDSA"}
# name -> (bad value, other settings it needs to matter). A variable added to the README's
# table without a bad value here fails test_every_readme_variable_has_a_bad_value.
BAD = {
    "DATABASE_URL": ("not a url", {}),
    "SECRET_KEY": ("short", PRODUCTION),
    "PREVIOUS_SECRET_KEYS": ("short", PRODUCTION),
    "TOKEN_ALGORITHM": ("RS256", {}),
    "SIGNING_KEY_FILE": ("/nonexistent/signing.pem", EDDSA),
    "PREVIOUS_PUBLIC_KEY_FILES": ("/nonexistent/old.pem",
                                  {**EDDSA, "SIGNING_KEY_FILE": "{signing}"}),
    "WIDGETSVC_ENV": ("prod", {}),
    "TOKEN_LIFETIME": ("15m", {}),
    "REFRESH_TOKEN_LIFETIME": ("60", {}),
    "TOKEN_LEEWAY": ("-1", {}),
    "BCRYPT_ROUNDS": ("40", {}),
    "DB_POOL_MIN": ("0", {}),
    "DB_POOL_MAX": ("x", {}),
    "DB_POOL_TIMEOUT_MS": ("0", {}),
    "DB_STATEMENT_TIMEOUT_MS": ("-5", {}),
    "DB_PGBOUNCER": ("maybe", {}),
    "USER_REALM": ('a"b', {}),
    "ADMIN_REALM": ("a\\b", {}),
    "LOG_LEVEL": ("verbose", {}),
    "HOST": ("bad host!", {}),
    "PORT": ("99999", {}),
    "WIDGETSVC_DIRECT": ("maybe", {}),
    "METRICS_PORT": ("70000", {}),
    "WIDGETSVC_SERVER": ("tomcat", {}),
    "WIDGETSVC_GRANIAN_APP": ("not an app", {}),
    "AUTH_RATE_LIMIT": ("-1", {}),
    "TRUSTED_PROXIES": ("not-a-network", {}),
    "WIDGETSVC_NGINX_USER": ("no-such-user-here", {}),
    "WIDGETSVC_PG_OS_USER": ("no-such-user-here", {}),
    "WIDGETSVC_PG_FSYNC": ("sometimes", {}),
    "WIDGETSVC_CLUSTER_DIR": ("{file}", {}),
    "PGBOUNCER_POOL_SIZE": ("0", {}),
    "AUTH_IN_FLIGHT": ("lots", {}),
    "AUTH_CONN_LIMIT": ("-2", {}),
    "HASH_SLOTS": ("-1", {}),
    "LOGIN_LOCK_FAILURES": ("-1", {}),
    "LOGIN_LOCK_WINDOW": ("0", {}),
    "LOGIN_LOCK_ACCOUNT_FAILURES": ("-1", {}),
    "FORWARDED_ALLOW_IPS": ("*", {}),
    "WIDGETSVC_APP_USER": ("no-such-user-here", {}),
    "MIGRATE_LOCK_TIMEOUT": ("soon", {}),
    "MIGRATE_RETRIES": ("-1", {}),
    "PUBLIC_URL": ("ftp://x.example", {}),
    "ALLOWED_HOSTS": ("a b", {}),
    "WEB_CONCURRENCY": ("0", {}),
    "GUNICORN_WORKER_CLASS": ("gevent", {}),
    "GUNICORN_THREADS": ("0", {}),
    "GUNICORN_TIMEOUT": ("x", {}),
    "GUNICORN_GRACEFUL_TIMEOUT": ("-1", {}),
    "GUNICORN_KEEPALIVE": ("soon", {}),
    "WIDGETSVC_GUNICORN_SOCKET": ("relative.sock", {}),
    "WIDGETSVC_RUNTIME_DIR": ("relative", {}),
    "XDG_STATE_HOME": ("relative", {}),
    "SOAK_BCRYPT_ROUNDS": ("x", {}),
    "BACKUP_REPO": ("relative/backups", {}),
    "BACKUP_RETENTION": ("0", {}),
}
CLUSTER_ONLY = {"WIDGETSVC_CLUSTER_DIR", "PGBOUNCER_POOL_SIZE"}  # read by bin/cluster alone
SOAK_ONLY = {"SOAK_BCRYPT_ROUNDS"}
BACKUP_ONLY = {"BACKUP_REPO", "BACKUP_RETENTION"}  # read by bin/backup and bin/restore alone


def test_every_readme_variable_has_a_bad_value():
    assert len(README_VARIABLES) >= 40
    assert README_VARIABLES - set(BAD) == set(), "give each new variable a bad value in BAD"
    assert set(BAD) - README_VARIABLES == set(), "BAD names a variable the README lacks"


def test_the_table_names_every_variable_the_code_reads():
    """Every ``environ.get("NAME")`` / ``environ["NAME"]`` in the service and its tools names
    a variable of the table (the house issue gathers them; until then the table is the list)."""
    read: set[str] = set()
    sources = [REPO_ROOT / "gunicorn.conf.py", *(REPO_ROOT / "widgetsvc").rglob("*.py"),
               *(REPO_ROOT / "scripts").glob("*.py"), *(REPO_ROOT / "bench").glob("*.py")]
    for path in sources:
        text = path.read_text()
        read |= set(re.findall(r"""(?:environ|env)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""",
                               text))
        read |= set(re.findall(r"""\b\w+\(env, ["']([A-Z][A-Z0-9_]+)["']""", text))
    # REMOTE_ADDR is read from a request's WSGI environ (req.env), not from the process's
    internal = {"PATH", "HOME", "PYTHONPATH", "PGPASSWORD", "BENCH_TOKEN", "BENCH_WIDGETS",
                "REMOTE_ADDR"}
    assert read - internal - README_VARIABLES == set()


def walk_env(name: str, key_files: dict[str, str]) -> dict[str, str]:
    value, extra = BAD[name]
    env = base_env(UNREACHABLE, **{k: v.format(**key_files) for k, v in extra.items()})
    env[name] = value.format(**key_files)
    return env


@pytest.mark.parametrize("name", sorted(set(BAD) - CLUSTER_ONLY - SOAK_ONLY - BACKUP_ONLY))
def test_bin_serve_refuses_each_bad_setting_in_one_line(name, key_files, monkeypatch, capsys):
    """In process (one Python start for the whole walk): the same main() bin/serve runs.
    DATABASE_URL is unreachable, so a setting that got through would end in a DATABASE_URL
    line instead (and nothing could start)."""
    monkeypatch.setattr(os, "environ", walk_env(name, key_files))
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    match = LINE.match(err.rstrip("\n"))
    assert match and match["name"] == name, err


@pytest.mark.parametrize("name", sorted(CLUSTER_ONLY))
def test_bin_cluster_refuses_its_bad_settings_before_starting(name, key_files, monkeypatch,
                                                               capsys):
    monkeypatch.setattr(os, "environ", walk_env(name, key_files))
    monkeypatch.setattr(cluster_cli.HACluster, "up", lambda *a, **k: pytest.fail("it started"))
    assert cluster_cli.main(["up"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and LINE.match(err.rstrip("\n"))["name"] == name, err


@pytest.mark.parametrize("name", sorted(BACKUP_ONLY))
@pytest.mark.parametrize("command", ["backup", "restore"])
def test_bin_backup_and_restore_refuse_their_bad_settings_first(name, command, key_files,
                                                                 monkeypatch, capsys):
    from widgetsvc.ops import backup

    monkeypatch.setattr(os, "environ", walk_env(name, key_files))
    monkeypatch.setattr(backup.LocalBackups, "backup", lambda *a: pytest.fail("it backed up"))
    monkeypatch.setattr(backup.LocalBackups, "restore", lambda *a: pytest.fail("it restored"))
    main = backup.backup_main if command == "backup" else backup.restore_main
    assert main(["--full"] if command == "backup" else ["--latest"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and LINE.match(err.rstrip("\n"))["name"] == name, err


def test_bin_cluster_up_refuses_the_services_settings_too(monkeypatch, capsys):
    monkeypatch.setattr(os, "environ", base_env(UNREACHABLE, GUNICORN_TIMEOUT="x"))
    monkeypatch.setattr(cluster_cli.HACluster, "up", lambda *a, **k: pytest.fail("it started"))
    assert cluster_cli.main(["up"]) == 1
    assert capsys.readouterr().err == (
        "widgetsvc: GUNICORN_TIMEOUT=x: not a whole number (seconds, 0 or more)\n")


def test_bin_soak_refuses_its_bad_setting(key_files):
    result = run([str(BIN / "soak"), "--duration", "1"], walk_env("SOAK_BCRYPT_ROUNDS", key_files),
                 timeout=60)
    assert result.returncode == 1
    assert result.stderr == ("widgetsvc: SOAK_BCRYPT_ROUNDS=x: not a bcrypt cost (4 to 31)\n")


@pytest.mark.e2e
def test_gunicorn_settings_get_one_line_from_the_real_bin_serve(untouched_db):
    """The issue's example: a traceback from gunicorn.conf.py before; one line now, and
    nothing started or migrated."""
    result = run([str(BIN / "serve")], base_env(untouched_db, GUNICORN_TIMEOUT="x"))
    assert result.returncode == 1
    assert result.stderr == (
        "widgetsvc: GUNICORN_TIMEOUT=x: not a whole number (seconds, 0 or more)\n")
    assert not table_exists(untouched_db, "schema_migrations")


def test_secrets_and_passwords_are_never_printed(monkeypatch, capsys):
    monkeypatch.setattr(os, "environ", base_env(
        "postgresql://app:hunter2-secret@127.0.0.1:1/none", SECRET_KEY="tiny-secret-value",
        WIDGETSVC_ENV="production", BCRYPT_ROUNDS="12"))
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "tiny-secret-value" not in err and err.startswith("widgetsvc: SECRET_KEY=<17 bytes")
    monkeypatch.setitem(os.environ, "SECRET_KEY", SECRET)
    assert cli.main(["purge-revoked"]) == 1
    err = capsys.readouterr().err
    assert "hunter2" not in err and "app:***@127.0.0.1" in err


# -- the environment: a busy port, an unreachable database --------------------------------------

@pytest.mark.e2e
def test_a_busy_port_is_named_with_the_variable_to_change(untouched_db):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run([str(BIN / "serve")], base_env(untouched_db, PORT=str(port)))
    assert result.returncode == 1
    assert result.stderr == (f"widgetsvc: PORT={port}: 127.0.0.1:{port} is already in use "
                             "(a free port: set PORT, or HOST)\n")
    assert not table_exists(untouched_db, "schema_migrations")  # refused before migrating


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel's backlog) and never answers: a server
    that hangs, so libpq waits until its connect_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        yield silent.getsockname()[1]


@pytest.mark.parametrize(("kind", "cause"), [("refused", "Connection refused"),
                                             ("silent", "timeout expired")])
def test_an_unreachable_database_names_host_port_and_cause(kind, cause, silent_port):
    port = 1 if kind == "refused" else silent_port
    url = f"postgresql://nobody@127.0.0.1:{port}/none"
    where = f"host 127.0.0.1 port {port}"
    env = base_env(url, DB_POOL_TIMEOUT_MS="2000")
    started = time.monotonic()
    result = run([str(BIN / "add-user"), "--password-stdin", "a@example.com"], env,
                 stdin="Secret-pass-1\n")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"widgetsvc: DATABASE_URL={url}: cannot connect to {where}: ")
    assert cause in result.stderr, result.stderr
    assert elapsed < 30, elapsed  # generous: libpq's connect_timeout is 2 s here (was 10 s)


# -- bin/serve says where it serves -------------------------------------------------------------

@pytest.mark.e2e
def test_bin_serve_prints_one_line_saying_where_it_serves(database_url, tmp_path):
    server = LiveServer(database_url, tmp_path / "serve.log").start()
    try:
        deadline = time.monotonic() + 30
        while "serving at" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    lines = [line for line in server.log().splitlines() if "serving at" in line]
    assert len(lines) == 1, server.log()[-2000:]
    assert lines[0].startswith(f"widgetsvc: serving at http://127.0.0.1:{server.port}/api/v1 "
                               "(nginx front, 2 gunicorn sync workers; database: ")


# -- bin/migrate --dry-run / --status, and the README's by-hand migration -----------------------

def migrate_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "migrate"), *args], base_env(url))


def test_dry_run_and_status_change_nothing(untouched_db):
    versions = [p.stem for p in sorted((REPO_ROOT / "sql" / "migrations").glob("*.sql"))]
    dry = migrate_cli(untouched_db, "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout == "".join(f"would apply {v}.sql\n" for v in versions)
    status = migrate_cli(untouched_db, "--status")
    assert status.stdout == "".join(f"{'pending':<29} {v}\n" for v in versions)
    assert not table_exists(untouched_db, "schema_migrations")  # not even the bookkeeping

    assert migrate_cli(untouched_db).returncode == 0
    dry = migrate_cli(untouched_db, "--dry-run")
    assert dry.stdout == "migrate: nothing to apply\n"
    status = migrate_cli(untouched_db, "--status").stdout.splitlines()
    assert [line.split()[-1] for line in status] == versions
    assert all(re.match(r"^applied \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +\d{4}_", line)
               for line in status), status
    both = migrate_cli(untouched_db, "--dry-run", "--status")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def readme_by_hand_migration() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Migrations\n", 1)[1].split("\n## ", 1)[0]
    after = section.split("exactly as the tool does", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def dump(url: str) -> tuple[str, list[str]]:
    """The schema (pg_dump, minus comments and its per-run \\restrict key) and the versions
    recorded."""
    pg_dump = localdb.find_bindir() / "pg_dump"
    out = subprocess.run([str(pg_dump), "--schema-only", "--no-owner", "-d", url],
                         capture_output=True, text=True, check=True).stdout
    schema = "\n".join(line for line in out.splitlines()
                       if line and not line.startswith(("--", "\\restrict", "\\unrestrict")))
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute(TESTING_QUERIES["catalog_applied_versions"])]
    return schema, versions


def test_the_readme_by_hand_migration_is_exactly_bin_migrate(pg_cluster, monkeypatch):
    by_hand = pg_cluster.create_database(f"byhand_{uuid.uuid4().hex[:8]}")
    by_tool = pg_cluster.create_database(f"bytool_{uuid.uuid4().hex[:8]}")
    try:
        commands = readme_by_hand_migration()
        env = {**os.environ, "DATABASE_URL": by_hand,
               "PATH": f"{localdb.find_bindir()}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], env=env,
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert migrate_cli(by_tool).returncode == 0
        assert dump(by_hand) == dump(by_tool)
        assert dump(by_hand)[1] == [p.stem for p in
                                    sorted((REPO_ROOT / "sql" / "migrations").glob("*.sql"))]
    finally:
        pg_cluster.drop_database(by_hand.rsplit("/", 1)[1].split("?")[0])
        pg_cluster.drop_database(by_tool.rsplit("/", 1)[1].split("?")[0])

    # ... and it passes psql every flag the tool passes (the -1 the bookkeeping file needs)
    import widgetsvc.ops.migrate as migrate_module

    calls: list[list[str]] = []
    monkeypatch.setattr(migrate_module.subprocess, "run",
                        lambda argv, **_: calls.append(argv) or subprocess.CompletedProcess(
                            argv, 0, "", ""))
    migrate_module.migrate("postgresql://x@/y?host=/tmp", log=lambda _m: None)
    flags = {arg for argv in calls for arg in argv[1:]
             if arg.startswith("-") and arg not in ("-d", "-At")}
    for flag in flags:
        assert re.search(rf"(^|\s){re.escape(flag)}(\s|$)", commands), flag


# -- bin/localdb: status, url, start, stop -------------------------------------------------------

def test_localdb_lifecycle(monkeypatch, capsys):
    cluster = PrivatePostgres(VAR_DIR / f"test-{os.getpid()}-localdb")
    monkeypatch.setattr(localdb, "dev_cluster", lambda: cluster)
    monkeypatch.setattr(localdb, "ensure_dev_database",
                        lambda: cluster.start().create_database("widgetsvc"))
    try:
        assert localdb.main(["url"]) == 0
        assert capsys.readouterr().out == f"{cluster.url()}\n"
        assert not cluster.data_dir.exists()  # url starts (and creates) nothing
        assert localdb.main(["status"]) == 3
        assert capsys.readouterr().out.startswith("not created yet\n")
        assert localdb.main(["start"]) == 0
        assert capsys.readouterr().out == f"{cluster.url()}\n"
        assert localdb.main([]) == 0  # status is the default
        assert capsys.readouterr().out == (f"running\ndata: {cluster.data_dir}\n"
                                           f"url:  {cluster.url()}\n")
        assert localdb.main(["stop"]) == 0
        assert capsys.readouterr().out == f"stopped ({cluster.data_dir})\n"
        assert localdb.main(["status"]) == 3
        assert capsys.readouterr().out.startswith("stopped\n")
    finally:
        cluster.destroy()
    with pytest.raises(SystemExit) as caught:
        localdb.main(["stat"])  # never taken for "status"
    assert caught.value.code == 2


def test_gunicorn_alone_refuses_a_bad_setting_in_one_line():
    """A deployment that runs gunicorn on gunicorn.conf.py itself (no bin/serve) gets the
    same line, not gunicorn's traceback."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    result = run([str(gunicorn), "-c", str(REPO_ROOT / "gunicorn.conf.py")],
                 base_env(UNREACHABLE, GUNICORN_KEEPALIVE="soon"), timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        "widgetsvc: GUNICORN_KEEPALIVE=soon: not a whole number (seconds, 0 or more)\n")
