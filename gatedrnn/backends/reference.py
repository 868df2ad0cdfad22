"""The reference backend: a plain autograd loop over the cell's step function.

Short and obviously right; it is the oracle that every faster backend is tested
against (outputs, final states and every gradient, including those of the initial
state).
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..cells import CellSpec, State


def is_available() -> bool:
    return True


def supports(spec: CellSpec, xw: Tensor) -> bool:
    return True


def run(
    spec: CellSpec,
    xw: Tensor,
    state: State,
    weights: Mapping[str, Tensor],
    lengths: Optional[Tensor] = None,
) -> Tuple[Tensor, State]:
    """Run the recurrence forward in time.

    Args:
        spec: the cell.
        xw: input projections ``W_ih x_t + b_ih`` for all steps, (T, B, G*H).
        state: initial state, a tuple of (B, ·) tensors, output ``h`` first.
        weights: recurrent weights, see :class:`~gatedrnn.cells.CellSpec`.
        lengths: (B,) int64 valid lengths, or None when every sequence has T steps.
            Past its length a sequence's state is frozen and its output is zero.

    Returns:
        ``(outputs, final_state)`` with outputs (T, B, H_out).
    """
    outputs = []
    # unbind, not xw[t]: indexing would make backward accumulate T full-size gradients.
    for t, xw_t in enumerate(xw.unbind(0)):  # (B, G*H)
        new_state = spec.step(xw_t, state, weights)
        if lengths is None:
            state = new_state
            outputs.append(state[0])
        else:
            valid = (lengths > t).unsqueeze(-1)  # (B, 1)
            state = tuple(torch.where(valid, new, old) for new, old in zip(new_state, state))
            outputs.append(torch.where(valid, new_state[0], torch.zeros_like(new_state[0])))
    return torch.stack(outputs), state  # (T, B, H_out)
