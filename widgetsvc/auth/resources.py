"""The /auth resources: register, login, user, logout (docs/API.md §2, §4, §5), and refresh,
logout-all, password change and the JWKS (§8.4, §8.6)."""

from __future__ import annotations

import uuid
from datetime import datetime

import falcon
import psycopg

from widgetsvc import errors, idempotency, timefmt
from widgetsvc.auth import keys, sessions, tokens
from widgetsvc.auth.caller import CurrentUser
from widgetsvc.auth.hashslots import HashSlots
from widgetsvc.auth.loginlock import LoginLock, client_address, front_networks
from widgetsvc.auth.middleware import NONE, TOKEN
from widgetsvc.auth.ratelimit import AuthRateLimit
from widgetsvc.auth.users import Users
from widgetsvc.bodies import read_object
from widgetsvc.metrics import LOGIN_FAILURES, REFRESHES
from widgetsvc.resource import Resource
from widgetsvc.validation import InvalidValue, check_password

LOGIN_FAILED = "email or password does not match"
REFRESH_INVALID = "Invalid refresh token. Please log in again."
REFRESH_REUSED = "Refresh token reused. Please log in again."
PASSWORD_INCORRECT = "Password is incorrect."  # noqa: S105 (a message, not a password)


class _AuthResource(Resource):
    def __init__(self, *args, slots: HashSlots | None = None) -> None:
        super().__init__(*args)
        self.users = Users(self.db, self.config.bcrypt_rounds)
        self.keys = keys.for_config(self.config)
        self.refresh_keys = keys.refresh_keys_for_config(self.config)
        # Shared by every resource that hashes (create_app passes one per instance).
        self.slots = slots or HashSlots(self.config.hash_slots)
        self.lock = LoginLock(self.db, self.config.login_lock_failures,
                              self.config.login_lock_window,
                              self.config.login_lock_account_failures,
                              AuthRateLimit(self.config.auth_rate_limit))
        self.fronts = front_networks(self.config.forwarded_allow_ips)

    def _credentials(self, req: falcon.Request) -> tuple[str, str]:
        body = read_object(req, self.config.max_body_bytes)
        self.validator.validate("credentials", body)
        return body["email"], body["password"]

    def _respond_with_token(self, resp: falcon.Response, user: dict, session_id,
                            refresh_token: str, message: str, *, now: datetime | None = None,
                            jti: str | None = None) -> None:
        token, claims = tokens.issue(
            user["public_id"], user["admin"], session_id=session_id, keys=self.keys,
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
        if key is not None:
            self._register_once(resp, key, email, password)
            return
        session = sessions.new_session(self.refresh_keys)
        with self.slots.hold():
            user = self.users.register(email, password, session,
                                       self.config.refresh_token_lifetime)
        if user is None:
            raise errors.fail(falcon.HTTP_409, f"{email} is already registered")
        self._respond_with_token(resp, user, session.id, session.refresh_token,
                                 "successfully registered")
        resp.status = falcon.HTTP_201


    def _register_once(self, resp: falcon.Response, key: str, email: str,
                       password: str) -> None:
        """Register with an Idempotency-Key (docs/API.md §8.8): one statement answers a
        replay, the 422 or the in-flight 409, or registers and records the outcome. The
        replayed body is the first one: its tokens are issued again from the kept session id
        and issue time (same claims, same key: the same tokens; nothing secret is kept)."""
        session = sessions.replayable_session(self.refresh_keys, uuid.uuid4())
        issued_at = self.clock.now().replace(microsecond=0)
        digest = idempotency.keyed_hash(self.refresh_keys.keys[0],
                                        {"email": email, "password": password})
        try:
            with self.slots.hold():
                row = self.users.register_once(
                    email, password, session, self.config.refresh_token_lifetime, key=key,
                    request_hash=digest, issued_at=issued_at,
                    lock_id=idempotency.lock_id("register", email.lower(), key))
        except psycopg.Error as exc:
            if idempotency.raced(exc):
                raise idempotency.in_flight() from None
            raise
        replayed = row["prior_status"] is not None
        if replayed:
            if bytes(row["prior_hash"]) != digest:
                raise idempotency.reused()
            if row["prior_status"] != 201:
                raise errors.fail(falcon.HTTP_409, f"{email} is already registered",
                                  {idempotency.REPLAYED: "true"})
            session = sessions.replayable_session(self.refresh_keys, row["prior_session_id"])
            user, issued_at = ({"public_id": row["prior_public_id"], "admin": False},
                               row["prior_issued_at"])
            resp.set_header(idempotency.REPLAYED, "true")
        elif not row["free"]:
            raise idempotency.in_flight()
        elif row["id"] is None:
            raise errors.fail(falcon.HTTP_409, f"{email} is already registered")
        else:
            user = row
        self._respond_with_token(resp, user, session.id, session.refresh_token,
                                 "successfully registered", now=issued_at,
                                 jti=sessions.replayed_jti(session.id))
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
            user = self.users.check_login(email, password)
        session = sessions.new_session(self.refresh_keys)
        # A user disabled, or whose password changed, since the password was checked gets no
        # session: the same 401.
        if user is None or not self.users.start_session(
                user, session, self.config.refresh_token_lifetime):
            self.lock.record_failure(email, address)
            LOGIN_FAILURES.labels("failure").inc()
            raise errors.fail(falcon.HTTP_401, LOGIN_FAILED)
        self.lock.succeeded(email, address, user["id"])
        self._respond_with_token(resp, user, session.id, session.refresh_token,
                                 "successfully logged in")


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
        lifetime = self.config.refresh_token_lifetime
        if isinstance(presented, sessions.PresentedLegacy):
            row = self.db.one("rotate_legacy_refresh_token", hash=presented.hash,
                              new_hash=secret.hash, lifetime=lifetime)
            if row is None:
                reused = self.db.one("legacy_refresh_token_reused",
                                     hash=presented.hash)["reused"]
                REFRESHES.labels("reused" if reused else "invalid").inc()
                raise errors.fail(falcon.HTTP_401, REFRESH_REUSED if reused else REFRESH_INVALID)
        else:
            row = self.db.one("refresh_session", session_id=presented.session_id,
                              generation=presented.generation, hash=presented.hash,
                              new_hash=secret.hash, lifetime=lifetime)
            if row is None:
                REFRESHES.labels("invalid").inc()
                raise errors.fail(falcon.HTTP_401, REFRESH_INVALID)
            if not row["rotated"]:
                REFRESHES.labels("reused").inc()
                raise errors.fail(falcon.HTTP_401, REFRESH_REUSED)
        new_token = sessions.token(self.refresh_keys, row["session_id"], row["generation"], secret)
        REFRESHES.labels("ok").inc()
        self._respond_with_token(resp, row, row["session_id"], new_token,
                                 "successfully refreshed")


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
        caller.one("revoke_token", expires_at=caller.claims.expires_at)
        resp.media = {"status": "success", "message": "successfully logged out"}


class LogoutAllResource(_AuthResource):
    auth = {"POST": TOKEN}
    caller_in_statement = frozenset({"POST"})  # one round trip: checked where it revokes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.caller.one("logout_all")
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
            right = stored is not None and self.users.password_matches(current, stored)
            changed = right and self.users.set_password(user.id, user.token.sid, stored,
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
