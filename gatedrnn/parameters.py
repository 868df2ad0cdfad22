"""Parameter layout shared by layers and single-step cells (torch.nn names).

For a cell with G gate blocks, hidden size H, projection size P (0: none):

=============  ===========  ===============================================
name           shape        meaning
=============  ===========  ===============================================
weight_ih      (G*H, I)     input weights, gate blocks stacked in cell order
weight_hh      (G*H, P|H)   recurrent weights
bias_ih        (G*H,)       input bias (with ``bias=True``)
bias_hh        (G*H,)       recurrent bias (with ``bias=True``)
weight_hr      (P, H)       LSTM projection (with ``proj_size > 0``)
weight_ci      (H,)         LSTM peephole onto the input gate, from c_{t-1}
weight_cf      (H,)         LSTM peephole onto the forget gate, from c_{t-1}
weight_co      (H,)         LSTM peephole onto the output gate, from c_t
=============  ===========  ===============================================

Layers add the suffix ``_l{k}`` (layer k) and ``_reverse`` (backward direction),
exactly as ``torch.nn.LSTM``.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Iterable, Tuple

import torch
from torch import nn

#: The recurrent parameters of every cell, in the native kernels' slot order (the
#: layer-normalised LSTM's gains and bias last). A backend receives every parameter but
#: the input stage's (``CellSpec.input_parameters``).
RECURRENT_NAMES = ("weight_hh", "bias_hh", "weight_hr", "weight_ci", "weight_cf", "weight_co",
                   "layernorm_hh_weight", "layernorm_c_weight", "layernorm_c_bias")


def parameter_shapes(
    num_gates: int,
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    proj_size: int = 0,
    peepholes: bool = False,
) -> Dict[str, Tuple[int, ...]]:
    """Shapes of one cell's parameters, in torch.nn's registration order."""
    gh = num_gates * hidden_size
    real_hidden = proj_size if proj_size > 0 else hidden_size
    shapes: Dict[str, Tuple[int, ...]] = {
        "weight_ih": (gh, input_size),
        "weight_hh": (gh, real_hidden),
    }
    if bias:
        shapes["bias_ih"] = (gh,)
        shapes["bias_hh"] = (gh,)
    if proj_size > 0:
        shapes["weight_hr"] = (proj_size, hidden_size)
    if peepholes:
        shapes.update(weight_ci=(hidden_size,), weight_cf=(hidden_size,), weight_co=(hidden_size,))
    return shapes


def register(module: nn.Module, shapes: Dict[str, Tuple[int, ...]], suffix: str, factory_kwargs) -> None:
    """Register an empty parameter ``name + suffix`` for each entry of ``shapes``."""
    for name, shape in shapes.items():
        module.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory_kwargs)))


def strip_suffix(name: str) -> str:
    """``"weight_hh_l1_reverse"`` -> ``"weight_hh"``."""
    return re.sub(r"_l\d+(_reverse)?$", "", name)


def reset_uniform_(parameters: Iterable[nn.Parameter], hidden_size: int) -> None:
    """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in parameters:
            p.uniform_(-bound, bound)


def state_sizes(num_states: int, hidden_size: int, proj_size: int = 0) -> Tuple[int, ...]:
    """Feature size of each state element: h (``proj_size`` or H), then c (H) for the LSTM."""
    return (proj_size or hidden_size,) + (hidden_size,) * (num_states - 1)
