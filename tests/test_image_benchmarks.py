import json
import math

import pandas as pd
import pytest
import torch

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.contrastive import CONTRASTIVE, first_step, nearest_neighbour_accuracy
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.image_cells import (
    refuse_cpu_sweep,
    run_image_cell,
    run_sweep,
    sweep_seconds,
    training_flops_per_image,
    training_throughput,
)
from remi_tutorial.benchmarks.image_config import (
    AUTHORS_NWJ_CLIP,
    PAPER_ALPHAS,
    PRESETS,
    ImageRunConfig,
    amp_supported,
    image_configs,
    sized_configs,
)
from remi_tutorial.benchmarks.image_registry import IMAGE_BENCHMARKS, image_benchmark
from remi_tutorial.benchmarks.image_results import (
    CollectedResults,
    checkpoint_file,
    checkpoint_folder,
    collect,
    request_cells,
    write_cell_result,
)
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.benchmarks.supervised import test_accuracy as classifier_accuracy
from remi_tutorial.benchmarks.tables import load_table
from remi_tutorial.bounds import bound_spec, get_bound
from remi_tutorial.critics import ImageCritic
from remi_tutorial.datasets import ImageBatches, label_entropy
from remi_tutorial.networks import SmallConvNet
from helpers import counted_accuracy, killed_and_resumed_cell, unpaired_batches
from remi_tutorial.tasks import Batch, contrastive_masks


def tiny_config(benchmark=SUPERVISED, loss="mine", **changes):
    settings = dict(benchmark=benchmark, dataset="digits", loss=loss, seed=0, batch_size=10,
                    epochs=2, lr=1e-3, model="small")
    if bound_spec(loss).regularized:
        settings["alpha"] = 0.1
    if bound_spec(loss).base == "smile":
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
    configs = image_configs(SUPERVISED, "cifar10", seeds=(0, 1), alphas=PAPER_ALPHAS)
    assert len(configs) == 2 * (6 + 6 * 3)
    assert {c.alpha for c in configs if c.regularized} == set(PAPER_ALPHAS)
    assert all(c.alpha is None for c in configs if not c.regularized)
    assert {c.tau for c in configs if c.base_loss == "smile"} == {10.0}
    assert {c.tau for c in configs if c.base_loss != "smile"} == {None}


def test_the_registry_finds_each_image_benchmark_by_its_name():
    assert list(IMAGE_BENCHMARKS) == ["supervised", "contrastive"]
    assert image_benchmark("contrastive") is CONTRASTIVE
    with pytest.raises(ValueError, match="unknown image benchmark 'mnist'"):
        image_benchmark("mnist")


def test_a_config_names_its_benchmark_by_a_spec_not_a_string():
    with pytest.raises(TypeError, match="ImageBenchmark"):
        tiny_config(benchmark="supervised")


def test_a_cells_key_is_the_one_its_checkpoints_were_written_under():
    # The key of the first results, before the later columns: old checkpoints still resume.
    config = tiny_config(loss="remine", epochs=1, seed=2)
    assert config.key() == ("benchmark=supervised_dataset=digits_model=small_stem=cifar_loss=remine"
                            "_alpha=0.1_tau=-_seed=2_batch_size=10_epochs=1_lr=0.001")
    assert tiny_config(CONTRASTIVE, embed_dim=8).key().endswith("_lr=0.001_embed_dim=8")


def test_config_rejects_an_alpha_for_an_original_loss():
    with pytest.raises(ValueError, match="needs alpha None"):
        tiny_config(loss="mine", alpha=0.1)


def test_config_rejects_a_regularized_loss_without_alpha():
    with pytest.raises(ValueError, match="needs alpha set"):
        tiny_config(loss="remine", alpha=None)


def test_image_configs_rejects_a_dataset_without_preset():
    with pytest.raises(ValueError, match="no preset"):
        image_configs(SUPERVISED, "mnist")


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
    assert run.critic.kind == "logits"
    assert run.summary["test_accuracy"] == counted_accuracy(run.critic, tiny_digits)
    assert run.summary["test_accuracy"] > 0.5  # chance is 0.1
    assert run.summary["mi_estimate"] > 0.3
    assert run.summary["diverged_at"] is None
    assert run.summary["repaired_batches"] == 0  # the label masks never lack a positive
    assert run.summary["true_mi"] == pytest.approx(label_entropy(tiny_digits.train_labels, 10))


