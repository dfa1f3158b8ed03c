"""All configuration, read from the environment in one place (12-factor)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from widgetsvc import hygiene

PRODUCTION = "production"
ENVIRONMENTS = (PRODUCTION, "development", "test")
MIN_SECRET_BYTES = 32
MIN_PRODUCTION_BCRYPT_ROUNDS = 12
HS256, EDDSA = "HS256", "EdDSA"
TOKEN_ALGORITHMS = (HS256, EDDSA)


class ConfigError(Exception):
    """The environment describes a configuration the service must not run with."""


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _hosts(env: Mapping[str, str]) -> dict[str, Any]:
    """PUBLIC_URL and ALLOWED_HOSTS (docs/API.md §8.2), checked."""
    try:
        public_url = hygiene.parse_public_url(env.get("PUBLIC_URL", ""))
        return {"public_url": public_url,
                "allowed_hosts": hygiene.allowed_hosts(env.get("ALLOWED_HOSTS", ""), public_url)}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _default_hash_slots(env: Mapping[str, str]) -> int:
    """One less than the requests an instance serves at once (gunicorn.conf.py's defaults), so
    password hashes never take the last worker, and one less than the cores, so they never
    take every core either (a bcrypt hash is pure CPU); at least one. Measured on 2 cores
    under a 32-client login flood (tests/test_front_door.py, AUTH_RATE_LIMIT=0): the reader's
    p99 was 154-231 ms with 2 slots, 114 ms with 1."""
    workers = _int(env, "WEB_CONCURRENCY", (os.cpu_count() or 1) + 1)
    threads = _int(env, "GUNICORN_THREADS", 1)
    cores = os.cpu_count() or 1
    return max(1, min(workers * threads - 1, cores - 1))


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
    public_url: str = ""
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_secret: bool = True
    ) -> Config:
        """The configuration in ``env`` (default: the process environment), checked.

        ``require_secret=False`` is for tools that never sign tokens (``bin/add-user``)."""
        env = os.environ if env is None else env
        config = cls(
            database_url=env.get("DATABASE_URL", ""),
            secret_key=env.get("SECRET_KEY", ""),
            environment=env.get("WIDGETSVC_ENV", PRODUCTION).strip().lower() or PRODUCTION,
            token_lifetime=_int(env, "TOKEN_LIFETIME", 900),
            refresh_token_lifetime=_int(env, "REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600),
            token_algorithm=env.get("TOKEN_ALGORITHM", HS256).strip() or HS256,
            previous_secret_keys=_list(env, "PREVIOUS_SECRET_KEYS"),
            signing_key_file=env.get("SIGNING_KEY_FILE", "").strip(),
            previous_public_key_files=_list(env, "PREVIOUS_PUBLIC_KEY_FILES"),
            token_leeway=_int(env, "TOKEN_LEEWAY", 10),
            bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", 12),
            pool_min_size=_int(env, "DB_POOL_MIN", 2),
            pool_max_size=_int(env, "DB_POOL_MAX", 4),
            pool_timeout=float(_int(env, "DB_POOL_TIMEOUT_MS", 3000)) / 1000,
            statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 5000),
            pgbouncer=env.get("DB_PGBOUNCER", "").strip().lower() in ("1", "true", "yes"),
            user_realm=env.get("USER_REALM", "registered_users@mydomain.com"),
            admin_realm=env.get("ADMIN_REALM", "admin_users@mydomain.com"),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            hash_slots=_int(env, "HASH_SLOTS", 0) or _default_hash_slots(env),
            runtime_dir=env.get("WIDGETSVC_RUNTIME_DIR", ""),
            login_lock_failures=_int(env, "LOGIN_LOCK_FAILURES", 5),
            login_lock_window=_int(env, "LOGIN_LOCK_WINDOW", 900),
            login_lock_account_failures=_int(env, "LOGIN_LOCK_ACCOUNT_FAILURES", 100),
            forwarded_allow_ips=_list(env, "FORWARDED_ALLOW_IPS"),
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
            raise ConfigError(f"WIDGETSVC_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
        if self.token_lifetime < 1:
            raise ConfigError("TOKEN_LIFETIME must be a positive number of seconds")
        if self.refresh_token_lifetime < self.token_lifetime:
            # A session row is kept until its refresh expiry: it must outlive every access
            # token issued for it, or a purged session could not be told from a live one.
            raise ConfigError("REFRESH_TOKEN_LIFETIME must be at least TOKEN_LIFETIME")
        if self.token_algorithm not in TOKEN_ALGORITHMS:
            raise ConfigError(f"TOKEN_ALGORITHM must be one of {', '.join(TOKEN_ALGORITHMS)}")
        if self.token_algorithm == EDDSA and require_secret and not self.signing_key_file:
            raise ConfigError("TOKEN_ALGORITHM=EdDSA needs SIGNING_KEY_FILE (an Ed25519 "
                              "private key in PEM)")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            raise ConfigError("need 1 <= DB_POOL_MIN <= DB_POOL_MAX")
        if self.hash_slots < 1:
            raise ConfigError("HASH_SLOTS must be at least 1 (unset: workers - 1)")
        if (self.login_lock_failures < 0 or self.login_lock_account_failures < 0
                or self.login_lock_window < 1):
            raise ConfigError("LOGIN_LOCK_FAILURES and LOGIN_LOCK_ACCOUNT_FAILURES must be >= 0 "
                              "(0 = off), LOGIN_LOCK_WINDOW >= 1 second")
        for item in self.forwarded_allow_ips:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                # "*" too: trusting every TCP peer would let any client name its address.
                raise ConfigError(f"FORWARDED_ALLOW_IPS: {item!r} is not an address or "
                                  "network (list the front proxy's addresses)") from None
        # With EdDSA the private key signs; a SECRET_KEY, when set, still verifies the HS256
        # tokens it signed before the switch.
        if require_secret and not self.secret_key and self.token_algorithm == HS256:
            raise ConfigError("SECRET_KEY is not set")
        if self.is_production:
            if (require_secret and self.secret_key
                    and len(self.secret_key.encode()) < MIN_SECRET_BYTES):
                raise ConfigError(
                    f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes in production"
                )
            if require_secret and any(len(key.encode()) < MIN_SECRET_BYTES
                                      for key in self.previous_secret_keys):
                raise ConfigError(f"each of PREVIOUS_SECRET_KEYS must be at least "
                                  f"{MIN_SECRET_BYTES} bytes in production")
            if self.bcrypt_rounds < MIN_PRODUCTION_BCRYPT_ROUNDS:
                raise ConfigError(
                    f"BCRYPT_ROUNDS must be at least {MIN_PRODUCTION_BCRYPT_ROUNDS} in production"
                )
