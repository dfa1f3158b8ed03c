"""The service's configuration (what the app reads), parsed once from the environment
(12-factor), each default here. The tools' settings are widgetsvc/ops/settings.py's
``ToolSettings``; the variables both sides need are parsed by the functions here."""

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
DEFAULT_LOG_LEVEL = "INFO"
# The yes/no words every boolean setting accepts (the service's and the tools').
BOOLEANS = {"": False, "0": False, "false": False, "no": False, "off": False,
            "1": True, "true": True, "yes": True, "on": True}
BOOLEANS_ALLOWED = "1, true, yes or on; 0, false, no or off"


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def whole(env: Mapping[str, str], name: str, default: int, allowed: str = "a whole number",
          minimum: int | None = None) -> int:
    """A whole-number setting (unset or empty: ``default``), refused as a SettingError."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise setting_errors.bad_setting(name, raw, "not a whole number", allowed) from None
    if minimum is not None and value < minimum:
        raise setting_errors.bad_setting(name, raw, f"below {minimum}", allowed)
    return value


def yes_no(env: Mapping[str, str], name: str) -> bool:
    """A boolean setting (unset or empty: no), refused as a SettingError."""
    raw = env.get(name, "").strip()
    if raw.lower() not in BOOLEANS:
        raise setting_errors.bad_setting(name, raw, "not a yes/no value", BOOLEANS_ALLOWED)
    return BOOLEANS[raw.lower()]


def _realm(env: Mapping[str, str], name: str, default: str) -> str:
    """A realm goes inside a quoted ``WWW-Authenticate`` parameter: printable, no quote."""
    raw = env.get(name, default)
    if not raw or any(c in raw for c in '"\\') or not raw.isprintable():
        raise setting_errors.bad_setting(name, raw, "cannot be a quoted header value",
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
        raise setting_errors.bad_setting(
            name, env.get(name, ""), str(exc).partition(": ")[2] or "not usable",
                  "http(s)://host[:port][/path]" if name == "PUBLIC_URL" else
                  "comma-separated host or host:port, or *") from None


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


def default_workers() -> int:
    """WSGI workers when ``WEB_CONCURRENCY`` is unset: one per core plus one (on 2 cores that
    count read fastest, docs/benchmarks.md)."""
    return (os.cpu_count() or 1) + 1


def web_concurrency(env: Mapping[str, str]) -> int:
    """``WEB_CONCURRENCY``: the server's workers (the tools start that many; the hashing
    slots' default is derived from it)."""
    return whole(env, "WEB_CONCURRENCY", default_workers(), "workers, at least 1", 1)


DEFAULT_THREADS = 1


def gunicorn_threads(env: Mapping[str, str]) -> int:
    """``GUNICORN_THREADS``: threads per gunicorn worker (gthread)."""
    return whole(env, "GUNICORN_THREADS", DEFAULT_THREADS, "threads per worker, at least 1", 1)


def log_level(env: Mapping[str, str]) -> str:
    """``LOG_LEVEL``, upper case (checked against LOG_LEVELS by :meth:`Config.check`)."""
    return (env.get("LOG_LEVEL", "").strip() or DEFAULT_LOG_LEVEL).upper()


def forwarded_allow_ips(env: Mapping[str, str]) -> tuple[str, ...]:
    """``FORWARDED_ALLOW_IPS``: the front proxy's addresses (checked by :meth:`Config.check`);
    gunicorn.conf.py passes the same list to gunicorn."""
    return _list(env, "FORWARDED_ALLOW_IPS")


def runtime_dir(env: Mapping[str, str]) -> str:
    """``WIDGETSVC_RUNTIME_DIR``: the instance's directory for its hashing slots' lock files."""
    raw = env.get("WIDGETSVC_RUNTIME_DIR", "")
    if raw and not raw.startswith("/"):
        raise setting_errors.bad_setting("WIDGETSVC_RUNTIME_DIR", raw, "not an absolute path",
                                         "an absolute path, or unset")
    return raw


def _default_hash_slots(env: Mapping[str, str]) -> int:
    """One less than the requests an instance serves at once (workers x threads), so
    password hashes never take the last worker, and one less than the cores, so they never
    take every core either (a bcrypt hash is pure CPU); at least one. Measured on 2 cores
    under a 32-client login flood (tests/test_front_door.py, AUTH_RATE_LIMIT=0): the reader's
    p99 was 154-231 ms with 2 slots, 114 ms with 1."""
    cores = os.cpu_count() or 1
    return max(1, min(web_concurrency(env) * gunicorn_threads(env) - 1, cores - 1))


AUTH_RATE_LIMIT_DEFAULT = 30


def auth_rate_limit(env: Mapping[str, str]) -> int:
    """``AUTH_RATE_LIMIT``: login + register + password-change requests per minute per client
    address, counted by the application (docs/API.md §8.8); 0: no limit. The front's flood
    ceiling is derived from it (``FrontSettings.limits`` in widgetsvc/ops/settings.py)."""
    raw = env.get("AUTH_RATE_LIMIT", "").strip()
    if raw and not raw.isdigit():
        raise setting_errors.bad_setting("AUTH_RATE_LIMIT", raw, "not a whole number",
                                         "0 = off, or a positive whole number")
    return int(raw) if raw else AUTH_RATE_LIMIT_DEFAULT


