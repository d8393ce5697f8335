"""Run the paper's benchmarks and render their results: ``python -m remi_tutorial.benchmarks
COMMAND ...``, also installed as ``remi-tutorial COMMAND ...``.

Every command writes its tidy table with ``--out FILE`` (and the settings, the command and the
environment in ``FILE.json``), takes ``--seeds 0 1 2`` where seeds apply, and shows its
defaults and examples with ``--help``.
"""

from __future__ import annotations

import argparse
import importlib

from .cli import HelpFormatter

COMMANDS: dict[str, str] = {
    "gaussian": "remi_tutorial.benchmarks.gaussian",
    "gaussian-report": "remi_tutorial.benchmarks.gaussian_report",
    "symptoms": "remi_tutorial.benchmarks.symptoms",
    "analytic-critic": "remi_tutorial.benchmarks.analytic_critic",
    "supervised": "remi_tutorial.benchmarks.supervised",
    "contrastive": "remi_tutorial.benchmarks.contrastive",
    "collect": "remi_tutorial.benchmarks.collect",
    "table1": "remi_tutorial.benchmarks.table1",
    "beyond-normal": "remi_tutorial.benchmarks.beyond_normal",
}
"""command -> the module that implements it: its docstring is the command's description, its
``EXAMPLES`` the examples of ``--help``, and it defines ``add_arguments(parser)`` and
``main(args)``."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each with its module's description and examples."""
    parser = argparse.ArgumentParser(
        prog="python -m remi_tutorial.benchmarks", description=__doc__,
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            command, help=module.__doc__.strip().splitlines()[0], description=module.__doc__,
            epilog=module.EXAMPLES, formatter_class=HelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.main)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and run the command."""
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
