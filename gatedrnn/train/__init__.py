"""Training: one run (:func:`train`), several cells and seeds (:func:`compare`).

Example::

    >>> from gatedrnn.train import TrainConfig, train
    >>> summary = train(TrainConfig(task="mnist1d", cell="janet"), "runs/janet")  # doctest: +SKIP
    >>> summary["test_accuracy"]  # doctest: +SKIP
    0.97
"""

from .config import BEST_BY, GENERIC_DEFAULTS, OPTIMIZERS, SCHEDULES, TrainConfig
from .protocols import PROTOCOLS
from .trainer import NonFiniteLoss, RunExists, TrainingError, l2_penalty, read_metrics, train

__all__ = ["TrainConfig", "GENERIC_DEFAULTS", "OPTIMIZERS", "SCHEDULES", "BEST_BY", "PROTOCOLS", "train",
           "read_metrics", "l2_penalty", "TrainingError", "RunExists", "NonFiniteLoss"]
