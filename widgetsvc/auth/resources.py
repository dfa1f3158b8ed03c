"""The /auth resources: register, login, user, logout (docs/API.md §2, §4, §5), and refresh,
logout-all, password change and the JWKS (§8.4, §8.6); and ``build``, the auth domain made
from the configuration once: its keys, stores, hashing slots, middleware and routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import falcon

from widgetsvc import errors, idempotency, timefmt
from widgetsvc.auth import keys, sessions, tokens
from widgetsvc.auth.accounts import Accounts
from widgetsvc.auth.caller import CurrentUser
from widgetsvc.auth.client import Networks, client_address, front_networks
from widgetsvc.auth.hashslots import HashSlots
from widgetsvc.auth.loginlock import LoginLock
from widgetsvc.auth.middleware import NONE, TOKEN, AuthMiddleware
from widgetsvc.auth.passwords import dummy_hash
from widgetsvc.auth.ratelimit import AuthRateLimit, RateLimitMiddleware
from widgetsvc.auth.session_store import Rotated, SessionStore
from widgetsvc.bodies import read_object
from widgetsvc.db import Database
from widgetsvc.metrics import LOGIN_FAILURES, REFRESHES
from widgetsvc.resource import Resource, Shared
from widgetsvc.validation import InvalidValue, check_password

LOGIN_FAILED = "email or password does not match"
REFRESH_INVALID = "Invalid refresh token. Please log in again."
REFRESH_REUSED = "Refresh token reused. Please log in again."
PASSWORD_INCORRECT = "Password is incorrect."  # noqa: S105 (a message, not a password)


@dataclass(frozen=True)
class AuthParts:
    """What the /auth resources share, made once from the configuration by ``build``."""

    keyring: keys.Keyring
    refresh_keys: sessions.RefreshKeys
    accounts: Accounts
    sessions: SessionStore
    slots: HashSlots
    lock: LoginLock
    fronts: Networks


@dataclass(frozen=True)
class AuthDomain:
    rate_limit: RateLimitMiddleware
    middleware: AuthMiddleware
    routes: dict[str, object]


def build(db: Database, shared: Shared) -> AuthDomain:
    """The auth domain: a bad key file stops the start here; the dummy hash is computed now,
    not during the first login."""
    config = shared.config
    keyring = keys.for_config(config)
    refresh_keys = keys.refresh_keys_for_config(config)
    dummy_hash(config.bcrypt_rounds)
    rate = AuthRateLimit(config.auth_rate_limit)
    parts = AuthParts(
        keyring=keyring,
        refresh_keys=refresh_keys,
        accounts=Accounts(db, config.bcrypt_rounds, refresh_keys),
        sessions=SessionStore(db),
        slots=HashSlots(config.hash_slots,
                        Path(config.runtime_dir) if config.runtime_dir else None),
        lock=LoginLock(db, config.login_lock_failures, config.login_lock_window,
                       config.login_lock_account_failures, rate),
        fronts=front_networks(config.forwarded_allow_ips),
    )
    middleware = AuthMiddleware(shared.callers, keys=keyring, leeway=config.token_leeway,
                                user_realm=config.user_realm, admin_realm=config.admin_realm)
    register = RegisterResource(shared, parts)
    login = LoginResource(shared, parts)
    password = PasswordResource(shared, parts)
    # The per-address rate limit (docs/API.md §8.8); register's unit is taken before its body.
    rate_limit = RateLimitMiddleware(db, rate, parts.fronts,
                                     {register: "POST", login: "POST", password: "PUT"},
                                     frozenset({id(register)}))
    routes: dict[str, object] = {
        "/auth/register": register,
        "/auth/login": login,
        "/auth/user": UserResource(shared, parts),
        "/auth/logout": LogoutResource(shared, parts),
        "/auth/refresh": RefreshResource(shared, parts),
        "/auth/logout-all": LogoutAllResource(shared, parts),
        "/auth/password": password,
        "/auth/jwks.json": JWKSResource(keyring),
    }
    return AuthDomain(rate_limit, middleware, routes)


class _AuthResource(Resource):
    def __init__(self, shared: Shared, parts: AuthParts) -> None:
        super().__init__(shared)
        self.accounts = parts.accounts
        self.sessions = parts.sessions
        self.keys = parts.keyring
        self.refresh_keys = parts.refresh_keys
        self.slots = parts.slots  # one set for every resource that hashes (docs/API.md §8.1)
        self.lock = parts.lock
        self.fronts = parts.fronts

    def _credentials(self, req: falcon.Request) -> tuple[str, str]:
        body = read_object(req, self.config.max_body_bytes)
        self.validator.validate("credentials", body)
        return body["email"], body["password"]

    def _respond_with_token(self, resp: falcon.Response, public_id: uuid.UUID, admin: bool,
                            session_id: uuid.UUID, refresh_token: str, message: str, *,
                            now: datetime | None = None, jti: str | None = None) -> None:
        token, claims = tokens.issue(
            public_id, admin, session_id=session_id, keys=self.keys,
            lifetime=self.config.token_lifetime, now=now or self.clock.now(), jti=jti,
        )
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Pragma", "no-cache")
        resp.media = {
            "status": "success",
            "message": message,
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int((claims.expires_at - claims.issued_at).total_seconds()),
            "refresh_token": refresh_token,
            "refresh_expires_in": self.config.refresh_token_lifetime,
        }


class RegisterResource(_AuthResource):
    auth = {"POST": NONE}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        email, password = self._credentials(req)
        key = idempotency.requested_key(req)
        lifetime = self.config.refresh_token_lifetime
        with self.slots.hold():
            if key is None:
                done = self.accounts.register(email, password, lifetime)
            else:
                # A replay's tokens are issued again from the kept session and issue time.
                done = self.accounts.register_once(
                    email, password, lifetime, key, self.clock.now().replace(microsecond=0))
        if done.replayed:
            resp.set_header(idempotency.REPLAYED, "true")
        self._respond_with_token(
            resp, done.public_id, False, done.session.id, done.session.refresh_token,
            "successfully registered", now=done.issued_at,
            jti=None if key is None else sessions.replayed_jti(done.session.id))
        resp.status = falcon.HTTP_201


class LoginResource(_AuthResource):
    auth = {"POST": NONE}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        email, password = self._credentials(req)
        address = client_address(req, self.fronts)
        # order (docs/API.md §8): 400, then the lock's 429, then the 503
        try:
            self.lock.check(email, address, req.context)
        except errors.APIError:
            LOGIN_FAILURES.labels("locked").inc()
            raise
        with self.slots.hold():
            account = self.accounts.check_login(email, password)
        session = sessions.new_session(self.refresh_keys)
        # A user disabled, or whose password changed, since the password was checked gets no
        # session: the same 401.
        if account is None or not self.accounts.start_session(
                account, session, self.config.refresh_token_lifetime):
            self.lock.record_failure(email, address)
            LOGIN_FAILURES.labels("failure").inc()
            raise errors.fail(falcon.HTTP_401, LOGIN_FAILED)
        self.lock.succeeded(email, address, account.id)
        self._respond_with_token(resp, account.public_id, account.admin, session.id,
                                 session.refresh_token, "successfully logged in")


class RefreshResource(_AuthResource):
    """Rotation: the presented refresh token is spent, the next generation's returned (same
    session); an older generation presented again revokes its whole session. One statement,
    SHA-256 and an HMAC only: no hashing slot, and no row written per refresh."""

    auth = {"POST": NONE}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_object(req, self.config.max_body_bytes)
        self.validator.validate("refresh", body)
        presented = sessions.parse(self.refresh_keys, body["refresh_token"])
        if presented is None:  # not one of ours: no lookup
            REFRESHES.labels("invalid").inc()
            raise errors.fail(falcon.HTTP_401, REFRESH_INVALID)
        secret = sessions.new_secret()
        rotated = self.sessions.rotate(presented, secret, self.config.refresh_token_lifetime)
        if not isinstance(rotated, Rotated):
            REFRESHES.labels(rotated).inc()
            raise errors.fail(falcon.HTTP_401,
                              REFRESH_REUSED if rotated == "reused" else REFRESH_INVALID)
        new_token = sessions.token(self.refresh_keys, rotated.session_id, rotated.generation,
                                   secret)
        REFRESHES.labels("ok").inc()
        self._respond_with_token(resp, rotated.public_id, rotated.admin, rotated.session_id,
                                 new_token, "successfully refreshed")


class UserResource(_AuthResource):
    auth = {"GET": TOKEN}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user: CurrentUser = req.context.user
        resp.media = {
            "email": user.email,
            "public_id": str(user.public_id),
            "admin": user.admin,
            "registered_on": timefmt.format_date(user.registered_on),
            "token_expires_in": timefmt.format_expires_in(
                user.token.expires_at - self.clock.now()
            ),
        }


class LogoutResource(_AuthResource):
    auth = {"POST": TOKEN}
    caller_in_statement = frozenset({"POST"})  # one round trip: checked where it revokes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = req.context.caller
        self.sessions.revoke_token(caller, caller.claims.expires_at)
        resp.media = {"status": "success", "message": "successfully logged out"}


class LogoutAllResource(_AuthResource):
    auth = {"POST": TOKEN}
    caller_in_statement = frozenset({"POST"})  # one round trip: checked where it revokes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.sessions.revoke_all(req.context.caller)
        resp.media = {"status": "success", "message": "successfully logged out of all sessions"}


class PasswordResource(_AuthResource):
    auth = {"PUT": TOKEN}

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        user: CurrentUser = req.context.user
        body = read_object(req, self.config.max_body_bytes)
        self.validator.validate("password_change", body)
        current = body["current_password"]
        try:
            # No stored password breaks the rules: no hash needed, and, like a login's 400,
            # not counted as a failed login (it could never be right).
            check_password(current)
        except InvalidValue:
            raise errors.validation_failed({"current_password": PASSWORD_INCORRECT}) from None
        # A wrong current password is a failed login of the caller's account from this
        # address (docs/API.md §8.1): the same lock, checked before any hash (429, then 503).
        address = client_address(req, self.fronts)
        stored = self.lock.password_hash(user.id, address, req.context)
        with self.slots.hold():  # two bcrypt hashes: a slot, or the 503 (docs/API.md §8.1)
            right = stored is not None and self.accounts.password_matches(current, stored)
            changed = right and self.accounts.set_password(user.id, user.token.sid, stored,
                                                           body["new_password"])
        if stored is not None and not right:
            self.lock.record_failure(user.email, address)
        if not changed:  # wrong, or the user gone or the password changed meanwhile
            raise errors.validation_failed({"current_password": PASSWORD_INCORRECT})
        resp.media = {"status": "success", "message": "password changed"}


class JWKSResource:
    """The public keys that verify access tokens (RFC 7517); empty with HS256 secrets."""

    auth = {"GET": NONE}

    def __init__(self, keyring: keys.Keyring):
        self._body = keyring.jwks()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Cache-Control", "public, max-age=300")
        resp.media = self._body
