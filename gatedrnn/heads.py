r"""Heads: reduce a recurrent layer's output sequence to one vector per sequence.

These are the two classic answers to "what goes on top of an LSTM": a ``Dense(1)`` on
the last step (:class:`LastStep`), or mean pooling over time (:class:`MeanPool`);
:class:`MaxPool` is the third common one.

Each head takes what a recurrent layer returns, ``(output, state)``, or the output
alone, so it can follow the layer in an ``nn.Sequential``. The output may be

* a tensor (T, B, F), or (B, T, F) with ``batch_first=True`` (set it as on the layer),
  giving (B, F);
* an unbatched tensor (T, F), giving (F,);
* a ``PackedSequence``, giving (B, F) in the original batch order, computed over each
  sequence's valid steps only (padding is never looked at).

Example::

    >>> import torch, gatedrnn as gr
    >>> output, h_n = gr.JANET(1, 64)(torch.randn(100, 8, 1))  # (T, B, H), (1, B, H)
    >>> [tuple(head()(output).shape) for head in (gr.LastStep, gr.MeanPool, gr.MaxPool)]
    [(8, 64), (8, 64), (8, 64)]
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .sequences import to_time_major, valid_mask

__all__ = ["LastStep", "MeanPool", "MaxPool"]


def _fill_padding(x: Tensor, lengths: Tensor, value: float) -> Tensor:
    """x (T, B, F) with every step at or past its sequence's length (B,) set to ``value``."""
    return x.masked_fill(~valid_mask(x.size(0), lengths).unsqueeze(-1), value)  # (T, B, F)


class SequenceHead(nn.Module):
    """Base of the heads: unpacks the input, then :meth:`reduce` pools over time.

    ``forward`` accepts ``(output, state)`` as returned by the layers, or ``output``
    alone (a tensor or a ``PackedSequence``), brings the output to (T, B, F) with the
    lengths of its sequences (None when all have T steps), and returns
    ``reduce(x, lengths)``.

    Shapes: (T, B, F) / (B, T, F) with ``batch_first`` / ``PackedSequence`` -> (B, F);
    (T, F) -> (F,).
    """

    def __init__(self, batch_first: bool = False) -> None:
        super().__init__()
        self.batch_first = bool(batch_first)

    def extra_repr(self) -> str:
        return "batch_first=True" if self.batch_first else ""

    def reduce(self, x: Tensor, lengths: Optional[Tensor]) -> Tensor:
        """x (T, B, F), lengths (B,) on x's device or None -> (B, F)."""
        raise NotImplementedError

    def _unpack(self, input) -> Tuple[Tensor, Optional[Tensor], bool]:
        """-> (x (T, B, F), lengths (B,) or None, batched)."""
        name = type(self).__name__
        if isinstance(input, tuple) and not isinstance(input, PackedSequence):
            if len(input) == 0:
                raise TypeError(f"{name} expected (output, state) or output, got an empty tuple")
            input = input[0]  # (output, state): the output
        if isinstance(input, PackedSequence):
            return to_time_major(input, self.batch_first, name)
        if not isinstance(input, Tensor):
            raise TypeError(
                f"{name} expects a recurrent layer's output: a Tensor, a PackedSequence, "
                f"or an (output, state) tuple; got {type(input).__name__}"
            )
        if not input.is_floating_point():
            raise TypeError(f"{name} expects a floating-point output, got dtype {input.dtype}")
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{name} expects a 3-D output ({'B, T' if self.batch_first else 'T, B'}, F) "
                f"or an unbatched 2-D output (T, F), got shape {tuple(input.shape)}"
            )
        return to_time_major(input, self.batch_first, name)

    def forward(self, input) -> Tensor:
        x, lengths, batched = self._unpack(input)
        out = self.reduce(x, lengths)  # (B, F)
        return out if batched else out.squeeze(0)


class LastStep(SequenceHead):
    """The output at the last valid step of each sequence.

    ``output[T-1]`` for tensors (every sequence has T steps); for a ``PackedSequence``
    the output at step ``length - 1`` of each sequence. Put ``nn.Linear(F, 1)`` after it
    for the classic "Dense(1) on the last step".

    For a bidirectional layer, the backward half of the last step has seen only the
    last input; the final states ``h_n`` may then be what you want instead.

    Inputs and shapes as :class:`SequenceHead`'s.

    Example::

        >>> import torch, torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.LSTM(3, 16, batch_first=True),
        ...                       gr.LastStep(batch_first=True), nn.Linear(16, 1))
        >>> model(torch.randn(4, 10, 3)).shape
        torch.Size([4, 1])
    """

    def reduce(self, x: Tensor, lengths: Optional[Tensor]) -> Tensor:
        if lengths is None:
            return x[-1]
        return x[lengths - 1, torch.arange(x.size(1), device=x.device)]


class MeanPool(SequenceHead):
    """The mean of the outputs over the valid steps of each sequence.

    Inputs and shapes as :class:`SequenceHead`'s; a ``PackedSequence`` gives each
    sequence's mean over its own length.

    Example::

        >>> import torch, gatedrnn as gr
        >>> from torch.nn.utils.rnn import pack_padded_sequence
        >>> x = pack_padded_sequence(torch.randn(10, 2, 3), [10, 4], enforce_sorted=False)
        >>> gr.MeanPool()(gr.GRU(3, 8)(x)).shape
        torch.Size([2, 8])
    """

    def reduce(self, x: Tensor, lengths: Optional[Tensor]) -> Tensor:
        if lengths is None:
            return x.mean(dim=0)
        total = _fill_padding(x, lengths, 0.0).sum(dim=0)  # (B, F)
        return total / lengths.unsqueeze(-1).to(x.dtype)


class MaxPool(SequenceHead):
    """The feature-wise maximum of the outputs over the valid steps of each sequence.

    Inputs and shapes as :class:`SequenceHead`'s.

    Example::

        >>> import torch, gatedrnn as gr
        >>> output, h_n = gr.JANET(3, 8)(torch.randn(10, 3))  # unbatched: (T, I)
        >>> gr.MaxPool()(output).shape
        torch.Size([8])
    """

    def reduce(self, x: Tensor, lengths: Optional[Tensor]) -> Tensor:
        if lengths is None:
            return x.amax(dim=0)
        return _fill_padding(x, lengths, float("-inf")).amax(dim=0)  # (B, F)
