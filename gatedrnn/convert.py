r"""Weight conversion between gatedrnn layers, Keras 3 and TensorFlow 1.x.

Gate blocks are stored in different orders by each framework; every function here
reorders them, transposes the kernels and folds biases where that is exact:

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
Keras 3 (``LSTM``, ``GRU``)  i, f, c, o         z, r, h
TensorFlow 1.x cells        i, j, f, o         gates r, u; candidate (separate)
==========================  =================  ===================================

(g, c and j are all the candidate; u, z are the update gate; n, h the new state.)

Layouts: PyTorch stores ``weight_ih`` (G*H, I) and applies ``x @ weight_ih.T``;
Keras stores ``kernel`` (I, G*H) and ``recurrent_kernel`` (H, G*H); TF1 stores one
``kernel`` (I + H, G*H) applied to ``concat([x, h])``.

Biases: gatedrnn (like torch.nn) has two biases, ``bias_ih`` and ``bias_hh``. Keras
LSTM and SimpleRNN have one, so they get ``bias_ih + bias_hh``; Keras GRU
``reset_after=True`` keeps both (``bias`` (2, 3H): row 0 input, row 1 recurrent);
Keras GRU ``reset_after=False`` and TF1 cells have one bias, which is exact for the
reset-before GRU too, because there the recurrent n bias sits outside the reset gate:
``tanh(W_in x + b_in + W_hn (r * h) + b_hn)``. Converting *to* a gatedrnn layer
always gives ``bias_hh = 0`` except for Keras GRU ``reset_after=True``.

Only single-layer, unidirectional layers convert; options a target framework lacks
raise ``ValueError`` (``forget_bias`` is folded into the Keras bias, which is exact).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .compat import tf as tfc
from .compat.tf import ijfo_to_ifgo
from .layers import GRU, LSTM, RNN

__all__ = ["from_keras", "to_keras", "from_tf1", "to_tf1", "KERAS_KINDS", "TF1_KINDS"]

#: ``kind`` values of :func:`from_keras`, with the number of gate blocks.
KERAS_KINDS = {"lstm": 4, "gru": 3, "simple_rnn": 1}
#: ``kind`` values of :func:`from_tf1`.
TF1_KINDS = ("basic_rnn", "basic_lstm", "lstm", "gru")

# TF1 variable name (in the cell scope) -> attribute of the gatedrnn.compat.tf cell.
_TF1_ATTRS = {
    "kernel": "kernel",
    "bias": "bias",
    "w_f_diag": "w_f_diag",
    "w_i_diag": "w_i_diag",
    "w_o_diag": "w_o_diag",
    "projection/kernel": "projection_kernel",
    "gates/kernel": "gates_kernel",
    "gates/bias": "gates_bias",
    "candidate/kernel": "candidate_kernel",
    "candidate/bias": "candidate_bias",
}
_TF1_NAMES = {attr: name for name, attr in _TF1_ATTRS.items()}


# -- helpers ------------------------------------------------------------------------

def _swap_first_two(t: Tensor, dim: int = 0) -> Tensor:
    """GRU blocks r, z, n <-> z, r, h: swap the first two of 3 blocks (its own inverse)."""
    a, b, c = t.chunk(3, dim=dim)
    return torch.cat([b, a, c], dim=dim)


def _shape(a) -> Tuple[int, ...]:
    return tuple(int(s) for s in np.shape(a))


def _check_shape(name: str, a, expected: Tuple[int, ...]) -> None:
    got = _shape(a)
    if got != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {got}")


def _to_tensor(a, dtype: Optional[torch.dtype] = torch.float32) -> Tensor:
    if isinstance(a, Tensor):
        t = a.detach().cpu()
    else:
        t = torch.from_numpy(np.array(a, copy=True))
    return t.to(dtype) if dtype is not None else t


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _check_single_layer(layer: nn.Module, target: str) -> None:
    if not isinstance(layer, (RNN, LSTM, GRU)):
        raise TypeError(
            f"layer must be a gatedrnn.RNN, LSTM or GRU, got {type(layer).__name__}")
    if layer.num_layers != 1:
        raise ValueError(
            f"{target} converts a single layer, got num_layers={layer.num_layers} "
            f"(convert each layer separately)")
    if layer.bidirectional:
        raise ValueError(
            f"{target} converts a unidirectional layer, got bidirectional=True")


def _biases(layer: nn.Module) -> Tuple[Tensor, Tensor]:
    """(bias_ih, bias_hh) of layer 0, zeros when ``bias=False``."""
    if layer.bias:
        return layer.bias_ih_l0.detach(), layer.bias_hh_l0.detach()
    w = layer.weight_ih_l0.detach()
    z = w.new_zeros(w.size(0))
    return z, z


# -- Keras 3 ------------------------------------------------------------------------

def from_keras(kind: str, weights: Sequence, reset_after: bool = True) -> nn.Module:
    r"""A ``batch_first=True`` gatedrnn layer equal to a Keras 3 recurrent layer.

    ``weights`` is the Keras layer's ``get_weights()`` list:

    ==============  ====================  ==================  =======================
    kind            kernel                recurrent_kernel    bias (optional)
    ==============  ====================  ==================  =======================
    ``"lstm"``      (I, 4U) i, f, c, o    (U, 4U)             (4U,)
    ``"gru"``       (I, 3U) z, r, h       (U, 3U)             (2, 3U) with
                                                              ``reset_after=True``
                                                              (input, recurrent),
                                                              else (3U,)
    ``"simple_rnn"`` (I, U)               (U, U)              (U,)
    ==============  ====================  ==================  =======================

    Returns :class:`gatedrnn.LSTM` / :class:`gatedrnn.GRU` (``reset_after`` as given) /
    :class:`gatedrnn.RNN` (tanh), float32, one layer, reproducing the Keras layer's
    ``return_sequences`` outputs and final states (Keras's LSTM state ``[h, c]`` is the
    layer's ``(h_n[0], c_n[0])``). Keras's default activations are assumed (tanh and
    a sigmoid recurrent activation); for a ``SimpleRNN(activation="relu")`` set the
    returned layer's ``nonlinearity`` yourself, or build ``gr.RNN(..., nonlinearity=
    "relu")`` and copy the weights. Without a bias (``use_bias=False``) the layer has
    ``bias=False``.

    Raises ValueError for an unknown ``kind``, a wrong number of arrays or
    inconsistent shapes (naming the argument, the expected and the received shape).

    Example::

        >>> import numpy as np, gatedrnn as gr
        >>> w = [np.zeros((5, 12)), np.zeros((3, 12)), np.zeros((12,))]  # LSTM, U=3
        >>> layer = gr.convert.from_keras("lstm", w)
        >>> layer.input_size, layer.hidden_size, layer.batch_first
        (5, 3, True)
    """
    if kind not in KERAS_KINDS:
        raise ValueError(f"kind must be one of {sorted(KERAS_KINDS)}, got {kind!r}")
    gates = KERAS_KINDS[kind]
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list of arrays (layer.get_weights()), "
                        f"got {type(weights).__name__}")
    if len(weights) not in (2, 3):
        raise ValueError(
            f"weights must hold 2 or 3 arrays (kernel, recurrent_kernel[, bias]) for "
            f"kind={kind!r}, got {len(weights)}")
    kernel, recurrent = weights[0], weights[1]
    if len(_shape(kernel)) != 2 or _shape(kernel)[1] % gates or _shape(kernel)[1] == 0:
        raise ValueError(
            f"weights[0] (kernel) must have shape (input_size, {gates}*units) for "
            f"kind={kind!r}, got {_shape(kernel)}")
    in_size, units = _shape(kernel)[0], _shape(kernel)[1] // gates
    _check_shape("weights[1] (recurrent_kernel)", recurrent, (units, gates * units))
    bias = weights[2] if len(weights) == 3 else None
    if bias is not None:
        two_biases = kind == "gru" and reset_after
        _check_shape("weights[2] (bias)", bias,
                     (2, gates * units) if two_biases else (gates * units,))

    has_bias = bias is not None
    if kind == "lstm":
        layer = LSTM(in_size, units, bias=has_bias, batch_first=True)
    elif kind == "gru":
        layer = GRU(in_size, units, bias=has_bias, batch_first=True,
                    reset_after=bool(reset_after))
    else:
        layer = RNN(in_size, units, bias=has_bias, batch_first=True)

    w_ih = _to_tensor(kernel).t()  # (G*U, I)
    w_hh = _to_tensor(recurrent).t()  # (G*U, U)
    if has_bias:
        b = _to_tensor(bias)
        b_ih, b_hh = (b[0], b[1]) if b.dim() == 2 else (b, torch.zeros_like(b))
    if kind == "gru":  # z, r, h -> r, z, n
        w_ih, w_hh = _swap_first_two(w_ih), _swap_first_two(w_hh)
        if has_bias:
            b_ih, b_hh = _swap_first_two(b_ih), _swap_first_two(b_hh)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(w_ih)
        layer.weight_hh_l0.copy_(w_hh)
        if has_bias:
            layer.bias_ih_l0.copy_(b_ih)
            layer.bias_hh_l0.copy_(b_hh)
    return layer


def to_keras(layer: nn.Module) -> List[np.ndarray]:
    r"""The ``set_weights`` list for the Keras 3 layer equal to ``layer``.

    ``gr.LSTM`` -> ``keras.layers.LSTM(H)``, ``gr.GRU`` -> ``keras.layers.GRU(H,
    reset_after=layer.reset_after)``, ``gr.RNN`` -> ``keras.layers.SimpleRNN(H,
    activation=layer.nonlinearity)``; with ``bias=False`` use ``use_bias=False`` (two
    arrays instead of three). Gate blocks are reordered (see the module table), kernels
    transposed; the LSTM / SimpleRNN / reset-before GRU bias is ``bias_ih + bias_hh``,
    and an LSTM's ``forget_bias`` is added to the bias's f block.

    Raises ValueError for more than one layer, a bidirectional layer, or options Keras
    lacks (peepholes, ``cell_clip``, ``proj_size``, ``proj_clip``, or a ``forget_bias``
    on an LSTM without a bias); TypeError for anything but RNN / LSTM / GRU.

    Example::

        >>> import gatedrnn as gr
        >>> [w.shape for w in gr.convert.to_keras(gr.GRU(5, 3))]
        [(5, 9), (3, 9), (2, 9)]
    """
    _check_single_layer(layer, "to_keras")
    if isinstance(layer, LSTM):
        for name, value, default in (("peepholes", layer.peepholes, False),
                                     ("cell_clip", layer.cell_clip, None),
                                     ("proj_clip", layer.proj_clip, None),
                                     ("proj_size", layer.proj_size, 0)):
            if value != default:
                raise ValueError(f"Keras's LSTM has no {name}: to_keras needs "
                                 f"{name}={default!r}, got {name}={value!r}")
        if not layer.bias and layer.forget_bias != 0.0:
            raise ValueError(
                f"forget_bias={layer.forget_bias} cannot be folded into a Keras bias "
                f"when the layer has bias=False")
    w_ih = layer.weight_ih_l0.detach()  # (G*H, I)
    w_hh = layer.weight_hh_l0.detach()  # (G*H, H)
    b_ih, b_hh = _biases(layer)
    if isinstance(layer, GRU):
        w_ih, w_hh = _swap_first_two(w_ih), _swap_first_two(w_hh)  # r, z, n -> z, r, h
        b_ih, b_hh = _swap_first_two(b_ih), _swap_first_two(b_hh)
        bias = torch.stack([b_ih, b_hh]) if layer.reset_after else b_ih + b_hh
    else:
        bias = b_ih + b_hh
        if isinstance(layer, LSTM) and layer.forget_bias != 0.0:
            h = layer.hidden_size
            bias = bias.clone()
            bias[h:2 * h] += layer.forget_bias
    out = [_numpy(w_ih.t()), _numpy(w_hh.t())]
    if layer.bias:
        out.append(_numpy(bias))
    return out


# -- TensorFlow 1.x -----------------------------------------------------------------

def _num_units(kind: str, variables: Mapping) -> int:
    key, gates = {"basic_rnn": ("kernel", 1), "basic_lstm": ("kernel", 4),
                  "lstm": ("kernel", 4), "gru": ("candidate/kernel", 1)}[kind]
    if key not in variables:
        raise ValueError(f"variables must contain {key!r} for kind={kind!r}, "
                         f"got keys {sorted(variables)}")
    shape = _shape(variables[key])
    if len(shape) != 2 or shape[1] == 0 or shape[1] % gates:
        raise ValueError(f"variables[{key!r}] must have shape (input_size + units_in, "
                         f"{gates}*num_units), got {shape}")
    return shape[1] // gates


def from_tf1(kind: str, variables: Mapping, input_size: int, **cell_kwargs) -> nn.Module:
    r"""A time-major gatedrnn layer equal to a TensorFlow 1.x cell run by
    ``tf.nn.dynamic_rnn(time_major=True)``.

    ``variables`` maps the TF variable names inside the cell's scope (``.../rnn/
    lstm_cell/``) to numpy arrays or tensors:

    ===============  ==========================================================
    kind             variables (``H`` = num_units, ``P`` = num_proj)
    ===============  ==========================================================
    ``basic_rnn``    ``kernel`` (I + H, H), ``bias`` (H,)
    ``basic_lstm``   ``kernel`` (I + H, 4H) blocks i, j, f, o; ``bias`` (4H,)
    ``lstm``         as basic_lstm with ``kernel`` (I + P or H, 4H); ``w_f_diag``,
                     ``w_i_diag``, ``w_o_diag`` (H,) (peepholes);
                     ``projection/kernel`` (H, P)
    ``gru``          ``gates/kernel`` (I + H, 2H) blocks r, u; ``gates/bias``
                     (2H,); ``candidate/kernel`` (I + H, H); ``candidate/bias`` (H,)
    ===============  ==========================================================

    ``num_units`` is read from the kernel, ``use_peepholes`` and ``num_proj`` from the
    variables present (or given in ``cell_kwargs``, then checked); the other
    ``cell_kwargs`` go to the :mod:`gatedrnn.compat.tf` cell (``forget_bias``, default
    1.0 as in TF; ``cell_clip``, ``proj_clip``; ``activation``, e.g. ``torch.relu`` for a
    relu BasicRNNCell; ``dtype``, default the kernel's floating dtype). The variables
    are copied into that cell and ``cell.to_layer(batch_first=False)`` is returned.

    Raises ValueError for an unknown ``kind``, missing or unexpected variables, and
    shapes that disagree (naming the variable, the expected and the received shape).

    Example::

        >>> import numpy as np, gatedrnn as gr
        >>> v = {"kernel": np.zeros((5 + 3, 12), np.float32), "bias": np.zeros(12, np.float32)}
        >>> layer = gr.convert.from_tf1("basic_lstm", v, input_size=5)
        >>> layer.hidden_size, layer.forget_bias, layer.batch_first
        (3, 1.0, False)
    """
    if kind not in TF1_KINDS:
        raise ValueError(f"kind must be one of {list(TF1_KINDS)}, got {kind!r}")
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a dict of TF variable name -> array, "
                        f"got {type(variables).__name__}")
    num_units = _num_units(kind, variables)
    if "num_units" in cell_kwargs and cell_kwargs.pop("num_units") != num_units:
        raise ValueError(f"num_units does not match the kernel: kernel gives {num_units}")
    kwargs = dict(cell_kwargs)
    if "dtype" not in kwargs:
        first = variables["candidate/kernel" if kind == "gru" else "kernel"]
        dt = _to_tensor(first, None).dtype
        kwargs["dtype"] = dt if dt.is_floating_point else torch.float32
    if kind == "lstm":
        kwargs.setdefault("use_peepholes", "w_i_diag" in variables)
        if "projection/kernel" in variables and "num_proj" not in kwargs:
            proj = _shape(variables["projection/kernel"])
            if len(proj) != 2:
                raise ValueError(f"variables['projection/kernel'] must have shape "
                                 f"(num_units, num_proj), got {proj}")
            kwargs["num_proj"] = proj[1]
    cls = {"basic_rnn": tfc.BasicRNNCell, "basic_lstm": tfc.BasicLSTMCell,
           "lstm": tfc.LSTMCell, "gru": tfc.GRUCell}[kind]
    cell = cls(num_units, input_size, **kwargs)

    expected = {_TF1_NAMES[attr]: tuple(p.shape) for attr, p in cell.named_parameters()}
    missing = sorted(set(expected) - set(variables))
    unexpected = sorted(set(variables) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"variables for kind={kind!r} with {kwargs} must be exactly {sorted(expected)}; "
            f"missing {missing}, unexpected {unexpected}")
    for name, shape in expected.items():
        _check_shape(f"variables[{name!r}]", variables[name], shape)
    with torch.no_grad():
        for name in expected:
            p = getattr(cell, _TF1_ATTRS[name])
            p.copy_(_to_tensor(variables[name], p.dtype))
    return cell.to_layer(batch_first=False)


def to_tf1(layer: nn.Module) -> Dict[str, np.ndarray]:
    r"""The TF 1.x variables (numpy arrays, names inside the cell scope) of the cell
    equal to ``layer``; the inverse of :func:`from_tf1`.

    ``gr.RNN`` -> ``BasicRNNCell`` (``kernel``, ``bias``); ``gr.LSTM`` -> ``LSTMCell``
    (``kernel``, ``bias``, with peepholes ``w_f_diag``/``w_i_diag``/``w_o_diag``, with
    ``proj_size`` ``projection/kernel``); ``gr.GRU(reset_after=False)`` -> ``GRUCell``
    (``gates/kernel``, ``gates/bias``, ``candidate/kernel``, ``candidate/bias``).

    TF has one bias: it is ``bias_ih + bias_hh`` (exact, also for the reset-before GRU's
    candidate, whose recurrent bias is outside the reset gate). A layer with
    ``bias=False`` gets zero biases. Options that are not variables are not in the
    dict: build the TF cell (or call :func:`from_tf1`) with ``forget_bias=
    layer.forget_bias`` (TF's default is 1.0, gatedrnn's 0.0), ``cell_clip`` and
    ``proj_clip``, and ``activation=tf.nn.relu`` for a relu RNN.

    Raises ValueError for more than one layer, a bidirectional layer, or a
    ``reset_after=True`` GRU (TF1's GRUCell resets before the candidate matmul);
    TypeError for anything but RNN / LSTM / GRU.

    Example::

        >>> import gatedrnn as gr
        >>> v = gr.convert.to_tf1(gr.LSTM(5, 3, peepholes=True))
        >>> {k: a.shape for k, a in v.items()}["kernel"]
        (8, 12)
    """
    _check_single_layer(layer, "to_tf1")
    if isinstance(layer, GRU) and layer.reset_after:
        raise ValueError("TF1's GRUCell is the reset-before GRU: to_tf1 needs "
                         "reset_after=False, got reset_after=True")
    w_ih = layer.weight_ih_l0.detach()  # (G*H, I)
    w_hh = layer.weight_hh_l0.detach()  # (G*H, H_in)
    b_ih, b_hh = _biases(layer)
    bias = b_ih + b_hh

    def kernel(a: Tensor, b: Tensor) -> np.ndarray:  # (N, I), (N, H_in) -> (I + H_in, N)
        return _numpy(torch.cat([a.t(), b.t()], dim=0))

    if isinstance(layer, GRU):
        h = layer.hidden_size
        return {
            "gates/kernel": kernel(w_ih[:2 * h], w_hh[:2 * h]),
            "gates/bias": _numpy(bias[:2 * h]),
            "candidate/kernel": kernel(w_ih[2 * h:], w_hh[2 * h:]),
            "candidate/bias": _numpy(bias[2 * h:]),
        }
    if isinstance(layer, RNN):
        return {"kernel": kernel(w_ih, w_hh), "bias": _numpy(bias)}
    # LSTM: ijfo_to_ifgo is its own inverse, so it converts i, f, g, o -> i, j, f, o.
    out = {"kernel": kernel(ijfo_to_ifgo(w_ih), ijfo_to_ifgo(w_hh)),
           "bias": _numpy(ijfo_to_ifgo(bias))}
    if layer.peepholes:
        out["w_i_diag"] = _numpy(layer.weight_ci_l0)
        out["w_f_diag"] = _numpy(layer.weight_cf_l0)
        out["w_o_diag"] = _numpy(layer.weight_co_l0)
    if layer.proj_size:
        out["projection/kernel"] = _numpy(layer.weight_hr_l0.t())  # (H, P)
    return out
