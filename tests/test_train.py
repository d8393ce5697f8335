import shutil
import warnings

import pytest
import torch
from torch._dynamo.backends.common import aot_autograd

from remi_tutorial.bounds import BOUND_NAMES, get_bound
from remi_tutorial.critics import ConcatCritic, SeparableCritic
from remi_tutorial.stacked import StackedSeparableCritic, stack_bounds
from remi_tutorial.tasks import Batch, gaussian_batches, paired_masks
from remi_tutorial.train import CompileFailedWarning, make_adam, train

from helpers import ExplodingCritic


def small_run(steps=30, check_every=7, bound="mine"):
    critic = SeparableCritic(2, 2, hidden_dims=(8,), embed_dim=4)
    return critic, train(critic, get_bound(bound), gaussian_batches(2, 16, 1.0, seed=0),
                         steps=steps, check_every=check_every, lr=1e-2, progress=False)


def test_history_has_one_row_per_step_with_every_bound_field():
    _, result = small_run()
    assert list(result.history.columns) == ["step", "true_mi", "mi", "objective", "joint", "marginal", "penalty"]
    assert result.history.step.tolist() == list(range(30))
    assert result.diverged_at is None


def test_history_rows_of_different_chunks_differ():
    _, result = small_run(steps=30, check_every=7)
    joint = result.history.joint
    assert joint.iloc[0:7].tolist() != joint.iloc[7:14].tolist()


def test_history_is_the_same_whatever_the_check_interval():
    torch.manual_seed(0)
    _, every_7 = small_run(check_every=7)
    torch.manual_seed(0)
    _, every_30 = small_run(check_every=30)
    assert every_7.history.equals(every_30.history)


def test_training_raises_the_estimate():
    torch.manual_seed(0)
    critic = ConcatCritic(2, 2, hidden_dims=(16,))
    result = train(critic, get_bound("nwj"), gaussian_batches(2, 32, 1.0, seed=0),
                   steps=300, lr=1e-2, progress=False)
    assert result.history.mi.tail(50).mean() > result.history.mi.head(10).mean() + 0.3


def test_regularized_bound_records_its_penalty():
    _, result = small_run(bound="remine")
    assert (result.history.penalty > 0).all()
    assert (result.history.objective <= result.history.mi).all()


def test_divergence_stops_with_a_warning_and_keeps_the_finite_history():
    critic = ExplodingCritic(explode_after=5)
    with pytest.warns(RuntimeWarning, match="stopped at step 5"):
        result = train(critic, get_bound("nwj"), gaussian_batches(2, 8, 1.0, seed=0),
                       steps=20, check_every=5, progress=False, lr=1e-3)
    assert result.diverged_at == 5
    assert len(result.history) == 5
    assert torch.isfinite(torch.tensor(result.history.mi.values)).all()


