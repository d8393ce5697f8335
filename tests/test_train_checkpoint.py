import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from remi_tutorial.bounds import get_bound
from remi_tutorial.train import train

from helpers import ExplodingCritic

# A task whose batch at each step is a pure function of the step, and a critic; shared with
# the process that the kill test starts.
SETUP = textwrap.dedent("""
    import math
    import torch
    from remi_tutorial.critics import SeparableCritic
    from remi_tutorial.tasks import Batch, paired_masks, sample_gaussian

    POSITIVE, NEGATIVE = paired_masks(16)

    def batches(step):
        generator = torch.Generator().manual_seed(1000 + step)
        x, y = sample_gaussian(16, 2, 0.8, generator=generator)
        return Batch((x, y), POSITIVE, NEGATIVE, -math.log(1 - 0.64))

    def make_critic(seed):
        torch.manual_seed(seed)
        return SeparableCritic(2, 2, hidden_dims=(8,), embed_dim=4)
""")
namespace: dict = {}
exec(SETUP, namespace)
batches, make_critic = namespace["batches"], namespace["make_critic"]

STEPS, EPOCH = 40, 10


def run(critic, checkpoint=None, stream=batches, steps=STEPS, bound="nwj"):
    return train(critic, get_bound(bound), stream, steps=steps, lr=1e-2, check_every=4,
                 checkpoint=checkpoint, checkpoint_every=EPOCH, progress=False)


def same_weights(first, second):
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path):
    checkpoint = tmp_path / "run.pt"
    script = SETUP + textwrap.dedent(f"""
        import time
        from remi_tutorial.bounds import get_bound
        from remi_tutorial.train import train
        torch.set_num_threads(1)

        def blocking(step):
            if step == {EPOCH + 3}:
                time.sleep(600)  # killed here, in the middle of the second epoch
            return batches(step)

        train(make_critic(0), get_bound("nwj"), blocking, steps={STEPS}, lr=1e-2, check_every=4,
              checkpoint={str(checkpoint)!r}, checkpoint_every={EPOCH}, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert process.poll() is None, "the training process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.1)
        time.sleep(0.5)  # it is now blocked at step EPOCH + 3
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert torch.load(checkpoint, weights_only=True)["step"] == EPOCH

    resumed_critic = make_critic(1)  # other initial weights: the checkpoint must replace them
    resumed = run(resumed_critic, checkpoint)
    uninterrupted_critic = make_critic(0)
    uninterrupted = run(uninterrupted_critic)

    assert resumed.history.equals(uninterrupted.history)
    assert same_weights(resumed_critic, uninterrupted_critic)
    assert "resumed from step 10" in resumed.message


def test_resume_restores_the_optimizer_state(tmp_path):
    class Stop(Exception):
        pass

    def stopping(step):
        if step == 2 * EPOCH + 1:
            raise Stop
        return batches(step)

    with pytest.raises(Stop):
        run(make_critic(0), tmp_path / "run.pt", stream=stopping)
    resumed_critic = make_critic(0)
    optimizer = torch.optim.Adam(resumed_critic.parameters(), lr=1e-2)
    train(resumed_critic, get_bound("nwj"), batches, steps=2 * EPOCH, optimizer=optimizer,
          checkpoint=tmp_path / "run.pt", progress=False)
    assert all(state["step"] == 2 * EPOCH for state in optimizer.state.values())


def test_checkpoints_are_written_at_every_checkpoint_interval(tmp_path):
    seen = []

    def watching(step):
        if step % EPOCH == 0 and step:
            seen.append(torch.load(tmp_path / "run.pt", weights_only=True)["step"])
        return batches(step)

    run(make_critic(0), tmp_path / "run.pt", stream=watching)
    assert seen == [10, 20, 30]
    final = torch.load(tmp_path / "run.pt", weights_only=True)
    assert final["step"] == STEPS and len(final["records"]) == STEPS


def test_a_finished_checkpoint_returns_its_history_without_training(tmp_path):
    first = run(make_critic(0), tmp_path / "run.pt")
    calls = []

    def counting(step):
        calls.append(step)
        return batches(step)

    again = run(make_critic(0), tmp_path / "run.pt", stream=counting)
    assert calls == []
    assert again.history.equals(first.history)


def test_a_leftover_partial_file_does_not_affect_the_resume(tmp_path):
    run(make_critic(0), tmp_path / "run.pt", steps=EPOCH)
    (tmp_path / "run.pt.partial").write_bytes(b"half a checkpoint")
    resumed = run(make_critic(0), tmp_path / "run.pt")
    assert resumed.history.equals(run(make_critic(0)).history)


def test_a_checkpoint_with_more_steps_than_asked_for_raises(tmp_path):
    run(make_critic(0), tmp_path / "run.pt")
    with pytest.raises(ValueError, match="holds 40 steps"):
        run(make_critic(0), tmp_path / "run.pt", steps=20)


def test_a_divergent_run_keeps_its_history_and_its_last_good_checkpoint(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run(ExplodingCritic(explode_after=25), tmp_path / "run.pt")
    assert result.diverged_at == 25
    assert len(result.history) == 25
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    assert saved["step"] == 20
    assert torch.isfinite(saved["records"]).all() and len(saved["records"]) == 20
    after_20_steps = ExplodingCritic(explode_after=25)
    run(after_20_steps, steps=20)
    assert torch.equal(saved["critic"]["scale"], after_20_steps.scale)
    assert not Path(str(tmp_path / "run.pt") + ".partial").exists()


def test_without_a_checkpoint_no_file_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(make_critic(0))
    assert os.listdir(tmp_path) == []
