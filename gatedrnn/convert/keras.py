r"""Keras 3 weights: :func:`from_keras` and :func:`to_keras` convert between a
one-layer, unidirectional gatedrnn ``LSTM`` / ``GRU`` / ``RNN`` and the
``get_weights()`` / ``set_weights()`` list of Keras's ``LSTM`` / ``GRU`` /
``SimpleRNN``.

Layout: Keras stores ``kernel`` (I, G*U) and ``recurrent_kernel`` (U, G*U) and applies
``x @ kernel``, the transposes of gatedrnn's ``weight_ih`` (G*U, I) and ``weight_hh``
(G*U, U). Gate blocks (:mod:`gatedrnn.convert.gates`):

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
Keras 3 (``LSTM``, ``GRU``)  i, f, c, o         z, r, h
==========================  =================  ===================================

Biases: Keras's LSTM and SimpleRNN have one bias, so they get ``bias_ih + bias_hh``;
Keras's GRU with ``reset_after=True`` keeps both (``bias`` (2, 3U): row 0 input, row 1
recurrent); with ``reset_after=False`` it has one bias, which is exact because there
the recurrent n bias sits outside the reset gate: ``tanh(W_in x + b_in + W_hn (r * h)
+ b_hn)``. Converting *to* a gatedrnn layer gives ``bias_hh = 0`` except for the GRU
with ``reset_after=True``. An LSTM's ``forget_bias`` is folded into the bias (exact);
other options Keras lacks raise ``ValueError``.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from torch import nn

from ..layers import GRU, LSTM, RNN
from ._common import (add_forget_bias, check_choice, check_lstm_options, check_shape,
                      check_single_layer, read_direction, shape_of, to_numpy, to_tensor,
                      write_direction)

__all__ = ["from_keras", "to_keras", "KERAS_KINDS"]

#: ``kind`` values of :func:`from_keras`, with the number of gate blocks.
KERAS_KINDS = {"lstm": 4, "gru": 3, "simple_rnn": 1}


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
    check_choice("kind", kind, sorted(KERAS_KINDS))
    gates = KERAS_KINDS[kind]
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list of arrays (layer.get_weights()), "
                        f"got {type(weights).__name__}")
    if len(weights) not in (2, 3):
        raise ValueError(
            f"weights must hold 2 or 3 arrays (kernel, recurrent_kernel[, bias]) for "
            f"kind={kind!r}, got {len(weights)}")
    kernel, recurrent = weights[0], weights[1]
    if len(shape_of(kernel)) != 2 or shape_of(kernel)[1] % gates or shape_of(kernel)[1] == 0:
        raise ValueError(
            f"weights[0] (kernel) must have shape (input_size, {gates}*units) for "
            f"kind={kind!r}, got {shape_of(kernel)}")
    in_size, units = shape_of(kernel)[0], shape_of(kernel)[1] // gates
    check_shape("weights[1] (recurrent_kernel)", recurrent, (units, gates * units))
    bias = weights[2] if len(weights) == 3 else None
    if bias is not None:
        two_biases = kind == "gru" and reset_after
        check_shape("weights[2] (bias)", bias,
                    (2, gates * units) if two_biases else (gates * units,))

    has_bias = bias is not None
    if kind == "lstm":
        layer = LSTM(in_size, units, bias=has_bias, batch_first=True)
    elif kind == "gru":
        layer = GRU(in_size, units, bias=has_bias, batch_first=True,
                    reset_after=bool(reset_after))
    else:
        layer = RNN(in_size, units, bias=has_bias, batch_first=True)

    w_ih = to_tensor(kernel).t()  # (G*U, I), Keras's gate order
    w_hh = to_tensor(recurrent).t()  # (G*U, U)
    biases = ()
    if has_bias:
        b = to_tensor(bias)
        biases = (b[0], b[1]) if b.dim() == 2 else (b, torch.zeros_like(b))  # (G*U,) each
    write_direction(layer, 0, 0, "keras", w_ih, w_hh, *biases)
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
    check_single_layer(layer, "to_keras")
    check_lstm_options(layer, ("peepholes", "cell_clip", "proj_clip", "proj_size"),
                       "Keras's LSTM", caller="to_keras")
    if isinstance(layer, LSTM) and not layer.bias and layer.forget_bias != 0.0:
        raise ValueError(
            f"forget_bias={layer.forget_bias} cannot be folded into a Keras bias "
            f"when the layer has bias=False")
    w_ih, w_hh, b_ih, b_hh = read_direction(layer, 0, 0, "keras")  # (G*H, I), (G*H, H), (G*H,)
    if isinstance(layer, GRU) and layer.reset_after:
        bias = torch.stack([b_ih, b_hh])  # (2, 3H)
    else:
        bias = add_forget_bias(b_ih + b_hh, layer, "keras")
    out = [to_numpy(w_ih.t()), to_numpy(w_hh.t())]
    if layer.bias:
        out.append(to_numpy(bias))
    return out
