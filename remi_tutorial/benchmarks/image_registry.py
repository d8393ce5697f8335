"""The image benchmarks by name: :data:`IMAGE_BENCHMARKS` and :func:`image_benchmark`.

The results name a cell's benchmark by the ``name`` of its
:class:`~remi_tutorial.benchmarks.image_spec.ImageBenchmark`; this registry turns the name
back into the spec, and lists the benchmarks in the paper's order (that of its Table 1).
"""

from __future__ import annotations

from .contrastive import CONTRASTIVE
from .image_spec import ImageBenchmark
from .supervised import SUPERVISED

__all__ = ["IMAGE_BENCHMARKS", "image_benchmark"]

IMAGE_BENCHMARKS: dict[str, ImageBenchmark] = {
    benchmark.name: benchmark for benchmark in (SUPERVISED, CONTRASTIVE)
}
"""``name -> spec`` of the image benchmarks, in the paper's order."""


def image_benchmark(name: str) -> ImageBenchmark:
    """The image benchmark called ``name`` (``"supervised"`` or ``"contrastive"``).

    Raises:
        ValueError: for an unknown name.
    """
    if name not in IMAGE_BENCHMARKS:
        raise ValueError(f"unknown image benchmark {name!r}; choose one of "
                         f"{', '.join(IMAGE_BENCHMARKS)}")
    return IMAGE_BENCHMARKS[name]
