"""MNIST-1D (Greydanus & Kobak 2020): ten 1-D digit templates, randomly padded,
translated, sheared, scaled and noised into sequences of 40 steps.

Generated locally by the ``mnist1d`` package with its default arguments (5000
sequences, seed 42: 4000 train and 1000 test); the last 10% of the training set is
held out for validation (3600 / 400 / 1000). Generated once and cached as ``.npz``.

Published anchors (test accuracy): logistic regression 32%, MLP 68%, CNN 94%,
GRU 91%, human 96%.

``mnist1d-shuffle`` applies the package's own fixed permutation of the time axis
(``shuffle_seq=True``), which destroys locality: a CNN suffers, a recurrent cell with
enough memory should not.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .base import ClassificationTask, Split, Splits, cache_dir

VALIDATION_FRACTION = 0.1


def generate(shuffle: bool) -> dict:
    """The MNIST-1D arrays ``x``, ``y``, ``x_test``, ``y_test``, cached under :func:`cache_dir`."""
    path = cache_dir() / f"mnist1d-{'shuffle' if shuffle else 'default'}.npz"
    if path.exists():
        with np.load(path) as cached:
            return dict(cached)
    from mnist1d.data import get_dataset_args, make_dataset

    arguments = get_dataset_args()
    arguments.shuffle_seq = shuffle
    data = make_dataset(arguments)
    arrays = {key: np.asarray(data[key]) for key in ("x", "y", "x_test", "y_test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)  # atomic: concurrent runs never read half a file
    return arrays


class MNIST1D(ClassificationTask):
    name = "mnist1d"
    description = "MNIST-1D, 40 steps x 1 feature, 10 classes (3600/400/1000)"
    input_size, output_size, seq_len = 1, 10, 40
    defaults = {"hidden": 128, "epochs": 30, "batch_size": 100, "lr": 1e-2, "head": "mean"}
    anchors = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91, "human": 0.96}
    shuffle = False

    def load(self) -> Splits:
        data = generate(self.shuffle)
        x = torch.tensor(data["x"], dtype=torch.float32).unsqueeze(-1)  # (4000, 40, 1)
        y = torch.tensor(data["y"], dtype=torch.int64)  # (4000,)
        held_out = int(len(y) * VALIDATION_FRACTION)
        test = Split(torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(-1),
                     torch.tensor(data["y_test"], dtype=torch.int64))
        return Splits(Split(x[:-held_out], y[:-held_out]), Split(x[-held_out:], y[-held_out:]), test)


class ShuffledMNIST1D(MNIST1D):
    name = "mnist1d-shuffle"
    description = "MNIST-1D with a fixed permutation of the time axis (the package's shuffle_seq)"
    anchors = {}
    shuffle = True
