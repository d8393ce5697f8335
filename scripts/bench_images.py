"""Training throughput of ResNet-18 on CIFAR-shaped images: 32x32 stem vs the authors' 224x224.

Times the supervised benchmark's training loop (the paper's CIFAR-10 cell: MINE on the
logits, batch 10, Adam) with each pipeline, on the same device in one process, and prints
images per second, the forward arithmetic per image, and what one paper-size CIFAR-10
supervised cell (40 epochs of 50,000 images) would take at that rate: an estimate from the
measured rate, not a measured cell. The images are random tensors of CIFAR's shape
(:func:`remi_tutorial.benchmarks.image_cells.training_throughput`); the arithmetic does not
depend on their content.

    python scripts/bench_images.py --threads 1        # 20 timed steps per pipeline
    python scripts/bench_images.py --steps 5000       # a whole CIFAR-10 epoch at batch 10
"""

from __future__ import annotations

import argparse
import platform

import torch
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.image_cells import training_throughput
from remi_tutorial.benchmarks.image_config import image_configs
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.critics import ImageCritic
from remi_tutorial.networks import ResNet18
from remi_tutorial.train import default_device

CIFAR10_TRAIN_IMAGES = 50_000


def forward_gflops(stem: str) -> float:
    """Forward floating-point operations per 32x32 image, in GFLOP (torch's FLOP counter,
    two per multiply-add)."""
    critic = ImageCritic(ResNet18(10, stem=stem), "logits").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        critic(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per pipeline")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast of the features")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device() if args.device == "auto" else torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    rates = {}
    for stem in ("cifar", "imagenet"):
        config = image_configs(SUPERVISED, "cifar10", losses=["mine"], stem=stem, amp=args.amp)[0]
        if stem == "cifar":
            print(f"device: {device} ({name}); torch {torch.__version__}; "
                  f"{torch.get_num_threads()} CPU threads; amp {'on' if args.amp else 'off'}")
            print(f"the paper's CIFAR-10 supervised cell: MINE, batch {config.batch_size}, "
                  f"Adam lr {config.lr:g}; {args.steps} timed steps after {args.warmup} warm-up "
                  "steps on random CIFAR-shaped images")
        rates[stem] = training_throughput(config, steps=args.steps, warmup=args.warmup, device=device)
        hours = config.epochs * CIFAR10_TRAIN_IMAGES / rates[stem] / 3600
        label = "32x32, CIFAR stem" if stem == "cifar" else "224x224 upsampled, ImageNet stem"
        print(f"  ResNet-18 {label:<34} {forward_gflops(stem):6.3f} GFLOP/image forward  "
              f"{rates[stem]:9.1f} images/s  -> one cell ({config.epochs} epochs) ~ {hours:,.1f} h (estimate)")
    print(f"  the 224x224 pipeline has 49x the pixels and is {rates['cifar'] / rates['imagenet']:.1f}x "
          "slower per image here")


if __name__ == "__main__":
    main()
