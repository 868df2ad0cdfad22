"""Reading a run directory back: its configuration, its task and its best-validation model.

What ``gatedrnn generate``, ``gatedrnn explore`` and ``gatedrnn inspect`` start from.
:func:`new_model` is the one place a configuration becomes a model: the trainer calls
it right after seeding torch with ``config.seed``, and :func:`build_model` does the
same in a forked random state, so it rebuilds a run's initial weights exactly.
:func:`load_run` gives that model the weights of ``checkpoints/best.safetensors``, in
eval mode.

Example::

    >>> from gatedrnn.train.runs import load_run
    >>> run = load_run("runs/pysource-lstm-seed0")  # doctest: +SKIP
    >>> run.task.name, type(run.model).__name__  # doctest: +SKIP
    ('pysource', 'LanguageModel')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from safetensors.torch import load_file
from torch import nn

from .. import models, tasks
from .checkpoint import BEST
from .config import TrainConfig

__all__ = ["LoadedRun", "read_config", "new_model", "build_model", "load_run"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class LoadedRun:
    """A finished run: ``config`` (resolved), ``task``, ``model`` (best weights, eval mode)."""

    run_dir: Path
    config: TrainConfig
    task: tasks.Task
    model: nn.Module


def read_config(run_dir: PathLike) -> TrainConfig:
    """The run's ``config.json``. Raises ``FileNotFoundError`` (no directory or file) or
    ``ValueError`` (not a training configuration)."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json "
                                "(written by gatedrnn train)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:  # bad JSON, unknown or missing fields
        raise ValueError(f"{path} is not a gatedrnn training configuration: {error}") from None


def new_model(config: TrainConfig, task: tasks.Task) -> nn.Module:
    """The untrained model that the resolved ``config`` trains on ``task``, in train mode,
    its initial weights drawn from torch's global generator: a
    :class:`~gatedrnn.models.LanguageModel` (:func:`~gatedrnn.models.build_language_model`)
    for a :class:`~gatedrnn.tasks.LanguageModelTask`, else :func:`gatedrnn.models.build`'s
    model, with every model option of :class:`TrainConfig`."""
    options = dict(hidden=config.hidden, layers=config.layers, dropout=config.dropout, t_max=task.seq_len,
                   chrono=config.chrono, backend=config.backend, zoneout=config.zoneout,
                   recurrent_dropout=config.recurrent_dropout, output_dropout=config.output_dropout,
                   weight_init=config.weight_init, forget_bias_init=config.forget_bias_init,
                   chrono_t_max=config.chrono_t_max)
    if isinstance(task, tasks.LanguageModelTask):
        return models.build_language_model(config.cell, task.output_size, **options)
    return models.build(config.cell, task.input_size, task.output_size, head=config.head,
                        per_step=task.per_step, **options)


def build_model(config: TrainConfig, task: tasks.Task) -> nn.Module:
    """:func:`new_model` as the trainer made it before its first step (it seeds torch with
    ``config.seed`` right before building), in eval mode. The caller's random state is
    left as it was.

    Example::

        >>> from gatedrnn import tasks
        >>> from gatedrnn.train import TrainConfig
        >>> task = tasks.get("adding")
        >>> config = TrainConfig(task="adding", cell="janet", hidden=8).for_task(task)
        >>> first, again = build_model(config, task), build_model(config, task)
        >>> all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return new_model(config, task).eval()


def load_run(run_dir: PathLike) -> LoadedRun:
    """The run in ``run_dir`` with its best-validation weights.

    Raises:
        FileNotFoundError: no such directory, no ``config.json`` or no best weights.
        ValueError: an unreadable ``config.json``.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    task = tasks.get(config.task, data_dir=config.data_dir, seq_len=config.seq_len, delay=config.delay)
    config = config.resolved(task.defaults)  # a no-op for config.json, which is resolved
    weights = run_dir / "checkpoints" / BEST
    if not weights.is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoints/{BEST}: the run has not finished "
                                "its first epoch")
    model = build_model(config, task)
    model.load_state_dict(load_file(str(weights)))
    return LoadedRun(run_dir, config, task, model)
