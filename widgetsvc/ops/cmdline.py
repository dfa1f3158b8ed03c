"""The one argument convention every ``bin/`` command follows (README, "Command line").

- ``--help`` / ``-h``: the command's own usage (what it does, options, the environment it
  reads, exit codes), exit 0, nothing else done;
- ``--version``: ``widgetsvc X.Y.Z``, exit 0;
- an unknown option or argument: one line saying which, then the usage, exit 2, nothing done;
  options are never matched by prefix (``--dry`` is not ``--dry-run``);
- a bad setting: one line ``widgetsvc: NAME=value: what is wrong (what is allowed)``, exit 1,
  before anything starts (``widgetsvc.setting_errors``: the service's settings use it too).

Standard library only, so that any command can answer ``--help`` before importing the rest.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence

from widgetsvc import __version__
from widgetsvc.setting_errors import SettingError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


class Parser(argparse.ArgumentParser):
    """argparse with the convention: no prefix matching, ``--version``, the environment and
    exit codes in ``--help``, and a usage error that is one line then the usage (exit 2)."""

    def __init__(self, prog: str, summary: str, *, details: str = "",
                 environment: Sequence[tuple[str, str]] = (),
                 exit_codes: Sequence[tuple[int, str]] = ((0, "success"), (1, "failed")),
                 **kwargs) -> None:
        epilog = []
        if environment:
            width = max(len(name) for name, _ in environment)
            epilog.append("environment (README, Configuration):\n" + "\n".join(
                f"  {name:<{width}}  {meaning}" for name, meaning in environment))
        codes = dict(exit_codes)
        codes.setdefault(EXIT_USAGE, "usage error (unknown option or argument); nothing done")
        epilog.append("exit codes:\n" + "\n".join(
            f"  {code}  {meaning}" for code, meaning in sorted(codes.items())))
        description = textwrap.fill(summary, 92) + (f"\n\n{details.strip()}" if details else "")
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(prog=prog, description=description, epilog="\n\n".join(epilog),
                         allow_abbrev=False, **kwargs)
        self.add_argument("--version", action="version", version=f"widgetsvc {__version__}",
                          help="print the version and exit")

    def error(self, message: str) -> None:  # type: ignore[override]
        """One line saying what is wrong, then the usage; exit 2."""
        sys.stderr.write(f"{self.prog}: {message}\n")
        self.print_usage(sys.stderr)
        sys.stderr.write(f"(see {self.prog.split()[0]} --help)\n")
        raise SystemExit(EXIT_USAGE)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse, but an unknown option is named as such even when argparse would first
        complain about a missing argument or sub-command."""
        args = list(sys.argv[1:] if args is None else args)
        takes_value = False
        for arg in args:
            if takes_value:
                takes_value = False
                continue
            if arg == "--":
                break
            if not arg.startswith("-") or arg == "-":
                if self._subparsers is not None:
                    break  # the sub-command's own parser judges the rest
                continue
            action = self._option_string_actions.get(arg.split("=", 1)[0])
            if action is None:
                self.error(f"unrecognized option: {arg}")
            takes_value = action.nargs != 0 and "=" not in arg
        return super().parse_args(args, namespace)

    def add_commands(self, **kwargs) -> argparse._SubParsersAction:
        """Sub-commands that follow the same convention (no prefix matching either)."""
        kwargs.setdefault("dest", "command")
        kwargs.setdefault("required", True)
        kwargs.setdefault("metavar", "COMMAND")
        return self.add_subparsers(parser_class=_SubParser, **kwargs)


class _SubParser(argparse.ArgumentParser):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["allow_abbrev"] = False
        super().__init__(**kwargs)

    error = Parser.error


def run(main: Callable[[], int], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Call ``main``; a :class:`SettingError` or one of ``errors`` becomes one line
    ``widgetsvc: ...`` and exit 1 (never a traceback for an operator's mistake)."""
    try:
        return main()
    except (SettingError, *errors) as exc:
        print(f"widgetsvc: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("widgetsvc: interrupted", file=sys.stderr)
        return EXIT_FAILED