def test_a_contrastive_cell_records_its_summary_history_and_curve(tiny_digits):
    config = tiny_config(CONTRASTIVE, "infonce")
    run = run_image_cell(config, tiny_digits, progress=False)
    per_epoch = 200 // 10
    assert run.critic.kind == "dot"
    assert len(run.history) == 2 * per_epoch
    assert run.history.epoch.iloc[-1] == 2.0
    assert len(run.curve) == 2 * 10 and run.curve.epoch.iloc[-1] == 2.0
    assert run.summary["mi_estimate"] == pytest.approx(run.history.mi.tail(per_epoch).mean())
    assert run.summary["test_accuracy"] == counted_accuracy(run.critic, tiny_digits)
    stream = ImageBatches(tiny_digits.train_images, tiny_digits.train_labels, 10,
                          masks=CONTRASTIVE.masks, batch_size=10, seed=0)
    assert run.summary["repaired_batches"] == unpaired_batches(stream, 2)


def test_a_diverging_cell_is_recorded_with_its_step_and_message(tiny_digits):
    # NWJ on the dot products of 512 non-negative features: exp overflows within a few steps.
    run = run_image_cell(tiny_config(CONTRASTIVE, "nwj"), tiny_digits, progress=False)
    assert run.summary["diverged_at"] is not None and run.summary["diverged_at"] < 5
    assert len(run.history) == run.summary["diverged_at"]
    assert "stopped at step" in run.summary["message"]
    assert run.summary["test_accuracy"] == counted_accuracy(run.critic, tiny_digits)


def test_a_resumed_cell_ends_as_an_uninterrupted_one(tiny_digits, tmp_path, monkeypatch):
    config = tiny_config(CONTRASTIVE, "mine")
    uninterrupted, resumed = killed_and_resumed_cell(
        config, tiny_digits, tmp_path, monkeypatch, steps_into_second_epoch=5
    )

    assert resumed.history.equals(uninterrupted.history)
    assert resumed.summary["test_accuracy"] == uninterrupted.summary["test_accuracy"]
    assert "resumed from step 20" in resumed.summary["message"]


# --------------------------------------------------------------------------- the results folder


def summary_row(loss="mine", seed=0, diverged_at=None, **changes):
    """A cell's summary as run_image_cell writes it, with made-up results."""
    config = tiny_config(loss=loss, seed=seed, **changes)
    return {**config.settings(), "base_loss": config.base_loss, "regularized": config.regularized,
            "steps": 40, "true_mi": 2.3, "mi_estimate": 1.5 + seed, "test_accuracy": 0.5,
            "diverged_at": diverged_at, "repaired_batches": 0, "train_seconds": 1.0,
            "device": "cpu", "amp": False, "message": "finished 40 steps"}


def curve_rows(summary, points=3):
    settings = {column: summary[column] for column in tiny_config().settings()}
    return pd.DataFrame([{**settings, "epoch": (i + 1) / points, "mi": 0.1 * i, "joint": 1.0,
                          "marginal": 0.5, "penalty": 0.0} for i in range(points)])


def test_collect_merges_the_cells_written_into_the_tables_they_came_from(tmp_path):
    rows = [summary_row("mine", seed=0), summary_row("remine", seed=1)]
    for row in rows:
        write_cell_result(tmp_path, row, curve_rows(row))
    collected = collect(tmp_path)
    # In key order; a setting that is None comes back as NaN (an empty CSV field).
    expected = pd.DataFrame(rows)
    expected = expected.astype({column: float for column in expected if expected[column].isna().all()})
    expected = expected.sort_values("loss").reset_index(drop=True)
    pd.testing.assert_frame_equal(collected.runs[expected.columns], expected, check_dtype=False)
    assert len(collected.curves) == 2 * 3
    assert collected.curves.groupby("loss").epoch.max().to_dict() == {"mine": 1.0, "remine": 1.0}
    assert (collected.missing, collected.running, collected.diverged) == ((), (), ())
    assert not [path for path in tmp_path.rglob("*") if ".partial" in path.name]


