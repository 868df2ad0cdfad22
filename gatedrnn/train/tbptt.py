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
from typing import Iterator, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import LayerState
from ..tasks import LanguageModelTask, Split
from .distributed import World, all_sum
from .trainer import TrainingError, _Run

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

    unit, step_name, rate = "chunk", "chunk", "chars_per_s"

    def prepare_training_data(self) -> int:
        """Cut the training stream into the batch's rows and keep this process' rows; the
        chunks per epoch."""
        try:
            x, y = stream_rows(self.splits.train, self.config.batch_size)  # (B, N // B)
        except ValueError as error:
            raise TrainingError(f"the training stream is too short: {error}") from None
        self.rows_x, self.rows_y = x[self.world.rank:: self.world.size], y[self.world.rank:: self.world.size]
        return math.ceil(x.size(1) / self.task.seq_len)

    def training_losses(self) -> Iterator[Tuple[Tensor, int]]:
        """The loss of each chunk of the rows, the state carried from the one before and
        detached once its step is taken; each with its number of characters."""
        state = None
        for start in range(0, self.rows_x.size(1), self.task.seq_len):
            chunk = slice(start, start + self.task.seq_len)
            x = self.rows_x[:, chunk].to(self.world.device)  # (b, T)
            y = self.rows_y[:, chunk].to(self.world.device)
            output, state = self.trained(x, state)  # (b, T, V)
            yield self.task.loss(output, y), y.numel()
            state = detach_state(state)

    def evaluate(self, split: Split) -> Tuple[float, float]:
        return evaluate_stream(self.model, self.task, split, self.world)

    def sample_input(self) -> Tensor:
        ids = self.splits.train.x[: self.task.seq_len].unsqueeze(0)  # (1, T)
        return F.one_hot(ids, self.task.input_size).float().to(self.world.device)  # (1, T, V)
