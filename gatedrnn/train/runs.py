"""Reading a run directory back: its configuration, its task and its best-validation model.

What ``gatedrnn generate`` and ``gatedrnn explore`` start from. The model is rebuilt as
the trainer built it (the same seed, so also its initial weights), then given the
weights of ``checkpoints/best.safetensors``, in eval mode.

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

__all__ = ["LoadedRun", "read_config", "build_model", "load_run"]

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


def build_model(config: TrainConfig, task: tasks.Task) -> nn.Module:
    """The model ``config`` trains on ``task``, as it was before its first step (the
    trainer seeds torch with ``config.seed`` right before building), in eval mode. The
    caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if isinstance(task, tasks.LanguageModelTask):
            from .tbptt import language_model

            return language_model(config, task).eval()
        return models.build(config.cell, task.input_size, task.output_size, hidden=config.hidden,
                            layers=config.layers, head=config.head, dropout=config.dropout,
                            per_step=task.per_step, t_max=task.seq_len, chrono=config.chrono,
                            backend=config.backend, zoneout=config.zoneout,
                            recurrent_dropout=config.recurrent_dropout).eval()


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
