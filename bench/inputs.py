"""bin/bench-inputs: the worst cost of one request's input handling, per field, on pathological
inputs of the body limit's size (issue 18, docs/API.md §8.1 "Cost bounded by size").

Each field's value is built from shapes that make backtracking regular expressions and other
superlinear steps slow (long runs of non-ASCII letters, dots, dashes, ``@``, ``%``-escapes,
nested brackets, ...), each about ``--size`` bytes of UTF-8, alone and behind a prefix that
gets a pattern past its first characters (``http://a.``, ``a@a.``). Every value goes through
the same steps a request's value goes through (body parsing, the validator with its schema and
rules, the refresh-token and password checks), in this process, without a database. The worst
CPU time per field is printed, with the shape that cost it.

The widgetsvc imported is the one on ``sys.path`` first, so an older checkout can be measured
with this script: ``PYTHONPATH=/path/to/old/checkout .venv/bin/python bench/inputs.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from widgetsvc.validation import Validator

BODY_LIMIT = 64 * 1024
URL = "https://www.example.com/widget"
EMAIL = "user@example.com"
PASSWORD = "Secret-pass-1"  # noqa: S105 (a sample value)
DEADLINE = "2099-05-13"

# Units repeated to the size asked for: what makes a backtracking engine (or a quadratic
# parser) slow on one field or another.
UNITS = {
    "é": "é", "dots": ".", "dashes": "-", "at": "@", "pct-e9": "%e9", "pct": "%",
    "brackets": "[", "braces": "{", "a.": "a.", "é.": "é.", "a-": "a-", "é-": "é-",
    "digits": "1", "zeros": "0", "spaces": " ", "ideographic-spaces": "\u3000", "a@": "a@",
    "a": "a",
}
# Prefixes that take a field's pattern past its first characters, where the slow part starts.
PREFIXES = {
    "info_url": ("", "http://a.", "http://"),
    "email": ("", "a@a.", "a@", "a."),
    "deadline": ("", "2030-"),
    "page": ("", "+"),
}


def value(prefix: str, unit: str, size: int, suffix: str = "!") -> str:
    """``prefix`` + ``unit`` repeated + ``suffix``, about ``size`` bytes in UTF-8."""
    room = size - len((prefix + suffix).encode())
    return prefix + unit * max(1, room // len(unit.encode())) + suffix


def shapes(field: str, size: int) -> Iterator[tuple[str, str]]:
    """(description, value) for every shape of ``field``."""
    for prefix in PREFIXES.get(field, ("",)):
        for name, unit in UNITS.items():
            text = value(prefix, unit, size)
            count = (len(text) - len(prefix) - 1) // len(unit)
            yield f"{prefix}{name}×{count}!", text


def steps(validator: Validator) -> dict[str, Callable[[str], object]]:
    """field: what a request's value of that field goes through."""
    import falcon.testing

    from widgetsvc.auth import sessions
    from widgetsvc.bodies import read_object
    from widgetsvc.validation import InvalidValue, check_password

    def _form(body: bytes, content_type: str) -> falcon.Request:
        return falcon.testing.create_req(method="POST", path="/", body=body,
                                         headers={"Content-Type": content_type})

    def validate(schema: str, data: dict, where: str = "post body") -> object:
        try:
            return validator.validate(schema, data, where)
        except falcon.HTTPError as exc:
            return exc

    def widget(field: str) -> Callable[[str], object]:
        return lambda v: validate("widget_create", {"name": "w", "info_url": URL,
                                                    "deadline": DEADLINE, field: v})

    def refresh(v: str) -> object:
        validate("refresh", {"refresh_token": v})
        return sessions.could_be_refresh_token(v)

    def current_password(v: str) -> object:
        validate("password_change", {"current_password": v, "new_password": PASSWORD})
        try:
            return check_password(v)
        except InvalidValue as exc:
            return exc

    def body(content_type: str, encode: Callable[[str], bytes]) -> Callable[[str], object]:
        def read(v: str) -> object:
            try:
                return read_object(_form(encode(v), content_type), BODY_LIMIT)
            except falcon.HTTPError as exc:
                return exc
        return read

    boundary = "b0undary"

    def multipart(v: str) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"info_url\"\r\n\r\n"
                f"{v}\r\n--{boundary}--\r\n").encode()

    return {
        "name": widget("name"),
        "info_url": widget("info_url"),
        "deadline": widget("deadline"),
        "email": lambda v: validate("credentials", {"email": v, "password": PASSWORD}),
        "password": lambda v: validate("credentials", {"email": EMAIL, "password": v}),
        "page": lambda v: validate("pagination", {"page": v}, "query string"),
        "per_page": lambda v: validate("pagination", {"per_page": v}, "query string"),
        "refresh_token": refresh,
        "current_password": current_password,
        "new_password": lambda v: validate("password_change", {"current_password": PASSWORD,
                                                               "new_password": v}),
        "json body": body("application/json", lambda v: v.encode()),
        "form body": body("application/x-www-form-urlencoded",
                          lambda v: ("info_url=" + quote(v, safe="%")).encode()[:BODY_LIMIT]),
        "multipart body": body(f"multipart/form-data; boundary={boundary}", multipart),
    }


def measure(step: Callable[[str], object], text: str, repeat: int) -> tuple[float, float]:
    """The least (CPU, wall) seconds of ``repeat`` runs (the least: the others waited for
    the machine, not for this code)."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        step(text)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall


FIELDS = ("name", "info_url", "deadline", "email", "password", "page", "per_page",
          "refresh_token", "current_password", "new_password", "json body", "form body",
          "multipart body")


def main(argv: list[str] | None = None) -> int:
    """Parse the options before importing the service: ``--help`` needs nothing installed."""
    from widgetsvc.ops import cmdline  # standard library only

    parser = cmdline.Parser(
        "bin/bench-inputs", "Worst input-handling time per field on pathological inputs "
        "(docs/API.md §8.1): each field's worst CPU time, in this process, no database.",
        exit_codes=[(0, "measured (the table is printed)")])
    parser.add_argument("--size", type=int, default=BODY_LIMIT,
                        help="bytes of each value (default: the body limit, 65536)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each shape, the least counts (default 3)")
    parser.add_argument("--fields", default="",
                        help=f"comma-separated fields to run (default: all: {', '.join(FIELDS)})")
    args = parser.parse_args(argv)
    if args.size < 16 or args.repeat < 1:
        parser.error("--size must be at least 16 and --repeat at least 1")
    wanted = [f.strip() for f in args.fields.split(",") if f.strip()] or list(FIELDS)
    unknown = [f for f in wanted if f not in FIELDS]
    if unknown:
        parser.error(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(FIELDS)})")

    from widgetsvc import timefmt
    from widgetsvc.validation import Validator

    fields = steps(Validator(timefmt.Clock()))
    assert set(fields) == set(FIELDS)
    print(f"size={args.size} bytes per value, least of {args.repeat} run(s) per shape, "
          "worst shape per field", flush=True)
    print(f"{'field':<17} {'worst CPU ms':>12} {'wall ms':>10} {'per KiB':>8}  shape", flush=True)
    for field in wanted:
        worst = (-1.0, 0.0, "")
        for described, text in shapes(field, args.size):
            cpu, wall = measure(fields[field], text, args.repeat)
            if cpu > worst[0]:
                worst = (cpu, wall, described)
        cpu, wall, described = worst
        print(f"{field:<17} {cpu * 1000:>12.2f} {wall * 1000:>10.2f} "
              f"{cpu * 1000 / (args.size / 1024):>8.3f}  {described}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
