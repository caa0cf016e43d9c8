"""The `numpyllm` command line.

Each sub-command lives in its own module in this package and exposes two things:

    register(subparsers)  -> adds its argparse sub-parser and sets `func=run`
    run(args)             -> does the work and returns an exit code (0 on success)

`main` discovers the modules, so adding a command is adding a file. Errors a user
can cause (a missing file, a bad option value, a corrupt checkpoint) end in a
one-line message and exit code 2 rather than a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

__all__ = ["main", "CLIError"]


class CLIError(Exception):
    """An error to report to the user in one line, without a traceback."""


# Exceptions that mean "the user asked for something that cannot be done": these are
# printed as one line. Anything else is a bug in numpyllm and keeps its traceback.
_USER_ERRORS = (CLIError, ValueError, FileNotFoundError, IsADirectoryError,
                NotADirectoryError, FileExistsError, PermissionError, UnicodeDecodeError,
                KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numpyllm",
        description="A transformer library in pure NumPy: train, sample, evaluate, check.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the command line is an application: let malloc keep freed memory for reuse, so a
    # training step does not fault its temporaries in again each time (numpyllm/runtime.py)
    from ..runtime import keep_freed_memory
    keep_freed_memory()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("numpyllm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (numpyllm train | head): stop quietly, as other tools do;
        # point stdout at /dev/null so the interpreter's final flush cannot fail again
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except _USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"numpyllm {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
