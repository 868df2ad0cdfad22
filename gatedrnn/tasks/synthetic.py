r"""The two classic long-memory problems, generated as in the JANET authors' code.

**Adding problem** (Hochreiter & Schmidhuber 1997): each sequence has T steps of two
features, a value drawn from U(0, 1) and a marker that is 1 at exactly two steps (one
in each half) and 0 elsewhere. The target is the sum of the two marked values; the
metric is the MSE. Predicting the mean scores about 1/6 ~ 0.167 (the
``predict_mean_mse`` baseline in ``summary.json``).

**Copy memory task**: ten symbols drawn from {1, ..., 8}, then ``delay`` blanks (0), a
delimiter (9), and ten more blanks during which the model must output the ten symbols
in order; T = delay + 21 steps of one-hot inputs over 10 symbols, and a label at every
step (0 everywhere but the last ten). The loss is the cross-entropy over all steps, as
in the authors' code; the metric is the accuracy on the ten recalled symbols (chance:
1/8, the ``chance_accuracy`` baseline).

Each split is generated from its own fixed seed, so that every training seed sees the
same data: 10000 training, 1000 validation and 2000 test sequences.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import ClassificationTask, RegressionTask, Split, Splits

SIZES = {"train": 10000, "validation": 1000, "test": 2000}
SEEDS = {"train": 1, "validation": 2, "test": 3}
COPY_SYMBOLS = 10  # symbols to remember
COPY_ALPHABET = 10  # one-hot width: blank 0, symbols 1..8, delimiter 9


def _check_length(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def adding_problem(count: int, seq_len: int, rng: np.random.Generator) -> Split:
    """-> Split with x (N, T, 2) float32 and y (N, 1) float32."""
    values = rng.uniform(0.0, 1.0, size=(count, seq_len))  # (N, T)
    half = seq_len // 2
    first = rng.integers(0, half, size=count)
    second = rng.integers(half, seq_len, size=count)
    markers = np.zeros((count, seq_len))
    markers[np.arange(count), first] = 1.0
    markers[np.arange(count), second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (N, T, 2)
    y = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)  # (N, 1)
    return Split(torch.from_numpy(x), torch.from_numpy(y))


def copy_memory(count: int, delay: int, rng: np.random.Generator) -> Split:
    """-> Split with x (N, T, 10) float32 one-hot and y (N, T) int64, T = delay + 21."""
    seq_len = delay + 2 * COPY_SYMBOLS + 1
    symbols = rng.integers(1, 9, size=(count, COPY_SYMBOLS))  # (N, 10) in 1..8
    inputs = np.zeros((count, seq_len), dtype=np.int64)
    inputs[:, :COPY_SYMBOLS] = symbols
    inputs[:, delay + COPY_SYMBOLS] = 9  # the delimiter: "now repeat"
    labels = np.zeros((count, seq_len), dtype=np.int64)
    labels[:, -COPY_SYMBOLS:] = symbols
    x = F.one_hot(torch.from_numpy(inputs), COPY_ALPHABET).float()  # (N, T, 10)
    return Split(x, torch.from_numpy(labels))


class Adding(RegressionTask):
    name = "adding"
    description = "adding problem: sum of the two marked values, T steps x 2 features (MSE)"
    input_size = 2
    defaults = {"hidden": 128, "epochs": 10, "batch_size": 50, "lr": 1e-2, "head": "last", "clip": 1.0}

    def __init__(self, seq_len: int = 200) -> None:
        self.seq_len = _check_length("seq_len", seq_len, 2)

    def options(self) -> Dict[str, Any]:
        return {"seq_len": self.seq_len}

    def load(self) -> Splits:
        splits = {name: adding_problem(SIZES[name], self.seq_len, np.random.default_rng(SEEDS[name]))
                  for name in SIZES}
        mean = float(splits["train"].y.mean())
        baseline = float((splits["test"].y - mean).pow(2).mean())
        return Splits(splits["train"], splits["validation"], splits["test"],
                      {"predict_mean_mse": baseline})


class Copy(ClassificationTask):
    name = "copy"
    description = "copy memory: recall 10 symbols after a delay; one-hot, T = delay + 21 steps"
    input_size, output_size = COPY_ALPHABET, COPY_ALPHABET
    per_step = True
    defaults = {"hidden": 128, "epochs": 10, "batch_size": 50, "lr": 1e-3, "clip": 1.0}

    def __init__(self, delay: int = 100) -> None:
        self.delay = _check_length("delay", delay, 0)
        self.seq_len = delay + 2 * COPY_SYMBOLS + 1

    def options(self) -> Dict[str, Any]:
        return {"delay": self.delay}

    def load(self) -> Splits:
        splits = {name: copy_memory(SIZES[name], self.delay, np.random.default_rng(SEEDS[name]))
                  for name in SIZES}
        return Splits(splits["train"], splits["validation"], splits["test"],
                      {"chance_accuracy": 1.0 / 8.0})

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        # output (B, T, C), target (B, T): cross-entropy over every step
        return F.cross_entropy(output.flatten(0, 1), target.flatten())

    def score(self, output: Tensor, target: Tensor) -> Tuple[float, int]:
        recalled = output[:, -COPY_SYMBOLS:].argmax(-1)  # (B, 10)
        truth = target[:, -COPY_SYMBOLS:]
        return float((recalled == truth).sum()), truth.numel()
