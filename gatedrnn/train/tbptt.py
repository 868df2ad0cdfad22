r"""Truncated backpropagation through time: how the language-model tasks are trained.

A :class:`~gatedrnn.tasks.LanguageModelTask` split is one stream of N characters.
:func:`stream_rows` cuts it into B contiguous rows (B = ``batch_size``; the last
N mod B characters are dropped), so row b reads characters ``b * N // B`` onwards. An
epoch walks the rows ``seq_len`` characters at a time, as Zaremba et al. (2014) and
PyTorch's word-language-model example do:

.. math::
    (\text{logits}_k, s_k) = \text{model}(x_{:, kT:(k+1)T},\ \mathrm{detach}(s_{k-1})),
    \qquad s_{-1} = 0

one optimiser step per chunk: the state flows forward across the whole epoch, gradients
only through the T steps of a chunk. The state starts from zero at each epoch (and for
each evaluation). In a distributed run, process r takes rows r, r + P, ... of the global
batch, so the processes together take exactly the single-process batches.

Evaluation walks :data:`EVAL_ROWS` rows of the held-out stream the same way (state
carried, no gradients) and sums the bits of every character, so the bits per
character do not depend on the training batch size.

:class:`StreamRun` is the trainer's :class:`~gatedrnn.train.trainer._Run` with this
data order, a :class:`~gatedrnn.models.LanguageModel`, and the same checkpoints,
resumption, metrics and summary.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..models import LayerState
from ..tasks import LanguageModelTask, Split
from .config import TrainConfig
from .distributed import World, all_sum, any_true
from .runs import new_model
from .trainer import NonFiniteLoss, TrainingError, _optimizer, _Run, _scheduler, _summary_writer, l2_penalty

__all__ = ["EVAL_ROWS", "StreamRun", "stream_rows", "detach_state", "evaluate_stream"]

#: rows the held-out streams are cut into for evaluation
EVAL_ROWS = 32


def stream_rows(split: Split, rows: int) -> Tuple[Tensor, Tensor]:
    """A split's stream as ``rows`` contiguous rows: x, y (rows, N // rows)."""
    if len(split) < rows:
        raise ValueError(f"a stream of {len(split)} characters cannot fill {rows} rows of at least "
                         f"one character: lower batch_size or raise limit")
    length = len(split) // rows
    return split.x[: rows * length].view(rows, length), split.y[: rows * length].view(rows, length)


def detach_state(state: LayerState) -> LayerState:
    """The state cut from the graph of the chunk that produced it."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def evaluate_stream(model: nn.Module, task: LanguageModelTask, split: Split, world: World,
                    rows: int = EVAL_ROWS) -> Tuple[float, float]:
    """Bits per character and the mean loss (cross-entropy in nats per character) on
    ``split``, its stream cut into ``rows`` rows (fewer for a stream shorter than that)
    walked ``task.seq_len`` steps at a time, state carried; process r scores rows r,
    r + P, ..."""
    model.eval()
    x, y = stream_rows(split, min(rows, len(split)))
    x, y = x[world.rank:: world.size], y[world.rank:: world.size]  # this process' rows
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, x.size(1) if len(x) else 0, task.seq_len):
            chunk = slice(start, start + task.seq_len)
            output, state = model(x[:, chunk].to(world.device), state)  # (b, T, V)
            bits, characters = task.score(output, y[:, chunk].to(world.device))
            total, count = total + bits, count + characters
    total, count = all_sum(world, (total, count))
    return total / count, total / count * math.log(2)


class StreamRun(_Run):
    """One language-model run: truncated BPTT over contiguous rows (see the module docstring)."""

    def __init__(self, config: TrainConfig, task: LanguageModelTask, splits, out: Path, world: World,
                 progress: bool, tensorboard: bool) -> None:
        self.config, self.task, self.splits, self.out, self.world = config, task, splits, out, world
        self.progress = progress and world.is_main
        torch.manual_seed(config.seed)  # the initial weights, then dropout, draw from it
        self.model = new_model(config, task).to(world.device)
        self.batch_size = config.batch_size // world.size
        try:
            x, y = stream_rows(splits.train, config.batch_size)  # (B, N // B)
        except ValueError as error:
            raise TrainingError(f"the training stream is too short: {error}") from None
        self.rows_x, self.rows_y = x[world.rank:: world.size], y[world.rank:: world.size]
        self.steps_per_epoch = math.ceil(x.size(1) / task.seq_len)
        self.optimizer = _optimizer(config, self.model.parameters())
        self.scheduler = _scheduler(config, self.optimizer, config.epochs * self.steps_per_epoch)
        self.trained = DistributedDataParallel(self.model) if world.size > 1 else self.model
        self.epoch = 0
        self.best = None
        self.writer = _summary_writer(tensorboard, world, out)

    def train_epoch(self) -> float:
        """One pass over the rows, one step per chunk; the mean loss per character."""
        self.trained.train()
        loss_sum, seen, state = 0.0, 0, None
        started = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch}/{self.config.epochs}",
                   unit="chunk", leave=False, dynamic_ncols=True,
                   disable=None if self.progress else True)
        with bar:
            for step, start in enumerate(range(0, self.rows_x.size(1), self.task.seq_len), 1):
                chunk = slice(start, start + self.task.seq_len)
                x = self.rows_x[:, chunk].to(self.world.device)  # (b, T)
                y = self.rows_y[:, chunk].to(self.world.device)
                output, state = self.trained(x, state)  # (b, T, V)
                loss = self.task.loss(output, y)
                value = loss.item()
                if any_true(self.world, not math.isfinite(value)):
                    raise NonFiniteLoss(
                        f"the training loss became non-finite ({value}) at epoch {self.epoch}, chunk {step}; "
                        f"training stopped. The last good checkpoint (epoch {self.epoch - 1}) is in "
                        f"{self.out / 'checkpoints'}. Try a lower --lr or a --clip.")
                self.optimizer.zero_grad(set_to_none=True)
                if self.config.l2 > 0:
                    loss = loss + l2_penalty(self.model, self.config.l2)
                loss.backward()
                if self.config.clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
                self.optimizer.step()
                self.scheduler.step()
                state = detach_state(state)
                loss_sum, seen = loss_sum + value * y.numel(), seen + y.numel()
                bar.update()
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                                chars_per_s=f"{seen * self.world.size / (time.perf_counter() - started):.0f}")
        loss_sum, seen = all_sum(self.world, (loss_sum, seen))
        return loss_sum / seen

    def evaluate(self, split: Split) -> Tuple[float, float]:
        return evaluate_stream(self.model, self.task, split, self.world)

    def sample_input(self) -> Tensor:
        ids = self.splits.train.x[: self.task.seq_len].unsqueeze(0)  # (1, T)
        return F.one_hot(ids, self.task.input_size).float().to(self.world.device)  # (1, T, V)
