"""Training throughput of ResNet-18 on CIFAR-shaped images: 32x32 stem vs the authors' 224x224.

Times the supervised benchmark's training loop (the paper's CIFAR-10 cell: MINE on the
logits, batch 10, Adam) with each pipeline and each setting of the grid below, on the same
device in one process, and prints a table: images per second, the speed-up over the plain
setting of the same pipeline, and what one paper-size CIFAR-10 supervised cell (40 epochs
of 50,000 images) would take at that rate (an estimate from the measured rate, not a
measured cell); then how many times slower per image the 224x224 pipeline is, with the
plain setting and with each pipeline's fastest one.

The settings: ``plain`` (float32, default memory layout; on a GPU cuDNN's convolutions
run float32 in TF32 by default, and the script says so), ``channels-last`` (weights and
images stored channels-last), and where the device runs bfloat16 natively (a CUDA GPU of
compute capability 8.0 or later, :func:`~remi_tutorial.benchmarks.image_config.amp_supported`,
or a CPU with AVX-512 BF16 or AMX) ``autocast`` (bfloat16 autocast of the features) and
``channels-last + autocast``. The images are random tensors of CIFAR's shape
(:func:`remi_tutorial.benchmarks.image_cells.training_throughput`); the arithmetic does not
depend on their content.

    python scripts/bench_images.py --threads 1        # 20 timed steps per setting
    python scripts/bench_images.py --steps 5000       # a whole CIFAR-10 epoch at batch 10

With the defaults on one CPU thread it takes about two minutes without autocast (1 min 40 s
on one core of an AMD EPYC) and about three with it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.image_cells import training_throughput
from remi_tutorial.benchmarks.image_config import ImageRunConfig, amp_supported, image_configs
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.critics import ImageCritic
from remi_tutorial.networks import ResNet18
from remi_tutorial.train import default_device

from machine import device_name

CIFAR10_TRAIN_IMAGES = 50_000
STEMS = {"cifar": "32x32", "imagenet": "224x224"}
"""ResNet-18's stem -> the image size its pipeline trains on."""


@dataclass(frozen=True)
class Setting:
    """One column of the grid: a memory layout and a precision."""

    name: str
    channels_last: bool
    amp: bool


SETTINGS = (
    Setting("plain", channels_last=False, amp=False),
    Setting("channels-last", channels_last=True, amp=False),
    Setting("autocast", channels_last=False, amp=True),
    Setting("channels-last + autocast", channels_last=True, amp=True),
)


@dataclass(frozen=True)
class Measurement:
    """The measured rate of one pipeline with one setting."""

    stem: str
    setting: Setting
    rate: float  # training images per second
    hours: float  # estimated hours of one paper-size cell at that rate


def forward_gflops(stem: str) -> float:
    """Forward floating-point operations per 32x32 image, in GFLOP (torch's FLOP counter,
    two per multiply-add)."""
    critic = ImageCritic(ResNet18(10, stem=stem), "logits").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        critic(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() / 1e9


def cpu_runs_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with native bfloat16 arithmetic (AVX-512 BF16 or AMX, as
    oneDNN reports it)."""
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_refusal(device: torch.device) -> str | None:
    """Why the grid leaves out autocast on ``device``, or ``None`` where it runs."""
    if amp_supported(device) or cpu_runs_bfloat16(device):
        return None
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return (f"autocast not measured: this GPU (compute capability {major}.{minor}) emulates "
                "bfloat16, more slowly than float32; it needs capability 8.0 or later")
    return (f"autocast not measured: this {device.type} device has no native bfloat16 "
            "(a CUDA GPU of compute capability 8.0 or later, or a CPU with AVX-512 BF16 or AMX)")


def cell_config(stem: str, amp: bool) -> ImageRunConfig:
    """The paper's CIFAR-10 supervised MINE cell with ResNet-18's ``stem``."""
    return image_configs(SUPERVISED, "cifar10", losses=["mine"], stem=stem, amp=amp)[0]


def measure(stem: str, setting: Setting, device: torch.device, steps: int,
            warmup: int) -> Measurement:
    """Time one pipeline with one setting."""
    config = cell_config(stem, setting.amp)
    rate = training_throughput(config, steps=steps, warmup=warmup, device=device,
                               channels_last=setting.channels_last)
    hours = config.epochs * CIFAR10_TRAIN_IMAGES / rate / 3600
    return Measurement(stem, setting, rate, hours)


def print_table(measurements: list[Measurement]) -> None:
    """One row per measurement, with its speed-up over its pipeline's plain setting."""
    plain = {m.stem: m.rate for m in measurements if m.setting == SETTINGS[0]}
    epochs = cell_config("cifar", amp=False).epochs
    print(f"  {'pipeline':<9} {'setting':<25} {'images/s':>9} {'speed-up':>9}  "
          f"{'one cell (' + str(epochs) + ' epochs), h':>24}")
    for m in measurements:
        print(f"  {STEMS[m.stem]:<9} {m.setting.name:<25} {m.rate:9.1f} "
              f"{m.rate / plain[m.stem]:8.2f}x  {m.hours:24,.1f}")


def print_ratios(measurements: list[Measurement]) -> None:
    """How many times slower per image the 224x224 pipeline is: plain vs plain, and each
    pipeline's fastest setting vs the other's."""
    plain = {m.stem: m for m in measurements if m.setting == SETTINGS[0]}
    best = {stem: max((m for m in measurements if m.stem == stem), key=lambda m: m.rate)
            for stem in STEMS}
    print(f"  224x224 vs 32x32, plain: {plain['cifar'].rate / plain['imagenet'].rate:.1f}x "
          "slower per image (49x the pixels)")
    print(f"  224x224 vs 32x32, fastest of each ({best['imagenet'].setting.name} vs "
          f"{best['cifar'].setting.name}): {best['cifar'].rate / best['imagenet'].rate:.1f}x "
          "slower per image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device() if args.device == "auto" else torch.device(args.device)
    config = cell_config("cifar", amp=False)
    print(f"device: {device} ({device_name(device)}); torch {torch.__version__}; "
          f"{torch.get_num_threads()} CPU threads")
    print(f"the paper's CIFAR-10 supervised cell: MINE, batch {config.batch_size}, Adam lr "
          f"{config.lr:g}; {args.steps} timed steps after {args.warmup} warm-up steps per "
          "setting, on random CIFAR-shaped images")
    print("ResNet-18 forward arithmetic per image: " + ", ".join(
        f"{size} {forward_gflops(stem):.3f} GFLOP" for stem, size in STEMS.items()))
    if device.type == "cuda":
        print("float32 settings on this GPU: convolutions in TF32 where "
              f"torch.backends.cudnn.allow_tf32 (here {torch.backends.cudnn.allow_tf32}), "
              "matrix products where torch.backends.cuda.matmul.allow_tf32 (here "
              f"{torch.backends.cuda.matmul.allow_tf32}); torch's defaults are True and False")
    refusal = autocast_refusal(device)
    if refusal:
        print(refusal)
    elif not amp_supported(device):
        print("autocast measured: this CPU runs bfloat16 natively; the image benchmarks' runs "
              "autocast only on a GPU (amp_supported), so on a CPU these rows are an option, "
              "not the default")
    settings = [s for s in SETTINGS if refusal is None or not s.amp]
    measurements = [measure(stem, setting, device, args.steps, args.warmup)
                    for stem in STEMS for setting in settings]
    print_table(measurements)
    print_ratios(measurements)


if __name__ == "__main__":
    main()
