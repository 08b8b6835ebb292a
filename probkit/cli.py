"""The ``probkit`` command line.

Subcommands are registered by the subpackages that own them (each exposes
``register(subparsers)``), so the CLI stays a thin layer over the library.

Errors never print a traceback (unless ``--debug`` is given, anywhere on the line):

* a bad argument — rejected by the parser, or a ``ValueError`` raised by the library for a
  value it was given — prints ``probkit: error: <one line>`` and exits with status 2;
* any other failure (a file that cannot be written, an internal error) prints
  ``probkit: error: <one line>`` and exits with status 1; Ctrl-C exits with status 130.

Output files named by an option in ``OUTPUT_FILE_OPTIONS`` (e.g. ``--plot fig/eps.png``) get
their missing folders created before the command runs, as output folders (``demo --out``) are.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

# Modules with ``register(subparsers) -> None``, which sets ``func(args) -> int`` on the parsers it adds.
_REGISTRARS = ("probkit.demo", "probkit.privacy.cli")
OUTPUT_FILE_OPTIONS = ("plot",)


class UsageError(Exception):
    """A bad command-line argument (exit status 2)."""

    def __init__(self, message: str, prog: str = "probkit"):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through ``add_subparsers``, sub-parsers) that raises
    :class:`UsageError` instead of printing the usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="probkit",
        description="probkit: Feynman-Kac / Monte Carlo sampling with diffusion models, and "
        "Bayesian estimation of differential privacy, on JAX.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _REGISTRARS:
        importlib.import_module(module_name).register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _fail(message: str, code: int, debug: bool, hint: str = "") -> int:
    if debug:
        traceback.print_exc()
    elif hint:
        message = f"{message} ({hint})"
    print(f"probkit: error: {message}", file=sys.stderr)
    return code


def make_parent_folder(path: str, option: str) -> str:
    """Create the missing folders of the output file ``path`` (given by ``option``); returns it."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot create its folder {folder} ({e.strerror or e})") from None
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the ``probkit`` command; returns the exit status (0 ok, 1 failure, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.debug = debug  # sub-commands that handle their own errors re-raise with --debug
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 0 if args.command is None else 2
        for name in OUTPUT_FILE_OPTIONS:
            if isinstance(value := getattr(args, name, None), str) and value:
                make_parent_folder(value, f"--{name.replace('_', '-')}")
        if not os.environ.get("PROBKIT_NO_COMPILE_CACHE"):  # reuse compiled programs across runs
            from probkit import enable_compilation_cache

            enable_compilation_cache()
        return int(args.func(args) or 0)
    except UsageError as e:
        return _fail(_one_line(e), 2, debug, f"see '{e.prog} --help'")
    except ValueError as e:  # the library rejected a value taken from the command line
        return _fail(_one_line(e), 2, debug)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("probkit: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(f"{where}{e.strerror or _one_line(e)}", 1, debug)
    except Exception as e:  # noqa: BLE001 - the command line must not show a traceback
        return _fail(f"{type(e).__name__}: {_one_line(e)}", 1, debug, "run with --debug for the traceback")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
