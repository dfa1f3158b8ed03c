"""Command-line entry points behind ``bin/``: serve, add-user, purge-revoked."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

import psycopg
import psycopg_pool

from widgetsvc import setting_errors
from widgetsvc.auth import ratelimit
from widgetsvc.config import Config, ConfigError
from widgetsvc.ops import cmdline, localdb, safefs, servers, settings
from widgetsvc.ops.front import FrontError
from widgetsvc.ops.localdb import REPO_ROOT, VAR_DIR, LocalDBError, dev_cluster, ensure_dev_database
from widgetsvc.ops.migrate import MigrationError, migrate
from widgetsvc.ops.settings import ToolSettings
from widgetsvc.setting_errors import bad_setting


class UsageError(Exception):
    """The command cannot go on as invoked; the message says what to do instead."""


def _migrate(tools: ToolSettings, url: str) -> None:
    migrate(url, log=lambda msg: print(f"migrate: {msg}", file=sys.stderr),
            lock_timeout=tools.migrate_lock_timeout, retries=tools.migrate_retries)


def _environment(tools: ToolSettings) -> tuple[dict[str, str], bool]:
    """The environment the command's configuration and children see: this process's, and
    without DATABASE_URL (a developer's machine) the private database and a random secret kept
    in var/ (production sets both and never reaches this). True when local. The process's own
    environment is left as it is."""
    env = dict(os.environ)
    if tools.database_url:
        return env, False
    cluster = dev_cluster()
    if not cluster.is_running():
        what = "starting" if cluster.is_initialized() else "creating and starting"
        print(f"widgetsvc: {what} the private PostgreSQL in {cluster.data_dir.parent} ...",
              file=sys.stderr, flush=True)
    env["DATABASE_URL"] = ensure_dev_database()
    if not tools.secret_key:
        env["SECRET_KEY"] = _local_secret(VAR_DIR / "secret-key")
    return env, True


def _local_secret(path: Path) -> str:
    """The clone's generated secret; created once, atomically (two commands may race)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)  # fails if another command got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


_SERVICE_ENV = [
    ("DATABASE_URL", "the database (unset: the private cluster, see bin/localdb)"),
    ("SECRET_KEY", "token key (unset with the private cluster: var/secret-key)"),
    ("WIDGETSVC_ENV", f"{Config.environment} (default), development or test"),
    ("...", "every variable of the README's Configuration table"),
]


def _preflight(*, require_secret: bool, serving: bool) -> ToolSettings:
    """Every setting this command reads, checked before anything starts (no cluster, no
    migration, no process): the first bad one raises one line. Without DATABASE_URL the
    private cluster's URL (and, for bin/serve, its generated secret) are not known yet: the
    checks run with stand-ins for them."""
    from widgetsvc.ops import dbprobe

    tools = ToolSettings.from_env()  # the real environment: no stand-ins
    env = dict(os.environ)
    if tools.database_url:
        dbprobe.check_url(tools.database_url)
    else:
        env["DATABASE_URL"] = "postgresql:///private-cluster"
        if serving and not tools.secret_key:
            env["SECRET_KEY"] = "stand-in for var/secret-key " * 2
    config = Config.from_env(env, require_secret=require_secret)
    if serving:
        from widgetsvc.auth import keys

        keys.load(config)
    return tools


def _check_port_free(host: str, port: str) -> None:
    """The listening address is free (nginx would otherwise print six [emerg] lines)."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise bad_setting("HOST", host, f"cannot be resolved: {exc.strerror}",
                          "an address or a host name of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            where = settings.listen_address(host, port)
            if exc.errno == errno.EADDRINUSE:
                raise bad_setting("PORT", port, f"{where} is already in use",
                                  "a free port: set PORT, or HOST") from None
            if exc.errno == errno.EACCES:
                raise bad_setting("PORT", port, f"binding {where} needs privileges",
                                  "a port from 1024 up, or run as root") from None
            raise bad_setting("HOST", host, f"cannot listen on {where}: {exc.strerror}",
                              "an address of this machine") from None


def _serve_parser() -> cmdline.Parser:
    parser = cmdline.Parser(
        "bin/serve", "Serve the API: nginx on HOST:PORT in front of gunicorn on a Unix socket, "
        "in the foreground.",
        details="""
Without DATABASE_URL it uses the private PostgreSQL under var/pg (created and started when
needed; it keeps running after bin/serve exits: bin/localdb status|url|stop). It applies
pending migrations, then prints one line "serving at ...". SIGTERM or Ctrl-C stops nginx and
gunicorn. The first run prepares .venv (runtime dependencies only).""",
        environment=[
            ("HOST / PORT", f"where it listens ({settings.DEFAULT_HOST} / "
                            f"{settings.DEFAULT_PORT})"),
            ("WIDGETSVC_DIRECT", "1: gunicorn alone on HOST:PORT (as --direct)"),
            ("WIDGETSVC_SERVER", f"{' or '.join(settings.SERVERS)} (default "
                                 f"{settings.DEFAULT_SERVER}; as --server)"),
            ("WEB_CONCURRENCY", "gunicorn workers; GUNICORN_* (README) the rest"),
            *_SERVICE_ENV,
        ],
        exit_codes=[(0, "stopped by SIGTERM / Ctrl-C"),
                    (1, "refused to start (one line says why), or nginx/gunicorn died")])
    parser.add_argument("--direct", action="store_true",
                        help="gunicorn alone on HOST:PORT, no nginx (debugging)")
    parser.add_argument("--server", choices=settings.SERVERS, default=None,
                        help="the WSGI server behind the front (WIDGETSVC_SERVER; default "
                             f"{settings.DEFAULT_SERVER}); granian is installed (pinned) when "
                             "missing")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations first")
    parser.add_argument("app", nargs="?", metavar="MODULE:CALLABLE",
                        help="another WSGI app behind the same front (bin/bench's floor); "
                             "default: widgetsvc.wsgi:app")
    return parser


def serve(argv: list[str]) -> int:
    """gunicorn on a Unix socket behind nginx on HOST:PORT (``--direct``: gunicorn alone)."""
    args = _serve_parser().parse_args(argv)
    from widgetsvc.ops import dbprobe, front
    from widgetsvc.ops.supervisor import Supervisor

    # Refuse a bad configuration here, with one clear line, before anything starts.
    tools = _preflight(require_secret=True, serving=True)
    direct = args.direct or tools.direct
    host, port = tools.host, str(tools.port)
    listen = tools.listen
    _check_port_free(host, port)
    nginx = None if direct else front.ensure_nginx()
    user = None if direct else front.nginx_user(tools)
    base_env, local = _environment(tools)
    config = Config.from_env(base_env)
    dbprobe.probe(config.database_url, config.pool_timeout)
    if not args.no_migrate:
        _migrate(tools, config.database_url)
    kind = servers.chosen(tools, args.server)
    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    granian = servers.granian_executable() if kind == "granian" else None
    os.chdir(REPO_ROOT)

    app = servers.app_user(tools)  # as root: who gunicorn's workers (or Granian) run as
    # gunicorn's socket and nginx.conf (as root: root's directory, nginx's group may enter),
    # nginx's pid, temp files and gate socket in nginx/ inside (nginx's user's).
    runtime = front.make_runtime_dir(VAR_DIR, user, os.getpid(), root_owned=True)
    nginx_dir = localdb.make_dir(runtime / "nginx", user)
    # The workers' hashing slots: nginx's directory, or, as root, one of the app user's own.
    slots = (nginx_dir if app is None
             else front.make_runtime_dir(VAR_DIR, app, os.getpid(), "app"))
    sock = runtime / "gunicorn.sock"
    env = {**base_env, "WIDGETSVC_RUNTIME_DIR": str(slots)}
    if not direct:
        env["WIDGETSVC_GUNICORN_SOCKET"] = str(sock)
    if granian and not direct:
        sock = runtime / "granian.sock"
    supervisor = Supervisor(float(tools.graceful_timeout))
    supervisor.install_signal_handlers()
    try:
        conf = runtime / "nginx.conf"
        if not direct:
            safefs.write_file(conf, front.render(
                [f"unix:{sock}"], listen, nginx_dir, limits=tools.front,
                hash_slots=config.hash_slots,
                upstream_keepalive=servers.upstream_keepalive(kind)), 0o644)
        if granian:  # as root its workers become the app user (widgetsvc/ops/granian_app.py)
            supervisor.spawn("granian", servers.granian_argv(
                granian, tools, uds=None if direct else sock),
                env=servers.granian_env(env, args.app))
        else:
            supervisor.spawn(
                "gunicorn", [gunicorn, "-c", str(REPO_ROOT / "gunicorn.conf.py"),
                             *([args.app] if args.app else [])], env=env
            )
        if not direct:
            if supervisor.wait_for_socket(sock):
                ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
                supervisor.spawn(
                    "nginx", [nginx, "-e", "stderr", "-p", str(nginx_dir), "-c", str(conf)],
                    env={"PATH": tools.path}, **ids,
                )
        if supervisor.wait_for_tcp(host.strip("[]"), int(port)):
            print(f"widgetsvc: {_serving_line(tools, direct, config, local, kind)}",
                  file=sys.stderr, flush=True)
        return supervisor.run()
    finally:
        supervisor.stop_all()
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(slots, ignore_errors=True)


def _serving_line(tools: ToolSettings, direct: bool, config: Config, local: bool,
                  server: str = "gunicorn") -> str:
    """Where it serves, the front, the workers and the database, in one line."""
    listen, kind = tools.listen, tools.worker_class
    if server == "granian":
        workers, kind = f"{tools.workers} granian", "wsgi"
    else:
        workers = f"{tools.workers} gunicorn"
    front = f"{server} alone (--direct)" if direct else "nginx front"
    database = (f"the private cluster in var/pg ({config.database_url}; it keeps running "
                "after bin/serve: bin/localdb stop)" if local
                else setting_errors.shown("DATABASE_URL", config.database_url))
    return (f"serving at http://{listen}/api/v1 ({front}, {workers} {kind} workers; "
            f"database: {database})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: use --password-stdin")
    while True:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Repeat for confirmation: ")
        if first == second:
            return first
        print("Error: the two entered values do not match", file=sys.stderr)


def _connect(config: Config):
    """The one-shot commands' database: reachable within the pool timeout, or one line
    naming host, port and cause (not "pool initialization incomplete after 10 sec")."""
    from widgetsvc.db import Database
    from widgetsvc.ops import dbprobe

    dbprobe.probe(config.database_url, config.pool_timeout)
    db = Database(config.database_url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=max(config.pool_timeout, 3.0))
    return db


def add_user(argv: list[str]) -> int:
    parser = cmdline.Parser(
        "bin/add-user", "Add a user (or an administrator) with the API's e-mail and password "
        "rules.",
        details="""
The password is asked twice on the terminal, or read from one line of standard input with
--password-stdin. Without DATABASE_URL it uses the private cluster (bin/localdb), migrated
first when it is new.""",
        environment=_SERVICE_ENV[:1] + [("BCRYPT_ROUNDS",
                                          f"bcrypt cost ({Config.bcrypt_rounds})"),
                                         *_SERVICE_ENV[2:]],
        exit_codes=[(0, "added"), (1, "not added: one line says why (a duplicate, an invalid "
                                      "e-mail or password, a bad setting, no database)")])
    parser.add_argument("--admin", action="store_true", help="the new user is an administrator")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from one line of standard input")
    parser.add_argument("email", help="the new user's e-mail")
    args = parser.parse_args(argv)

    from widgetsvc import errors, timefmt
    from widgetsvc.auth.accounts import Accounts
    from widgetsvc.validation import Validator

    tools = _preflight(require_secret=False, serving=False)
    env, local = _environment(tools)
    config = Config.from_env(env, require_secret=False)
    if local:
        _migrate(tools, config.database_url)  # a fresh clone may add its first user first
    db = _connect(config)  # before the password is typed: an unreachable database says so first
    try:
        password = _read_password(args.password_stdin)
        try:
            Validator(timefmt.Clock()).validate(
                "credentials", {"email": args.email, "password": password}
            )
        except errors.APIError as exc:
            for message in exc.body["errors"].values():
                print(f"Error: {message}", file=sys.stderr)
            return 1
        user = Accounts(db, config.bcrypt_rounds).create(args.email, password, admin=args.admin)
    finally:
        db.close()
    if user is None:
        print(f"Error: {args.email} is already registered", file=sys.stderr)
        return 1
    kind = "admin user" if args.admin else "user"
    print(f"Successfully added new {kind}:\n <User email={user.email}, "
          f"public_id={user.public_id}, admin={user.admin}>")
    return 0


def purge_revoked(argv: list[str]) -> int:
    from widgetsvc.auth.loginlock import KNOWN_ADDRESS_SECONDS

    cmdline.Parser(
        "bin/purge-revoked", "Delete expired token revocations, sessions, spent refresh "
        "tokens, failed logins, Idempotency-Key outcomes and ended rate-limit windows (for "
        "cron).",
        environment=_SERVICE_ENV[:1] + [("LOGIN_LOCK_WINDOW", "failed logins older than this "
                                                              "are purged "
                                                              f"({Config.login_lock_window} s)")],
        exit_codes=[(0, "purged (the counts are printed)"),
                    (1, "failed: one line says why")]).parse_args(argv)
    tools = _preflight(require_secret=False, serving=False)
    env, local = _environment(tools)
    config = Config.from_env(env, require_secret=False)
    if local:
        _migrate(tools, config.database_url)
    db = _connect(config)
    try:
        count = db.execute("purge_revoked_tokens")
        failures = db.one("purge_login_failures", window_seconds=config.login_lock_window,
                          known_seconds=KNOWN_ADDRESS_SECONDS)
        purged = db.one("purge_sessions")
        keys = db.execute("purge_idempotency_keys")
        windows = db.execute("purge_auth_rate_windows", rate_window=ratelimit.WINDOW_SECONDS)
    finally:
        db.close()
    print(f"purged {count} expired revocation(s)")
    print(f"purged {failures['failures']} expired failed login(s)")
    print(f"purged {failures['addresses']} login address(es) unused for 30 days")
    print(f"purged {purged['sessions']} expired session(s)")
    print(f"purged {purged['spent']} expired spent refresh token(s)")
    print(f"purged {keys} Idempotency-Key outcome(s) older than 24 h")
    print(f"purged {windows} ended rate-limit window(s)")
    return 0


COMMANDS = {"serve": serve, "add-user": add_user, "purge-revoked": purge_revoked}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # One-shot commands report a dead database in one line (below), not per pool retry.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m widgetsvc.ops.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    try:
        return cmdline.run(lambda: COMMANDS[args[0]](args[1:]),
                           (ConfigError, FrontError, LocalDBError, MigrationError, UsageError,
                             safefs.UnsafePath))
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        from widgetsvc.ops import dbprobe

        url = ToolSettings.from_env().database_url or localdb.dev_cluster().url()
        print(f"widgetsvc: the database at {dbprobe.where(url)} failed: {dbprobe.cause(exc)}",
              file=sys.stderr)
        return 1
    except EOFError:
        print("widgetsvc: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