def test_a_cell_with_a_checkpoint_and_no_result_is_running(tmp_path):
    done, started = tiny_config(), tiny_config(loss="nwj")
    write_cell_result(tmp_path, summary_row(), curve_rows(summary_row()))
    checkpoint = checkpoint_file(checkpoint_folder(tmp_path), started.key())
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    checkpoint_file(checkpoint_folder(tmp_path), done.key()).write_bytes(b"")  # kept: finished
    collected = collect(tmp_path)
    assert collected.running == (started.key(),)
    assert collected.runs.loss.tolist() == ["mine"]


def test_a_diverged_cell_is_reported_and_kept_as_a_result(tmp_path):
    row = summary_row("nwj", diverged_at=3)
    write_cell_result(tmp_path, row, curve_rows(row))
    write_cell_result(tmp_path, summary_row(), curve_rows(summary_row()))
    collected = collect(tmp_path)
    assert collected.diverged == (tiny_config(loss="nwj").key(),)
    assert collected.runs.set_index("loss").diverged_at.fillna(-1).to_dict() == {"mine": -1, "nwj": 3}
    assert "1 diverged" in collected.report()


def test_a_cell_asked_for_without_result_or_checkpoint_is_missing(tmp_path):
    asked = [tiny_config(), tiny_config(loss="js")]
    request_cells(tmp_path, [config.settings() for config in asked])
    write_cell_result(tmp_path, summary_row(), curve_rows(summary_row()))
    collected = collect(tmp_path)
    assert collected.missing == (asked[1].key(),)
    stored = json.loads((tmp_path / "cells" / f"{asked[1].key()}.cell.json").read_text())
    assert stored == asked[1].settings()


def test_a_report_lists_a_few_keys_of_each_state_and_counts_the_others(tmp_path):
    request_cells(tmp_path, [tiny_config(loss=loss).settings() for loss in ("mine", "nwj", "js")])
    lines = collect(tmp_path).report(keys=2).splitlines()
    assert lines[0].endswith("0 running, 3 missing")
    assert lines[1:] == [f"  missing: {tiny_config(loss='js').key()}",
                         f"  missing: {tiny_config(loss='mine').key()}",
                         "  missing: ... and 1 more"]


@pytest.mark.parametrize("folder", ["empty", "absent"])
def test_collect_of_an_empty_or_absent_folder_is_empty(tmp_path, folder):
    if folder == "empty":
        (tmp_path / "cells").mkdir()
    collected = collect(tmp_path / "results" if folder == "absent" else tmp_path)
    assert isinstance(collected, CollectedResults)
    assert collected.runs.empty and collected.curves.empty
    assert (collected.missing, collected.running, collected.diverged) == ((), (), ())
    assert collected.report().startswith("0 finished cells (0 diverged), 0 running, 0 missing")


def test_a_sweep_skips_the_cells_already_in_its_results(tiny_digits, tmp_path):
    configs = [tiny_config(epochs=1), tiny_config(loss="remine", epochs=1)]
    lines = []
    first, _ = run_sweep(configs[:1], tiny_digits, tmp_path, progress=False, log=lines.append)
    runs, curves = run_sweep(configs, tiny_digits, tmp_path, progress=False, log=lines.append)
    assert lines[1] == f"skip mine seed 0: already in {tmp_path}"
    assert runs.loss.tolist() == ["mine", "remine"]
    pd.testing.assert_frame_equal(runs.iloc[:1], first)
    assert len(collect(tmp_path).runs) == 2
    assert len(curves) == 2 * 10


def test_a_sweep_removes_finished_checkpoints_unless_asked_to_keep_them(tiny_digits, tmp_path):
    run_sweep([tiny_config(epochs=1)], tiny_digits, tmp_path / "a", progress=False, log=lambda _: None)
    run_sweep([tiny_config(epochs=1)], tiny_digits, tmp_path / "b", progress=False,
              keep_checkpoints=True, log=lambda _: None)
    assert list((tmp_path / "a" / "checkpoints").glob("*.pt")) == []
    assert len(list((tmp_path / "b" / "checkpoints").glob("*.pt"))) == 1
    assert collect(tmp_path / "b").running == ()


