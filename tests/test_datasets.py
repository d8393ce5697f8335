import math
import pickle
import sys

import numpy as np
import pytest
import torch

from remi_tutorial.bounds import BOUND_NAMES, get_bound
from remi_tutorial.datasets import (
    ImageBatches,
    label_entropy,
    load_cifar,
    load_digits,
    load_image_dataset,
    read_cifar,
)
from remi_tutorial.tasks import contrastive_masks, label_masks


# --------------------------------------------------------------------------- CIFAR files


def write_cifar_file(path, data, labels, label_key, extra=None):
    """One file of CIFAR's python version: a pickled dict with bytes keys, as distributed."""
    record = {b"batch_label": b"test", b"data": data, label_key.encode(): list(labels)}
    record.update(extra or {})
    with open(path, "wb") as handle:
        pickle.dump(record, handle, protocol=2)


def fake_pixels(count, offset):
    """uint8 [count, 3072] whose image i has pixel value (offset + i) in every red pixel,
    a horizontal ramp in green and 255 in blue."""
    data = np.zeros((count, 3, 32, 32), dtype=np.uint8)
    for i in range(count):
        data[i, 0] = offset + i
        data[i, 1] = np.arange(32, dtype=np.uint8)[None, :]
        data[i, 2] = 255
    return data.reshape(count, 3072)


@pytest.fixture
def cifar10_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for batch in range(1, 6):
        write_cifar_file(folder / f"data_batch_{batch}", fake_pixels(2, 10 * batch),
                         [batch, batch + 1], "labels")
    write_cifar_file(folder / "test_batch", fake_pixels(3, 100), [0, 9, 5], "labels")
    return folder


def test_read_cifar10_concatenates_the_five_training_batches_in_order(cifar10_folder):
    dataset = read_cifar(cifar10_folder, "cifar10")
    assert dataset.train_images.shape == (10, 3, 32, 32)
    assert dataset.train_labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert dataset.test_labels.tolist() == [0, 9, 5]
    assert dataset.num_classes == 10


def test_read_cifar_lays_out_the_colour_planes_as_channels(cifar10_folder):
    dataset = read_cifar(cifar10_folder, "cifar10")
    image = dataset.test_images[1]  # red 101, green ramp, blue 255
    expected_red = 101 / 127.5 - 1.0
    assert torch.allclose(image[0], torch.full((32, 32), expected_red))
    assert torch.allclose(image[1, 5], torch.arange(32) / 127.5 - 1.0)
    assert torch.equal(image[2], torch.ones(32, 32))


def test_read_cifar_scales_pixels_to_minus_one_one(cifar10_folder):
    dataset = read_cifar(cifar10_folder, "cifar10")
    assert dataset.train_images.dtype == torch.float32
    assert float(dataset.train_images.min()) == -1.0
    assert float(dataset.train_images.max()) == 1.0


def test_read_cifar100_uses_the_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    coarse = {b"coarse_labels": [0, 0]}
    write_cifar_file(folder / "train", fake_pixels(2, 0), [42, 99], "fine_labels", coarse)
    write_cifar_file(folder / "test", fake_pixels(2, 0), [7, 3], "fine_labels", coarse)
    dataset = read_cifar(folder, "cifar100")
    assert dataset.train_labels.tolist() == [42, 99]
    assert dataset.num_classes == 100


