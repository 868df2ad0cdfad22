"""Tasks: shapes, dtypes, label ranges and each data set's defining invariants."""

import gzip

import numpy as np
import pytest
import torch

from gatedrnn import tasks
from gatedrnn.tasks import co2, idx, synthetic
from gatedrnn.tasks.pixels import PERMUTATION_SEED

SMALL = ["mnist1d", "mnist1d-shuffle", "digits", "pdigits", "adding", "copy", "co2"]


@pytest.fixture(scope="module")
def loaded():
    return {name: tasks.get(name).load() for name in SMALL}


@pytest.mark.parametrize("name", SMALL)
def test_shapes_dtypes_and_label_ranges(loaded, name):
    task, splits = tasks.get(name), loaded[name]
    for split in (splits.train, splits.validation, splits.test):
        assert split.x.dtype == torch.float32
        assert split.x.shape[1:] == (task.seq_len, task.input_size)
        assert torch.isfinite(split.x).all()
        if task.metric == "accuracy":
            assert split.y.dtype == torch.int64
            assert split.y.shape == ((len(split), task.seq_len) if task.per_step else (len(split),))
            assert 0 <= int(split.y.min()) and int(split.y.max()) < task.output_size
        else:
            assert split.y.dtype == torch.float32 and split.y.shape == (len(split), 1)
    if task.metric == "accuracy" and not task.per_step:
        assert set(splits.train.y.tolist()) == set(range(task.output_size))  # every class present


def test_split_sizes(loaded):
    sizes = {name: (len(s.train), len(s.validation), len(s.test)) for name, s in loaded.items()}
    assert sizes["mnist1d"] == (3600, 400, 1000)
    assert sizes["digits"] == (1257, 180, 360)
    assert sizes["adding"] == (10000, 1000, 2000)


def test_mnist1d_shuffle_is_one_fixed_permutation_of_time(loaded):
    plain, shuffled = loaded["mnist1d"].train.x[..., 0], loaded["mnist1d-shuffle"].train.x[..., 0]
    assert torch.equal(loaded["mnist1d"].train.y, loaded["mnist1d-shuffle"].train.y)
    assert not torch.equal(plain, shuffled)
    # each shuffled step is exactly one plain step, for every sequence at once
    matches = [[torch.allclose(shuffled[:, j], plain[:, k], atol=1e-5) for k in range(40)] for j in range(40)]
    perm = [row.index(True) for row in matches]
    assert sorted(perm) == list(range(40))


def test_pdigits_is_a_fixed_permutation_of_digits(loaded):
    plain, permuted = loaded["digits"], loaded["pdigits"]
    order = np.random.default_rng(tasks.digits.PERMUTATION_SEED).permutation(64)
    assert torch.equal(permuted.test.x, plain.test.x[:, order])
    assert torch.equal(permuted.test.y, plain.test.y)
    values = plain.train.x * 16  # sklearn's pixels are integers 0..16
    assert torch.equal(values, values.round()) and values.max() == 16


def test_adding_targets_are_the_sum_of_the_two_marked_values(loaded):
    split = loaded["adding"].test
    markers = split.x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((len(split),), 2.0))
    half = split.x.shape[1] // 2
    assert torch.equal(markers[:, :half].sum(1), torch.ones(len(split)))  # one in each half
    torch.testing.assert_close(split.y[:, 0], (split.x[..., 0] * markers).sum(1))
    assert abs(loaded["adding"].baselines["predict_mean_mse"] - 1 / 6) < 0.02


def test_adding_length_option():
    task = tasks.get("adding", seq_len=30)
    assert task.seq_len == 30
    assert synthetic.adding_problem(5, 30, np.random.default_rng(0)).x.shape == (5, 30, 2)
    with pytest.raises(ValueError, match="seq_len"):
        tasks.get("adding", seq_len=1)


