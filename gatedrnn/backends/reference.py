"""The reference backend: a plain autograd loop over the cell's step function.

Short and obviously right; it is the oracle that every faster backend is tested
against (outputs, final states and every gradient, including those of the initial
state).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

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


# torch._vmap_internals.vmap's batched tensors (gradcheck's check_batched_grad runs
# the backward under it); torch.func.vmap shows as an active functorch transform instead.
_LEGACY_BATCHED = torch._C._parse_dispatch_key("Batched")


def backward_must_recompute(*grads: Optional[Tensor]) -> bool:
    """Whether a hand-written backward (the native ops', the fused backend's), given the
    incoming gradients ``grads``, must give way to :func:`recompute_grads`: autograd wants
    a gradient it can differentiate again (``create_graph=True``: double backward, gradient
    penalties), or the backward runs under vmap (``torch.func.vmap`` over it, ``jacrev``,
    gradcheck's batched gradients), whose batching rules the kernels do not have."""
    return (torch.is_grad_enabled() or torch._C._are_functorch_transforms_active()
            or any(g is not None and torch._C._dispatch_keys(g).has(_LEGACY_BATCHED) for g in grads))


def recompute_grads(
    spec: CellSpec,
    xw: Tensor,
    state: State,
    weights: Mapping[str, Tensor],
    lengths: Optional[Tensor],
    grad_output: Optional[Tensor],
    grad_final: Sequence[Optional[Tensor]],
) -> Tuple[Optional[Tensor], Tuple[Optional[Tensor], ...], Dict[str, Optional[Tensor]]]:
    """The gradients of one run of the recurrence by autograd through this backend, as a
    differentiable graph (``create_graph=True``).

    What a faster backend's backward returns when autograd asks for a higher-order
    graph (``torch.autograd.grad(..., create_graph=True)``, ``gradgradcheck``): its
    hand-written backward is not itself differentiable, so it recomputes the run here,
    from the same inputs, and lets autograd differentiate the reference loop to any
    order. ``grad_output`` (T, B, H_out) and each of ``grad_final`` may be None (no
    gradient). Returns ``(grad_xw, grad_state, grad_weights)``, None where an input does
    not require a gradient.
    """
    names = list(weights)
    inputs = [xw, *state, *(weights[name] for name in names)]
    wanted = [i for i, t in enumerate(inputs) if t.requires_grad]
    with torch.enable_grad():
        output, final = run(spec, xw, state, weights, lengths)
        pairs = [(out, grad) for out, grad in zip((output, *final), (grad_output, *grad_final))
                 if grad is not None]
        grads = [None] * len(inputs)
        if wanted and pairs:
            found = torch.autograd.grad([out for out, _ in pairs], [inputs[i] for i in wanted],
                                        [grad for _, grad in pairs], create_graph=True, allow_unused=True)
            for i, grad in zip(wanted, found):
                grads[i] = grad
    num_state = len(state)
    return grads[0], tuple(grads[1:1 + num_state]), dict(zip(names, grads[1 + num_state:]))
