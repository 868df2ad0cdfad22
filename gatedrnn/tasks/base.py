r"""What every task is: data splits, a loss, a metric and default hyperparameters.

A task owns everything about *what* is learned; the model (:mod:`gatedrnn.models`)
and the trainer (:mod:`gatedrnn.train`) know nothing about any task in particular.

Shapes the tasks produce (every split):

* ``x``: (N, T, I) float32, batch first;
* ``y``: (N,) int64 class labels (classification), (N, 1) float32 targets
  (regression), or (N, T) int64 labels at every step (``per_step`` tasks such as
  the copy task, whose models emit (B, T, C)).

Metrics aggregate as sums over examples (:meth:`Task.score`), so that batches and
processes of a distributed run add up to exactly the metric of the whole split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DataUnavailable", "Split", "Splits", "Task", "ClassificationTask", "RegressionTask",
           "cache_dir"]


class DataUnavailable(RuntimeError):
    """A task's data is missing; the message says where it was looked for and how to get it."""


@dataclass(frozen=True)
class Split:
    """One split of a task: inputs ``x`` (N, T, I) and targets ``y``."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return self.x.size(0)

    def head(self, count: Optional[int]) -> "Split":
        """The first ``count`` examples (all of them when ``count`` is None)."""
        return self if count is None else Split(self.x[:count], self.y[:count])


@dataclass(frozen=True)
class Splits:
    """Train, validation and test splits, plus reference scores to read results against."""

    train: Split
    validation: Split
    test: Split
    #: test-set scores of trivial predictors, e.g. ``{"repeat_last_mse": 0.31}``
    baselines: Dict[str, float] = field(default_factory=dict)

    def head(self, count: Optional[int]) -> "Splits":
        """The first ``count`` examples of every split (for quick runs and tests)."""
        return Splits(self.train.head(count), self.validation.head(count), self.test.head(count),
                      self.baselines)


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$GATEDRNN_CACHE`` or ``~/.cache/gatedrnn``."""
    return Path(os.environ.get("GATEDRNN_CACHE", Path.home() / ".cache" / "gatedrnn"))


class Task:
    """Base class of the tasks; subclasses set the class attributes and :meth:`load`.

    Attributes:
        name: the registry name (``--task``).
        description: one line for ``gatedrnn tasks``.
        metric: ``"accuracy"`` or ``"mse"``; ``summary.json`` reports ``test_<metric>``.
        input_size, output_size, seq_len: I, classes (or 1 for regression), T.
        per_step: the model emits an output at every step (B, T, C) instead of (B, C).
        defaults: the task's default hyperparameters (overrides of
            :data:`gatedrnn.train.GENERIC_DEFAULTS`).
        anchors: published scores of other methods, quoted in ``results.md``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    metric: ClassVar[str]
    per_step: ClassVar[bool] = False
    defaults: ClassVar[Dict[str, Any]] = {}
    #: published test scores of other methods on this task, for the reports
    anchors: ClassVar[Dict[str, float]] = {}
    input_size: int
    output_size: int
    seq_len: int

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def options(self) -> Dict[str, Any]:
        """The task's own options (data directory, sequence length), for ``config.json``."""
        return {}

    def load(self) -> Splits:
        """Read or generate the data. Raises :class:`DataUnavailable` when it cannot."""
        raise NotImplementedError

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss of a batch (a 0-dim tensor)."""
        raise NotImplementedError

    def score(self, output: Tensor, target: Tensor) -> Tuple[float, int]:
        """(sum of the metric over the batch's examples, number of examples)."""
        raise NotImplementedError


class ClassificationTask(Task):
    """Cross-entropy loss on (B, C) logits; metric: accuracy."""

    metric = "accuracy"

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output, target)

    def score(self, output: Tensor, target: Tensor) -> Tuple[float, int]:
        return float((output.argmax(-1) == target).sum()), target.numel()


class RegressionTask(Task):
    """Mean squared error on (B, 1) outputs; metric: MSE in the data's own units.

    ``target_scale`` converts the model's normalised units back to the data's units
    (the loss is computed on normalised targets, the metric reported in real ones).
    """

    metric = "mse"
    output_size = 1
    target_scale: float = 1.0

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target)

    def score(self, output: Tensor, target: Tensor) -> Tuple[float, int]:
        error = (output.detach() - target) * self.target_scale  # (B, 1)
        return float(error.pow(2).sum()), target.numel()
