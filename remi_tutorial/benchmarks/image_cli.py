"""The command line of the image benchmarks: ``supervised`` and ``contrastive``.

Both commands run the cells that their options describe
(:func:`~remi_tutorial.benchmarks.image_cells.finish_cell` on each), one after another or as
jobs of their own (``--launcher``, :mod:`~remi_tutorial.benchmarks.launch`), in a results
folder that a later call resumes, and print one line per cell; ``--out FILE`` then writes the results collected from the folder
(:func:`~remi_tutorial.benchmarks.image_results.collect`) as one tidy table with its
provenance (the conventions of :mod:`~remi_tutorial.benchmarks.cli`). The options follow
the benchmark's spec: the losses it offers, an embedding size where its network outputs an
embedding, the second-order loss's settings where it offers that loss.
"""

from __future__ import annotations

import argparse
import time

from ..datasets import DATASET_NAMES, load_image_dataset
from .cli import (
    add_out,
    add_runtime,
    add_seeds,
    apply_threads,
    resolve_device,
    write_result,
)
from .image_cells import CellJob
from .image_config import PAPER_ALPHAS, SECOND_ORDER_LOSS, amp_supported, image_configs
from .image_results import CELLS_FOLDER, collect, read_cell_result, request_cells
from .image_spec import ImageBenchmark
from .launch import add_launcher_arguments, launch

__all__ = ["add_image_arguments", "run_from_args"]


def add_image_arguments(parser: argparse.ArgumentParser, benchmark: ImageBenchmark) -> None:
    """The options of the command that runs ``benchmark`` (``args.benchmark``)."""
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                        help="the dataset (no fallback from one to another)")
    second_order = SECOND_ORDER_LOSS in benchmark.losses
    parser.add_argument("--loss", nargs="+", default=[loss for loss in benchmark.losses
                                                      if loss != SECOND_ORDER_LOSS],
                        choices=benchmark.losses, metavar="LOSS",
                        help="the losses to run, from: " + " ".join(benchmark.losses)
                             + (f" ({SECOND_ORDER_LOSS!r} is the second-order loss)"
                                if second_order else ""))
    add_seeds(parser)
    parser.add_argument("--alpha", nargs="+", type=float, default=list(PAPER_ALPHAS),
                        help="regularizer weights of the regularized losses (the paper's)")
    parser.add_argument("--results", default="results",
                        help=f"the results folder: {CELLS_FOLDER}/ holds a file per cell; a "
                             "later call skips the finished cells and resumes the interrupted one")
    parser.add_argument("--checkpoints", default=None,
                        help="the checkpoint folder, RESULTS/checkpoints if None")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the checkpoint of a finished cell")
    parser.add_argument("--data-root", default="data", help="where the CIFAR folders are")
    parser.add_argument("--download", action="store_true",
                        help="download CIFAR with torchvision if it is absent")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                        help="bfloat16 autocast of the network's features (auto: on a CUDA GPU "
                             "that runs bfloat16 natively, compute capability >= 8.0)")
    parser.add_argument("--stem", choices=("cifar", "imagenet"), default="cifar",
                        help="ResNet-18's stem: 32x32, or the authors' 224x224 upsampling")
    parser.add_argument("--model", choices=("resnet18", "small"), default=None,
                        help="override the preset's network")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override the preset's batch size")
    parser.add_argument("--width", type=int, default=None,
                        help="the small network's features, its widths becoming 32 64 WIDTH "
                             "(512 if None)")
    add_runtime(parser)
    add_out(parser, None)
    add_launcher_arguments(parser)
    parser.set_defaults(benchmark=benchmark, embed_dim=None, order=None, beta=None, ridge=1e-3)
    if benchmark.embeds:
        parser.add_argument("--embed-dim", type=int, default=None,
                            help="a final linear layer to this many outputs (none if None: the "
                                 "embedding is the network's 512 features)")
    if second_order:
        group = parser.add_argument_group(f"the second-order loss {SECOND_ORDER_LOSS!r}")
        group.add_argument("--order", type=int, default=None,
                           help="train on the log-det series with this many terms (the exact "
                                "log-determinants if None)")
        group.add_argument("--beta", type=float, default=None,
                           help="the series' rescaling (adaptive if None); needs --order")
        group.add_argument("--ridge", type=float, default=1e-3,
                           help="shrinkage of the correlation matrices")


def _settings(args: argparse.Namespace) -> dict:
    """The command's options as plain data (the benchmark by name), for the result's record."""
    values = {name: value for name, value in vars(args).items() if not callable(value)}
    values["benchmark"] = args.benchmark.name
    return values


def _load(args: argparse.Namespace):
    try:
        return load_image_dataset(args.dataset, args.data_root, download=args.download)
    except FileNotFoundError as error:
        raise SystemExit(f"{error}\nOn the command line: add --download.") from error


def run_from_args(args: argparse.Namespace) -> None:
    """Run the sweep that the command-line options describe, print one line per cell and
    what the results folder holds, and write it to ``--out`` if given."""
    started = time.perf_counter()
    apply_threads(args)
    overrides = {
        name: value
        for name, value in (("model", args.model), ("epochs", args.epochs),
                            ("batch_size", args.batch_size), ("width", args.width))
        if value is not None
    }
    configs = image_configs(
        args.benchmark, args.dataset, losses=args.loss, seeds=args.seeds, alphas=args.alpha,
        stem=args.stem, embed_dim=args.embed_dim, order=args.order, beta=args.beta,
        ridge=args.ridge, **overrides,
    )
    # Loaded (and downloaded) here, once, before any job reads it; a dry run reads nothing.
    dataset = f"{args.dataset} (not read: a dry run)" if args.dry_run else _load(args)
    first = configs[0]
    local = args.launcher == "local"
    if local:
        device = resolve_device(args.device)
        amp = amp_supported(device) if args.amp == "auto" else args.amp == "on"
        runtime = f"amp {'on' if amp else 'off'}, device {device}"
    else:
        runtime = f"amp {args.amp}, device {args.device} (each job chooses where it runs)"
    print(f"benchmark: {args.benchmark.name} ({args.benchmark.metric_name})")
    print(f"dataset:   {dataset}")
    print(f"settings:  batch {first.batch_size}, {first.epochs} epochs, Adam lr {first.lr:g}, "
          f"model {first.model}" + (f" (stem {first.stem})" if first.model == "resnet18" else "")
          + f", {runtime}")
    print(f"cells:     {len(configs)} -> {args.results}")
    if not args.dry_run:
        request_cells(args.results, (config.settings() for config in configs))
    todo = []
    for config in configs:
        if read_cell_result(args.results, config.key()) is None:
            todo.append(config)
        else:
            print(f"skip {config.loss} seed {config.seed}: already in {args.results}")
    job = CellJob(str(args.results), args.checkpoints, args.data_root, args.device, args.amp,
                  args.threads, args.keep_checkpoints, progress=local and not args.no_progress)
    finished = launch(todo, job, args, name=f"{args.benchmark.name}-{args.dataset}")
    if args.dry_run:
        return
    if not finished:
        print(f"watch the cells with: python -m remi_tutorial.benchmarks collect --results {args.results}")
    collected = collect(args.results, checkpoint_dir=args.checkpoints)
    print(f"{args.results}: {collected.report()}")
    if args.out:
        runs = collected.runs
        runs.attrs = _settings(args)
        write_result(runs, args.out, started=started, missing=collected.missing,
                     running=collected.running, diverged=collected.diverged)
