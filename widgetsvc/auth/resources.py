"""The /auth resources: register, login, user, logout (docs/API.md §2, §4, §5)."""

from __future__ import annotations

import falcon

from widgetsvc import errors, timefmt
from widgetsvc.auth import tokens
from widgetsvc.auth.caller import CurrentUser
from widgetsvc.auth.middleware import NONE, TOKEN
from widgetsvc.auth.users import Users
from widgetsvc.bodies import read_object
from widgetsvc.resource import Resource

LOGIN_FAILED = "email or password does not match"


class _AuthResource(Resource):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.users = Users(self.db, self.config.bcrypt_rounds)

    def _credentials(self, req: falcon.Request) -> tuple[str, str]:
        body = read_object(req, self.config.max_body_bytes)
        self.validator.validate("credentials", body)
        return body["email"], body["password"]

    def _respond_with_token(self, resp: falcon.Response, user: dict, message: str) -> None:
        token, claims = tokens.issue(
            user["public_id"], user["admin"], secret=self.config.secret_key,
            lifetime=self.config.token_lifetime, now=self.clock.now(),
        )
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Pragma", "no-cache")
        resp.media = {
            "status": "success",
            "message": message,
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int((claims.expires_at - claims.issued_at).total_seconds()),
        }


class RegisterResource(_AuthResource):
    auth = {"POST": NONE}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        email, password = self._credentials(req)
        user = self.users.create(email, password, admin=False)
        if user is None:
            raise errors.fail(falcon.HTTP_409, f"{email} is already registered")
        self._respond_with_token(resp, user, "successfully registered")
        resp.status = falcon.HTTP_201


class LoginResource(_AuthResource):
    auth = {"POST": NONE}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        email, password = self._credentials(req)
        user = self.users.check_login(email, password)
        if user is None:
            raise errors.fail(falcon.HTTP_401, LOGIN_FAILED)
        self._respond_with_token(resp, user, "successfully logged in")


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

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        claims = req.context.user.token
        self.db.execute("revoke_token", jti=claims.jti, expires_at=claims.expires_at)
        resp.media = {"status": "success", "message": "successfully logged out"}
