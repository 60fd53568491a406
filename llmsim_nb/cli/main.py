"""The ``llmsim`` command line: one parser, one module per subcommand.

- ``llmsim run`` (:mod:`.run`): simulate a trace and print a summary.
- ``llmsim sweep`` (:mod:`.sweep`): a design-space sweep from a YAML file.
- ``llmsim validate`` (:mod:`.validate`): a run against measured results.
- ``llmsim cluster`` (:mod:`.cluster`): a trace through instances behind a router.
- ``llmsim list models|hardware|networks`` (:mod:`.list`): the registries' names.
- ``llmsim --version``: ``llmsim_nb <version>``.

Bad input ends with one line on stderr and exit status 2, before anything is
simulated. Building the parser imports nothing heavy (no numpy, no xarray), so
``llmsim --help`` answers at once; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from .cluster import add_cluster_parser, run_cluster_command
from .help_defaults import add_missing_defaults, unknown_option_hint
from .list import add_list_parser, run_list_command
from .run import RUN_FLAGS, add_run_parser, run_run_command
from .sweep import add_sweep_parser, run_sweep_command
from .validate import add_validate_parser, run_validate_command


class _Parser(argparse.ArgumentParser):
    argv: list[str] | None = None  # what main() parses, for the did-you-mean of a typo

    def error(self, message: str) -> None:  # one line, no usage dump
        hint = unknown_option_hint(self, message, self.argv)  # "; --x: did you mean ...?"
        self.exit(2, f"llmsim: error: {message}{hint}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmsim", description="Simulate LLM inference serving.")
    parser.add_argument("--version", action="version", version=f"llmsim_nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_run_parser(sub)
    add_sweep_parser(sub)
    add_validate_parser(sub, RUN_FLAGS)
    add_list_parser(sub)
    add_cluster_parser(sub)
    add_missing_defaults(parser)  # every option's help states its default
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llmsim`` console script."""
    parser = _build_parser()
    parser.argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_run_command(args)
        if args.command == "sweep":
            return run_sweep_command(args)
        if args.command == "validate":
            return run_validate_command(args, RUN_FLAGS)
        if args.command == "list":
            return run_list_command(args)
        if args.command == "cluster":
            return run_cluster_command(args)
    except (ValueError, OSError) as exc:
        print(f"llmsim: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
