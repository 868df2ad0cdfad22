r"""TensorFlow 1.x cell variables: :func:`from_tf1` and :func:`to_tf1` convert between a
one-layer, unidirectional gatedrnn ``RNN`` / ``LSTM`` / ``GRU`` and the variables of
TF1's ``BasicRNNCell``, ``BasicLSTMCell``, ``LSTMCell`` and ``GRUCell``.

Layout: a TF1 cell stores one ``kernel`` (I + H, G*H) applied to ``concat([x, h])``,
so its first I rows are gatedrnn's ``weight_ih.T`` and the last H rows
``weight_hh.T``; the GRU keeps its two gates (``gates/kernel``) and its candidate
(``candidate/kernel``) apart. Gate blocks (:mod:`gatedrnn.convert.gates`):

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
TensorFlow 1.x cells        i, j, f, o         gates r, u; candidate (separate)
==========================  =================  ===================================

Biases: TF1 has one bias, ``bias_ih + bias_hh``; that is exact for the reset-before GRU
too, whose recurrent n bias sits outside the reset gate. Converting *to* a gatedrnn
layer gives ``bias_hh = 0``. The cells themselves, and the conversion of their
variables into a layer, are :mod:`gatedrnn.compat.tf`'s.
"""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..compat import tf as tfc
from ..layers import GRU, RNN
from ._common import (check_choice, check_shape, check_single_layer, float_dtype_of,
                      read_direction, shape_of, to_numpy, to_tensor)

__all__ = ["from_tf1", "to_tf1", "TF1_KINDS"]

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


def _num_units(kind: str, variables: Mapping) -> int:
    key, gates = {"basic_rnn": ("kernel", 1), "basic_lstm": ("kernel", 4),
                  "lstm": ("kernel", 4), "gru": ("candidate/kernel", 1)}[kind]
    if key not in variables:
        raise ValueError(f"variables must contain {key!r} for kind={kind!r}, "
                         f"got keys {sorted(variables)}")
    shape = shape_of(variables[key])
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
    check_choice("kind", kind, TF1_KINDS)
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a dict of TF variable name -> array, "
                        f"got {type(variables).__name__}")
    num_units = _num_units(kind, variables)
    if "num_units" in cell_kwargs and cell_kwargs.pop("num_units") != num_units:
        raise ValueError(f"num_units does not match the kernel: kernel gives {num_units}")
    kwargs = dict(cell_kwargs)
    if "dtype" not in kwargs:
        kernel = variables["candidate/kernel" if kind == "gru" else "kernel"]
        kwargs["dtype"] = float_dtype_of(kernel)
    if kind == "lstm":
        kwargs.setdefault("use_peepholes", "w_i_diag" in variables)
        if "projection/kernel" in variables and "num_proj" not in kwargs:
            proj = shape_of(variables["projection/kernel"])
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
        check_shape(f"variables[{name!r}]", variables[name], shape)
    with torch.no_grad():
        for name in expected:
            p = getattr(cell, _TF1_ATTRS[name])
            p.copy_(to_tensor(variables[name], p.dtype))
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
    check_single_layer(layer, "to_tf1")
    if isinstance(layer, GRU) and layer.reset_after:
        raise ValueError("TF1's GRUCell is the reset-before GRU: to_tf1 needs "
                         "reset_after=False, got reset_after=True")
    w_ih, w_hh, b_ih, b_hh = read_direction(layer, 0, 0, "tf1")  # (G*H, I), (G*H, H_in), (G*H,)
    bias = b_ih + b_hh

    def kernel(a: Tensor, b: Tensor) -> np.ndarray:  # (N, I), (N, H_in) -> (I + H_in, N)
        return to_numpy(torch.cat([a.t(), b.t()], dim=0))

    if isinstance(layer, GRU):
        h = layer.hidden_size
        return {
            "gates/kernel": kernel(w_ih[:2 * h], w_hh[:2 * h]),
            "gates/bias": to_numpy(bias[:2 * h]),
            "candidate/kernel": kernel(w_ih[2 * h:], w_hh[2 * h:]),
            "candidate/bias": to_numpy(bias[2 * h:]),
        }
    out = {"kernel": kernel(w_ih, w_hh), "bias": to_numpy(bias)}
    if isinstance(layer, RNN):
        return out
    if layer.peepholes:
        out["w_i_diag"] = to_numpy(layer.weight_ci_l0)
        out["w_f_diag"] = to_numpy(layer.weight_cf_l0)
        out["w_o_diag"] = to_numpy(layer.weight_co_l0)
    if layer.proj_size:
        out["projection/kernel"] = to_numpy(layer.weight_hr_l0.t())  # (H, P)
    return out