def test_copy_task_layout_and_perfect_score():
    task = tasks.get("copy", delay=7)
    split = synthetic.copy_memory(20, 7, np.random.default_rng(0))
    assert task.seq_len == 28 and split.x.shape == (20, 28, 10)
    symbols = split.x.argmax(-1)  # (N, T)
    assert torch.equal(split.x.sum(-1), torch.ones(20, 28))  # one-hot
    assert ((symbols[:, :10] >= 1) & (symbols[:, :10] <= 8)).all()
    assert (symbols[:, 17] == 9).all()  # the delimiter after the delay
    assert (symbols[:, 10:17] == 0).all() and (symbols[:, 18:] == 0).all()
    assert torch.equal(split.y[:, -10:], symbols[:, :10])
    assert (split.y[:, :-10] == 0).all()
    perfect = torch.nn.functional.one_hot(split.y, 10).float() * 10  # logits of the right answer
    assert task.score(perfect, split.y) == (200.0, 200)
    assert task.loss(perfect, split.y) < 1e-3


def test_co2_windows_are_relative_to_the_last_value():
    task = tasks.get("co2")
    splits = task.load()
    series = co2.weekly_co2()
    assert not np.isnan(series).any()
    assert (splits.train.x[:, -1, 0] == 0).all()
    # example i of the train split: window series[i:i+52], target series[i+52]
    i = 100
    window = (series[i: i + 52] - series[i + 51]) / task.target_scale
    np.testing.assert_allclose(splits.train.x[i, :, 0].numpy(), window, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(splits.train.y[i, 0]) * task.target_scale,
                               series[i + 52] - series[i + 51], rtol=1e-5, atol=1e-5)
    zero = torch.zeros_like(splits.test.y)  # "repeat the last value" predicts no change
    total, count = task.score(zero, splits.test.y)
    assert total / count == pytest.approx(splits.baselines["repeat_last_mse"], rel=1e-5)


def _write_idx(directory, prefix, images, labels, compress):
    def write(name, magic, array):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        payload = header + array.astype(np.uint8).tobytes()
        if compress:
            (directory / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)

    write(f"{prefix}-images-idx3-ubyte", idx.IMAGES_MAGIC, images)
    write(f"{prefix}-labels-idx1-ubyte", idx.LABELS_MAGIC, labels)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_idx_tasks_read_any_mnist_format_directory(tmp_path, monkeypatch, compress):
    monkeypatch.setattr(idx, "VALIDATION_SIZE", 3)
    rng = np.random.default_rng(0)
    train_images, test_images = rng.integers(0, 256, (8, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    train_labels, test_labels = rng.integers(0, 10, 8), rng.integers(0, 10, 4)
    _write_idx(tmp_path, "train", train_images, train_labels, compress)
    _write_idx(tmp_path, "t10k", test_images, test_labels, compress)

    pixels = tasks.get("smnist", data_dir=str(tmp_path)).load()
    rows = tasks.get("mnist-rows", data_dir=str(tmp_path)).load()
    permuted = tasks.get("pfmnist", data_dir=str(tmp_path)).load()
    # the first VALIDATION_SIZE training images validate, as TensorFlow's read_data_sets
    assert (len(pixels.train), len(pixels.validation), len(pixels.test)) == (5, 3, 4)
    np.testing.assert_array_equal(pixels.validation.y.numpy(), train_labels[:3])
    np.testing.assert_allclose(pixels.train.x[0, :, 0].numpy(), train_images[3].reshape(-1) / 255.0, rtol=1e-6)
    assert rows.test.x.shape == (4, 28, 28)
    assert torch.equal(rows.test.x.reshape(4, 784, 1), pixels.test.x)
    order = np.random.default_rng(PERMUTATION_SEED).permutation(784)
    assert torch.equal(permuted.test.x, pixels.test.x[:, order])


def test_missing_idx_data_says_how_to_get_it(tmp_path):
    with pytest.raises(tasks.DataUnavailable, match="apt-get install dataset-fashion-mnist"):
        tasks.get("fmnist", data_dir=str(tmp_path)).load()
    with pytest.raises(tasks.DataUnavailable, match="--data-dir"):
        tasks.get("pmnist").load()


def test_corrupt_idx_file_is_refused(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(tasks.DataUnavailable, match="magic number"):
        idx.read_idx(tmp_path / "train-images-idx3-ubyte", idx.IMAGES_MAGIC)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown task 'nope'; choose from: mnist1d"):
        tasks.get("nope")
    with pytest.raises(ValueError, match="does not take --seq-len"):
        tasks.get("mnist1d", seq_len=10)
    with pytest.raises(ValueError, match="does not take --data-dir"):
        tasks.get("adding", data_dir="/tmp")
    assert tasks.names()[:2] == ["mnist1d", "mnist1d-shuffle"]
