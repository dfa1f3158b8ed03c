"""Request bodies (JSON, url-encoded or multipart form) read into one plain ``dict``.

Size, content type and syntax are checked here (413, 415, 400); what the fields mean is the
validator's job.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import falcon
from falcon.media.multipart import MultipartFormHandler

from widgetsvc.errors import fail

try:
    from gunicorn.http.errors import ParseException as _GunicornParseError
except ImportError:  # pragma: no cover (gunicorn is a dependency; other servers raise OSError)
    _GunicornParseError = OSError

log = logging.getLogger("widgetsvc.bodies")
# What a server's body stream raises on a broken chunked encoding (gunicorn: InvalidChunkSize,
# ChunkMissingTerminator, InvalidChunkExtension; NoMoreData is an OSError).
_BROKEN_BODY = (OSError, _GunicornParseError)

_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
# A too-large body is still read (and dropped) up to this size so the client, which is
# usually still sending, receives the 413 instead of a connection reset.
_DRAIN_LIMIT = 16 * 1024 * 1024
_MAX_JSON_DEPTH = 32


def _body_stream(req: falcon.Request):
    """The body: bounded by Content-Length, or, for a chunked request (no length), the raw
    stream when the server marks its end (gunicorn sets ``wsgi.input_terminated``)."""
    if req.content_length is None and req.env.get("wsgi.input_terminated"):
        return req.stream
    return req.bounded_stream


def _read_limited(req: falcon.Request, max_bytes: int) -> bytes:
    try:
        return _read_limited_stream(req, max_bytes)
    except _BROKEN_BODY as exc:
        # A malformed or truncated chunked body (bad size, cut short, no terminator): the
        # client's fault, one WARNING line, never a traceback.
        log.warning("malformed request body: %s", type(exc).__name__)
        raise fail(falcon.HTTP_400, "Malformed request body: the chunked encoding is broken.",
                   {"Connection": "close"}) from None


def _read_limited_stream(req: falcon.Request, max_bytes: int) -> bytes:
    stream = _body_stream(req)
    if req.content_length is not None and req.content_length > max_bytes:
        _drain(stream)
        raise _too_large(max_bytes)
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        _drain(stream)
        raise _too_large(max_bytes)
    return data


def _drain(stream) -> None:
    remaining = _DRAIN_LIMIT
    while remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _too_large(max_bytes: int) -> falcon.HTTPError:
    return fail(
        falcon.HTTP_413, f"Request body too large: the limit is {max_bytes} bytes.",
        {"Connection": "close"},
    )


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early once past ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _not_unicode(value: Any) -> bool:
    """True when a string (key or value) holds a lone UTF-16 surrogate, which JSON's ``\\uD800``
    escapes can spell but no UTF-8 text (nor PostgreSQL, nor bcrypt) can carry."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object naming one key twice is ambiguous (parsers disagree on which wins)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(key)
    return value


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        key = json.dumps(str(exc)[:100], ensure_ascii=False)
        raise fail(falcon.HTTP_400, f"Malformed JSON: the key {key} appears more than once.") \
            from None
    except (ValueError, RecursionError):
        raise fail(falcon.HTTP_400, "Malformed JSON: the body could not be parsed.") from None
    if not isinstance(value, dict):
        raise fail(falcon.HTTP_400, "The JSON body must be an object.")
    if _depth(value, _MAX_JSON_DEPTH) > _MAX_JSON_DEPTH:
        raise fail(falcon.HTTP_400, "The JSON body is nested too deeply.")
    if _not_unicode(value):
        raise fail(falcon.HTTP_400, "Malformed JSON: the body could not be parsed.")
    return value


def _first_values(pairs) -> dict[str, str]:
    """A form field sent twice keeps its first value."""
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _parse_urlencoded(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
        return _first_values(
            parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        )
    except (UnicodeDecodeError, ValueError):
        raise fail(falcon.HTTP_400, "Malformed form body: it is not valid UTF-8.") from None


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, str]:
    handler = MultipartFormHandler()
    pairs = []
    try:
        form = handler.deserialize(io.BytesIO(raw), content_type, len(raw))
        for part in form:
            if part.filename:
                continue  # no endpoint takes files
            pairs.append((part.name, part.get_text()))
    except (falcon.HTTPError, UnicodeDecodeError, ValueError):
        raise fail(falcon.HTTP_400, "Malformed multipart form body.") from None
    # A part may declare another charset (utf-7 can spell lone surrogates): same rule as JSON.
    if any(name is None or value is None for name, value in pairs) or _not_unicode(pairs):
        raise fail(falcon.HTTP_400, "Malformed multipart form body.")
    return _first_values(pairs)


def read_object(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a dict: no body and no content type is an empty object."""
    raw = _read_limited(req, max_bytes)
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if not media_type:
        if raw.strip():
            raise fail(falcon.HTTP_415, "A body needs a Content-Type: application/json.")
        return {}
    if media_type == falcon.MEDIA_JSON or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return _parse_json(raw) if raw.strip() else {}
    if media_type == _FORM:
        return _parse_urlencoded(raw)
    if media_type == _MULTIPART:
        return _parse_multipart(raw, req.content_type) if raw else {}
    raise fail(
        falcon.HTTP_415,
        f"Unsupported media type {media_type}: send application/json or a form.",
    )
