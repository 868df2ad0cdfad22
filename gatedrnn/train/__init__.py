"""Training: one run (:func:`train`), several cells and seeds (:func:`compare`).

Example::

    >>> from gatedrnn.train import TrainConfig, train
    >>> summary = train(TrainConfig(task="mnist1d", cell="janet"), "runs/janet")  # doctest: +SKIP
    >>> summary["test_accuracy"]  # doctest: +SKIP
    0.97
"""

from .config import GENERIC_DEFAULTS, OPTIMIZERS, SCHEDULES, TrainConfig
from .trainer import NonFiniteLoss, RunExists, TrainingError, read_metrics, train

__all__ = ["TrainConfig", "GENERIC_DEFAULTS", "OPTIMIZERS", "SCHEDULES", "train", "read_metrics",
           "TrainingError", "RunExists", "NonFiniteLoss"]
