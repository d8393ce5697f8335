import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.contrastive import first_step, nearest_neighbour_accuracy
from remi_tutorial.benchmarks.image_runs import (
    CURVES_FILE,
    PAPER_ALPHAS,
    PRESETS,
    RUNS_FILE,
    ImageRunConfig,
    append_rows,
    image_configs,
    read_results,
    run_image_cell,
    run_sweep,
)
from remi_tutorial.benchmarks.supervised import test_accuracy as classifier_accuracy
from remi_tutorial.images import ImageBatches, ImageCritic, label_entropy, load_digits
from helpers import killed_and_resumed_cell
from remi_tutorial.tasks import Batch, contrastive_masks


@pytest.fixture(scope="module")
def tiny_digits():
    """200 training and 60 test digits: enough for a few quick epochs."""
    digits = load_digits()
    return replace(digits, train_images=digits.train_images[:200], train_labels=digits.train_labels[:200],
                   test_images=digits.test_images[:60], test_labels=digits.test_labels[:60])


def tiny_config(benchmark="supervised", loss="mine", **changes):
    settings = dict(benchmark=benchmark, dataset="digits", loss=loss, seed=0, batch_size=10,
                    epochs=2, lr=1e-3, model="small")
    if loss.startswith("re"):
        settings["alpha"] = 0.1
    if "smile" in loss:
        settings["tau"] = 10.0
    settings.update(changes)
    return ImageRunConfig(**settings)


# --------------------------------------------------------------------------- settings


def test_paper_presets_hold_the_papers_batch_sizes_and_epochs():
    assert PRESETS[("supervised", "cifar10")] == dict(batch_size=10, epochs=40, lr=1e-3, model="resnet18")
    assert PRESETS[("contrastive", "cifar10")] == dict(batch_size=10, epochs=100, lr=1e-3, model="resnet18")
    assert PRESETS[("supervised", "cifar100")] == dict(batch_size=100, epochs=100, lr=1e-3, model="resnet18")
    assert PRESETS[("contrastive", "cifar100")] == dict(batch_size=100, epochs=150, lr=1e-3, model="resnet18")
    assert PAPER_ALPHAS == (0.1, 0.01, 0.001)


def test_a_sweep_runs_originals_once_and_regularized_losses_at_every_alpha():
    configs = image_configs("supervised", "cifar10", seeds=(0, 1), alphas=PAPER_ALPHAS)
    assert len(configs) == 2 * (6 + 6 * 3)
    assert {c.alpha for c in configs if c.regularized} == set(PAPER_ALPHAS)
    assert all(c.alpha is None for c in configs if not c.regularized)
    assert {c.tau for c in configs if "smile" in c.loss} == {10.0}


def test_config_rejects_an_alpha_for_an_original_loss():
    with pytest.raises(ValueError, match="needs alpha None"):
        tiny_config(loss="mine", alpha=0.1)


def test_config_rejects_a_regularized_loss_without_alpha():
    with pytest.raises(ValueError, match="needs alpha set"):
        tiny_config(loss="remine", alpha=None)


def test_image_configs_rejects_a_dataset_without_preset():
    with pytest.raises(ValueError, match="no preset"):
        image_configs("supervised", "mnist")


def test_a_cell_refuses_a_dataset_other_than_its_own(tiny_digits):
    with pytest.raises(ValueError, match="config is for 'cifar10'"):
        run_image_cell(tiny_config(dataset="cifar10", model="resnet18"), tiny_digits, progress=False)


# --------------------------------------------------------------------------- evaluation


