"""HTTP hygiene (docs/API.md §8.2): the Host check, the base of absolute URLs, and the headers every
response carries (``nosniff``, ``Cache-Control: no-store``, the UI page's CSP)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import falcon

from widgetsvc import API_PREFIX
from widgetsvc.errors import APIError

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_LITERAL_CHARS = frozenset("0123456789abcdef:.")
# Documentation and the JWKS may be cached; everything else may carry a token or user data.
_CACHEABLE_PREFIXES = (f"{API_PREFIX}/ui", f"{API_PREFIX}/openapi.json",
                       f"{API_PREFIX}/auth/jwks.json")
UI_PATH = f"{API_PREFIX}/ui"


def split_host(value: str) -> tuple[str, str | None] | None:
    """(host, port or None) of a lower-cased ``Host``: ``[`` IPv6 literal ``]`` or a name of
    ``a-z0-9_.-``, then an optional ``:`` and 1 to 5 digits; None for anything else. String
    code, no regular expression: linear in the header (docs/API.md §8.1). A final newline is
    ignored, as the pattern this replaced (``...$``) ignored it."""
    if value.endswith("\n"):
        value = value[:-1]
    if value.startswith("["):
        end = value.find("]")
        if end < 2 or not _LITERAL_CHARS.issuperset(value[1:end]):
            return None
        host, rest = value[:end + 1], value[end + 1:]
    else:
        host, colon, port = value.partition(":")
        rest = colon + port
        if not host or not _NAME_CHARS.issuperset(host):
            return None
    if not rest:
        return host, None
    port = rest[1:]
    if rest[0] != ":" or not 1 <= len(port) <= 5 or not (port.isascii() and port.isdigit()):
        return None
    return host, port


def invalid_host() -> APIError:
    return APIError(falcon.HTTP_400, {"message": "Bad Request: invalid Host header"})


def parse_public_url(raw: str) -> str:
    """``PUBLIC_URL`` without its trailing slash; ValueError when it is not an http(s) URL."""
    raw = raw.strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise ValueError("PUBLIC_URL must be http(s)://host[:port][/path], nothing else")
    parts.port  # noqa: B018 (raises ValueError on a bad port)
    return raw.rstrip("/")


def allowed_hosts(raw: str, public_url: str) -> tuple[str, ...]:
    """``ALLOWED_HOSTS`` (comma-separated ``host`` = any port, or ``host:port``; ``*`` = any),
    by default the loopback names; the host of ``PUBLIC_URL`` is always allowed."""
    hosts = [h.strip().lower() for h in raw.split(",") if h.strip()] or list(DEFAULT_ALLOWED_HOSTS)
    if public_url:
        netloc = urlsplit(public_url).netloc.lower()
        hosts.append(netloc.rpartition("@")[2])
    for host in hosts:
        if host != "*" and split_host(host) is None:
            raise ValueError(f"ALLOWED_HOSTS: {host!r} is not a host or host:port")
    return tuple(dict.fromkeys(hosts))


def host_allowed(header: str | None, allowed: Sequence[str]) -> bool:
    if "*" in allowed:
        return True
    parts = split_host((header or "").lower())
    if parts is None:
        return False
    host, port = parts
    return host in allowed or f"{host}:{port}" in allowed


def _csp(page_script_hashes: Sequence[str]) -> str:
    scripts = " ".join(f"'{digest}'" for digest in page_script_hashes)
    return (
        "default-src 'self'; "
        f"script-src 'self' {scripts}; "
        "style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ).replace("  ", " ")


class HygieneMiddleware:
    """First of all middleware: the Host check before anything else runs."""

    def __init__(self, allowed: Sequence[str], public_url: str = "",
                 ui_script_hashes: Sequence[str] = ()):
        self.allowed = tuple(allowed)
        self.public_url = public_url
        self.ui_csp = _csp(ui_script_hashes)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        host = req.get_header("Host")
        if not host_allowed(host, self.allowed):
            raise invalid_host()
        # The base of absolute URLs (Location): PUBLIC_URL, else the (allowed) request host.
        req.context.base_url = self.public_url or f"{req.scheme}://{host}"

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource,
                         req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        if not req.path.startswith(_CACHEABLE_PREFIXES):
            resp.set_header("Cache-Control", "no-store")
        if req.path.rstrip("/") == UI_PATH:
            resp.set_header("Content-Security-Policy", self.ui_csp)
            resp.set_header("X-Frame-Options", "DENY")