def test_the_command_line_runs_a_cell_prints_its_dataset_and_skips_it_next_time(tmp_path, capsys):
    out = tmp_path / "runs.csv"
    arguments = ["supervised", "--dataset", "digits", "--loss", "mine", "--epochs", "1",
                 "--results", str(tmp_path / "results"), "--no-progress", "--device", "cpu",
                 "--out", str(out)]
    cli(arguments)
    first = capsys.readouterr().out
    cli(arguments)
    second = capsys.readouterr().out
    assert "dataset:   digits: 1437 training and 360 test images" in first
    assert "mine alpha=    - seed 0: MI" in first
    assert "1 finished cells (0 diverged), 0 running, 0 missing" in first
    assert "skip mine seed 0" in second
    table = load_table(out)
    assert table.loss.tolist() == ["mine"] and table.attrs["seeds"] == [0]
    assert table.attrs["provenance"]["missing"] == [] and table.attrs["provenance"]["wall_seconds"] > 0


def test_the_command_line_takes_seeds_and_shows_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit):
        cli(["contrastive", "--help"])
    page = capsys.readouterr().out
    assert "--seeds SEED [SEED ...]" in page and "(default: [0])" in page
    assert "examples:\n" in page
    assert "python -m remi_tutorial.benchmarks contrastive --dataset digits --loss explicit" in page
    assert "--embed-dim" in page and "--order" in page


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True)],
                         ids=["t4", "a100", "h100"])
