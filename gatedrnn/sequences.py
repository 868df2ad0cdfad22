"""Sequence layout, handled once for layers and heads: time-major conversion,
PackedSequence unpacking, masks and reversal within each sequence's length."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .validation import InputError


def to_time_major(input: Union[Tensor, PackedSequence], batch_first: bool,
                  name: str = "input") -> Tuple[Tensor, Optional[Tensor], bool]:
    """A 2-D or 3-D tensor or a PackedSequence -> ``(x, lengths, batched)``.

    ``x`` is (T, B, F); ``lengths`` (B,) on x's device for a PackedSequence (original
    batch order), else None; ``batched`` is False for an unbatched (T, F) tensor, which
    becomes (T, 1, F). Raises :class:`~gatedrnn.validation.InputError` (a ``ValueError``
    and a ``RuntimeError``) when there are no time steps.
    """
    if isinstance(input, PackedSequence):
        x, lengths = pad_packed_sequence(input)  # (T, B, F), original batch order
        return x, lengths.to(x.device), True
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(1)  # (T, B, F)
    if batched and batch_first:
        x = x.transpose(0, 1)
    if x.size(0) == 0:
        raise InputError(f"{name} has an empty sequence: got 0 time steps ({name} of shape "
                         f"{tuple(input.shape)}; Expected sequence length to be larger than 0 in RNN)")
    return x, None, batched


def valid_mask(steps: int, lengths: Tensor) -> Tensor:
    """(T, B) bool: True at the valid steps of each sequence."""
    return torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths  # (T, B)


def reverse_within_lengths(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse (T, B, ...) in time, each sequence within its own length.

    Padding past a sequence's length stays where it is, so the operation is its own
    inverse: it maps the backward direction onto a forward-in-time recurrence.
    """
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.size(0), device=x.device).unsqueeze(1)  # (T, 1)
    lengths = lengths.to(x.device)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (T, B)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)
