"""The operator's one line for a refused setting: ``widgetsvc: NAME=value: problem (allowed)``.

Shared by the service's configuration (``widgetsvc.config``) and the tools' (``widgetsvc.ops``),
so that both sides refuse a bad environment variable in the same words.
"""

from __future__ import annotations

_SECRET_NAMES = ("SECRET_KEY", "PREVIOUS_SECRET_KEYS")


class SettingError(ValueError):
    """A setting (an environment variable) the command cannot run with. ``str()`` is
    ``NAME=value: what is wrong (what is allowed)``; the command prints it after
    ``widgetsvc: ``."""

    def __init__(self, name: str, value: str, problem: str, allowed: str):
        self.name, self.value, self.problem, self.allowed = name, value, problem, allowed
        super().__init__(f"{name}={shown(name, value)}: {problem} ({allowed})")


def shown(name: str, value: str) -> str:
    """The value as it may be printed: secrets by their length only, a URL's password
    masked."""
    if name in _SECRET_NAMES:
        return f"<{len(value.encode())} bytes, not shown>" if value else ""
    if "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        userinfo, at, host = rest.partition("@")
        if ":" in userinfo:
            return f"{scheme}://{userinfo.split(':', 1)[0]}:***{at}{host}"
    return value


def bad_setting(name: str, value: str, problem: str, allowed: str) -> SettingError:
    """The error to raise for a refused setting (one place builds the operator's line)."""
    return SettingError(name, value, problem, allowed)
