"""The package on a CUDA GPU computes what it computes on the CPU.

Every test here needs a CUDA GPU and is skipped without one (``pytest -m gpu`` selects
them; ``scripts/gpu_check.sh`` runs them on a GPU machine). Each compares a CUDA result
with the CPU result on the same inputs:

* float64 results agree to ~1e-10: the devices round alike and differ only in the order of
  their reductions (and in their matrix and Cholesky kernels), a few units in 1e-16 per
  operation;
* float32 results agree to ``rtol = atol = 1e-5`` (see :data:`F32_TOLERANCE`);
* samples are *equal*: every sampler draws on the CPU with a CPU generator and then moves
  the samples to the device.
"""

import functools
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from remi_tutorial.benchmarks.analytic_critic import estimates_at_analytic_critic
from remi_tutorial.benchmarks.contrastive import CONTRASTIVE
from remi_tutorial.benchmarks.gaussian import GaussianBenchmarkConfig, run_gaussian_benchmark
from remi_tutorial.benchmarks.image_cells import run_image_cell
from remi_tutorial.benchmarks.image_config import ImageRunConfig, amp_supported
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.bounds import BOUND_NAMES, get_bound
from remi_tutorial.critics import ImageCritic, SeparableCritic
from remi_tutorial.datasets import ImageBatches, load_digits
from remi_tutorial.explicit import closed_form_mi, explicit_mi
from remi_tutorial.networks import ResNet18, SmallConvNet
from remi_tutorial.stacked import stack_bounds
from remi_tutorial.tasks import (
    Batch,
    contrastive_masks,
    gaussian_batches,
    gaussian_mi,
    one_hot_batches,
    paired_masks,
    sample_gaussian,
)
from remi_tutorial.train import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
F32, F64 = torch.float32, torch.float64

F64_TOLERANCE = dict(rtol=1e-10, atol=1e-10)
F32_TOLERANCE = dict(rtol=1e-5, atol=1e-5)
"""float32: each field of a bound is a few reductions (a mean, a log-sum-exp) over at most
``N M = 64`` scores of size ~3. Summed in another order, such a reduction differs by at most
~``log2(N M) * eps * mean |score|`` = 6 x 1.2e-7 x 3 ~ 2e-6 (Higham's bound for pairwise
summation; a serial sum is worse by sqrt(N M) on average, not in the worst case); 1e-5 is
that with a margin of five, about 80 float32 units in the last place of a value of 1."""
TOLERANCES = {F32: F32_TOLERANCE, F64: F64_TOLERANCE}


def assert_same_batch(on_cuda: Batch, on_cpu: Batch):
    """Equal, not close: the same draws, moved to another device."""
    assert len(on_cuda.inputs) == len(on_cpu.inputs)
    for cuda_input, cpu_input in zip(on_cuda.inputs, on_cpu.inputs):
        assert cuda_input.device.type == "cuda"
        assert torch.equal(cuda_input.cpu(), cpu_input)
    assert on_cuda.positive.device.type == "cuda"
    assert torch.equal(on_cuda.positive.cpu(), on_cpu.positive)
    assert (on_cuda.negative is None) == (on_cpu.negative is None)
    if on_cpu.negative is not None:
        assert torch.equal(on_cuda.negative.cpu(), on_cpu.negative)
    assert on_cuda.true_mi == on_cpu.true_mi


def masks(kind: str, n: int = 8):
    if kind == "paired":
        return paired_masks(n)
    return contrastive_masks(torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]))


def evaluate_with_gradient(bound, scores, positive, negative, device):
    """The bound's fields and the gradient of its objective, computed on ``device``."""
    scores = scores.detach().to(device).requires_grad_()
    result = bound(scores, positive.to(device), negative.to(device))
    result.objective.sum().backward()
    return result, scores.grad


# --------------------------------------------------------------------------- the bounds


