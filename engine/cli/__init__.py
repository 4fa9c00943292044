"""The `hfd` command line: one argparse parser assembled from command modules (codec, train,
data, evaluate), each a thin layer over the engine's packages.

Each module in COMMAND_MODULES exposes ``register(subparsers)``, which adds its commands and
sets ``run`` (a function of the parsed args) on each. Adding a module is a one-line edit."""
from __future__ import annotations

import argparse
import sys

from engine.cli import codec, data, evaluate, train
from engine.errors import HfdError

COMMAND_MODULES = [codec, train, data, evaluate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfd", description="High-fidelity generative image compression: encode images to .hfd files and "
                                "decode them with the autoencoder alone or refined by a score-based decoder.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done, 1 an HfdError (printed as one line), 2 bad usage,
    130 interrupted."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse exits 2 on bad usage, 0 after --help
            return int(exc.code or 0)
        return int(args.run(args) or 0)
    except HfdError as exc:
        print(f"hfd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hfd: interrupted", file=sys.stderr)
        return 130
