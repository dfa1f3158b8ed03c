"""``bin/test``: pytest over the suite, with the command line's convention for its own options.

``--help`` and ``--version`` are bin/test's own (its usage, not pytest's 200 lines); every
other argument goes to pytest unchanged. pytest's usage error (its exit 4) becomes exit 2 like
every bin/ command's.

The full tier runs on pytest-xdist (one worker per core, at least two, at most four): most of
its time is spent waiting for servers, clusters and programs it started, not on a CPU. Every
worker has its own throwaway database (tests/conftest.py), a module's tests run on one worker
(they share the module's server), and the shared ``bin/cluster`` tests all on one
(tests/conftest.py, ``pytest_collection_modifyitems``). ``--serial`` keeps the run in one
process, as do the fast tier, a worker count of one's own, collecting only and the debugger.
"""

from __future__ import annotations

import os
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
Without --fast: everything, over one pytest-xdist worker per core (about 10 minutes on 2
cores). --serial: the same in one process (about 15 minutes; output as it happens).
Every argument other than --help and --version goes to pytest, e.g.
  bin/test --fast     bin/test tests/test_cli.py -x -q     bin/test -k login     bin/test --co -q
pytest's own options: .venv/bin/pytest --help. The first run prepares .venv with the test
dependencies; as root, Debian's chromium is installed when the browser test runs.""",
        usage="bin/test [-h] [--version] [--fast | --serial] [PYTEST ARGUMENTS ...]",
        environment=[("CI", "set: property-based tests run a fixed, derandomized set"),
                     ("WIDGETSVC_PG_FSYNC", "the throwaway cluster runs with fsync=off")],
        exit_codes=[(0, "every selected test passed"), (1, "a test failed"),
                    (2, "usage error (pytest's 4), or interrupted"),
                    (3, "pytest's internal error"), (5, "no test was collected")])


# Options after which the run stays in this process: the fast tier, a worker count given,
# collecting only, the debugger, or asking for it.
_SERIAL = ("--serial", "--fast", "-n", "--numprocesses", "--dist", "--co", "--collect-only",
           "--pdb", "--trace", "no:xdist")


def _workers() -> int:
    return min(max(os.cpu_count() or 1, 2), 4)


def with_workers(args: list[str]) -> list[str]:
    """``args`` with the parallel run's options first, unless one of ``_SERIAL`` (before any
    ``--``) asks for one process; ``--serial`` itself is bin/test's, not pytest's."""
    own = args[:args.index("--")] if "--" in args else args
    rest = list(args)
    if "--serial" in own:
        rest.remove("--serial")
    if any(arg == flag or arg.startswith(flag + "=") or (flag == "-n" and arg.startswith("-n"))
           for arg in own for flag in _SERIAL):
        return rest
    return ["-n", str(_workers()), "--dist", "loadgroup", "--no-loadscope-reorder", *rest]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    own = args[:args.index("--")] if "--" in args else args
    for flag in ("-h", "--help", "--version"):
        if flag in own:
            _parser().parse_args([flag])  # prints, exits 0
    import pytest

    code = int(pytest.main(with_workers(args)))
    return cmdline.EXIT_USAGE if code == _PYTEST_USAGE_ERROR else code


if __name__ == "__main__":
    raise SystemExit(main())