# Every variable Config.from_env reads (tests/test_settings.py checks the two agree): a change
# to any of them restarts a cluster's instance (widgetsvc/ops/cluster/instance.py).
ENV_NAMES = (
    "DATABASE_URL", "SECRET_KEY", "WIDGETSVC_ENV", "TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME",
    "TOKEN_ALGORITHM", "PREVIOUS_SECRET_KEYS", "SIGNING_KEY_FILE", "PREVIOUS_PUBLIC_KEY_FILES",
    "TOKEN_LEEWAY", "BCRYPT_ROUNDS", "DB_POOL_MIN", "DB_POOL_MAX", "DB_POOL_TIMEOUT_MS",
    "DB_STATEMENT_TIMEOUT_MS", "DB_PGBOUNCER", "USER_REALM", "ADMIN_REALM", "LOG_LEVEL",
    "HASH_SLOTS", "WEB_CONCURRENCY", "GUNICORN_THREADS", "WIDGETSVC_RUNTIME_DIR",
    "LOGIN_LOCK_FAILURES", "LOGIN_LOCK_WINDOW", "LOGIN_LOCK_ACCOUNT_FAILURES",
    "FORWARDED_ALLOW_IPS", "AUTH_RATE_LIMIT", "METRICS_PORT", "PUBLIC_URL", "ALLOWED_HOSTS",
)


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
    log_level: str = DEFAULT_LOG_LEVEL
    hash_slots: int = 1
    runtime_dir: str = ""
    login_lock_failures: int = 5
    login_lock_window: int = 900
    login_lock_account_failures: int = 100
    forwarded_allow_ips: tuple[str, ...] = ()
    auth_rate_limit: int = AUTH_RATE_LIMIT_DEFAULT
    public_url: str = ""
    allowed_hosts: tuple[str, ...] = ()
    metrics_port: int = METRICS_DEFAULT_PORT

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_secret: bool = True
    ) -> Config:
        """The configuration in ``env`` (default: the process environment), checked.

        ``require_secret=False`` is for tools that never sign tokens (``bin/add-user``)."""
        env = os.environ if env is None else env
        default = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
        try:
            config = cls._parse(env, default)
        except setting_errors.SettingError as exc:
            raise ConfigError(str(exc)) from None
        config.check(require_secret=require_secret)
        return config

    @classmethod
    def _parse(cls, env: Mapping[str, str], default: dict[str, Any]) -> Config:
        """Each variable ``from_env`` reads, parsed (a SettingError for the first bad one)."""
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            secret_key=env.get("SECRET_KEY", ""),
            environment=env.get("WIDGETSVC_ENV", "").strip().lower() or default["environment"],
            token_lifetime=whole(env, "TOKEN_LIFETIME", default["token_lifetime"],
                                "seconds, at least 1", 1),
            refresh_token_lifetime=whole(env, "REFRESH_TOKEN_LIFETIME",
                                        default["refresh_token_lifetime"],
                                        "seconds, at least TOKEN_LIFETIME", 1),
            token_algorithm=env.get("TOKEN_ALGORITHM", "").strip() or default["token_algorithm"],
            previous_secret_keys=_list(env, "PREVIOUS_SECRET_KEYS"),
            signing_key_file=env.get("SIGNING_KEY_FILE", "").strip(),
            previous_public_key_files=_list(env, "PREVIOUS_PUBLIC_KEY_FILES"),
            token_leeway=whole(env, "TOKEN_LEEWAY", default["token_leeway"],
                              "seconds, 0 or more", 0),
            bcrypt_rounds=whole(env, "BCRYPT_ROUNDS", default["bcrypt_rounds"], "4 to 31"),
            pool_min_size=whole(env, "DB_POOL_MIN", default["pool_min_size"],
                               "1 to DB_POOL_MAX", 1),
            pool_max_size=whole(env, "DB_POOL_MAX", default["pool_max_size"],
                               "at least DB_POOL_MIN", 1),
            pool_timeout=float(whole(env, "DB_POOL_TIMEOUT_MS", int(default["pool_timeout"] * 1000),
                                    "milliseconds, at least 1", 1)) / 1000,
            statement_timeout_ms=whole(env, "DB_STATEMENT_TIMEOUT_MS",
                                      default["statement_timeout_ms"], "milliseconds, 0 = none",
                                      0),
            pgbouncer=yes_no(env, "DB_PGBOUNCER"),
            user_realm=_realm(env, "USER_REALM", default["user_realm"]),
            admin_realm=_realm(env, "ADMIN_REALM", default["admin_realm"]),
            log_level=log_level(env),
            hash_slots=(whole(env, "HASH_SLOTS", 0, "at least 1; 0 or unset: workers - 1", 0)
                        or _default_hash_slots(env)),
            runtime_dir=runtime_dir(env),
            login_lock_failures=whole(env, "LOGIN_LOCK_FAILURES", default["login_lock_failures"],
                                     "0 = off, or a number of failures", 0),
            login_lock_window=whole(env, "LOGIN_LOCK_WINDOW", default["login_lock_window"],
                                   "seconds, at least 1", 1),
            login_lock_account_failures=whole(env, "LOGIN_LOCK_ACCOUNT_FAILURES",
                                             default["login_lock_account_failures"],
                                             "0 = off, or a number of failures", 0),
            forwarded_allow_ips=forwarded_allow_ips(env),
            auth_rate_limit=auth_rate_limit(env),
            metrics_port=metrics_port(env),
            **_hosts(env),
        )

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
