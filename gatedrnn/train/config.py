"""The configuration of one training run: what ``config.json`` holds.

Values left as ``None`` are filled from the named protocol (``protocol``, see
:mod:`gatedrnn.train.protocols`), then from the task's defaults
(:attr:`gatedrnn.tasks.Task.defaults`), then from :data:`GENERIC_DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..models import CELLS, HEADS, REGULARISED_CELLS, WEIGHT_INITS
from .protocols import PROTOCOLS, protocol_defaults

__all__ = ["TrainConfig", "GENERIC_DEFAULTS", "OPTIMIZERS", "SCHEDULES", "BEST_BY", "TASK_OPTIONS"]

#: the key of ``config.json`` that holds the task's options beside the configuration
TASK_OPTIONS = "task_options"

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("cosine", "constant")
#: what picks the kept (best-validation) weights: the task's metric or the validation loss
BEST_BY = ("metric", "loss")

GENERIC_DEFAULTS: Dict[str, Any] = {
    "hidden": 128, "layers": 1, "head": "last", "dropout": 0.0, "epochs": 10, "batch_size": 64,
    "lr": 1e-3, "optimizer": "adam", "schedule": "cosine", "clip": 1.0, "weight_decay": 0.0,
    "l2": 0.0, "weight_init": "torch", "best_by": "metric",
}


@dataclass
class TrainConfig:
    """Everything that determines a run (with the seed, it determines the run exactly on CPU).

    Attributes:
        task, cell: names from :mod:`gatedrnn.tasks` and :data:`gatedrnn.models.CELLS`.
        hidden, layers, head, dropout, chrono, zoneout, recurrent_dropout, output_dropout
            (``None``: ``dropout``), weight_init, forget_bias_init, chrono_t_max
            (``None``: the sequence length): the model (:func:`gatedrnn.models.build`).
        epochs, batch_size (global: split over the processes of a distributed run), lr,
        optimizer, schedule (cosine decay per step, or constant), clip (gradient-norm
        clipping; 0 turns it off), weight_decay (the optimiser's, on every parameter),
        l2 (``l2 / 2 * sum(w ** 2)`` over the parameters whose name has no ``bias``,
        added to the training loss: :func:`gatedrnn.train.trainer.l2_penalty`), best_by
        (the kept weights: best validation metric or lowest validation loss), seed:
        the optimisation.
        protocol: a name from :data:`gatedrnn.train.protocols.PROTOCOLS` whose settings
            fill the options left unset.
        data_dir, seq_len, delay: the task's options; limit: keep only the first
        ``limit`` examples of each split (quick runs, tests).
        device (``auto``: CUDA when available), backend: where and how to run.
    """

    task: str
    cell: str
    hidden: Optional[int] = None
    layers: Optional[int] = None
    head: Optional[str] = None
    dropout: Optional[float] = None
    chrono: bool = False
    zoneout: float = 0.0
    recurrent_dropout: float = 0.0
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[str] = None
    schedule: Optional[str] = None
    clip: Optional[float] = None
    weight_decay: Optional[float] = None
    l2: Optional[float] = None
    output_dropout: Optional[float] = None
    weight_init: Optional[str] = None
    forget_bias_init: Optional[float] = None
    chrono_t_max: Optional[float] = None
    best_by: Optional[str] = None
    protocol: Optional[str] = None
    seed: int = 0
    data_dir: Optional[str] = None
    seq_len: Optional[int] = None
    delay: Optional[int] = None
    limit: Optional[int] = None
    device: str = "auto"
    backend: str = "auto"

    def resolved(self, task_defaults: Dict[str, Any]) -> "TrainConfig":
        """A copy with every ``None`` hyperparameter filled from ``task_defaults``, then
        from :data:`GENERIC_DEFAULTS`, checked."""
        filled = {name: task_defaults.get(name, GENERIC_DEFAULTS.get(name))
                  for name, value in self.to_dict().items()
                  if value is None and (name in task_defaults or name in GENERIC_DEFAULTS)}
        config = dataclasses.replace(self, **filled)
        config.check()
        return config

    def for_task(self, task) -> "TrainConfig":
        """:meth:`resolved` for ``task`` (a :class:`gatedrnn.tasks.Task`): the protocol's
        settings first, then the task's defaults."""
        return self.resolved({**task.defaults, **protocol_defaults(self.protocol, task, self.cell, self.chrono)})

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option out of range."""
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("hidden", "layers", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.clip < 0 or self.weight_decay < 0:
            raise ValueError(f"clip and weight_decay must be >= 0, got {self.clip!r} and {self.weight_decay!r}")
        for name in ("zoneout", "recurrent_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
            if value and self.cell not in REGULARISED_CELLS:
                raise ValueError(f"{name} applies to {', '.join(REGULARISED_CELLS)}, not {self.cell}")
        if self.chrono and self.cell not in ("lstm", "janet"):
            raise ValueError(f"chrono initialisation applies to lstm (janet always has it), not {self.cell}")
        if not self.l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")
        if self.output_dropout is not None and not 0.0 <= self.output_dropout < 1.0:
            raise ValueError(f"output_dropout must be in [0, 1), got {self.output_dropout!r}")
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {self.weight_init!r}")
        if self.best_by not in BEST_BY:
            raise ValueError(f"best_by must be one of {', '.join(BEST_BY)}, got {self.best_by!r}")
        chrono = self.chrono or self.cell == "janet"
        if self.forget_bias_init is not None and (self.cell != "lstm" or chrono):
            raise ValueError(f"forget_bias_init applies to the lstm without --chrono, not to {self.cell}"
                             + (" with --chrono" if self.chrono else ""))
        if self.chrono_t_max is not None and not (chrono and self.chrono_t_max >= 3):
            raise ValueError(f"chrono_t_max applies to chrono initialisation (janet, or lstm with --chrono) "
                             f"and must be >= 3; got {self.chrono_t_max!r} for {self.cell}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        """From :meth:`to_dict`'s output (or ``config.json``, whose :data:`TASK_OPTIONS` are
        not configuration); a field missing (a run written before the field existed) takes
        its default."""
        return cls(**{name: value for name, value in values.items() if name != TASK_OPTIONS})

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name``."""
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)
