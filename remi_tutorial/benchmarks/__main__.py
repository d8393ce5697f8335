"""``python -m remi_tutorial.benchmarks COMMAND ...``: run a benchmark or render its results."""

from __future__ import annotations

import argparse
import importlib

# command -> the module that implements it with add_arguments(parser) and main(args)
COMMANDS: dict[str, str] = {
    "gaussian": "remi_tutorial.benchmarks.gaussian",
    "gaussian-report": "remi_tutorial.benchmarks.gaussian_report",
    "symptoms": "remi_tutorial.benchmarks.symptoms",
    "analytic-critic": "remi_tutorial.benchmarks.analytic_critic",
    "supervised": "remi_tutorial.benchmarks.supervised",
    "contrastive": "remi_tutorial.benchmarks.contrastive",
    "table1": "remi_tutorial.benchmarks.table1",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m remi_tutorial.benchmarks")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(command, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(run=module.main)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
