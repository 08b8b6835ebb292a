"""The ``probkit`` command line.

Subcommands are registered by the subpackages that own them (each exposes
``register(subparsers)``), so the CLI stays a thin layer over the library.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# (module, attribute) pairs; each attribute is ``register(subparsers) -> None`` and sets
# ``func(args) -> int`` on the parsers it adds.
_REGISTRARS = (
    ("probkit.demo", "register"),
    ("probkit.privacy.cli", "register"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probkit",
        description="probkit: Feynman-Kac / Monte Carlo sampling with diffusion models, and "
        "Bayesian estimation of differential privacy, on JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, attr in _REGISTRARS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # a subpackage still under construction
            if err.name is not None and err.name.startswith("probkit"):
                continue
            raise
        getattr(module, attr)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    if not os.environ.get("PROBKIT_NO_COMPILE_CACHE"):  # reuse compiled programs across runs
        from probkit import enable_compilation_cache

        enable_compilation_cache()
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
