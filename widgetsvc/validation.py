"""Input validation: the JSON Schema files in ``schemas/`` plus one rule per custom ``format``.

Each rule owns one rule of the contract (docs/API.md §3), its exact message and the value it
normalises to (a page number as an int, a deadline as the end of its day, a widget name
lower-cased); the schema keywords beside it (``maxLength``, ``enum``, ``pattern``, ...) say the
same thing for the OpenAPI document. All failing fields are reported at once and no Python
error text ever reaches a client.

Cost is bounded by size (docs/API.md §8.1): no backtracking regular expression sees client
input. The schemas' ``pattern``s run on RE2 (``linear_re``), and only on a string within the
field's ``maxLength``; every rule checks its length limit before anything else reads the value,
and the rules' character checks are RE2 or plain string methods.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dateutil.parser
from jsonschema import Draft202012Validator, ValidationError, validators

from widgetsvc import linear_re, timefmt
from widgetsvc.errors import validation_failed

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
PER_PAGE_CHOICES = (5, 10, 25, 50, 100)
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 72
MAX_EMAIL_CHARS = 255
MAX_URL_CHARS = 255
MAX_NAME_CHARS = 100
MAX_INTEGER_CHARS = 100
_MAX_DATE_CHARS = 100
QUERY_STRING = "query string"  # validate()'s ``where`` for a query string: text, parsed first

_CONTROL = linear_re.compile(r"[\x00-\x1f\x7f]")
# YYYY-MM-DD, what clients send most: read by date.fromisoformat, which gives the date dateutil
# would, in half its time per write (16 µs against 34 µs).
_ISO_DATE = linear_re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_SPACE = linear_re.compile(r"\s")
_EMAIL_LOCAL = linear_re.compile(r"^[^\s@\"(),:;<>\[\]\\]+$")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class InvalidValue(ValueError):
    """A rule failed; ``str(exc)`` is the message the client sees."""


# -- rules (each returns the normalized value or raises InvalidValue) -----------------------

def _is_domain(host: str) -> bool:
    """A DNS name with at least two labels and an alphabetic (or IDNA) top-level label."""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    if len(labels) < 2 or len(ascii_host) > 253:
        return False
    if not all(_is_label(label) for label in labels):
        return False
    tld = labels[-1]
    return tld.isalpha() or tld.startswith("xn--")


def _is_label(label: str) -> bool:
    """1 to 63 of ``a-z0-9-``, no hyphen first or last (a final newline aside: what
    ``^(?!-)[a-z0-9-]{1,63}(?<!-)$`` accepted)."""
    if label.endswith("\n"):
        label = label[:-1]
    return (0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
            and _LABEL_CHARS.issuperset(label))


def _is_widget_name(value: str) -> bool:
    """Letters and digits of any script (Python's ``\\w`` less ``_``), ``-`` and ``_``: one
    at least. (``str.isalnum`` is exactly what ``re``'s Unicode ``\\w`` admits besides ``_``.)"""
    rest = value.replace("-", "").replace("_", "")
    return bool(value) and (not rest or rest.isalnum())


def _is_integer(value: str) -> bool:
    """An optional sign, then ASCII digits (what ``re.fullmatch(r"[+-]?[0-9]+")`` accepts)."""
    digits = value[1:] if value.startswith(("+", "-")) else value
    return digits.isascii() and digits.isdigit()


def _is_localhost(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def check_email(value: str) -> str:
    bad = InvalidValue(f"{value} is not a valid email")
    if len(value) > MAX_EMAIL_CHARS or _CONTROL.search(value) or value.count("@") != 1:
        raise bad
    local, domain = value.split("@")
    if not local or not _EMAIL_LOCAL.search(local) or ".." in value:
        raise bad
    if local.startswith(".") or local.endswith("."):
        raise bad
    if _is_localhost(domain) or _is_ip(domain) or not _is_domain(domain):
        raise bad
    return value


def check_password(value: str) -> str:
    if len(value) < PASSWORD_MIN_CHARS:
        raise InvalidValue(f"Password must be at least {PASSWORD_MIN_CHARS} characters.")
    if len(value.encode("utf-8", "surrogatepass")) > PASSWORD_MAX_BYTES:
        raise InvalidValue(f"Password must be at most {PASSWORD_MAX_BYTES} bytes.")
    return value


def check_widget_name(value: str) -> str:
    """The name as stored: checked as sent, then lower-cased (``İ`` becomes two code points,
    ``i`` and a combining dot, which no name could be sent with). Messages quote it lower-cased,
    like every message about a widget. The length rule holds for the stored name too (the
    table's CHECK), so a name that grows past it when lower-cased is too long."""
    if len(value) > MAX_NAME_CHARS or len(value.lower()) > MAX_NAME_CHARS:
        raise InvalidValue(f"Widget name must be at most {MAX_NAME_CHARS} characters.")
    if not _is_widget_name(value):
        raise InvalidValue(
            f"'{value.lower()}' contains one or more invalid characters. Widget name must "
            "contain only letters, numbers, hyphen and underscore characters."
        )
    return value.lower()


def _url_problem(value: str) -> str | None:
    """None when ``value`` is an acceptable URL, else the reason ('' for no specific one)."""
    if len(value) > MAX_URL_CHARS or _CONTROL.search(value) or _SPACE.search(value):
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    if parts.scheme.lower() not in ("http", "https"):
        return ". Protocol is not allowed"
    if "@" in parts.netloc:
        return ". Authentication is not allowed"
    host = parts.hostname or ""
    if not host:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    if port is not None or parts.netloc.endswith(":"):
        return ". Custom port is not allowed"
    if _is_ip(host):
        return ". IP is not allowed"
    if _is_localhost(host):
        return ". Localhost is not allowed"
    if not _is_domain(host):
        return ""
    return None


def check_url(value: str) -> str:
    problem = _url_problem(value)
    if problem is None:
        return value
    if "://" not in value and _url_problem(f"http://{value}") is None:
        problem = f". Did you mean: http://{value}"
    raise InvalidValue(f"{value} is not a valid URL{problem}")


def parse_date(value: str) -> date:
    """The date ``value`` names (any format dateutil reads)."""
    try:
        if len(value) > _MAX_DATE_CHARS or _CONTROL.search(value):
            raise ValueError(value)
        if _ISO_DATE.search(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass  # not a calendar date: dateutil's verdict (and message) below
        parsed = dateutil.parser.parse(value).date()
    except Exception:  # dateutil raises ParserError, OverflowError, TypeError...: all "unparseable"
        raise InvalidValue(
            f"Failed to parse '{value}' as a valid date. You can use any format recognized by "
            "dateutil.parser. For example, all of the strings below are valid ways to represent "
            "the same date: '2018-5-13' -or- '05/13/2018' -or- 'May 13 2018'."
        ) from None
    return parsed


def parse_deadline(value: str, today: date) -> date:
    """The date ``value`` names; today or later."""
    parsed = parse_date(value)
    if parsed < today:
        shown = timefmt.format_short_date(parsed)
        raise InvalidValue(
            f"Successfully parsed {value} as {shown}. However, this value must be a date in the "
            f"future and {shown} is BEFORE {timefmt.format_short_date(today)}"
        )
    return parsed


def _parse_positive_int(value: str, field: str) -> int:
    try:
        # fullmatch: "$" would also accept a final newline. The length bound (any page past
        # 19 digits is past the end anyway) keeps the longest valid query string well inside a
        # request line (gunicorn takes 4094 bytes) and below int()'s own limit of 4300 digits;
        # the schema's maxLength says the same.
        if len(value) > MAX_INTEGER_CHARS or not _is_integer(value):
            raise ValueError(value)
        number = int(value)
    except ValueError:
        raise InvalidValue(f"{value} is not a valid integer") from None
    if number < 1:
        raise InvalidValue(f"Invalid {field}: {value}. {field} must be a positive integer")
    return number


def parse_page(value: str) -> int:
    return _parse_positive_int(value, "page")


def parse_per_page(value: str) -> int:
    number = _parse_positive_int(value, "per_page")
    # Only the choices as written ("05" is not "5"), like the schema's enum: a value the enum
    # alone refused would get no contract message.
    if number not in PER_PAGE_CHOICES or value != str(number):
        raise InvalidValue(f"The value '{value}' is not a valid choice for 'per_page'.")
    return number


MAX_CURSOR_CHARS = 200  # Cursor.json's maxLength (docs/API.md §8.7): paging issues none longer
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
INVALID_CURSOR = "Invalid cursor."


def check_cursor(value: str) -> str:
    """A cursor's shape (base64url, at most MAX_CURSOR_CHARS); its MAC is checked by paging."""
    if len(value) > MAX_CURSOR_CHARS or not _BASE64URL.issuperset(value):
        raise InvalidValue(INVALID_CURSOR)
    return value


def check_filter_date(value: str) -> str:
    """A filter's date (any format dateutil reads, any day), as ``YYYY-MM-DD``."""
    return parse_date(value).isoformat()


def parse_query_boolean(value: str) -> bool:
    """``true`` or ``false``, written so (what generated clients send)."""
    words = {"true": True, "false": False}
    if value not in words:
        raise InvalidValue(f"The value '{value[:20]}' is not a valid choice: true or false.")
    return words[value]


def check_public_id(value: str) -> str:
    """A user's public_id: a UUID in its usual 36-character form, returned lower-cased."""
    try:
        if len(value) != 36 or not value.isascii():
            raise ValueError(value)
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidValue(f"{value[:40]} is not a valid public_id (a UUID)") from None
    return str(parsed)


def check_name_prefix(value: str) -> str:
    """Text a name may start with: 1 to 100 characters, no control character; lower-cased as
    names are stored."""
    if not value or len(value) > MAX_NAME_CHARS or _CONTROL.search(value):
        raise InvalidValue("name_prefix must be 1 to 100 characters, none of them a control "
                           "character")
    return value.lower()


# -- schemas ------------------------------------------------------------------------------

@cache
def load_schemas() -> dict[str, dict[str, Any]]:
    """Every ``schemas/*.json`` by its file name without ``.json``."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMA_DIR.glob("*.json"))
    }


# Schemas whose values depend on the instance alone (no clock) and whose instances hold no
# secret: an instance that passed once is remembered with its values, which are returned again
# without a schema walk. Only the list's query string qualifies; every list request validates
# one, mostly the same few, and the walk costs more than a tenth of a cached list page's CPU.
# Bounded: the memory is emptied when full.
_REMEMBERED_SCHEMAS = frozenset({"pagination", "widget_list"})
_REMEMBER_AT_MOST = 1024


# Beside a "$ref", a schema file may only annotate (a query parameter's own description).
_ANNOTATIONS = frozenset({"title", "description", "examples"})


def _inlined(schema: Any, by_id: dict[str, dict[str, Any]], seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with every ``$ref`` replaced by the schema it names, and no ``$schema``.

    Why: jsonschema resolves a ``$ref`` through ``referencing`` on every validation, which was
    half of a widget body's schema walk (64 µs with it, 31 without; docs/benchmarks.md); the
    files are small and not recursive, so they are resolved once, here. Without ``$schema``
    jsonschema keeps our validator class (the RE2 ``pattern``) for the whole walk."""
    if isinstance(schema, list):
        return [_inlined(item, by_id, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = schema["$ref"]
        extra = set(schema) - {"$ref"} - _ANNOTATIONS
        if target not in by_id or target in seen or extra:
            raise ValueError(f"schemas: $ref {target!r} (seen from {list(seen)}): only another "
                             f"file's $id, not recursive, beside annotations only {sorted(extra)}")
        resolved = _inlined(by_id[target], by_id, (*seen, target))
        resolved.pop("$id", None)
        return {**resolved, **{key: schema[key] for key in schema.keys() & _ANNOTATIONS}}
    return {key: _inlined(value, by_id, seen) for key, value in schema.items()
            if key != "$schema"}


def _linear_pattern(validator: Any, pattern: str, instance: Any,
                    schema: dict[str, Any]) -> Iterator[ValidationError]:
    """The ``pattern`` keyword on RE2 (jsonschema's own runs Python's ``re``, which backtracks),
    and only on a string within the schema's ``maxLength``: a longer one already fails that
    keyword, with the same message, and is never matched."""
    if not validator.is_type(instance, "string"):
        return
    if len(instance) > schema.get("maxLength", len(instance)):
        return
    if not linear_re.compile(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")  # never shown: see _describe


_SchemaValidator = validators.extend(Draft202012Validator, {"pattern": _linear_pattern})


class _Form:
    """One schema compiled: the jsonschema validator for its keywords, and for each property
    the rule its ``format`` names (None: no rule) and its default."""

    def __init__(self, validator: Any, fields: dict[str, tuple[Any, Any]]):
        self.validator = validator
        self.fields = fields


class Validator:
    """Validates request data against a named schema and returns the values its rules
    normalise; raises the contract's 400, every failing field at once, on failure."""

    def __init__(self, clock: timefmt.Clock):
        self.clock = clock
        self._passed: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
        rules: dict[str, Callable[[str], Any]] = {
            "email": check_email,
            "password": check_password,
            "widget-name": check_widget_name,
            "http-url": check_url,
            "future-date": self._deadline,
            "page-number": parse_page,
            "per-page": parse_per_page,
            "cursor": check_cursor,
            "date": check_filter_date,
            "query-boolean": parse_query_boolean,
            "uuid": check_public_id,
            "name-prefix": check_name_prefix,
        }
        schemas = load_schemas()
        by_id = {schema["$id"]: schema for schema in schemas.values()}
        self._forms: dict[str, _Form] = {}
        for name, schema in schemas.items():
            schema = _inlined(schema, by_id)
            fields = {}
            properties = dict(schema.get("properties", {}))
            for branch in schema.get("anyOf", ()):  # "one of these" (PATCH /users): their fields
                for field, spec in branch.get("properties", {}).items():
                    properties.setdefault(field, spec)
            for field, spec in properties.items():
                fields[field] = (rules.get(spec.get("format")), spec.get("default"))
            # No format checker: the rules run below, once, keeping what they return.
            self._forms[name] = _Form(_SchemaValidator(schema), fields)
            for pattern in _patterns(schema):
                linear_re.compile(pattern)  # one RE2 cannot read stops the start, not a request

    def _deadline(self, value: str) -> datetime:
        """The deadline as stored: the end of the day it names (today or later)."""
        return timefmt.end_of_day(parse_deadline(value, self.clock.now().date()))

    def validate(self, schema_name: str, data: dict[str, Any],
                 where: str = "post body") -> dict[str, Any]:
        """The schema's fields, normalised by their rules (a missing field with a default gets
        its default's value); any other key of ``data`` is left out."""
        key = None
        if schema_name in _REMEMBERED_SCHEMAS:
            # Keyed by the schema's own fields only: no other key changes the outcome (these
            # schemas allow any), and a query string padded with junk parameters would
            # otherwise be sorted on every request and remembered whole (up to 1024 of them).
            fields = self._forms[schema_name].fields
            known = tuple(sorted((k, v) for k, v in data.items() if k in fields))
            if all(isinstance(v, str) for _, v in known):
                key = (schema_name, known)
        if key is not None:
            remembered = self._passed.get(key)  # one look-up: another thread may clear()
            if remembered is not None:
                return dict(remembered)
        check = self._check_text if where == QUERY_STRING else self._check
        values = check(schema_name, data, where)
        if key is not None:
            if len(self._passed) >= _REMEMBER_AT_MOST:
                self._passed.clear()
            self._passed[key] = dict(values)
        return values

    def _check(self, schema_name: str, data: dict[str, Any], where: str) -> dict[str, Any]:
        form = self._forms[schema_name]
        errors: dict[str, str] = {}
        ranked: dict[str, int] = {}
        for error in form.validator.iter_errors(data):
            for field, rank, message in _describe(error, where):
                if rank < ranked.get(field, 99):
                    errors[field], ranked[field] = message, rank
        values: dict[str, Any] = {}
        for field, (rule, default) in form.fields.items():
            value = data.get(field, default) if isinstance(data, dict) else None
            if rule is None or not isinstance(value, str):
                if value is not None:
                    values[field] = value
                continue
            try:
                values[field] = rule(value)
            except InvalidValue as exc:
                if _RULE_RANK < ranked.get(field, 99):
                    errors[field], ranked[field] = str(exc), _RULE_RANK
        if errors:
            raise validation_failed(dict(sorted(errors.items())))
        return values

    def _check_text(self, schema_name: str, data: dict[str, Any], where: str) -> dict[str, Any]:
        """A query string: its values are text, and its schema states the types a caller
        passes (``page`` an integer, as the OpenAPI document says). Each field's rule parses
        the text first (its message when it fails); the schema then checks what they return."""
        form = self._forms[schema_name]
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for field, (rule, default) in form.fields.items():
            value = data.get(field, default)
            if rule is None or not isinstance(value, str):
                if value is not None:
                    values[field] = value
                continue
            try:
                values[field] = rule(value)
            except InvalidValue as exc:
                errors[field] = str(exc)
        for error in form.validator.iter_errors(values):
            for field, _rank, message in _describe(error, where):
                errors.setdefault(field, message)
        if errors:
            raise validation_failed(dict(sorted(errors.items())))
        return values


def _patterns(schema: Any) -> Iterator[str]:
    """Every ``pattern`` in a schema, however deep."""
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


_RULE_RANK = 2  # a rule's own message: after "missing" (0) and "must be a string" (1)


def _describe(error, where: str):
    """(field, rank, message) for one jsonschema error; lower rank wins for a field."""
    present = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "anyOf" and not error.path:
        # "at least one of these fields" (PATCH /users: typed branches that each require one,
        # as client generators take them): none sent, each is reported missing; else what is
        # wrong with those sent.
        wrong = [sub for sub in error.context if sub.validator != "required"]
        for sub in wrong or error.context:
            yield from _describe(sub, where)
        return
    if error.validator == "required":
        for field in error.validator_value:
            if field not in present:
                yield field, 0, f"Missing required parameter in the {where}"
        return
    field = str(error.path[0]) if error.path else "body"
    if error.validator == "type":
        yield field, 1, f"{field} must be a {error.validator_value}"
    else:
        # minLength, maxLength, enum, pattern... repeat a format rule; its message ranks first.
        yield field, 3, f"Invalid value for {field}"