def test_read_cifar_rejects_data_of_the_wrong_shape(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_cifar_file(folder / "train", np.zeros((2, 100), dtype=np.uint8), [0, 1], "fine_labels")
    write_cifar_file(folder / "test", fake_pixels(1, 0), [0], "fine_labels")
    with pytest.raises(ValueError, match="3072"):
        read_cifar(folder, "cifar100")


def test_read_cifar_rejects_labels_out_of_range(cifar10_folder):
    write_cifar_file(cifar10_folder / "test_batch", fake_pixels(1, 0), [10], "labels")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        read_cifar(cifar10_folder, "cifar10")


def test_load_cifar_reads_an_existing_folder_without_downloading(cifar10_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any import of it would fail
    dataset = load_cifar("cifar10", cifar10_folder.parent, download=True)
    assert len(dataset.train_labels) == 10


def test_load_cifar_without_the_files_names_the_download_option(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_cifar("cifar10", tmp_path)


def test_load_cifar_download_without_torchvision_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match="pip install torchvision"):
        load_cifar("cifar100", tmp_path, download=True)


def test_load_image_dataset_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_image_dataset("mnist")


# --------------------------------------------------------------------------- digits


def test_digits_are_split_once_stratified_and_scaled():
    first, second = load_digits(), load_digits()
    assert first.train_images.shape == (1437, 1, 8, 8)
    assert first.test_images.shape == (360, 1, 8, 8)
    assert torch.equal(first.test_images, second.test_images)
    assert torch.bincount(first.test_labels, minlength=10).min() >= 35
    assert float(first.train_images.min()) == -1.0 and float(first.train_images.max()) == 1.0


def test_label_entropy_is_log_k_for_balanced_labels():
    labels = torch.arange(100).repeat(3)
    assert label_entropy(labels, 100) == pytest.approx(math.log(100))


def test_label_entropy_is_below_log_k_for_unbalanced_labels():
    labels = torch.tensor([0, 0, 0, 1])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert label_entropy(labels, 10) == pytest.approx(expected)


# --------------------------------------------------------------------------- batch streams


def contrastive_builder(labels, num_classes):
    return contrastive_masks(labels)


def stream(masks=label_masks, pair_every_batch=False, seed=0, num_classes=10, n=60, batch_size=10):
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(n) % num_classes
    images = torch.randn(n, 1, 4, 4, generator=generator)
    return ImageBatches(images, labels, num_classes, masks=masks, pair_every_batch=pair_every_batch,
                        batch_size=batch_size, seed=seed)


def contrastive_stream(**changes):
    return stream(masks=contrastive_builder, pair_every_batch=True, **changes)


def test_batches_depend_only_on_seed_and_step():
    forward, backward = stream(), stream()
    steps = list(range(20))
    first = {step: forward.indices(step).tolist() for step in steps}
    second = {step: backward.indices(step).tolist() for step in reversed(steps)}
    assert first == second


def test_an_epoch_visits_each_image_at_most_once():
    batches = stream(n=65)  # 6 batches of 10, 5 images left out
    epoch = torch.cat([batches.indices(step) for step in range(batches.steps_per_epoch)])
    assert batches.steps_per_epoch == 6
    assert len(set(epoch.tolist())) == 60


def test_epochs_and_seeds_have_different_orders():
    batches = stream()
    assert batches.indices(0).tolist() != batches.indices(batches.steps_per_epoch).tolist()
    assert stream(seed=0).indices(0).tolist() != stream(seed=1).indices(0).tolist()


def test_label_mask_batches_mark_each_image_with_its_label():
    batches = stream()
    batch = batches(3)
    labels = batches.labels[batches.indices(3)]
    assert batch.positive.shape == (10, 10)
    assert torch.equal(batch.positive.float().argmax(1), labels)
    assert batch.positive.sum(1).tolist() == [1] * 10
    assert batch.negative is None
    assert batch.true_mi == pytest.approx(math.log(10))


def test_contrastive_batches_pair_same_label_images_and_contrast_all_different_ones():
    batches = contrastive_stream(num_classes=3)
    batch = batches(2)
    labels = batches.labels[batches.indices(2)]
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(10, dtype=torch.bool)
    assert torch.equal(batch.positive, same & off_diagonal)
    assert torch.equal(batch.negative, off_diagonal)


def test_contrastive_batches_always_contain_a_same_label_pair():
    # 50 classes, batches of 5: most random batches would have no pair.
    batches = contrastive_stream(num_classes=50, n=500, batch_size=5)
    for step in range(3 * batches.steps_per_epoch):
        assert batches(step).positive.any()


def test_a_batch_without_a_same_label_pair_is_repaired_and_counted_exactly():
    # The same data order without the repair: its pairless batches are counted by hand.
    repaired = contrastive_stream(num_classes=50, n=500, batch_size=5)
    raw = stream(masks=contrastive_builder, num_classes=50, n=500, batch_size=5)
    raw_order, none_repaired = raw.epoch_order(0)
    order, count = repaired.epoch_order(0)
    labels = raw.labels.numpy()
    pairless = [row for row in range(len(raw_order))
                if len(set(labels[raw_order[row]])) == len(raw_order[row])]
    assert none_repaired == 0
    assert count == len(pairless) == repaired.repaired_batches(1) > 0
    changed = [row for row in range(len(order)) if (order[row] != raw_order[row]).any()]
    assert changed == pairless
    for row in pairless:  # only the last image changed, for one with the first image's label
        assert (order[row, :-1] == raw_order[row, :-1]).all()
        assert labels[order[row, -1]] == labels[order[row, 0]] and order[row, -1] != order[row, 0]


def test_every_batch_is_already_paired_when_a_class_fills_it():
    assert contrastive_stream(num_classes=1).repaired_batches(3) == 0


def test_a_pair_in_every_batch_needs_a_label_shared_by_two_images():
    with pytest.raises(ValueError, match="at least two images"):
        ImageBatches(torch.randn(4, 1, 2, 2), torch.arange(4), 4, masks=contrastive_builder,
                     pair_every_batch=True, batch_size=2, seed=0)


def test_batches_reject_a_batch_size_larger_than_the_dataset():
    with pytest.raises(ValueError, match="batch_size"):
        ImageBatches(torch.randn(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), 1,
                     masks=label_masks, batch_size=5, seed=0)


# --------------------------------------------------------------------------- masks on real shapes


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_every_bound_raises_on_a_contrastive_batch_without_a_same_label_pair(name):
    labels = torch.arange(10)  # a CIFAR-10 batch of 10 with ten different labels
    positive, negative = contrastive_masks(labels)
    scores = torch.randn(10, 10)
    with pytest.raises(ValueError, match="positive mask selects no pair"):
        get_bound(name)(scores, positive, negative)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_every_bound_is_finite_on_a_cifar100_shaped_supervised_batch(name):
    labels = torch.randint(100, (100,))
    positive, negative = label_masks(labels, 100)
    result = get_bound(name)(torch.randn(100, 100), positive, negative)
    assert all(torch.isfinite(field) for field in result)


def test_supervised_infonce_is_log_k_minus_the_cross_entropy_on_real_shapes():
    labels = torch.randint(100, (100,))
    logits = torch.randn(100, 100)
    positive, negative = label_masks(labels, 100)
    value = get_bound("infonce")(logits, positive, negative).mi
    expected = math.log(100) - torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(value, expected, atol=1e-5)
