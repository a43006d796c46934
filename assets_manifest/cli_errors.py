"""One-line errors and consistent exit codes for every command line (``synthgen``, ``relight``).

Exit codes:

* 0 success;
* 1 runtime failure: bad or missing input data (missing or corrupt files, bad shards, a catalog problem found
  while reading), failed shards, an unreachable store, a training loss that turned NaN; also any unexpected
  exception (a bug), reported with its type;
* 2 bad usage: an unknown flag or key, an invalid value (argparse's own errors exit 2 too);
* 130 interrupted (Ctrl-C).

An expected failure prints exactly one line ``error: ...`` on stderr; ``--debug`` (anywhere on the command
line) adds the traceback above it. Error classes say which kind they are with an ``exit_code`` attribute
(class-wide, or set on one instance with :func:`usage` / :func:`runtime`); a plain ``ValueError`` is a bad
value (2), an ``OSError`` a runtime failure (1) naming the path.

This module is the lowest layer (standard library only): ``assets_manifest``, ``synthgen`` and ``relight``
all import it.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable, Sequence, TypeVar

OK, RUNTIME, USAGE, INTERRUPTED = 0, 1, 2, 130
DEBUG_FLAG = "--debug"
DEBUG_HELP = "on an error, print the traceback as well as the one-line message"

E = TypeVar("E", bound=BaseException)


def usage(exc: E) -> E:
    """``exc`` marked as bad usage (exit 2): ``raise usage(DataError(...))``."""
    exc.exit_code = USAGE  # type: ignore[attr-defined]
    return exc


def runtime(exc: E) -> E:
    """``exc`` marked as a runtime failure (exit 1)."""
    exc.exit_code = RUNTIME  # type: ignore[attr-defined]
    return exc


def fail(msg: str, code: int = USAGE) -> int:
    """Print ``error: msg`` on stderr; return ``code``."""
    print(f"error: {msg}", file=sys.stderr)
    return code


def _os_message(e: OSError) -> str:
    if e.strerror and e.filename is not None:
        where = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else f"{e.filename}"
        return f"{where}: {e.strerror}"
    return str(e) or type(e).__name__


def classify(e: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that reached a command line's main."""
    code = getattr(e, "exit_code", None)
    if isinstance(code, int):
        return code, str(e)
    if isinstance(e, OSError):
        return RUNTIME, _os_message(e)
    if type(e) is ValueError:  # raised on purpose for a bad flag or key value
        return USAGE, str(e)
    text = " ".join(str(e).split())  # one line, even for a multi-line message
    what = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return RUNTIME, f"{what} (run with {DEBUG_FLAG} for the traceback)"


def take_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """(argv without ``--debug``, whether it was given); only options before a ``--`` count."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:]
    return rest, len(rest) != len(argv)


def run(build_parser: Callable, argv: Sequence[str] | None = None,
        interrupted: str = "interrupted") -> int:
    """Parse ``argv`` with ``build_parser()`` and call ``args.func(args)``; every failure is one line.

    ``--debug`` may come before or after the subcommand; ``args.debug`` tells the command whether it was given.
    ``interrupted`` is the line printed for Ctrl-C (exit 130)."""
    argv, debug = take_debug(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    args.debug = debug
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        return fail(interrupted, INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line (and a traceback with --debug)
        if debug:
            traceback.print_exc()
        code, msg = classify(e)
        return fail(msg, code)
