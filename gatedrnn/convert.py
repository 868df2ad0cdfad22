r"""Weight conversion between gatedrnn layers, Keras 3, TensorFlow 1.x, cuDNN and ONNX.

Gate blocks are stored in different orders by each framework; every function here
reorders them, transposes the kernels and folds biases where that is exact:

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
Keras 3 (``LSTM``, ``GRU``)  i, f, c, o         z, r, h
TensorFlow 1.x cells        i, j, f, o         gates r, u; candidate (separate)
cuDNN / TF ``CudnnLSTM``    i, f, g(c), o      r, z, n(h) (reset after the matmul)
ONNX ``LSTM``, ``GRU``      i, o, f, c         z, r, h (``linear_before_reset``)
==========================  =================  ===================================

(g, c and j are all the candidate; u, z are the update gate; n, h the new state.)

Layouts: PyTorch stores ``weight_ih`` (G*H, I) and applies ``x @ weight_ih.T``;
Keras stores ``kernel`` (I, G*H) and ``recurrent_kernel`` (H, G*H); TF1 stores one
``kernel`` (I + H, G*H) applied to ``concat([x, h])``; cuDNN stores one (H, I) and one
(H, H) matrix and two bias vectors per gate; ONNX stores ``W`` (D, G*H, I), ``R``
(D, G*H, H) and ``B`` (D, 2*G*H) per direction D, applied as PyTorch does.

Biases: gatedrnn (like torch.nn) has two biases, ``bias_ih`` and ``bias_hh``. Keras
LSTM and SimpleRNN have one, so they get ``bias_ih + bias_hh``; Keras GRU
``reset_after=True`` keeps both (``bias`` (2, 3H): row 0 input, row 1 recurrent);
Keras GRU ``reset_after=False`` and TF1 cells have one bias, which is exact for the
reset-before GRU too, because there the recurrent n bias sits outside the reset gate:
``tanh(W_in x + b_in + W_hn (r * h) + b_hn)``. cuDNN and ONNX have both biases, as
gatedrnn. Converting *to* a gatedrnn layer gives ``bias_hh = 0`` for Keras (except
GRU ``reset_after=True``) and TF1.

Keras and TF1 conversions take single-layer, unidirectional layers; cuDNN ones also
stacked and bidirectional layers; ONNX ones one layer (one node) in any direction. Options a target framework lacks raise
``ValueError`` (``forget_bias`` is folded into the target's bias, which is exact).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .compat import tf as tfc
from .compat.tf import ijfo_to_ifgo
from .layers import GRU, LSTM, RNN, RecurrentBase

__all__ = ["from_keras", "to_keras", "from_tf1", "to_tf1", "from_cudnn", "to_cudnn",
           "from_onnx_weights", "to_onnx_weights", "from_onnx", "TimeReversed",
           "KERAS_KINDS", "TF1_KINDS", "CUDNN_KINDS", "ONNX_OP_TYPES"]

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


# -- cuDNN (and TensorFlow's CudnnLSTM / CudnnGRU canonical weights) -----------------

#: ``kind`` values of :func:`from_cudnn` (cuDNN's RNN modes), with the number of gates.
CUDNN_KINDS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _layer_input_sizes(input_size: int, hidden_size: int, num_layers: int,
                       num_directions: int) -> List[int]:
    """Input feature size of each layer of a stack: I, then D*H."""
    return [input_size] + [num_directions * hidden_size] * (num_layers - 1)


def _new_layer(kind: str, input_size: int, hidden_size: int, **kwargs) -> nn.Module:
    """The gatedrnn layer for a cuDNN kind or ONNX op type (lower-cased)."""
    if kind == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if kind == "gru":
        return GRU(input_size, hidden_size, reset_after=kwargs.pop("reset_after", True), **kwargs)
    return RNN(input_size, hidden_size, nonlinearity=kwargs.pop("nonlinearity", "tanh"), **kwargs)


def _check_layer_options(layer: nn.Module, target: str) -> None:
    """TypeError unless RNN / LSTM / GRU; ValueError for LSTM options ``target`` lacks."""
    if not isinstance(layer, (RNN, LSTM, GRU)):
        raise TypeError(
            f"layer must be a gatedrnn.RNN, LSTM or GRU, got {type(layer).__name__}")
    if isinstance(layer, LSTM):
        for name, default in (("cell_clip", None), ("proj_clip", None), ("proj_size", 0)):
            if getattr(layer, name) != default:
                raise ValueError(f"{target} has no {name}: needs {name}={default!r}, "
                                 f"got {name}={getattr(layer, name)!r}")


def _suffix(layer_index: int, direction: int) -> str:
    return f"_l{layer_index}" + ("_reverse" if direction == 1 else "")


def _dtype_of(a) -> torch.dtype:
    """The floating dtype of an array or tensor, float32 for anything else."""
    dt = _to_tensor(a, None).dtype
    return dt if dt.is_floating_point else torch.float32


def from_cudnn(kind: str, weights: Sequence, biases: Optional[Sequence], input_size: int,
               hidden_size: int, *, num_layers: int = 1, bidirectional: bool = False,
               batch_first: bool = False) -> nn.Module:
    r"""A gatedrnn layer equal to a cuDNN RNN given in cuDNN's canonical layout.

    cuDNN (``cudnnGetRNNWeightParams``) and TensorFlow's ``CudnnLSTM`` / ``CudnnGRU``
    (``canonical_weights`` / ``canonical_biases``, ``cudnn_rnn_opaque_params_to_canonical``)
    store, for each layer and direction (layer-major, forward before backward),
    ``2*G`` matrices and ``2*G`` bias vectors, one per gate: first the input matrices
    ``W_k`` (H, I_l), then the recurrent ones ``R_k`` (H, H); likewise the input biases
    ``bW_k`` and the recurrent biases ``bR_k`` (H,). ``I_l`` is ``input_size`` for layer
    0 and ``D*H`` above it. Gates (cuDNN's ``linLayerID`` order):

    ==============  ========  =======================================================
    kind            gates     step
    ==============  ========  =======================================================
    ``"lstm"``      i, f,     i, f, o = σ(W x + bW + R h + bR), g = tanh(same),
                    g, o      c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c')
    ``"gru"``       r, z, n   r, z = σ(W x + bW + R h + bR),
                              n = tanh(W_n x + bW_n + r ⊙ (R_n h + bR_n)),
                              h' = (1 - z) ⊙ n + z ⊙ h
    ``"rnn_tanh"``  h         h' = tanh(W x + bW + R h + bR) (``"rnn_relu"``: relu)
    ==============  ========  =======================================================

    The GRU resets after the recurrent matmul (ONNX ``linear_before_reset=1``), so the
    result is a ``gr.GRU(reset_after=True)``. Each matrix may be given as (H, I_l) or
    flat, row-major, as cuDNN's buffer holds it (H*I_l,). These are exactly PyTorch's
    per-gate blocks: ``weight_ih`` is the input matrices stacked, ``bias_hh`` the
    recurrent biases concatenated.

    **forget_bias.** cuDNN's LSTM has no run-time forget bias: the returned layer has
    ``forget_bias=0.0``. A TF checkpoint trained with ``CudnnLSTM`` therefore must run
    with ``forget_bias=0`` in any other cell too (TF's ``LSTMBlockCell`` /
    ``BasicLSTMCell`` default 1.0 would shift every forget gate); with
    :func:`from_tf1` pass ``forget_bias=0.0`` for such weights.

    Args:
        kind: a key of :data:`CUDNN_KINDS`.
        weights: ``num_layers * D * 2G`` matrices, in the order above.
        biases: as many (H,) vectors, or None for a layer without biases
            (``CUDNN_RNN_NO_BIAS``).
        input_size, hidden_size: I and H.
        num_layers, bidirectional, batch_first: as the layers (cuDNN is time-major).

    Returns :class:`gatedrnn.LSTM` / :class:`gatedrnn.GRU` / :class:`gatedrnn.RNN`, in
    the dtype of ``weights[0]`` (float32 for a non-floating one).

    Raises ValueError for an unknown ``kind``, a wrong number of arrays or a wrong shape
    (naming the argument, the expected and the received shape).

    Example::

        >>> import numpy as np, gatedrnn as gr
        >>> H, I = 3, 5
        >>> w = [np.zeros((H, I))] * 4 + [np.zeros((H, H))] * 4   # W_i..W_o, R_i..R_o
        >>> b = [np.zeros(H)] * 8                                 # bW_i..bW_o, bR_i..bR_o
        >>> layer = gr.convert.from_cudnn("lstm", w, b, input_size=I, hidden_size=H)
        >>> layer.hidden_size, layer.forget_bias, layer.batch_first
        (3, 0.0, False)
    """
    if kind not in CUDNN_KINDS:
        raise ValueError(f"kind must be one of {sorted(CUDNN_KINDS)}, got {kind!r}")
    gates = CUDNN_KINDS[kind]
    num_directions = 2 if bidirectional else 1
    per_direction = 2 * gates
    expected_count = num_layers * num_directions * per_direction
    for name, arrays in (("weights", weights), ("biases", biases)):
        if arrays is None and name == "biases":
            continue
        if not isinstance(arrays, (list, tuple)):
            raise TypeError(f"{name} must be a list of arrays, got {type(arrays).__name__}")
        if len(arrays) != expected_count:
            raise ValueError(
                f"{name} must hold num_layers * directions * 2 * gates = {num_layers} * "
                f"{num_directions} * 2 * {gates} = {expected_count} arrays for "
                f"kind={kind!r}, got {len(arrays)}")
    options = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    layer = _new_layer(kind.split("_")[0], input_size, hidden_size, num_layers=num_layers,
                       bias=biases is not None, batch_first=batch_first,
                       bidirectional=bidirectional, dtype=_dtype_of(weights[0]), **options)
    dtype = layer.weight_ih_l0.dtype
    sizes = _layer_input_sizes(input_size, hidden_size, num_layers, num_directions)

    def matrix(index: int, cols: int) -> Tensor:  # weights[index] as (H, cols)
        a = weights[index]
        if _shape(a) not in ((hidden_size, cols), (hidden_size * cols,)):
            raise ValueError(f"weights[{index}] must have shape {(hidden_size, cols)} or "
                             f"{(hidden_size * cols,)}, got {_shape(a)}")
        return _to_tensor(a, dtype).reshape(hidden_size, cols)

    with torch.no_grad():
        for k in range(num_layers):
            for d in range(num_directions):
                first = (k * num_directions + d) * per_direction
                suffix = _suffix(k, d)
                getattr(layer, "weight_ih" + suffix).copy_(torch.cat(
                    [matrix(first + g, sizes[k]) for g in range(gates)]))
                getattr(layer, "weight_hh" + suffix).copy_(torch.cat(
                    [matrix(first + gates + g, hidden_size) for g in range(gates)]))
                if biases is None:
                    continue
                for g in range(per_direction):
                    _check_shape(f"biases[{first + g}]", biases[first + g], (hidden_size,))
                bias = torch.cat([_to_tensor(b, dtype) for b in biases[first:first + per_direction]])
                getattr(layer, "bias_ih" + suffix).copy_(bias[:gates * hidden_size])
                getattr(layer, "bias_hh" + suffix).copy_(bias[gates * hidden_size:])
    return layer


def to_cudnn(layer: nn.Module) -> Dict[str, object]:
    r"""cuDNN's canonical weights of the cuDNN RNN equal to ``layer``; the inverse of
    :func:`from_cudnn`: ``from_cudnn(**to_cudnn(layer))`` rebuilds the layer exactly.

    Returns a dict with ``kind``, ``weights`` and ``biases`` (lists of numpy arrays,
    matrices (H, I_l) — reshape them to flat vectors where a cuDNN API wants those),
    ``input_size``, ``hidden_size``, ``num_layers`` and ``bidirectional``.
    ``biases`` is None for a layer with ``bias=False`` and no ``forget_bias``.

    An LSTM's ``forget_bias`` (a run-time constant that cuDNN lacks) is folded into the
    recurrent forget bias ``bR_f``, which is exact.

    Raises ValueError for what cuDNN's RNN lacks (peepholes, ``cell_clip``,
    ``proj_size``, ``proj_clip``, a reset-before GRU); TypeError for anything but RNN /
    LSTM / GRU.

    Example::

        >>> import gatedrnn as gr
        >>> c = gr.convert.to_cudnn(gr.GRU(5, 3))
        >>> c["kind"], len(c["weights"]), c["weights"][0].shape
        ('gru', 6, (3, 5))
    """
    _check_layer_options(layer, "cuDNN's RNN")
    if isinstance(layer, LSTM) and layer.peepholes:
        raise ValueError("cuDNN's LSTM has no peepholes: needs peepholes=False, got peepholes=True")
    if isinstance(layer, GRU) and not layer.reset_after:
        raise ValueError("cuDNN's GRU resets after the recurrent matmul: needs "
                         "reset_after=True, got reset_after=False")
    if isinstance(layer, RNN):
        kind = "rnn_" + layer.nonlinearity
    else:
        kind = "lstm" if isinstance(layer, LSTM) else "gru"
    gates, hidden = CUDNN_KINDS[kind], layer.hidden_size
    forget_bias = layer.forget_bias if isinstance(layer, LSTM) else 0.0
    with_biases = layer.bias or forget_bias != 0.0
    weights: List[np.ndarray] = []
    biases: List[np.ndarray] = []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            suffix = _suffix(k, d)
            w_ih = getattr(layer, "weight_ih" + suffix).detach()
            weights += [_numpy(m) for m in w_ih.chunk(gates)]
            weights += [_numpy(m) for m in getattr(layer, "weight_hh" + suffix).detach().chunk(gates)]
            if not with_biases:
                continue
            if layer.bias:
                b_ih = getattr(layer, "bias_ih" + suffix).detach()
                b_hh = getattr(layer, "bias_hh" + suffix).detach().clone()
            else:
                b_ih, b_hh = w_ih.new_zeros(gates * hidden), w_ih.new_zeros(gates * hidden)
            if forget_bias != 0.0:
                b_hh[hidden:2 * hidden] += forget_bias  # the f block
            biases += [_numpy(b) for b in torch.cat([b_ih, b_hh]).chunk(2 * gates)]
    return {"kind": kind, "weights": weights, "biases": biases if with_biases else None,
            "input_size": layer.input_size, "hidden_size": hidden,
            "num_layers": layer.num_layers, "bidirectional": layer.bidirectional}


# -- ONNX ---------------------------------------------------------------------------

#: ONNX recurrent operators, with their number of gates.
ONNX_OP_TYPES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# gatedrnn block k is ONNX block _FROM_ONNX[op][k] (LSTM i,o,f,c -> i,f,g,o; GRU z,r,h -> r,z,n).
_FROM_ONNX = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}
_TO_ONNX = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_ONNX_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                             "RNN": ("Tanh",)}
_ONNX_DIRECTIONS = ("forward", "reverse", "bidirectional")


def _blocks(t: Tensor, order: Sequence[int]) -> Tensor:
    """The gate blocks of ``t`` (stacked along dim 0) taken in ``order``."""
    chunks = t.chunk(len(order), dim=0)
    return torch.cat([chunks[k] for k in order], dim=0)


class TimeReversed(nn.Module):
    r"""A layer run over the sequence from its last step to its first: ONNX's
    ``direction="reverse"``.

    ``output, state = TimeReversed(layer)(input, hx)`` is ``layer`` applied to the input
    flipped in time, with its output flipped back, so ``output[t]`` is the state after
    reading steps ``T-1, ..., t`` (aligned with the input, as ONNX's ``Y``) and the
    final state is the one after step 0. ``hx`` and the state are the layer's.
    Tensors only (a ``PackedSequence`` would need reversal within each length: use a
    bidirectional layer for that).

    Example::

        >>> import torch, gatedrnn as gr
        >>> rev = gr.convert.TimeReversed(gr.GRU(4, 3))
        >>> output, h_n = rev(torch.randn(6, 2, 4))
        >>> output.shape, h_n.shape
        (torch.Size([6, 2, 3]), torch.Size([1, 2, 3]))
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, RecurrentBase):
            raise TypeError(f"layer must be a gatedrnn layer, got {type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("TimeReversed needs a unidirectional layer, got bidirectional=True")
        self.layer = layer

    def forward(self, input: Tensor, hx=None):
        if not isinstance(input, Tensor):
            raise TypeError(f"TimeReversed takes a Tensor input, got {type(input).__name__}")
        time_dim = 1 if self.layer.batch_first and input.dim() == 3 else 0
        output, state = self.layer(input.flip(time_dim), hx)
        return output.flip(time_dim), state


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def from_onnx_weights(op_type: str, W, R, B=None, P=None, **attributes) -> nn.Module:
    r"""A gatedrnn layer equal to one ONNX ``LSTM`` / ``GRU`` / ``RNN`` node.

    Inputs as the ONNX operator (D = 2 for ``direction="bidirectional"``, else 1):

    ========  ===============  ====================================================
    input     shape            blocks
    ========  ===============  ====================================================
    ``W``     (D, G*H, I)      LSTM i, o, f, c; GRU z, r, h; RNN one block
    ``R``     (D, G*H, H)      as W
    ``B``     (D, 2*G*H)       ``[Wb, Rb]`` (optional: zeros, gives ``bias=False``)
    ``P``     (D, 3*H)         LSTM peepholes ``[P_i, P_o, P_f]`` (optional)
    ========  ===============  ====================================================

    ONNX's equations are gatedrnn's: ``P_i``, ``P_f`` act on c_{t-1}, ``P_o`` on c_t
    (-> ``weight_ci``, ``weight_cf``, ``weight_co`` of ``gr.LSTM(peepholes=True)``);
    GRU ``linear_before_reset=0`` is ``gr.GRU(reset_after=False)``, ``1`` is
    ``reset_after=True``.

    Attributes: ``hidden_size`` (checked against R), ``direction`` (``"forward"``,
    ``"bidirectional"`` -> ``bidirectional=True``, ``"reverse"`` -> the layer wrapped in
    :class:`TimeReversed`), ``layout`` (0: time-major, 1: ``batch_first=True``),
    ``linear_before_reset`` (GRU), ``activations`` (the defaults, or ``["Relu"]`` per
    direction for an RNN -> ``nonlinearity="relu"``). Other activations,
    ``activation_alpha``/``activation_beta``, ``clip`` and ``input_forget=1`` have no
    gatedrnn equivalent and raise ValueError.

    Outputs: with layout 0 the layer returns ``output`` (T, B, D*H) and ``h_n`` (D, B, H)
    (LSTM ``(h_n, c_n)``); ONNX's ``Y`` (T, D, B, H) is
    ``output.view(T, B, D, H).transpose(1, 2)``, ``Y_h``/``Y_c`` are ``h_n``/``c_n``.
    With layout 1, ``output`` is (B, T, D*H) and ``Y`` (B, T, D, H) is
    ``output.view(B, T, D, H)``, ``Y_h`` (B, D, H) is ``h_n.transpose(0, 1)``; ONNX's
    ``initial_h`` / ``initial_c`` map to ``hx`` the same way. ``sequence_lens`` is not
    read here.

    Raises ValueError for an unknown ``op_type`` or attribute, an unsupported attribute
    value, or inconsistent shapes (naming the input, the expected and the received
    shape).

    Example::

        >>> import numpy as np, gatedrnn as gr
        >>> W, R = np.zeros((2, 9, 5), np.float32), np.zeros((2, 9, 3), np.float32)
        >>> gru = gr.convert.from_onnx_weights("GRU", W, R, direction="bidirectional",
        ...                                    linear_before_reset=1)
        >>> gru.hidden_size, gru.bidirectional, gru.reset_after, gru.bias
        (3, True, True, False)
    """
    if op_type not in ONNX_OP_TYPES:
        raise ValueError(f"op_type must be one of {sorted(ONNX_OP_TYPES)}, got {op_type!r}")
    known = {"hidden_size", "direction", "layout", "activations", "activation_alpha",
             "activation_beta", "clip"}
    known |= {"LSTM": {"input_forget"}, "GRU": {"linear_before_reset"}, "RNN": set()}[op_type]
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown} for ONNX {op_type}; "
                         f"expected a subset of {sorted(known)}")
    direction = _as_str(attributes.get("direction", "forward"))
    if direction not in _ONNX_DIRECTIONS:
        raise ValueError(f"direction must be one of {list(_ONNX_DIRECTIONS)}, got {direction!r}")
    num_directions = 2 if direction == "bidirectional" else 1
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"layout must be 0 or 1, got {layout!r}")
    for name in ("activation_alpha", "activation_beta"):
        if attributes.get(name):
            raise ValueError(f"{name} is not supported (no gatedrnn activation takes "
                             f"parameters), got {name}={attributes[name]!r}")
    if attributes.get("clip") is not None:
        raise ValueError(f"clip (clipping of the gates' pre-activations) is not supported, "
                         f"got clip={attributes['clip']!r}")
    if attributes.get("input_forget", 0):
        raise ValueError(f"input_forget (coupled input and forget gates) is not supported, "
                         f"got input_forget={attributes['input_forget']!r}")
    default = _ONNX_DEFAULT_ACTIVATIONS[op_type] * num_directions
    activations = tuple(_as_str(a) for a in attributes.get("activations", default))
    options = {}
    if op_type == "RNN" and activations == ("Relu",) * num_directions:
        options["nonlinearity"] = "relu"
    elif activations != default:
        raise ValueError(f"activations must be {list(default)} for ONNX {op_type}"
                         + (" (or Relu per direction)" if op_type == "RNN" else "")
                         + f", got {list(activations)}")
    if op_type == "GRU":
        lbr = attributes.get("linear_before_reset", 0)
        if lbr not in (0, 1):
            raise ValueError(f"linear_before_reset must be 0 or 1, got {lbr!r}")
        options["reset_after"] = bool(lbr)
    if P is not None and op_type != "LSTM":
        raise ValueError(f"P (peepholes) is an LSTM input, got P for ONNX {op_type}")

    gates = ONNX_OP_TYPES[op_type]
    w_shape = _shape(W)
    if len(w_shape) != 3 or w_shape[0] != num_directions or w_shape[1] % gates or not w_shape[1]:
        raise ValueError(f"W must have shape ({num_directions}, {gates}*hidden_size, "
                         f"input_size) for direction={direction!r}, got {w_shape}")
    hidden, input_size = w_shape[1] // gates, w_shape[2]
    if attributes.get("hidden_size", hidden) != hidden:
        raise ValueError(f"hidden_size={attributes['hidden_size']} does not match W of shape "
                         f"{w_shape} ({gates} gates of {hidden})")
    gh = gates * hidden
    _check_shape("R", R, (num_directions, gh, hidden))
    if B is not None:
        _check_shape("B", B, (num_directions, 2 * gh))
    if P is not None:
        _check_shape("P", P, (num_directions, 3 * hidden))

    dtype = _dtype_of(W)
    extra = {"peepholes": True} if P is not None else {}
    layer = _new_layer(op_type.lower(), input_size, hidden, bias=B is not None,
                       batch_first=layout == 1, bidirectional=num_directions == 2,
                       dtype=dtype, **options, **extra)
    order = _FROM_ONNX[op_type]
    w, r = _to_tensor(W, dtype), _to_tensor(R, dtype)
    with torch.no_grad():
        for d in range(num_directions):
            suffix = _suffix(0, d)
            getattr(layer, "weight_ih" + suffix).copy_(_blocks(w[d], order))
            getattr(layer, "weight_hh" + suffix).copy_(_blocks(r[d], order))
            if B is not None:
                b = _to_tensor(B, dtype)[d]
                getattr(layer, "bias_ih" + suffix).copy_(_blocks(b[:gh], order))
                getattr(layer, "bias_hh" + suffix).copy_(_blocks(b[gh:], order))
            if P is not None:
                p_i, p_o, p_f = _to_tensor(P, dtype)[d].chunk(3)
                getattr(layer, "weight_ci" + suffix).copy_(p_i)
                getattr(layer, "weight_cf" + suffix).copy_(p_f)
                getattr(layer, "weight_co" + suffix).copy_(p_o)
    return TimeReversed(layer) if direction == "reverse" else layer


