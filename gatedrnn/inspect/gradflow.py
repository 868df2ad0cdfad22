r"""How far back a loss reaches: the norm of d loss / d h_t for every step t.

The quantity is the *total* derivative of the loss with respect to the first recurrent
layer's output ``h_t``: through everything after the layer (heads, other layers) and
through the recurrence itself (``h_t`` feeds ``h_{t+1}``, ...). Gradients that vanish
over time show as ``flow[0] << flow[-1]``.

Why not ``output.retain_grad()``: the layer's output tensor is the stack of the
``h_t``; its gradient holds only the loss's *direct* dependence on each slice, so with
a loss on the last step it is zero at every earlier step. Instead the layer is replayed
(with the reference step math, from the same input) with a zero tensor added to ``h_t``
inside the recurrence at each step; the gradient of that zero is d loss / d h_t.

Example::

    >>> import torch, gatedrnn as gr
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> flow = gr.inspect.gradient_flow(gr.RNN(1, 16), torch.randn(50, 4, 1))
    >>> flow.shape
    torch.Size([50])
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..layers import RecurrentBase
from .record import _call, _dense, _layer_args, _recurrent_layers, _replay

__all__ = ["gradient_flow"]


def _default_loss(module: nn.Module) -> Callable[[Any], Tensor]:
    def loss(output) -> Tensor:
        if isinstance(output, tuple) and not isinstance(output, PackedSequence):
            output = output[0]
        if isinstance(module, RecurrentBase) and output.dim() == 3 and module.batch_first:
            return output[:, -1].sum()
        if isinstance(module, RecurrentBase):
            return output[-1].sum()  # (T, B, F) or unbatched (T, F)
        return output.sum()
    return loss


def gradient_flow(module: nn.Module, input: Tensor,
                  loss: Optional[Callable[[Any], Tensor]] = None) -> Tensor:
    """Norm of d loss / d h_t over batch and features, for every time step t.

    ``h_t`` is the output at step t of the *first* recurrent layer of ``module``
    (``gr.RNN/LSTM/GRU/JANET``, first in ``module.named_modules()`` order, at its first
    call): for a stack, the top layer's output; for a bidirectional layer, both
    directions' ``h_t`` together (both are perturbed at real time t). The derivative is
    the total one, through the recurrence (see the module docstring): the layer is
    replayed with the reference step functions from the input it received, and its
    replayed output (equal to its own) is what the rest of ``module`` sees.

    Args:
        module: a recurrent layer or a module containing one (eval mode needed for a
            stack with dropout between layers).
        input: a dense tensor as ``module`` takes it; a ``PackedSequence`` raises
            ``ValueError``.
        loss: ``loss(output) -> scalar`` on the module's output. Default: the sum of
            the output at the last step for a recurrent layer (element 0 of its
            ``(output, state)``; ``output[-1]``, or ``output[:, -1]`` with
            ``batch_first``), else the sum of the module's output (element 0 of a
            tuple).

    Returns:
        (T,) tensor, detached: ``flow[t] = ||d loss / d h_t||`` over (B, D*H_out).

    Example::

        >>> import torch, torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.LSTM(2, 8), gr.LastStep(), nn.Linear(8, 1))
        >>> gr.inspect.gradient_flow(model, torch.randn(30, 4, 2)).shape
        torch.Size([30])
    """
    _dense(input)
    layers = _recurrent_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} contains no recurrent layer "
                         "(gr.RNN, gr.LSTM, gr.GRU or gr.JANET)")
    first = layers[0][1]
    loss = _default_loss(module) if loss is None else loss
    perturbations: List[List[Tensor]] = []  # per direction, per real time step

    def hook(layer, args, kwargs, output):
        if perturbations:  # only the first call
            return output
        layer_input, layer_hx = _layer_args(args, kwargs)
        x, finals, batched, runs = _replay(layer, layer_input, layer_hx, perturb=True)
        perturbations.extend(run.perturbations for run in runs if run.perturbations)
        if not batched:
            out, finals = x.squeeze(1), tuple(s.squeeze(1) for s in finals)
        else:
            out = x.transpose(0, 1) if layer.batch_first else x
        state = finals if isinstance(output[1], tuple) else finals[0]
        return out, state

    handle = first.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.enable_grad():
            value = loss(_call(module, input, None))
            if not perturbations:
                raise ValueError(f"the first recurrent layer of {type(module).__name__} "
                                 "was not called")
            eps = [e for direction in perturbations for e in direction]
            grads = torch.autograd.grad(value, eps, allow_unused=True)
    finally:
        handle.remove()
    grads = [torch.zeros_like(e) if g is None else g for e, g in zip(eps, grads)]
    steps = len(perturbations[0])
    per_step = [torch.cat(grads[t::steps], dim=-1) for t in range(steps)]  # (B, D*H_out)
    return torch.stack([g.norm() for g in per_step]).detach()  # (T,)