@pytest.mark.parametrize("mask_kind", ["paired", "contrastive"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", BOUND_NAMES)
def test_each_bound_on_cuda_equals_the_cpu_result_and_its_gradient(name, dtype, mask_kind):
    positive, negative = masks(mask_kind)
    generator = torch.Generator().manual_seed(BOUND_NAMES.index(name))
    scores = 2.0 * torch.randn(8, 8, generator=generator, dtype=dtype)
    bound = get_bound(name, **GaussianBenchmarkConfig().bound_params()[name])
    on_cuda, cuda_grad = evaluate_with_gradient(bound, scores, positive, negative, CUDA)
    on_cpu, cpu_grad = evaluate_with_gradient(bound, scores, positive, negative, CPU)
    for field, cuda_value, cpu_value in zip(on_cpu._fields, on_cuda, on_cpu):
        assert cuda_value.device.type == "cuda" and cuda_value.dtype == dtype
        torch.testing.assert_close(cuda_value.cpu(), cpu_value, **TOLERANCES[dtype],
                                   msg=lambda text, field=field: f"{name}.{field}: {text}")
    torch.testing.assert_close(cuda_grad.cpu(), cpu_grad, **TOLERANCES[dtype])


@pytest.mark.parametrize("mask_kind", ["paired", "contrastive"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_stacked_bound_on_cuda_equals_the_cpu_result_and_its_gradient(dtype, mask_kind):
    positive, negative = masks(mask_kind)
    generator = torch.Generator().manual_seed(0)
    scores = 2.0 * torch.randn(len(BOUND_NAMES), 8, 8, generator=generator, dtype=dtype)
    bound = stack_bounds(list(BOUND_NAMES), GaussianBenchmarkConfig().bound_params())
    on_cuda, cuda_grad = evaluate_with_gradient(bound, scores, positive, negative, CUDA)
    on_cpu, cpu_grad = evaluate_with_gradient(bound, scores, positive, negative, CPU)
    for field, cuda_value, cpu_value in zip(on_cpu._fields, on_cuda, on_cpu):
        torch.testing.assert_close(cuda_value.cpu(), cpu_value, **TOLERANCES[dtype],
                                   msg=lambda text, field=field: f"{field}: {text}")
    torch.testing.assert_close(cuda_grad.cpu(), cpu_grad, **TOLERANCES[dtype])


# --------------------------------------------------------------------------- the samplers


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_gaussian_batches_are_the_same_on_cuda_and_cpu(dtype):
    def stream(device):
        return gaussian_batches(20, 64, mi=lambda step: 2.0 + step, seed=3, device=device,
                                dtype=dtype)

    on_cuda, on_cpu = stream(CUDA), stream(CPU)
    for step in range(3):
        assert_same_batch(on_cuda(step), on_cpu(step))


@pytest.mark.parametrize("marginal", ["independent", "off_diagonal"])
def test_one_hot_batches_are_the_same_on_cuda_and_cpu(marginal):
    on_cuda = one_hot_batches(10, 32, marginal=marginal, seed=4, device=CUDA)
    on_cpu = one_hot_batches(10, 32, marginal=marginal, seed=4, device=CPU)
    for step in range(3):
        assert_same_batch(on_cuda(step), on_cpu(step))


def test_analytic_critic_estimates_are_the_same_on_cuda_and_cpu():
    settings = dict(bounds=BOUND_NAMES, batch_sizes=(8, 64), mi=4.0, dim=20, repeats=4, seed=2)
    on_cuda = estimates_at_analytic_critic(**settings, device=CUDA)
    on_cpu = estimates_at_analytic_critic(**settings, device=CPU)
    assert on_cuda[["bound", "batch_size", "repeat"]].equals(on_cpu[["bound", "batch_size", "repeat"]])
    np.testing.assert_allclose(on_cuda.estimate, on_cpu.estimate, **F64_TOLERANCE)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.mark.parametrize("images_on", ["cpu", "cuda"])
@pytest.mark.parametrize("benchmark", [SUPERVISED, CONTRASTIVE], ids=["supervised", "contrastive"])
def test_image_batches_are_the_same_on_cuda_and_cpu(digits, benchmark, images_on):
    # Images on the CPU are moved one batch at a time; images already on the GPU (as
    # place_dataset leaves them when they fit) are indexed there.
    source = digits.to(images_on)
    settings = dict(masks=benchmark.masks, pair_every_batch=benchmark.pair_every_batch,
                    batch_size=10, seed=5)
    on_cuda = ImageBatches(source.train_images, source.train_labels, digits.num_classes,
                           device=CUDA, **settings)
    on_cpu = ImageBatches(digits.train_images, digits.train_labels, digits.num_classes,
                          device=CPU, **settings)
    per_epoch = on_cpu.steps_per_epoch
    for step in (0, 1, per_epoch - 1, per_epoch, per_epoch + 1):  # across an epoch boundary
        assert_same_batch(on_cuda(step), on_cpu(step))


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_batched_training_equals_sequential_training_on_cuda_in_float64(critic):
    settings = dict(critic=critic, seeds=[0, 3], estimators="all", levels=(1.0, 2.0, 3.0),
                    stage_steps=4, dim=3, batch_size=8, hidden_dims=(8,), embed_dim=4,
                    lr=1e-2, dtype=F64, check_every=5)
    batched = run_gaussian_benchmark(GaussianBenchmarkConfig(batched=True, **settings),
                                     device=CUDA, progress=False)
    sequential = run_gaussian_benchmark(GaussianBenchmarkConfig(batched=False, **settings),
                                        device=CUDA, progress=False)
    assert batched[["estimator", "seed", "step"]].equals(sequential[["estimator", "seed", "step"]])
    for field in ("mi", "objective", "penalty"):
        np.testing.assert_allclose(batched[field], sequential[field], **F64_TOLERANCE,
                                   err_msg=field)
    # As on the CPU (tests/test_gaussian_benchmark.py): MINE and InfoNCE leave the critic's
    # additive constant free, its gradient is rounding, and Adam turns that into steps of
    # ~lr * 1e-9 that move the two terms (not their difference) apart.
    for field in ("joint", "marginal"):
        np.testing.assert_allclose(batched[field], sequential[field], rtol=0, atol=1e-8,
                                   err_msg=field)


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_the_compiled_batched_gaussian_run_on_cuda_trains_like_the_eager_one(critic):
    """``compile=True`` on a GPU captures each step in CUDA graphs; in float64 it computes what
    the eager run computes, step after step, for every estimator (the first step is eager
    in both)."""
    settings = dict(critic=critic, seeds=[0], estimators="all", levels=(1.0, 2.0),
                    stage_steps=6, dim=3, batch_size=8, hidden_dims=(8,), embed_dim=4,
                    lr=1e-2, dtype=F64, check_every=4)
    config = GaussianBenchmarkConfig(**settings)
    eager = run_gaussian_benchmark(config, device=CUDA, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compilation must not pass
        compiled = run_gaussian_benchmark(config, device=CUDA, progress=False, compile=True)
    assert compiled[["estimator", "seed", "step"]].equals(eager[["estimator", "seed", "step"]])
    # as on the CPU (tests/test_train.py): the same float64 arithmetic, fused and reduced in
    # another order, drifts apart by rounding over the steps
    for field in ("mi", "objective", "penalty"):
        np.testing.assert_allclose(compiled[field], eager[field], rtol=1e-9, atol=1e-9,
                                   err_msg=field)


CHECKPOINT_STEPS, CHECKPOINT_EVERY = 40, 10


def pure_gaussian_stream(device):
    """Batches that are a pure function of the step (as in tests/test_train_checkpoint.py),
    drawn on the CPU and moved to ``device``."""
    positive, negative = paired_masks(16, device=device)

    def batches(step):
        generator = torch.Generator().manual_seed(1000 + step)
        x, y = sample_gaussian(16, 2, 0.8, generator=generator, device=device, dtype=F64)
        return Batch((x, y), positive, negative, gaussian_mi(0.8, 2))

    return batches


def small_critic(seed, device):
    torch.manual_seed(seed)
    return SeparableCritic(2, 2, hidden_dims=(8,), embed_dim=4).to(device, F64)


def train_nwj(critic, batches, checkpoint=None):
    return train(critic, get_bound("nwj"), batches, steps=CHECKPOINT_STEPS, lr=1e-2,
                 check_every=4, checkpoint=checkpoint, checkpoint_every=CHECKPOINT_EVERY,
                 progress=False)


def test_a_run_checkpointed_on_cuda_resumes_on_the_cpu_as_an_uninterrupted_run(tmp_path):
    class Stop(Exception):
        """Stands for a process killed in the middle of its third checkpoint interval."""

    cuda_stream = pure_gaussian_stream(CUDA)

    def stopping(step):
        if step == 2 * CHECKPOINT_EVERY + 3:
            raise Stop
        return cuda_stream(step)

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Stop):
        train_nwj(small_critic(0, CUDA), stopping, checkpoint)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["step"] == 2 * CHECKPOINT_EVERY
    assert all(value.device.type == "cuda" for value in saved["critic"].values())

    resumed_critic = small_critic(1, CPU)  # other weights: the checkpoint must replace them
    resumed = train_nwj(resumed_critic, pure_gaussian_stream(CPU), checkpoint)
    uninterrupted_critic = small_critic(0, CPU)
    uninterrupted = train_nwj(uninterrupted_critic, pure_gaussian_stream(CPU))

    assert "resumed from step 20" in resumed.message
    assert resumed.history[["step", "true_mi"]].equals(uninterrupted.history[["step", "true_mi"]])
    # float64 on two devices: rounding differences of ~1e-16 that 40 Adam steps grow to far
    # less than 1e-7; a resume that lost the optimizer's state or the weights moves them by
    # more than 1e-3.
    for field in ("mi", "objective", "joint", "marginal", "penalty"):
        np.testing.assert_allclose(resumed.history[field], uninterrupted.history[field],
                                   rtol=0, atol=1e-7, err_msg=field)
    for name, value in uninterrupted_critic.state_dict().items():
        resumed_value = resumed_critic.state_dict()[name]
        assert resumed_value.device.type == "cpu"
        torch.testing.assert_close(resumed_value, value, rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- mixed precision


@pytest.fixture
def amp_device():
    if not amp_supported(CUDA):
        major, minor = torch.cuda.get_device_capability(CUDA)
        pytest.skip(f"this GPU (compute capability {major}.{minor}) trains in float32, no autocast")
    return CUDA


def test_amp_is_supported_exactly_from_compute_capability_8_0():
    assert amp_supported(CUDA) is (torch.cuda.get_device_capability(CUDA) >= (8, 0))


NETWORKS = {
    "small_on_digits": lambda kind: SmallConvNet(10 if kind == "logits" else None, in_channels=1),
    "resnet18_on_32x32": lambda kind: ResNet18(10 if kind == "logits" else None),
}

AMP_RELATIVE_TOLERANCE = 5e-2
"""bfloat16 keeps 8 significant bits: each rounding errs by up to 2^-9 ~ 2e-3. The features'
inputs and weights are rounded once per layer and the errors add up over the layers (and
batch norm's batch statistics carry them to every image), so the scores of ResNet-18 (18
layers) err by ~1e-2 relative and those of the small network (3 layers) by ~2e-3, as measured
with CPU autocast; 5e-2 leaves a margin of about 3 over ResNet-18's worst seed."""


@pytest.mark.parametrize("kind", ["logits", "dot"])
@pytest.mark.parametrize("network", NETWORKS)
def test_amp_scores_are_float32_finite_and_close_to_full_precision(amp_device, digits, network, kind):
    torch.manual_seed(0)
    net = NETWORKS[network](kind).to(amp_device)
    if network == "small_on_digits":
        images = digits.train_images[:64].to(amp_device)
    else:
        generator = torch.Generator().manual_seed(0)
        images = (2.0 * torch.rand(16, 3, 32, 32, generator=generator) - 1.0).to(amp_device)
    first_convolution = next(m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d))
    convolution_dtypes = []
    first_convolution.register_forward_hook(
        lambda module, args, output: convolution_dtypes.append(output.dtype))
    with torch.no_grad():  # batch norm in training mode, as the critic is trained
        mixed = ImageCritic(net, kind, amp=True)(images)
        full = ImageCritic(net, kind, amp=False)(images)
    assert convolution_dtypes == [torch.bfloat16, torch.float32]  # autocast was on, then off
    assert mixed.dtype == torch.float32 and mixed.device.type == "cuda"
    assert torch.isfinite(mixed).all()
    relative_error = float((mixed - full).norm() / full.norm())
    assert relative_error < AMP_RELATIVE_TOLERANCE


@pytest.mark.parametrize("benchmark, loss", [(SUPERVISED, "mine"), (CONTRASTIVE, "infonce")],
                         ids=["supervised", "contrastive"])
def test_a_digits_cell_with_amp_on_cuda_trains_to_finite_values(amp_device, digits, benchmark, loss):
    tiny = replace(digits, train_images=digits.train_images[:200],
                   train_labels=digits.train_labels[:200],
                   test_images=digits.test_images[:60], test_labels=digits.test_labels[:60])
    config = ImageRunConfig(benchmark=benchmark, dataset="digits", loss=loss, seed=0,
                            batch_size=10, epochs=2, lr=1e-3, model="small", amp=True)
    run = run_image_cell(config, tiny, device=amp_device, progress=False)
    assert run.summary["amp"] is True and run.summary["device"].startswith("cuda")
    assert run.summary["diverged_at"] is None
    assert len(run.history) == 2 * (200 // 10)
    fields = run.history[["mi", "objective", "joint", "marginal", "penalty"]].to_numpy()
    assert np.isfinite(fields).all()
    assert math.isfinite(run.summary["mi_estimate"])


# --------------------------------------------------------------------------- the second-order estimator


def mixed_pair(n=96, dx=3, dy=4, leading=(), seed=0):
    """Dependent, non-Gaussian, differently sized float64 x and y, on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*leading, n, dx, generator=generator, dtype=F64)
    mixing = torch.randn(dx, dy, generator=generator, dtype=F64)
    y = torch.tanh(x @ mixing) + 0.5 * torch.randn(*leading, n, dy, generator=generator, dtype=F64)
    return x ** 3, y


@pytest.mark.parametrize("ridge, debias", [(1e-3, False), (0.0, True)], ids=["ridge", "debiased"])
def test_closed_form_mi_on_cuda_equals_the_cpu_result(ridge, debias):
    x, y = mixed_pair(leading=(3,))
    on_cuda = closed_form_mi(x.to(CUDA), y.to(CUDA), ridge=ridge, debias=debias)
    on_cpu = closed_form_mi(x, y, ridge=ridge, debias=debias)
    assert on_cuda.device.type == "cuda" and on_cuda.shape == (3,)
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, **F64_TOLERANCE)


EXPLICIT_CASES = {
    "exact": dict(),
    "series": dict(order=6),
    "series_fixed_beta": dict(order=4, beta=0.3),
    "debiased": dict(ridge=0.0, debias=True),
    "positive_mask": dict(positive="shuffled"),
}


@pytest.mark.parametrize("case", EXPLICIT_CASES)
def test_explicit_mi_on_cuda_equals_the_cpu_result_and_its_gradient(case):
    params = dict(EXPLICIT_CASES[case])
    x, y = mixed_pair()
    positive = None
    if params.pop("positive", None) == "shuffled":
        # Row i of x is paired with row order[i] of y; the mask says so.
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
        y = y[torch.argsort(order)]
        positive = torch.zeros(len(x), len(y), dtype=torch.bool)
        positive[torch.arange(len(x)), order] = True
    objective = functools.partial(explicit_mi, **params)

    def evaluate(device):
        inputs = [value.detach().to(device).requires_grad_() for value in (x, y)]
        result = objective(inputs, None if positive is None else positive.to(device))
        result.objective.backward()
        return result, [value.grad for value in inputs]

    on_cuda, cuda_grads = evaluate(CUDA)
    on_cpu, cpu_grads = evaluate(CPU)
    for field, cuda_value, cpu_value in zip(on_cpu._fields, on_cuda, on_cpu):
        assert cuda_value.device.type == "cuda"
        torch.testing.assert_close(cuda_value.cpu(), cpu_value, **F64_TOLERANCE,
                                   msg=lambda text, field=field: f"{field}: {text}")
    for cuda_grad, cpu_grad in zip(cuda_grads, cpu_grads):
        torch.testing.assert_close(cuda_grad.cpu(), cpu_grad, **F64_TOLERANCE)
