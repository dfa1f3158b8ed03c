"""``bin/test``: pytest over the suite, with the command line's convention for its own options.

``--help`` and ``--version`` are bin/test's own (its usage, not pytest's 200 lines); every
other argument goes to pytest unchanged. pytest's usage error (its exit 4) becomes exit 2 like
every bin/ command's, and nothing runs before pytest has accepted the arguments: Debian's
Chromium (for tests/test_browser.py) is installed only once the browser test is collected.
"""

from __future__ import annotations

import os
import shutil
import sys

from widgetsvc.ops import cmdline

_PYTEST_USAGE_ERROR = 4


def _parser() -> cmdline.Parser:
    return cmdline.Parser(
        "bin/test", "Run the test suite against a throwaway PostgreSQL cluster made for this run "
        "(var/test-<pid>, removed afterwards).",
        details="""
--fast: the fast tier, about a minute: unit and in-process API tests only, against one
throwaway database; no server boots, no bin/ command, no other program (every test that
starts one is marked e2e and left out; one that is not refuses to start it: tests/tiers.py).
Without --fast: everything (about 15 minutes on 2 cores shared with other work).
Every argument other than --help and --version goes to pytest, e.g.
  bin/test --fast     bin/test tests/test_cli.py -x -q     bin/test -k login     bin/test --co -q
pytest's own options: .venv/bin/pytest --help. The first run prepares .venv with the test
dependencies; as root, Debian's chromium is installed for the browser test when missing.""",
        usage="bin/test [-h] [--version] [--fast] [PYTEST ARGUMENTS ...]",
        environment=[("CI", "set: property-based tests run a fixed, derandomized set"),
                     ("WIDGETSVC_PG_FSYNC", "the throwaway cluster runs with fsync=off")],
        exit_codes=[(0, "every selected test passed"), (1, "a test failed"),
                    (2, "usage error (pytest's 4), or interrupted"),
                    (3, "pytest's internal error"), (5, "no test was collected")])


class _Chromium:
    """Installs Debian's chromium (as root, when missing) once the browser test is among the
    collected tests: not for --help, a usage error, --collect-only or other files."""

    def pytest_collection_finish(self, session) -> None:
        if session.config.option.collectonly or shutil.which("chromium"):
            return
        if not any(item.nodeid.startswith("tests/test_browser.py") for item in session.items):
            return
        if os.geteuid() != 0:
            print("widgetsvc: chromium is not installed and this is not root: the browser test "
                  "will skip (as root: apt-get install chromium)", file=sys.stderr)
            return
        from widgetsvc.ops import apt

        try:
            apt.install(["chromium"])
        except Exception as exc:  # noqa: BLE001 (the browser test then skips, saying why)
            print(f"widgetsvc: installing chromium failed ({exc}); the browser test will skip",
                  file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    own = args[:args.index("--")] if "--" in args else args
    for flag in ("-h", "--help", "--version"):
        if flag in own:
            _parser().parse_args([flag])  # prints, exits 0
    import pytest

    code = int(pytest.main(args, plugins=[_Chromium()]))
    return cmdline.EXIT_USAGE if code == _PYTEST_USAGE_ERROR else code


if __name__ == "__main__":
    raise SystemExit(main())
