r"""cuDNN's canonical RNN weights (also TensorFlow's ``CudnnLSTM`` / ``CudnnGRU``):
:func:`from_cudnn` and :func:`to_cudnn` convert between them and a gatedrnn ``RNN`` /
``LSTM`` / ``GRU`` of any depth, uni- or bidirectional.

Layout: for each layer and direction (layer-major, forward before backward) cuDNN
keeps one input matrix ``W_k`` (H, I_l) and one recurrent matrix ``R_k`` (H, H) per
gate, and an input and a recurrent bias vector ``bW_k``, ``bR_k`` (H,) per gate;
stacked, they are exactly gatedrnn's ``weight_ih``, ``weight_hh``, ``bias_ih`` and
``bias_hh``, because the gate order is PyTorch's (:mod:`gatedrnn.convert.gates`):

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
cuDNN / TF ``CudnnLSTM``    i, f, g(c), o      r, z, n(h) (reset after the matmul)
==========================  =================  ===================================

cuDNN's GRU is gatedrnn's ``GRU(reset_after=True)``; its LSTM has no run-time forget
bias, which :func:`to_cudnn` folds into the recurrent forget bias (exact). Options
cuDNN lacks raise ``ValueError``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..layers import GRU
from ._common import (add_forget_bias, cell_kind, check_choice, check_lstm_options,
                      check_shape, float_dtype_of, has_forget_bias, new_layer,
                      read_direction, shape_of, to_numpy, to_tensor, write_direction)

__all__ = ["from_cudnn", "to_cudnn", "CUDNN_KINDS"]

#: ``kind`` values of :func:`from_cudnn` (cuDNN's RNN modes), with the number of gates.
CUDNN_KINDS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


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
    check_choice("kind", kind, sorted(CUDNN_KINDS))
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
    layer = new_layer(kind.split("_")[0], input_size, hidden_size, num_layers=num_layers,
                      bias=biases is not None, batch_first=batch_first,
                      bidirectional=bidirectional, dtype=float_dtype_of(weights[0]), **options)
    dtype = layer.weight_ih_l0.dtype

    def matrix(index: int, cols: int) -> Tensor:  # weights[index] as (H, cols)
        a = weights[index]
        if shape_of(a) not in ((hidden_size, cols), (hidden_size * cols,)):
            raise ValueError(f"weights[{index}] must have shape {(hidden_size, cols)} or "
                             f"{(hidden_size * cols,)}, got {shape_of(a)}")
        return to_tensor(a, dtype).reshape(hidden_size, cols)

    for k in range(num_layers):
        layer_input_size = input_size if k == 0 else num_directions * hidden_size
        for d in range(num_directions):
            first = (k * num_directions + d) * per_direction
            w_ih = torch.cat([matrix(first + g, layer_input_size)
                              for g in range(gates)])  # (G*H, I_l)
            w_hh = torch.cat([matrix(first + gates + g, hidden_size)
                              for g in range(gates)])  # (G*H, H)
            bias = ()
            if biases is not None:
                for g in range(per_direction):
                    check_shape(f"biases[{first + g}]", biases[first + g], (hidden_size,))
                bias = torch.cat([to_tensor(b, dtype) for b in biases[first:first + per_direction]]
                                 ).chunk(2)  # bias_ih, bias_hh (G*H,)
            write_direction(layer, k, d, "cudnn", w_ih, w_hh, *bias)
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
    kind = cell_kind(layer)
    check_lstm_options(layer, ("cell_clip", "proj_clip", "proj_size"), "cuDNN's RNN")
    check_lstm_options(layer, ("peepholes",), "cuDNN's LSTM")
    if isinstance(layer, GRU) and not layer.reset_after:
        raise ValueError("cuDNN's GRU resets after the recurrent matmul: needs "
                         "reset_after=True, got reset_after=False")
    if kind == "rnn":
        kind = "rnn_" + layer.nonlinearity
    gates = CUDNN_KINDS[kind]
    with_biases = layer.bias or has_forget_bias(layer)
    weights: List[np.ndarray] = []
    biases: List[np.ndarray] = []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            # (G*H, I_l), (G*H, H), (G*H,), (G*H,)
            w_ih, w_hh, b_ih, b_hh = read_direction(layer, k, d, "cudnn")
            weights += [to_numpy(m) for m in w_ih.chunk(gates) + w_hh.chunk(gates)]
            if with_biases:
                b_hh = add_forget_bias(b_hh, layer, "cudnn")
                biases += [to_numpy(b) for b in torch.cat([b_ih, b_hh]).chunk(2 * gates)]
    return {"kind": kind, "weights": weights, "biases": biases if with_biases else None,
            "input_size": layer.input_size, "hidden_size": layer.hidden_size,
            "num_layers": layer.num_layers, "bidirectional": layer.bidirectional}