class Identity(torch.nn.Module):
    """A "network" whose features are the flattened image and whose head is nothing."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Flatten()
        self.head = torch.nn.Identity()
        self.unused = torch.nn.Parameter(torch.zeros(()))


def test_test_accuracy_counts_the_images_whose_largest_logit_is_their_label():
    logits = torch.eye(4)[[0, 1, 2, 3, 0]][:, :, None, None]  # images are their own logits
    labels = torch.tensor([0, 1, 2, 0, 1])
    accuracy = classifier_accuracy(ImageCritic(Identity(), "logits"), logits, labels, batch_size=2)
    assert accuracy == pytest.approx(3 / 5)


def test_nearest_neighbour_accuracy_uses_the_largest_dot_product():
    train = torch.eye(3)[:, :, None, None]  # one embedding per class
    train_labels = torch.tensor([0, 1, 2])
    test = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.1, 0.0, 0.3]])[:, :, None, None]
    critic = ImageCritic(Identity(), "dot")
    assert nearest_neighbour_accuracy(critic, train, train_labels, test, torch.tensor([0, 2, 2])) == 1.0
    assert nearest_neighbour_accuracy(critic, train, train_labels, test, torch.tensor([1, 2, 0])) == pytest.approx(1 / 3)


def test_first_step_finds_smiles_gradient_zero_and_nwjs_not_finite_at_large_scores():
    class Large(torch.nn.Module):  # non-negative embeddings whose dot products are about 400
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8))
            self.head = torch.nn.Identity()
            torch.nn.init.constant_(self.features[1].weight, 1.0)
            torch.nn.init.constant_(self.features[1].bias, 5.0)

    images = torch.rand(6, 1, 2, 2)
    batch = Batch((images,), *contrastive_masks(torch.tensor([0, 0, 1, 1, 2, 2])), math.log(3))
    table = first_step(ImageCritic(Large(), "dot"), batch, ["smile", "resmile", "nwj", "mine"],
                       smile={"tau": 10.0}, resmile={"tau": 10.0}).set_index("loss")
    assert table.score_mean["mine"] > 300
    assert table.gradient_norm["smile"] == 0.0
    assert table.gradient_norm["resmile"] > 0.0
    assert math.isnan(table.gradient_norm["nwj"])
    assert math.isfinite(table.gradient_norm["mine"])


# --------------------------------------------------------------------------- one cell


def test_a_supervised_cell_trains_a_classifier(tiny_digits):
    run = run_image_cell(tiny_config(epochs=3), tiny_digits, progress=False)
    assert run.summary["test_accuracy"] > 0.5  # chance is 0.1
    assert run.summary["mi_estimate"] > 0.3
    assert run.summary["diverged_at"] is None
    assert run.summary["true_mi"] == pytest.approx(label_entropy(tiny_digits.train_labels, 10))


def test_a_contrastive_cell_records_its_summary_history_and_curve(tiny_digits):
    run = run_image_cell(tiny_config("contrastive", "infonce"), tiny_digits, progress=False)
    per_epoch = 200 // 10
    assert len(run.history) == 2 * per_epoch
    assert run.history.epoch.iloc[-1] == 2.0
    assert len(run.curve) == 2 * 10 and run.curve.epoch.iloc[-1] == 2.0
    assert run.summary["mi_estimate"] == pytest.approx(run.history.mi.tail(per_epoch).mean())
    assert 0.0 <= run.summary["test_accuracy"] <= 1.0
    assert run.summary["repaired_batches"] >= 0


def test_a_diverging_cell_is_recorded_with_its_step_and_message(tiny_digits):
    # NWJ on the dot products of 512 non-negative features: exp overflows within a few steps.
    run = run_image_cell(tiny_config("contrastive", "nwj"), tiny_digits, progress=False)
    assert run.summary["diverged_at"] is not None and run.summary["diverged_at"] < 5
    assert len(run.history) == run.summary["diverged_at"]
    assert "stopped at step" in run.summary["message"]
    assert 0.0 <= run.summary["test_accuracy"] <= 1.0


def test_a_resumed_cell_ends_as_an_uninterrupted_one(tiny_digits, tmp_path, monkeypatch):
    config = tiny_config("contrastive", "mine")
    uninterrupted, resumed = killed_and_resumed_cell(
        config, tiny_digits, tmp_path, monkeypatch, steps_into_second_epoch=5
    )

    assert resumed.history.equals(uninterrupted.history)
    assert resumed.summary["test_accuracy"] == uninterrupted.summary["test_accuracy"]
    assert "resumed from step 20" in resumed.summary["message"]


# --------------------------------------------------------------------------- sweeps and tables


def test_a_sweep_skips_the_cells_already_in_its_results(tiny_digits, tmp_path):
    configs = [tiny_config(epochs=1), tiny_config(loss="remine", epochs=1)]
    lines = []
    run_sweep(configs[:1], tiny_digits, tmp_path, progress=False, log=lines.append)
    runs, curves = run_sweep(configs, tiny_digits, tmp_path, progress=False, log=lines.append)
    assert lines[1].startswith("skip mine seed 0")
    assert runs.loss.tolist() == ["mine", "remine"]
    assert len(read_results(tmp_path / RUNS_FILE)) == 2
    assert len(curves) == 2 * 10


def test_a_sweep_removes_finished_checkpoints_unless_asked_to_keep_them(tiny_digits, tmp_path):
    run_sweep([tiny_config(epochs=1)], tiny_digits, tmp_path / "a", progress=False, log=lambda _: None)
    run_sweep([tiny_config(epochs=1)], tiny_digits, tmp_path / "b", progress=False,
              keep_checkpoints=True, log=lambda _: None)
    assert list((tmp_path / "a" / "checkpoints").glob("*.pt")) == []
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pt"))) == 1


def test_append_rows_keeps_the_existing_rows_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "table.csv"
    append_rows(path, pd.DataFrame({"a": [1], "b": ["x"]}))
    append_rows(path, pd.DataFrame({"a": [2], "b": ["y"]}))
    assert read_results(path).to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["table.csv"]


def test_the_command_line_runs_a_cell_prints_its_dataset_and_skips_it_next_time(tmp_path, capsys):
    arguments = ["supervised", "--dataset", "digits", "--loss", "mine", "--epochs", "1",
                 "--results", str(tmp_path), "--no-progress", "--device", "cpu"]
    cli(arguments)
    first = capsys.readouterr().out
    cli(arguments)
    second = capsys.readouterr().out
    assert "dataset:   digits: 1437 training and 360 test images" in first
    assert "mine alpha=    - seed 0: MI" in first
    assert "skip mine seed 0" in second
    assert len(read_results(tmp_path / RUNS_FILE)) == 1
    assert (tmp_path / CURVES_FILE).exists()


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True)],
                         ids=["t4", "a100", "h100"])
def test_autocast_only_where_the_gpu_runs_bfloat16_natively(monkeypatch, capability, native):
    from remi_tutorial.benchmarks.image_runs import amp_supported

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_supported(torch.device("cuda")) is native


def test_no_autocast_on_a_cpu():
    from remi_tutorial.benchmarks.image_runs import amp_supported

    assert amp_supported("cpu") is False
