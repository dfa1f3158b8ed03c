"""All configuration, read from the environment in one place (12-factor)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from widgetsvc import hygiene, setting_errors

PRODUCTION = "production"
ENVIRONMENTS = (PRODUCTION, "development", "test")
MIN_SECRET_BYTES = 32
MIN_PRODUCTION_BCRYPT_ROUNDS = 12
HS256, EDDSA = "HS256", "EdDSA"
TOKEN_ALGORITHMS = (HS256, EDDSA)


class ConfigError(Exception):
    """The environment describes a configuration the service must not run with (the message
    is the operator's line, ``NAME=value: what is wrong (what is allowed)``)."""


def bad(name: str, value: object, problem: str, allowed: str) -> ConfigError:
    """The ConfigError for one refused setting, in the command line's one format."""
    return ConfigError(str(setting_errors.bad_setting(name, str(value), problem, allowed)))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_BOOLEANS = {"": False, "0": False, "false": False, "no": False, "off": False,
             "1": True, "true": True, "yes": True, "on": True}


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _int(env: Mapping[str, str], name: str, default: int, allowed: str = "a whole number",
         minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(name, raw, "not a whole number", allowed) from None
    if minimum is not None and value < minimum:
        raise bad(name, raw, f"below {minimum}", allowed)
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip()
    if raw.lower() not in _BOOLEANS:
        raise bad(name, raw, "not a yes/no value", "1, true, yes or on; 0, false, no or off")
    return _BOOLEANS[raw.lower()]


def _realm(env: Mapping[str, str], name: str, default: str) -> str:
    """A realm goes inside a quoted ``WWW-Authenticate`` parameter: printable, no quote."""
    raw = env.get(name, default)
    if not raw or any(c in raw for c in '"\\') or not raw.isprintable():
        raise bad(name, raw, "cannot be a quoted header value",
                  'printable characters other than " and \\, at least one')
    return raw


def _hosts(env: Mapping[str, str]) -> dict[str, Any]:
    """PUBLIC_URL and ALLOWED_HOSTS (docs/API.md §8.2), checked."""
    try:
        public_url = hygiene.parse_public_url(env.get("PUBLIC_URL", ""))
        return {"public_url": public_url,
                "allowed_hosts": hygiene.allowed_hosts(env.get("ALLOWED_HOSTS", ""), public_url)}
    except ValueError as exc:
        name = "PUBLIC_URL" if str(exc).startswith("PUBLIC_URL") else "ALLOWED_HOSTS"
        raise bad(name, env.get(name, ""), str(exc).partition(": ")[2] or "not usable",
                  "http(s)://host[:port][/path]" if name == "PUBLIC_URL" else
                  "comma-separated host or host:port, or *") from None


GUNICORN_WORKER_CLASSES = ("sync", "gthread")


def check_gunicorn(env: Mapping[str, str]) -> None:
    """gunicorn.conf.py's settings and bin/serve's own, refused in the one-line format before
    gunicorn would stop on them with a traceback."""
    web_concurrency(env)
    _int(env, "GUNICORN_THREADS", 1, "threads per worker, at least 1", 1)
    for name in ("GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_KEEPALIVE"):
        _int(env, name, 0, "seconds, 0 or more", 0)
    worker_class = env.get("GUNICORN_WORKER_CLASS", "").strip()
    if worker_class and worker_class not in GUNICORN_WORKER_CLASSES:
        raise bad("GUNICORN_WORKER_CLASS", worker_class, "not a worker class installed here",
                  " or ".join(GUNICORN_WORKER_CLASSES))
    for name in ("WIDGETSVC_GUNICORN_SOCKET", "WIDGETSVC_RUNTIME_DIR"):
        raw = env.get(name, "")
        if raw and not raw.startswith("/"):
            raise bad(name, raw, "not an absolute path", "an absolute path, or unset")
    _bool(env, "WIDGETSVC_DIRECT")
    try:
        metrics_port(env)
    except setting_errors.SettingError as exc:
        raise ConfigError(str(exc)) from None



METRICS_DEFAULT_PORT = 9464
# prometheus_client's multiprocess folder: the workers write their values there and the
# listener in gunicorn's master reads them (widgetsvc.metrics, widgetsvc.ops.metrics_listener).
METRICS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_port(env: Mapping[str, str]) -> int:
    """``METRICS_PORT``: the metrics listener's port on 127.0.0.1 (0: no listener)."""
    raw = env.get("METRICS_PORT", "").strip()
    if not raw:
        return METRICS_DEFAULT_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise setting_errors.bad_setting("METRICS_PORT", raw, "not a port",
                                         f"0 (off) or 1 to 65535; default {METRICS_DEFAULT_PORT}")
    return int(raw)


def web_concurrency(env: Mapping[str, str]) -> int:
    """``WEB_CONCURRENCY``: gunicorn's sync workers; by default one per core plus one
    (gunicorn.conf.py and the hashing slots' default both take it from here)."""
    return _int(env, "WEB_CONCURRENCY", (os.cpu_count() or 1) + 1, "workers, at least 1", 1)


def _default_hash_slots(env: Mapping[str, str]) -> int:
    """One less than the requests an instance serves at once (gunicorn.conf.py's defaults), so
    password hashes never take the last worker, and one less than the cores, so they never
    take every core either (a bcrypt hash is pure CPU); at least one. Measured on 2 cores
    under a 32-client login flood (tests/test_front_door.py, AUTH_RATE_LIMIT=0): the reader's
    p99 was 154-231 ms with 2 slots, 114 ms with 1."""
    workers = web_concurrency(env)
    threads = _int(env, "GUNICORN_THREADS", 1, "threads per worker, at least 1", 1)
    cores = os.cpu_count() or 1
    return max(1, min(workers * threads - 1, cores - 1))


AUTH_RATE_LIMIT_DEFAULT = 30


def auth_rate_limit(env: Mapping[str, str]) -> int:
    """``AUTH_RATE_LIMIT``: login + register + password-change requests per minute per client
    address, counted by the application (docs/API.md §8.8); 0: no limit. The front's flood
    ceiling is derived from it (widgetsvc/ops/front.py)."""
    raw = env.get("AUTH_RATE_LIMIT", "").strip()
    if raw and not raw.isdigit():
        raise bad("AUTH_RATE_LIMIT", raw, "not a whole number",
                  "0 = off, or a positive whole number")
    return int(raw) if raw else AUTH_RATE_LIMIT_DEFAULT


@dataclass(frozen=True)
class Config:
    database_url: str
    secret_key: str = field(repr=False)
    environment: str = PRODUCTION
    token_lifetime: int = 900
    refresh_token_lifetime: int = 30 * 24 * 3600
    token_algorithm: str = HS256
    previous_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    signing_key_file: str = ""
    previous_public_key_files: tuple[str, ...] = ()
    token_leeway: int = 10
    bcrypt_rounds: int = 12
    pool_min_size: int = 2
    pool_max_size: int = 4
    pool_timeout: float = 3.0
    statement_timeout_ms: int = 5000
    pgbouncer: bool = False
    max_body_bytes: int = 65536
    user_realm: str = "registered_users@mydomain.com"
    admin_realm: str = "admin_users@mydomain.com"
    log_level: str = "INFO"
    hash_slots: int = 1
    runtime_dir: str = ""
    login_lock_failures: int = 5
    login_lock_window: int = 900
    login_lock_account_failures: int = 100
    forwarded_allow_ips: tuple[str, ...] = ()
    auth_rate_limit: int = AUTH_RATE_LIMIT_DEFAULT
    public_url: str = ""
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_secret: bool = True
    ) -> Config:
        """The configuration in ``env`` (default: the process environment), checked.

        ``require_secret=False`` is for tools that never sign tokens (``bin/add-user``)."""
        env = os.environ if env is None else env
        default = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        config = cls(
            database_url=env.get("DATABASE_URL", ""),
            secret_key=env.get("SECRET_KEY", ""),
            environment=env.get("WIDGETSVC_ENV", "").strip().lower() or default["environment"],
            token_lifetime=_int(env, "TOKEN_LIFETIME", default["token_lifetime"],
                                "seconds, at least 1", 1),
            refresh_token_lifetime=_int(env, "REFRESH_TOKEN_LIFETIME",
                                        default["refresh_token_lifetime"],
                                        "seconds, at least TOKEN_LIFETIME", 1),
            token_algorithm=env.get("TOKEN_ALGORITHM", "").strip() or default["token_algorithm"],
            previous_secret_keys=_list(env, "PREVIOUS_SECRET_KEYS"),
            signing_key_file=env.get("SIGNING_KEY_FILE", "").strip(),
            previous_public_key_files=_list(env, "PREVIOUS_PUBLIC_KEY_FILES"),
            token_leeway=_int(env, "TOKEN_LEEWAY", default["token_leeway"],
                              "seconds, 0 or more", 0),
            bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", default["bcrypt_rounds"], "4 to 31"),
            pool_min_size=_int(env, "DB_POOL_MIN", default["pool_min_size"],
                               "1 to DB_POOL_MAX", 1),
            pool_max_size=_int(env, "DB_POOL_MAX", default["pool_max_size"],
                               "at least DB_POOL_MIN", 1),
            pool_timeout=float(_int(env, "DB_POOL_TIMEOUT_MS", int(default["pool_timeout"] * 1000),
                                    "milliseconds, at least 1", 1)) / 1000,
            statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS",
                                      default["statement_timeout_ms"], "milliseconds, 0 = none",
                                      0),
            pgbouncer=_bool(env, "DB_PGBOUNCER"),
            user_realm=_realm(env, "USER_REALM", default["user_realm"]),
            admin_realm=_realm(env, "ADMIN_REALM", default["admin_realm"]),
            log_level=env.get("LOG_LEVEL", default["log_level"]).upper(),
            hash_slots=(_int(env, "HASH_SLOTS", 0, "at least 1; 0 or unset: workers - 1", 0)
                        or _default_hash_slots(env)),
            runtime_dir=env.get("WIDGETSVC_RUNTIME_DIR", ""),
            login_lock_failures=_int(env, "LOGIN_LOCK_FAILURES", default["login_lock_failures"],
                                     "0 = off, or a number of failures", 0),
            login_lock_window=_int(env, "LOGIN_LOCK_WINDOW", default["login_lock_window"],
                                   "seconds, at least 1", 1),
            login_lock_account_failures=_int(env, "LOGIN_LOCK_ACCOUNT_FAILURES",
                                             default["login_lock_account_failures"],
                                             "0 = off, or a number of failures", 0),
            forwarded_allow_ips=_list(env, "FORWARDED_ALLOW_IPS"),
            auth_rate_limit=auth_rate_limit(env),
            **_hosts(env),
        )
        config.check(require_secret=require_secret)
        return config

    @property
    def is_production(self) -> bool:
        return self.environment == PRODUCTION

    def check(self, *, require_secret: bool = True) -> None:
        """Refuse settings that are unsafe or meaningless; production is strictest."""
        if self.environment not in ENVIRONMENTS:
            # A typo such as "prod" must not quietly switch the production checks off.
            raise bad("WIDGETSVC_ENV", self.environment, "unknown environment",
                      ", ".join(ENVIRONMENTS))
        if not self.database_url:
            raise bad("DATABASE_URL", "", "not set",
                      "a libpq URL such as postgresql://user@host:5432/dbname")
        if self.log_level not in LOG_LEVELS:
            raise bad("LOG_LEVEL", self.log_level, "unknown level", ", ".join(LOG_LEVELS))
        if not 4 <= self.bcrypt_rounds <= 31:
            raise bad("BCRYPT_ROUNDS", self.bcrypt_rounds, "out of range", "4 to 31")
        if self.token_lifetime < 1:
            raise bad("TOKEN_LIFETIME", self.token_lifetime, "not positive",
                      "seconds, at least 1")
        if self.refresh_token_lifetime < self.token_lifetime:
            # A session row is kept until its refresh expiry: it must outlive every access
            # token issued for it, or a purged session could not be told from a live one.
            raise bad("REFRESH_TOKEN_LIFETIME", self.refresh_token_lifetime,
                      f"shorter than TOKEN_LIFETIME={self.token_lifetime}",
                      "seconds, at least TOKEN_LIFETIME")
        if self.token_algorithm not in TOKEN_ALGORITHMS:
            raise bad("TOKEN_ALGORITHM", self.token_algorithm, "unsupported algorithm",
                      " or ".join(TOKEN_ALGORITHMS))
        if self.token_algorithm == EDDSA and require_secret and not self.signing_key_file:
            raise bad("SIGNING_KEY_FILE", "", "not set, and TOKEN_ALGORITHM=EdDSA needs it",
                      "an Ed25519 private key in PEM")
        if self.pool_min_size > self.pool_max_size:
            raise bad("DB_POOL_MIN", self.pool_min_size,
                      f"more than DB_POOL_MAX={self.pool_max_size}", "1 to DB_POOL_MAX")
        if self.hash_slots < 1:
            raise bad("HASH_SLOTS", self.hash_slots, "below 1", "at least 1; unset: workers - 1")
        for item in self.forwarded_allow_ips:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                # "*" too: trusting every TCP peer would let any client name its address.
                raise bad("FORWARDED_ALLOW_IPS", item, "not an address or network",
                          "the front proxy's addresses, comma-separated") from None
        # With EdDSA the private key signs; a SECRET_KEY, when set, still verifies the HS256
        # tokens it signed before the switch.
        if require_secret and not self.secret_key and self.token_algorithm == HS256:
            raise bad("SECRET_KEY", "", "not set",
                      f"a random string, at least {MIN_SECRET_BYTES} bytes in production")
        if self.is_production:
            if (require_secret and self.secret_key
                    and len(self.secret_key.encode()) < MIN_SECRET_BYTES):
                raise bad("SECRET_KEY", self.secret_key, "too short for production",
                          f"at least {MIN_SECRET_BYTES} bytes")
            short = [key for key in self.previous_secret_keys
                     if len(key.encode()) < MIN_SECRET_BYTES]
            if require_secret and short:
                raise bad("PREVIOUS_SECRET_KEYS", ",".join(self.previous_secret_keys),
                          "a key is too short for production",
                          f"each at least {MIN_SECRET_BYTES} bytes")
            if self.bcrypt_rounds < MIN_PRODUCTION_BCRYPT_ROUNDS:
                raise bad("BCRYPT_ROUNDS", self.bcrypt_rounds, "too low for production",
                          f"at least {MIN_PRODUCTION_BCRYPT_ROUNDS}; 4 with "
                          "WIDGETSVC_ENV=development or test")