def test_autocast_only_where_the_gpu_runs_bfloat16_natively(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_supported(torch.device("cuda")) is native


def test_no_autocast_on_a_cpu():
    assert amp_supported("cpu") is False


def test_autocast_ignores_torchs_bfloat16_flag_that_a_t4_emulates(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert amp_supported(torch.device("cuda")) is False


# --------------------------------------------------------------------------- the authors' forms


def test_authors_code_forms_clip_renwj_and_retuba_only_and_penalise_all_three():
    configs = {c.loss: c for c in image_configs(
        CONTRASTIVE, "digits", losses=["nwj", "tuba", "renwj", "retuba", "rejs"],
        nwj_variant="authors_code")}
    assert configs["nwj"].bound_params() == {} and configs["tuba"].bound_params() == {}
    for loss in ("renwj", "retuba"):
        assert configs[loss].bound_params() == {"alpha": 0.1, "tau": AUTHORS_NWJ_CLIP,
                                                "variant": "authors_code"}
    assert configs["rejs"].bound_params() == {"alpha": 0.1, "variant": "authors_code"}


def test_authors_code_renwj_cell_stays_finite_where_the_papers_overflows():
    scores = torch.full((4, 4), 100.0)
    positive, negative = contrastive_masks(torch.tensor([0, 0, 1, 1]))
    objectives = {}
    for variant in ("paper", "authors_code"):
        config = image_configs(CONTRASTIVE, "digits", losses=["renwj"], nwj_variant=variant)[0]
        objective = get_bound(config.loss, **config.bound_params())
        objectives[variant] = objective(scores, positive, negative, check=False).objective
    assert not torch.isfinite(objectives["paper"]) and torch.isfinite(objectives["authors_code"])


def test_a_papers_form_cell_keeps_the_key_it_had_before_variants_existed():
    config = image_configs(CONTRASTIVE, "digits", losses=["renwj"])[0]
    assert config.variant is None and "variant" not in config.key()
    authors = image_configs(CONTRASTIVE, "digits", losses=["renwj"], nwj_variant="authors_code")[0]
    assert "variant=authors_code" in authors.key() and "tau=10" in authors.key()


@pytest.mark.parametrize("changes", [dict(loss="mine", variant="authors_code"),
                                     dict(loss="renwj", variant="paper"),
                                     dict(loss="mine", tau=10.0)],
                         ids=["variant-of-mine", "variant-named-paper", "clip-of-mine"])
def test_a_variant_or_clip_the_loss_does_not_take_is_refused(changes):
    with pytest.raises(ValueError, match="variant|tau"):
        tiny_config(CONTRASTIVE, **changes)


# --------------------------------------------------------------------------- sizes and estimates


def test_the_colab_size_is_one_seed_of_cifar10_on_resnet18_with_the_authors_nwj_forms():
    for benchmark in (SUPERVISED, CONTRASTIVE):
        configs = sized_configs(benchmark, "colab")
        assert {(c.dataset, c.model, c.seed, c.epochs) for c in configs} == {("cifar10", "resnet18", 0, 5)}
        assert len(configs) == 6
    contrastive = {c.loss: c for c in sized_configs(CONTRASTIVE, "colab")}
    assert contrastive["renwj"].variant == "authors_code" and contrastive["nwj"].tau is None


def test_the_small_size_is_the_books_digits_sweep():
    configs = sized_configs(SUPERVISED, "small")
    assert {c.dataset for c in configs} == {"digits"} and len(configs) == 24


def test_an_unknown_size_is_refused():
    with pytest.raises(ValueError, match="size must be one of"):
        sized_configs(SUPERVISED, "huge")


def test_sweep_seconds_counts_every_cells_epochs():
    configs = [tiny_config(epochs=3), tiny_config(loss="nwj", epochs=5)]
    assert sweep_seconds(configs, train_images=100, rate=50.0) == pytest.approx(8 * 100 / 50)


def test_a_resnet_sweep_on_a_cpu_is_refused_with_its_estimated_hours():
    configs = sized_configs(SUPERVISED, "colab")
    with pytest.raises(RuntimeError, match="about 2 hours"):
        refuse_cpu_sweep(configs, "cpu", seconds=7200.0)
    refuse_cpu_sweep(configs, "cpu", seconds=7200.0, allow_cpu=True)
    refuse_cpu_sweep(configs, torch.device("cuda"), seconds=7200.0)
    refuse_cpu_sweep(sized_configs(SUPERVISED, "small"), "cpu", seconds=60.0)


def test_a_training_step_costs_about_three_forward_passes():
    config = tiny_config()
    counter = FlopCounterMode(display=False)
    critic = ImageCritic(SmallConvNet(10, in_channels=1), "logits")
    with counter, torch.no_grad():
        critic(torch.zeros(1, 1, 8, 8))
    ratio = training_flops_per_image(config, image_shape=(1, 8, 8)) / counter.get_total_flops()
    assert 2.5 < ratio < 3.5


def _conv_layouts(config, channels_last):
    """``(input, weight)`` channels-last flags of every convolution call while measuring
    the throughput of ``config`` on 3x8x8 images (three channels: a one-channel tensor is
    channels-last and contiguous at once)."""
    layouts = []

    def record(module, inputs):
        if isinstance(module, torch.nn.Conv2d):
            layouts.append((inputs[0].is_contiguous(memory_format=torch.channels_last),
                            module.weight.is_contiguous(memory_format=torch.channels_last)))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        training_throughput(config, image_shape=(3, 8, 8), steps=1, warmup=1, device="cpu",
                            channels_last=channels_last)
    finally:
        handle.remove()
    return layouts


def test_a_channels_last_throughput_feeds_every_convolution_channels_last():
    config = tiny_config()
    layouts = _conv_layouts(config, channels_last=True)
    assert len(layouts) == 2 * 3  # two steps of SmallConvNet's three convolutions
    assert all(image and weight for image, weight in layouts)
    plain = _conv_layouts(config, channels_last=False)
    assert plain[0] == (False, False)


def test_a_channels_last_training_step_computes_the_plain_steps_loss(monkeypatch):
    import remi_tutorial.benchmarks.image_cells as image_cells

    def recorded(channels_last):
        histories = []

        def train(*args, **kwargs):
            result = real_train(*args, **kwargs)
            histories.append(result.history)
            return result

        monkeypatch.setattr(image_cells, "train", train)
        training_throughput(tiny_config(), image_shape=(3, 8, 8), steps=1, warmup=1,
                            device="cpu", channels_last=channels_last)
        return pd.concat(histories, ignore_index=True)

    real_train = image_cells.train
    plain, channels_last = recorded(False), recorded(True)
    assert len(plain) == 2  # the warm-up step and the timed one
    assert plain.objective.iloc[0] != plain.objective.iloc[1]
    for column in ("objective", "mi", "joint", "marginal"):
        assert channels_last[column].to_numpy() == pytest.approx(plain[column].to_numpy(),
                                                                 rel=1e-5, abs=1e-6)


def test_a_throughput_without_warm_up_times_its_steps_alone():
    convolutions = []

    def count(module, inputs):
        if isinstance(module, torch.nn.Conv2d):
            convolutions.append(module)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        training_throughput(tiny_config(), image_shape=(3, 8, 8), steps=2, warmup=0,
                            device="cpu")
    finally:
        handle.remove()
    assert len(convolutions) == 2 * 3  # two timed steps of SmallConvNet's three convolutions