def to_onnx_weights(layer: nn.Module, layer_index: int = 0) -> Dict[str, object]:
    r"""The inputs and attributes of the ONNX node equal to layer ``layer_index`` of
    ``layer``; the inverse of :func:`from_onnx_weights`:
    ``from_onnx_weights(**to_onnx_weights(layer))`` rebuilds a one-layer layer exactly.

    Returns a dict with ``op_type``, the arrays ``W``, ``R``, ``B`` (absent for
    ``bias=False`` and no ``forget_bias``) and ``P`` (LSTM with peepholes), numpy,
    laid out as in :func:`from_onnx_weights`, and the attributes ``hidden_size``,
    ``direction`` (``"bidirectional"``, ``"forward"``, or ``"reverse"`` for a
    :class:`TimeReversed` layer), ``layout`` (1 for ``batch_first``), GRU
    ``linear_before_reset`` and, for a relu RNN, ``activations``.

    An LSTM's ``forget_bias`` is folded into the forget block of ``Rb`` (exact).

    Raises ValueError for a ``layer_index`` out of range or what ONNX's operators lack
    (``cell_clip``: ONNX's ``clip`` clips the gates, not the cell; ``proj_size``,
    ``proj_clip``); TypeError for anything but RNN / LSTM / GRU (JANET has no ONNX
    operator: :func:`gatedrnn.export_onnx` writes it as a ``Scan``).

    Example::

        >>> import gatedrnn as gr
        >>> o = gr.convert.to_onnx_weights(gr.LSTM(5, 3, peepholes=True, bidirectional=True))
        >>> o["op_type"], o["W"].shape, o["B"].shape, o["P"].shape, o["direction"]
        ('LSTM', (2, 12, 5), (2, 24), (2, 9), 'bidirectional')
    """
    direction = "bidirectional"
    if isinstance(layer, TimeReversed):
        layer, direction = layer.layer, "reverse"
    _check_layer_options(layer, "ONNX's recurrent operator")
    if not isinstance(layer_index, int) or not 0 <= layer_index < layer.num_layers:
        raise ValueError(f"layer_index must be in [0, {layer.num_layers}), got {layer_index!r}")
    if not layer.bidirectional and direction != "reverse":
        direction = "forward"
    op_type = {LSTM: "LSTM", GRU: "GRU", RNN: "RNN"}[type(layer)]
    order, hidden = _TO_ONNX[op_type], layer.hidden_size
    forget_bias = layer.forget_bias if isinstance(layer, LSTM) else 0.0
    with_bias = layer.bias or forget_bias != 0.0
    ws, rs, bs, ps = [], [], [], []
    for d in range(layer.num_directions):
        suffix = _suffix(layer_index, d)
        w_ih = getattr(layer, "weight_ih" + suffix).detach()
        ws.append(_blocks(w_ih, order))
        rs.append(_blocks(getattr(layer, "weight_hh" + suffix).detach(), order))
        if with_bias:
            if layer.bias:
                b_ih = getattr(layer, "bias_ih" + suffix).detach()
                b_hh = getattr(layer, "bias_hh" + suffix).detach().clone()
            else:
                b_ih, b_hh = w_ih.new_zeros(w_ih.size(0)), w_ih.new_zeros(w_ih.size(0))
            if forget_bias != 0.0:
                b_hh[hidden:2 * hidden] += forget_bias  # gatedrnn's f block
            bs.append(torch.cat([_blocks(b_ih, order), _blocks(b_hh, order)]))
        if getattr(layer, "peepholes", False):
            ps.append(torch.cat([getattr(layer, name + suffix).detach()
                                 for name in ("weight_ci", "weight_co", "weight_cf")]))
    out: Dict[str, object] = {"op_type": op_type, "W": _numpy(torch.stack(ws)),
                              "R": _numpy(torch.stack(rs))}
    if with_bias:
        out["B"] = _numpy(torch.stack(bs))
    if ps:
        out["P"] = _numpy(torch.stack(ps))
    out.update(hidden_size=hidden, direction=direction, layout=int(layer.batch_first))
    if isinstance(layer, GRU):
        out["linear_before_reset"] = int(layer.reset_after)
    if isinstance(layer, RNN) and layer.nonlinearity == "relu":
        out["activations"] = ["Relu"] * layer.num_directions
    return out


