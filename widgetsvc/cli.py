"""Command-line entry points behind ``bin/``: serve, add-user, purge-revoked."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

import psycopg
import psycopg_pool

from widgetsvc import localdb, safefs
from widgetsvc.config import Config, ConfigError
from widgetsvc.front import FrontError
from widgetsvc.localdb import REPO_ROOT, VAR_DIR, LocalDBError, ensure_dev_database
from widgetsvc.migrate import MigrationError, migrate


class UsageError(Exception):
    """The command cannot go on as invoked; the message says what to do instead."""


def _migrate() -> None:
    migrate(os.environ["DATABASE_URL"], log=lambda msg: print(f"migrate: {msg}", file=sys.stderr))


def _local_defaults() -> bool:
    """Without DATABASE_URL we are on a developer's machine: use the private database and a
    random secret kept in var/ (production sets both and never reaches this). True when so."""
    if os.environ.get("DATABASE_URL"):
        return False
    os.environ["DATABASE_URL"] = ensure_dev_database()
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = _local_secret(VAR_DIR / "secret-key")
    return True


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


def serve(argv: list[str]) -> int:
    """gunicorn on a Unix socket behind nginx on HOST:PORT (``--direct``: gunicorn alone)."""
    from widgetsvc import front
    from widgetsvc.supervisor import Supervisor

    _local_defaults()
    # Refuse a bad configuration here, with one clear line, before touching the database.
    from widgetsvc.auth import keys

    config = Config.from_env()
    keys.load(config)
    direct = "--direct" in argv or os.environ.get("WIDGETSVC_DIRECT", "") not in ("", "0")
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    settings = None if direct else front.FrontSettings.from_env()
    nginx = None if direct else front.ensure_nginx()
    listen = front.listen_address(host, port)
    if "--no-migrate" not in argv:
        _migrate()
    argv = [a for a in argv if a not in ("--no-migrate", "--direct")]
    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    os.chdir(REPO_ROOT)

    user = None if direct else front.nginx_user()
    app = front.app_user()  # as root: who gunicorn's workers run as (gunicorn.conf.py)
    # gunicorn's socket and nginx.conf (as root: root's directory, nginx's group may enter),
    # nginx's pid, temp files and gate socket in nginx/ inside (nginx's user's).
    runtime = front.make_runtime_dir(VAR_DIR, user, os.getpid(), root_owned=True)
    nginx_dir = localdb.make_dir(runtime / "nginx", user)
    # The workers' hashing slots: nginx's directory, or, as root, one of the app user's own.
    slots = (nginx_dir if app is None
             else front.make_runtime_dir(VAR_DIR, app, os.getpid(), "app"))
    sock = runtime / "gunicorn.sock"
    env = {**os.environ, "WIDGETSVC_RUNTIME_DIR": str(slots)}
    if not direct:
        env["WIDGETSVC_GUNICORN_SOCKET"] = str(sock)
    supervisor = Supervisor(float(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30")))
    supervisor.install_signal_handlers()
    try:
        conf = runtime / "nginx.conf"
        if settings is not None:
            safefs.write_file(conf, front.render([f"unix:{sock}"], listen, nginx_dir,
                                                 **settings.limits(config.hash_slots)), 0o644)
        supervisor.spawn(
            "gunicorn", [gunicorn, "-c", str(REPO_ROOT / "gunicorn.conf.py"), *argv], env=env
        )
        if not direct:
            if supervisor.wait_for_socket(sock):
                ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
                supervisor.spawn(
                    "nginx", [nginx, "-e", "stderr", "-p", str(nginx_dir), "-c", str(conf)],
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, **ids,
                )
        return supervisor.run()
    finally:
        supervisor.stop_all()
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(slots, ignore_errors=True)


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


def add_user(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bin/add-user", description="Add a new user.")
    parser.add_argument("--admin", action="store_true", help="the new user is an administrator")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from one line of standard input")
    parser.add_argument("email")
    args = parser.parse_args(argv)

    from widgetsvc import errors, timefmt
    from widgetsvc.auth.users import Users
    from widgetsvc.db import Database
    from widgetsvc.validation import Validator

    if _local_defaults():
        _migrate()  # a fresh clone may add its first user before it ever served
    config = Config.from_env(require_secret=False)
    password = _read_password(args.password_stdin)
    try:
        Validator(timefmt.Clock()).validate(
            "credentials", {"email": args.email, "password": password}
        )
    except errors.APIError as exc:
        for message in exc.body["errors"].values():
            print(f"Error: {message}", file=sys.stderr)
        return 1
    db = Database(config.database_url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        user = Users(db, config.bcrypt_rounds).create(args.email, password, admin=args.admin)
    finally:
        db.close()
    if user is None:
        print(f"Error: {args.email} is already registered", file=sys.stderr)
        return 1
    kind = "admin user" if args.admin else "user"
    print(f"Successfully added new {kind}:\n <User email={user['email']}, "
          f"public_id={user['public_id']}, admin={user['admin']}>")
    return 0


def purge_revoked(argv: list[str]) -> int:
    from widgetsvc.auth.loginlock import KNOWN_ADDRESS_SECONDS
    from widgetsvc.db import Database

    if _local_defaults():
        _migrate()
    config = Config.from_env(require_secret=False)
    db = Database(config.database_url, min_size=1, max_size=1)
    db.pool.open(wait=True, timeout=10)
    try:
        count = db.execute("purge_revoked_tokens")
        failures = db.one("purge_login_failures", window_seconds=config.login_lock_window,
                          known_seconds=KNOWN_ADDRESS_SECONDS)
        purged = db.one("purge_sessions")
    finally:
        db.close()
    print(f"purged {count} expired revocation(s)")
    print(f"purged {failures['failures']} expired failed login(s)")
    print(f"purged {failures['addresses']} login address(es) unused for 30 days")
    print(f"purged {purged['sessions']} expired session(s)")
    print(f"purged {purged['spent']} expired spent refresh token(s)")
    return 0


COMMANDS = {"serve": serve, "add-user": add_user, "purge-revoked": purge_revoked}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # One-shot commands report a dead database in one line (below), not per pool retry.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m widgetsvc.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args[0]](args[1:])
    except (ConfigError, FrontError, LocalDBError, MigrationError, UsageError,
            safefs.UnsafePath) as exc:
        print(f"widgetsvc: {exc}", file=sys.stderr)
        return 1
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        print(f"widgetsvc: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("widgetsvc: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
