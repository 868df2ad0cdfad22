"""What the converters share: array checks, the checks of a layer against what a
framework can hold, and a layer's parameters one layer and direction at a time in a
framework's gate order (:mod:`gatedrnn.convert.gates`)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..layers import GRU, LSTM, RNN
from .gates import GATE_ORDERS, reorder_gates

# The LSTM options some frameworks lack, with the value that means "not used".
_LSTM_OPTION_DEFAULTS = {"peepholes": False, "cell_clip": None, "proj_clip": None, "proj_size": 0}


# -- arrays -------------------------------------------------------------------------

def shape_of(a) -> Tuple[int, ...]:
    return tuple(int(s) for s in np.shape(a))


def check_shape(name: str, a, expected: Tuple[int, ...]) -> None:
    got = shape_of(a)
    if got != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {got}")


def check_choice(name: str, value, choices: Sequence) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``choices`` (listed as given)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def to_tensor(a, dtype: Optional[torch.dtype] = torch.float32) -> Tensor:
    """A detached CPU copy of an array or tensor, in ``dtype`` (None: its own)."""
    if isinstance(a, Tensor):
        t = a.detach().cpu()
    else:
        t = torch.from_numpy(np.array(a, copy=True))
    return t.to(dtype) if dtype is not None else t


def to_numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def float_dtype_of(a) -> torch.dtype:
    """The floating dtype of an array or tensor, float32 for anything else."""
    dt = to_tensor(a, None).dtype
    return dt if dt.is_floating_point else torch.float32


# -- layers -------------------------------------------------------------------------

def cell_kind(layer: nn.Module) -> str:
    """``"lstm"``, ``"gru"`` or ``"rnn"``: the key of ``layer`` in GATE_ORDERS; TypeError
    for anything but a gatedrnn RNN, LSTM or GRU."""
    for cls, kind in ((LSTM, "lstm"), (GRU, "gru"), (RNN, "rnn")):
        if isinstance(layer, cls):
            return kind
    raise TypeError(f"layer must be a gatedrnn.RNN, LSTM or GRU, got {type(layer).__name__}")


def check_single_layer(layer: nn.Module, caller: str) -> None:
    """TypeError unless RNN / LSTM / GRU; ValueError for a stacked or bidirectional one."""
    cell_kind(layer)
    if layer.num_layers != 1:
        raise ValueError(
            f"{caller} converts a single layer, got num_layers={layer.num_layers} "
            f"(convert each layer separately)")
    if layer.bidirectional:
        raise ValueError(f"{caller} converts a unidirectional layer, got bidirectional=True")


def check_lstm_options(layer: nn.Module, options: Sequence[str], target: str,
                       caller: str = "") -> None:
    """ValueError for an LSTM using one of ``options``, which ``target`` lacks."""
    if not isinstance(layer, LSTM):
        return
    for name in options:
        value, default = getattr(layer, name), _LSTM_OPTION_DEFAULTS[name]
        if value != default:
            needs = f"{caller} needs" if caller else "needs"
            raise ValueError(f"{target} has no {name}: {needs} {name}={default!r}, "
                             f"got {name}={value!r}")


def has_forget_bias(layer: nn.Module) -> bool:
    return isinstance(layer, LSTM) and layer.forget_bias != 0.0


def add_forget_bias(bias: Tensor, layer: nn.Module, framework: str) -> Tensor:
    """``bias`` (4H,), in ``framework``'s gate order, with an LSTM's run-time
    ``forget_bias`` added to its f block: folding it in this way is exact."""
    if not has_forget_bias(layer):
        return bias
    h = layer.hidden_size
    f = GATE_ORDERS[framework]["lstm"].index("f")
    bias = bias.clone()
    bias[f * h:(f + 1) * h] += layer.forget_bias
    return bias


def suffix(layer_index: int, direction: int) -> str:
    """The parameter-name suffix of a layer and direction: ``_l1``, ``_l1_reverse``."""
    return f"_l{layer_index}" + ("_reverse" if direction == 1 else "")


def read_direction(layer: nn.Module, layer_index: int, direction: int,
                   framework: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(weight_ih (G*H, I_l), weight_hh (G*H, H), bias_ih, bias_hh (G*H,)) of one layer
    and direction, detached, gate blocks in ``framework``'s order; zero biases for a
    layer with ``bias=False``."""
    kind, name = cell_kind(layer), suffix(layer_index, direction)
    w_ih = getattr(layer, "weight_ih" + name).detach()
    w_hh = getattr(layer, "weight_hh" + name).detach()
    if layer.bias:
        b_ih = getattr(layer, "bias_ih" + name).detach()
        b_hh = getattr(layer, "bias_hh" + name).detach()
    else:
        b_ih = b_hh = w_ih.new_zeros(w_ih.size(0))
    return tuple(reorder_gates(t, kind, "pytorch", framework) for t in (w_ih, w_hh, b_ih, b_hh))


def write_direction(layer: nn.Module, layer_index: int, direction: int, framework: str,
                    w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor] = None,
                    b_hh: Optional[Tensor] = None) -> None:
    """Copy one layer and direction's weights, given in ``framework``'s gate order, into
    ``layer``; the biases only when given."""
    kind, name = cell_kind(layer), suffix(layer_index, direction)
    params = {"weight_ih": w_ih, "weight_hh": w_hh}
    if b_ih is not None:
        params.update(bias_ih=b_ih, bias_hh=b_hh)
    with torch.no_grad():
        for param, value in params.items():
            getattr(layer, param + name).copy_(reorder_gates(value, kind, framework, "pytorch"))


def new_layer(kind: str, input_size: int, hidden_size: int, **kwargs) -> nn.Module:
    """The gatedrnn layer of a cell kind (``"lstm"``, ``"gru"``, ``"rnn"``); a GRU resets
    after the matmul and an RNN is tanh unless ``kwargs`` say otherwise."""
    if kind == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if kind == "gru":
        return GRU(input_size, hidden_size, reset_after=kwargs.pop("reset_after", True), **kwargs)
    return RNN(input_size, hidden_size, nonlinearity=kwargs.pop("nonlinearity", "tanh"), **kwargs)