def from_onnx(model) -> nn.Module:
    r"""The gatedrnn layer equal to the single ``LSTM`` / ``GRU`` / ``RNN`` node of an
    ONNX model; see :func:`from_onnx_weights` for the mapping.

    ``model`` is a path or an ``onnx.ModelProto``. ``W``, ``R`` and (where the node
    names them) ``B`` and ``P`` must be initializers or ``Constant`` outputs; the node's
    attributes are passed on. Needs the ``onnx`` package.

    Raises ValueError when the graph has no or several recurrent nodes, or a weight
    input is not a constant.

    Example::

        >>> import gatedrnn as gr
        >>> layer = gr.convert.from_onnx("lstm.onnx")            # doctest: +SKIP
    """
    import onnx
    from onnx import numpy_helper

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in ONNX_OP_TYPES and n.domain in ("", "ai.onnx")]
    if len(nodes) != 1:
        raise ValueError(f"the model must have exactly one LSTM, GRU or RNN node, got "
                         f"{[n.op_type for n in nodes]}")
    node = nodes[0]
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    # ONNX input positions: X, W, R, B, sequence_lens, initial_h, initial_c, P.
    names = dict(zip(("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
                     node.input))
    arrays = {}
    for key in ("W", "R", "B", "P"):
        name = names.get(key, "")
        if not name:
            continue
        if name not in constants:
            raise ValueError(f"input {key} ({name!r}) of the {node.op_type} node must be an "
                             f"initializer or a Constant, got a computed value")
        arrays[key] = constants[name]
    if "W" not in arrays or "R" not in arrays:
        raise ValueError(f"the {node.op_type} node must have inputs W and R, got {list(node.input)}")
    attributes = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, list):
            value = [_as_str(v) for v in value]
        attributes[a.name] = _as_str(value)
    return from_onnx_weights(node.op_type, **arrays, **attributes)
