"""A stack of estimators survives one that diverges: it is frozen and named, the others train on."""

import math
import warnings

import pytest
import torch

from remi_tutorial.critics import SeparableCritic
from remi_tutorial.diagnose import diagnose
from remi_tutorial.stacked import StackedSeparableCritic, stack_bounds
from remi_tutorial.tasks import Batch, paired_masks, sample_gaussian
from remi_tutorial.train import train

from helpers import ExplodingStack

POSITIVE, NEGATIVE = paired_masks(16)
STEPS, CHECK, EXPLODES = 30, 5, 13  # estimator 1 diverges at step 13; its last good check is 10
NAMES = ["nwj", "nwj", "mine"]


def batches(step):
    """A batch that is a pure function of the step (so a resumed run sees the same batches)."""
    generator = torch.Generator().manual_seed(1000 + step)
    x, y = sample_gaussian(16, 2, 0.8, generator=generator)
    return Batch((x.double(), y.double()), POSITIVE, NEGATIVE, -math.log(1 - 0.64))


def critics():
    torch.manual_seed(0)
    return [SeparableCritic(2, 2, hidden_dims=(8,), embed_dim=4).double() for _ in NAMES]


def run(critic, names, steps=STEPS, checkpoint=None, stream=batches):
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(critic, stack_bounds(names), stream, steps=steps, optimizer=optimizer,
                       check_every=CHECK, checkpoint=checkpoint, checkpoint_every=10,
                       progress=False)
    return result, optimizer, [str(w.message) for w in caught if w.category is RuntimeWarning]


def exploding_stack():
    return ExplodingStack(StackedSeparableCritic(critics()), explode=1, after=EXPLODES)


def slices(critic, optimizer, index):
    """Estimator ``index``'s slice of every weight and of Adam's two moments."""
    out = []
    for parameter in critic.parameters():
        state = optimizer.state[parameter]
        out += [parameter[index], state["exp_avg"][index], state["exp_avg_sq"][index]]
    return [tensor.detach().clone() for tensor in out]


def test_the_others_train_to_the_end_as_in_a_stack_without_the_diverging_one():
    stack = exploding_stack()
    result, _, _ = run(stack, NAMES)
    survivors = critics()
    clean = StackedSeparableCritic([survivors[0], survivors[2]])
    alone, _, warned = run(clean, [NAMES[0], NAMES[2]])
    assert warned == [] and alone.diverged == {}
    assert result.diverged_at is None and result.diverged == {1: EXPLODES}
    history = result.history
    for index, twin in ((0, 0), (2, 1)):
        mine = history[history.estimator == index]
        theirs = alone.history[alone.history.estimator == twin]
        assert mine.step.tolist() == list(range(STEPS))
        torch.testing.assert_close(torch.tensor(mine.mi.to_numpy()),
                                   torch.tensor(theirs.mi.to_numpy()), rtol=0, atol=1e-12)
        for a, b in zip(stack.stack.unstack(index).parameters(), clean.unstack(twin).parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # the estimator that diverged keeps the steps before its divergence, all finite
    frozen = history[history.estimator == 1]
    assert frozen.step.tolist() == list(range(EXPLODES))
    assert frozen.objective.map(math.isfinite).all()


def test_the_diverged_estimator_is_held_at_its_last_good_check_weights_and_optimizer_state():
    stack = exploding_stack()
    _, optimizer, _ = run(stack, NAMES)
    last_check = EXPLODES // CHECK * CHECK
    before = exploding_stack()
    _, before_optimizer, warned = run(before, NAMES, steps=last_check)
    assert warned == []
    held, expected = slices(stack, optimizer, 1), slices(before, before_optimizer, 1)
    assert all(torch.equal(a, b) for a, b in zip(held, expected))
    # and the others did move after that check
    assert not all(torch.equal(a, b) for a, b in
                   zip(slices(stack, optimizer, 0), slices(before, before_optimizer, 0)))


def test_the_result_and_the_warning_name_the_estimator_and_its_step():
    result, _, warned = run(exploding_stack(), NAMES)
    assert len(warned) == 1
    for text in (warned[0], result.message):
        assert f"estimator 1 (nwj) diverged at step {EXPLODES}" in text
        assert "estimator 0" not in text and "estimator 2" not in text
        assert f"finished {STEPS} steps" in text


def test_a_run_resumed_after_the_divergence_ends_as_the_uninterrupted_one(tmp_path):
    class Stop(Exception):
        pass

    def stopping(step):
        if step == 22:  # after the checkpoint of step 20, which holds the frozen estimator
            raise Stop
        return batches(step)

    with pytest.raises(Stop):
        run(exploding_stack(), NAMES, checkpoint=tmp_path / "run.pt", stream=stopping)
    resumed_stack = exploding_stack()
    resumed_stack.calls = EXPLODES  # the resumed critic explodes from its first call
    resumed, resumed_optimizer, warned = run(resumed_stack, NAMES, checkpoint=tmp_path / "run.pt")
    stack = exploding_stack()
    uninterrupted, optimizer, _ = run(stack, NAMES)
    assert resumed.diverged == {1: EXPLODES} and "resumed from step 20" in resumed.message
    assert resumed.history.equals(uninterrupted.history)
    for index in range(len(NAMES)):
        assert all(torch.equal(a, b) for a, b in zip(slices(resumed_stack, resumed_optimizer, index),
                                                    slices(stack, optimizer, index)))


def test_a_stack_whose_every_estimator_diverges_stops_as_a_single_one_does():
    stack = ExplodingStack(StackedSeparableCritic(critics()[:1] * 2), explode=[0, 1],
                           after=EXPLODES)
    result, _, warned = run(stack, ["nwj", "nwj"])
    assert result.diverged_at == EXPLODES and result.diverged == {0: EXPLODES, 1: EXPLODES}
    assert len(warned) == 1 and f"stopped at step {EXPLODES}" in warned[0]
    assert "estimator 0 (nwj), estimator 1 (nwj)" in warned[0]
    assert result.history.step.max() == EXPLODES - 1


def test_diagnose_blames_only_the_estimator_that_diverged_in_a_stack():
    result, _, _ = run(exploding_stack(), NAMES)
    diagnosis = diagnose(result, bounds=dict(enumerate(NAMES)))
    exploded = diagnosis.findings[diagnosis.findings.symptom == "explosion"]
    assert exploded.estimator.tolist() == [1]
    assert exploded.began_at_step.tolist() == [EXPLODES]
    assert "frozen there" in exploded.detail.iloc[0]


def test_diagnose_rejects_a_divergence_of_an_estimator_the_history_lacks():
    result, _, _ = run(exploding_stack(), NAMES)
    with pytest.raises(ValueError, match="not a run of the history"):
        diagnose(result.history, diverged_at={7: 3})
