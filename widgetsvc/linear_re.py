"""Regular expressions on client input, matched in linear time (docs/API.md §8.1).

The schema files state their rules as patterns in Python's (and ECMA-262's) dialect, and
Python's ``re`` backtracks: the ``info_url`` and ``email`` patterns took quadratic time in the
input (issue 18: 65 KB of "é" behind ``http://a.`` held a worker for 30 s). RE2 never
backtracks: its time is linear in the input, whatever the pattern. It reads a few things
differently from Python, and ``compile`` translates exactly those, so that a pattern accepts
the same strings under RE2 as under ``re.search``; it refuses any other construct whose
meaning would differ rather than guess:

- ``\\s`` is Unicode whitespace in Python (``str.isspace``), ASCII only in RE2: spelled out.
- A final ``$`` in Python also matches before a final newline: ``\\n?\\z``.
- RE2 has no lookaround. The one lookahead the schemas use keeps ``localhost`` out of a host's
  top-level label: ``(?!localhost\\.?(?:[/?#]|$))[A-Za-z]{1,63}`` (in any case). Whatever may
  follow that label in both patterns (an optional ``.``, then a path, query or fragment, or
  the end) satisfies the lookahead's own tail, so it means exactly "1 to 63 ASCII letters that
  are not ``localhost``", spelled out below without lookahead. Any other lookaround is refused.
"""

from __future__ import annotations

from functools import cache

import re2

# Python's \s on str: exactly the characters for which str.isspace() is true.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_CLASS_BODY = "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_WHITESPACE)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LOCALHOST_LOOKAHEAD = r"(?![Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]\.?(?:[/?#]|$))[A-Za-z]{1,63}"
# Escapes that mean the same to both engines (\s is translated; \w, \d, \b, \A, \Z, \u and
# back-references differ or are missing, so they are refused).
_SAME_ESCAPES = frozenset("\\.^$|?*+()[]{}/-#&~\"'@,:;<>=!%`xntrfv")


class UnsupportedPattern(ValueError):
    """The pattern uses a construct RE2 would read differently (or not at all)."""


def letters_except(word: str, longest: int = 63) -> str:
    """RE2 for 1 to ``longest`` ASCII letters other than ``word`` (in any case)."""
    n = len(word)
    options = [f"[A-Za-z]{{1,{n - 1}}}", f"[A-Za-z]{{{n + 1},{longest}}}"]
    for i, letter in enumerate(word):
        same = "".join(f"[{c.upper()}{c.lower()}]" for c in word[:i])
        other = "".join(c for c in _LETTERS if c.lower() != letter.lower())
        options.append(f"{same}[{other}][A-Za-z]{{{n - 1 - i}}}")
    return "(?:" + "|".join(options) + ")"


_REWRITES = {_LOCALHOST_LOOKAHEAD: letters_except("localhost")}


def translate(pattern: str) -> str:
    """The RE2 pattern that accepts what ``re.search(pattern, ...)`` accepts."""
    if not pattern.isascii():
        # Non-ASCII would need care with surrogates (see Pattern.search): none is needed.
        raise UnsupportedPattern(f"not ASCII: {pattern!r}")
    for python_form, re2_form in _REWRITES.items():
        pattern = pattern.replace(python_form, re2_form)
    out: list[str] = []
    in_class = False
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1:i + 2]
            if escaped == "s":
                out.append(_WHITESPACE_CLASS_BODY if in_class else f"[{_WHITESPACE_CLASS_BODY}]")
            elif escaped == "u":
                # \uHHHH (Python's re and ECMA-262 alike): RE2 writes it \x{HHHH}.
                digits = pattern[i + 2:i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise UnsupportedPattern(f"\\u needs 4 hex digits: {pattern!r}")
                if 0xD800 <= int(digits, 16) <= _SURROGATE_STAND_IN:
                    # A lone surrogate is matched as U+E000 (Pattern.search): exact only while
                    # no range starts or ends among them.
                    raise UnsupportedPattern(f"\\u{digits} names a surrogate: {pattern!r}")
                out.append(f"\\x{{{digits}}}")
                i += 6
                continue
            elif escaped and escaped in _SAME_ESCAPES:
                out.append(char + escaped)
            else:
                raise UnsupportedPattern(f"\\{escaped} reads differently in RE2: {pattern!r}")
            i += 2
            continue
        if in_class:
            if char == "[":
                raise UnsupportedPattern(f"'[' inside a class: {pattern!r}")
            in_class = char != "]"
        elif char == "[":
            if pattern[i + 1:i + 2] == "]" or pattern[i + 1:i + 3] == "^]":
                raise UnsupportedPattern(f"a class starting with ']': {pattern!r}")
            in_class = True
        elif char == "(":
            if pattern.startswith("(?", i) and not pattern.startswith(("(?:", "(?P<"), i):
                raise UnsupportedPattern(f"lookaround or flags: {pattern!r}")
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "$":
            if i != len(pattern) - 1 or depth:
                raise UnsupportedPattern(f"'$' before the end: {pattern!r}")
            out.append(r"\n?\z")
            i += 1
            continue
        out.append(char)
        i += 1
    if in_class or depth:
        raise UnsupportedPattern(f"unbalanced: {pattern!r}")
    return "".join(out)


class Pattern:
    """A pattern compiled for RE2, with ``re.search``'s meaning (see the module's doc)."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        options = re2.Options()
        options.max_mem = 64 << 20  # the schema patterns' counted repeats need more than 8 MiB
        try:
            self._re2 = re2.compile(translate(pattern), options)
        except re2.error as exc:
            raise UnsupportedPattern(f"RE2 refuses {pattern!r}: {exc}") from None

    def search(self, text: str) -> bool:
        """True when the pattern matches somewhere in ``text`` (time linear in ``text``)."""
        try:
            return self._re2.search(text) is not None
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form: U+E000, the first code point after the
            # surrogates, stands in. No \u escape of a pattern may name U+D800..U+E000
            # (translate checks), so every class either holds all of them or none.
            return self._re2.search(_without_surrogates(text)) is not None


_SURROGATE_STAND_IN = 0xE000
_SURROGATES_TO_REPLACEMENT = dict.fromkeys(range(0xD800, _SURROGATE_STAND_IN),
                                           _SURROGATE_STAND_IN)


def _without_surrogates(text: str) -> str:
    """Each lone (or paired: in a str they are two characters) surrogate as U+E000."""
    return text.translate(_SURROGATES_TO_REPLACEMENT)


@cache
def compile(pattern: str) -> Pattern:  # noqa: A001 (re.compile's name, on purpose)
    """The (cached) linear-time form of ``pattern``."""
    return Pattern(pattern)
