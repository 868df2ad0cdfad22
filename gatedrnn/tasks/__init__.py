"""Tasks to train on: a registry of names (``--task``) to :class:`~gatedrnn.tasks.base.Task`
classes. ``gatedrnn tasks`` lists them.

Example::

    >>> from gatedrnn import tasks
    >>> task = tasks.get("adding", seq_len=50)
    >>> splits = task.load()
    >>> splits.train.x.shape, splits.train.y.shape
    (torch.Size([10000, 50, 2]), torch.Size([10000, 1]))
"""

from __future__ import annotations

from typing import Dict, List, Optional, Type

from .base import ClassificationTask, DataUnavailable, RegressionTask, Split, Splits, Task
from .co2 import CO2
from .digits import Digits, PermutedDigits
from .idx import (FashionMNIST, FashionMNISTRows, MNISTRows, PermutedFashionMNIST, PermutedMNIST,
                  SequentialMNIST)
from .mnist1d import MNIST1D, ShuffledMNIST1D
from .mnist5k import PermutedMNIST5k, SequentialMNIST5k
from .synthetic import Adding, Copy
from .text import LanguageModelTask, PythonSource

__all__ = ["REGISTRY", "names", "get", "Task", "Split", "Splits", "DataUnavailable",
           "ClassificationTask", "RegressionTask", "LanguageModelTask"]

REGISTRY: Dict[str, Type[Task]] = {
    cls.name: cls
    for cls in (MNIST1D, ShuffledMNIST1D, Digits, PermutedDigits, FashionMNIST, PermutedFashionMNIST,
                FashionMNISTRows, SequentialMNIST, PermutedMNIST, MNISTRows, SequentialMNIST5k,
                PermutedMNIST5k, Adding, Copy, CO2, PythonSource)
}


def names() -> List[str]:
    """Registered task names, in listing order."""
    return list(REGISTRY)


def get(name: str, data_dir: Optional[str] = None, seq_len: Optional[int] = None,
        delay: Optional[int] = None) -> Task:
    """A task by name, with its options.

    Args:
        data_dir: where the IDX tasks read their files (the others take no data directory).
        seq_len: T of the adding problem (default 200); the truncated-BPTT length of
            the text task ``pysource`` (default 100).
        delay: the copy task's delay (default 100).

    Raises:
        ValueError: unknown name, or an option the task does not take.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose from: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    given = {"data_dir": data_dir, "seq_len": seq_len, "delay": delay}
    accepted = {"data_dir": issubclass(cls, (FashionMNIST, SequentialMNIST)),
                "seq_len": cls in (Adding, PythonSource), "delay": cls is Copy}
    for option, value in given.items():
        if value is not None and not accepted[option]:
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"task {name} does not take {flag} (got {value!r})")
    return cls(**{option: value for option, value in given.items() if value is not None})