def test_divergence_restores_the_last_finite_weights():
    def trained(steps):
        critic = ExplodingCritic(explode_after=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = train(critic, get_bound("nwj"), gaussian_batches(2, 8, 1.0, seed=0),
                           steps=steps, check_every=5, progress=False, lr=1e-3)
        return critic, result

    diverged, result = trained(steps=20)
    last_good, _ = trained(steps=5)  # the five finite steps before the check that failed
    assert result.diverged_at == 5
    assert not torch.equal(last_good.scale, torch.ones(()))  # five steps moved the weight
    assert torch.equal(diverged.scale, last_good.scale)


def test_unusable_first_batch_raises_value_error():
    positive, _ = paired_masks(4)
    def batches(step):
        return Batch((torch.randn(4, 2), torch.randn(4, 2)), positive, torch.zeros(4, 4, dtype=torch.bool), 1.0)
    with pytest.raises(ValueError, match="negative mask selects no pair"):
        train(SeparableCritic(2, 2, (4,), 2), get_bound("mine"), batches, steps=3, progress=False)


class TwoCritics(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.critics = torch.nn.ModuleList([SeparableCritic(2, 2, (8,), 4) for _ in range(2)])

    def forward(self, x, y):
        return torch.stack([critic(x, y) for critic in self.critics])


def test_stacked_estimators_train_like_separate_ones():
    torch.manual_seed(0)
    stacked = TwoCritics().double()
    singles = [critic for critic in TwoCritics().double().critics]
    for single, twin in zip(singles, stacked.critics):
        single.load_state_dict(twin.state_dict())
    batches = gaussian_batches(2, 16, 1.0, seed=0, dtype=torch.float64)
    together = train(stacked, get_bound("nwj"), batches, steps=20, lr=1e-2, progress=False).history
    assert together.estimator.tolist()[:4] == [0, 1, 0, 1]
    for index, single in enumerate(singles):
        alone = train(single, get_bound("nwj"), gaussian_batches(2, 16, 1.0, seed=0, dtype=torch.float64),
                      steps=20, lr=1e-2, progress=False).history
        mine = together[together.estimator == index].mi.to_numpy()
        assert abs(mine - alone.mi.to_numpy()).max() < 1e-10


class HugeScoreCritic(torch.nn.Module):
    """Scores so large that e^T overflows float32 while softplus(T) stays finite."""

    def __init__(self):
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(200.0))

    def forward(self, x, y):
        return self.offset + x @ y.T


def test_js_keeps_training_while_its_reported_nwj_value_is_infinite():
    result = train(HugeScoreCritic(), get_bound("js"), gaussian_batches(2, 8, 1.0, seed=0),
                   steps=10, check_every=5, progress=False, lr=1e-3)
    assert result.diverged_at is None
    assert len(result.history) == 10
    assert (result.history.mi == -float("inf")).all()
    assert torch.isfinite(torch.tensor(result.history.objective.values)).all()


# --------------------------------------------------------------------------- make_adam


def test_make_adam_fuses_on_a_cpu_where_torch_has_the_fused_kernel(monkeypatch):
    weight = torch.nn.Parameter(torch.ones(3))
    monkeypatch.setattr(torch, "__version__", "2.4.0")
    assert make_adam([weight], lr=1e-3).defaults["fused"] is True


def test_make_adam_does_not_fuse_on_a_cpu_before_torch_2_4(monkeypatch):
    weight = torch.nn.Parameter(torch.ones(3))
    monkeypatch.setattr(torch, "__version__", "2.3.1")
    optimizer = make_adam([weight], lr=1e-3)
    assert optimizer.defaults["fused"] is None
    weight.sum().backward()
    optimizer.step()  # the default implementation, which every torch >= 2.1 has
    assert torch.allclose(weight, torch.full((3,), 1 - 1e-3))


def test_make_adam_does_not_fuse_on_a_device_without_the_kernel():
    weight = torch.nn.Parameter(torch.ones(3, device="meta"))
    assert make_adam([weight], lr=1e-3).defaults["fused"] is None


def test_make_adam_takes_a_parameter_iterator_and_its_learning_rate():
    critic = SeparableCritic(2, 2, hidden_dims=(4,), embed_dim=2)
    optimizer = make_adam(critic.parameters(), lr=0.25)
    assert optimizer.defaults["lr"] == 0.25
    assert len(optimizer.param_groups[0]["params"]) == len(list(critic.parameters()))


def stacked_run(compile, steps=12):
    """Three estimators with their own bounds and weights, trained stacked in float64."""
    torch.manual_seed(0)
    names = ["mine", "remine", "infonce"]
    critics = [SeparableCritic(2, 2, hidden_dims=(8,), embed_dim=4).double() for _ in names]
    stacked = StackedSeparableCritic(critics)
    result = train(stacked, stack_bounds(names),
                   gaussian_batches(2, 16, 1.0, seed=0, dtype=torch.float64), steps=steps,
                   check_every=5, lr=1e-2, progress=False, compile=compile)
    return stacked, result


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_a_compiled_run_trains_like_the_eager_run(monkeypatch):
    eager_critic, eager = stacked_run(compile=False)
    calls, real_compile = [], torch.compile

    def counting_compile(function, **options):
        compiled = real_compile(function, **options)
        return lambda *args: calls.append(1) or compiled(*args)

    monkeypatch.setattr(torch, "compile", counting_compile)
    torch._dynamo.reset()  # forget what other tests compiled: this run must compile its own
    frames = torch._dynamo.utils.counters["frames"]
    compiled_before = frames["ok"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compiler that fails: say so here
        compiled_critic, compiled = stacked_run(compile=True)
    assert len(calls) == 11  # every step but the first, which checks its inputs eagerly
    assert frames["ok"] > compiled_before  # compiled, not run eagerly by torch.compile
    # the same float64 arithmetic, fused differently: equal up to rounding, step after step
    torch.testing.assert_close(compiled.history.to_numpy(), eager.history.to_numpy(),
                               rtol=1e-9, atol=1e-9)
    for after, before in zip(compiled_critic.parameters(), eager_critic.parameters()):
        torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


class FailingCompile:
    """Stands in for ``torch.compile``: records its arguments; the function it returns
    fails as a compiler that is missing does."""

    def __init__(self):
        self.modes = []

    def __call__(self, function, *, mode, dynamic):
        self.modes.append(mode)

        def compiled(*args):
            raise torch._dynamo.exc.TorchDynamoException("no working C++ compiler")

        return compiled


def test_a_run_whose_compilation_fails_warns_and_trains_eagerly(monkeypatch):
    _, eager = stacked_run(compile=False)
    failing = FailingCompile()
    monkeypatch.setattr(torch, "compile", failing)
    with pytest.warns(CompileFailedWarning, match="torch.compile failed .*training eagerly"):
        _, fallback = stacked_run(compile=True)
    assert fallback.history.equals(eager.history)
    assert failing.modes == ["default"]  # on a CPU: inductor's default mode, no CUDA graphs


def test_every_run_of_a_sequence_of_compiled_runs_is_compiled(monkeypatch):
    """Each bound needs a compiled version of its own: the twelve trained one after another
    need more than torch.compile keeps by default (8), past which it runs them eagerly."""
    real_compile = torch.compile
    monkeypatch.setattr(  # dynamo's tracing without inductor's code generation: fast
        torch, "compile", lambda function, mode, dynamic: real_compile(function, backend="eager",
                                                                      dynamic=dynamic))
    torch._dynamo.reset()
    frames = torch._dynamo.utils.counters["frames"]
    compiled_before = frames["ok"]
    for name in BOUND_NAMES:
        critic = SeparableCritic(2, 2, hidden_dims=(4,), embed_dim=2)
        train(critic, get_bound(name), gaussian_batches(2, 8, 1.0, seed=0), steps=3,
              progress=False, compile=True)
    assert frames["ok"] - compiled_before >= len(BOUND_NAMES)  # a compiled frame per bound


def test_a_run_whose_backward_fails_to_compile_warns_and_trains_eagerly(monkeypatch):
    """torch.compile compiles the backward at the first ``backward()``, after the forward
    has run compiled: a failure there falls back too, and the step is redone eagerly."""
    _, eager = stacked_run(compile=False)

    def failing_backward(graph, example_inputs):
        raise torch._dynamo.exc.TorchDynamoException("no Triton for the backward")

    backend = aot_autograd(fw_compiler=lambda graph, example_inputs: graph.forward,
                           bw_compiler=failing_backward)
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda function, mode, dynamic: real_compile(
        function, backend=backend, dynamic=dynamic))
    torch._dynamo.reset()
    with pytest.warns(CompileFailedWarning, match="no Triton for the backward.*training eagerly"):
        _, fallback = stacked_run(compile=True)
    assert fallback.history.equals(eager.history)


def test_compile_takes_a_torch_compile_mode(monkeypatch):
    failing = FailingCompile()
    monkeypatch.setattr(torch, "compile", failing)
    with pytest.warns(CompileFailedWarning, match="torch.compile failed"):
        stacked_run(compile="max-autotune-no-cudagraphs", steps=3)
    assert failing.modes == ["max-autotune-no-cudagraphs"]
