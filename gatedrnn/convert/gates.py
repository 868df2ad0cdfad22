r"""Gate blocks: the order in which each framework stacks a layer's gates, and
:func:`reorder_gates`, the one function every converter uses to move between orders.

A gated layer keeps the weights of its G gates as G blocks of H rows stacked in one
matrix (``weight_ih`` (G*H, I)) or vector (``bias_ih`` (G*H,)); the frameworks agree
on the blocks and differ only in their order:

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
Keras 3 (``LSTM``, ``GRU``)  i, f, c, o         z, r, h
TensorFlow 1.x cells        i, j, f, o         gates r, u; candidate (separate)
cuDNN / TF ``CudnnLSTM``    i, f, g(c), o      r, z, n(h) (reset after the matmul)
ONNX ``LSTM``, ``GRU``      i, o, f, c         z, r, h (``linear_before_reset``)
==========================  =================  ===================================

(g, c and j are all the candidate; u, z are the update gate; n, h the new state; a
plain RNN has one block, ``h``, everywhere.)

:data:`GATE_ORDERS` writes each order with PyTorch's letters for the gate a block
holds, so Keras's GRU ``z, r, h`` is ``"zrn"`` and TF1's LSTM ``i, j, f, o`` is
``"igfo"``.

Example::

    >>> import torch
    >>> from gatedrnn.convert.gates import reorder_gates
    >>> reorder_gates(torch.arange(4), "lstm", "pytorch", "onnx")   # blocks i, f, g, o
    tensor([0, 3, 1, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GATE_ORDERS", "reorder_gates"]

#: framework -> cell kind (``"lstm"``, ``"gru"``, ``"rnn"``) -> its gate blocks, each
#: named by the PyTorch gate it holds (see the table above).
GATE_ORDERS = {
    "pytorch": {"lstm": "ifgo", "gru": "rzn", "rnn": "h"},
    "keras": {"lstm": "ifgo", "gru": "zrn", "rnn": "h"},
    "tf1": {"lstm": "igfo", "gru": "rzn", "rnn": "h"},
    "cudnn": {"lstm": "ifgo", "gru": "rzn", "rnn": "h"},
    "onnx": {"lstm": "iofg", "gru": "zrn", "rnn": "h"},
}


def reorder_gates(t: Tensor, kind: str, source: str, target: str, dim: int = 0) -> Tensor:
    r"""``t``'s gate blocks, stacked along ``dim`` in ``source``'s order, in ``target``'s.

    Args:
        t: a weight (G*H, ·), a bias (G*H,), or any tensor whose size along ``dim`` is G
            blocks of equal size.
        kind: ``"lstm"`` (G = 4), ``"gru"`` (G = 3) or ``"rnn"`` (G = 1).
        source, target: keys of :data:`GATE_ORDERS` (``"pytorch"``, ``"keras"``,
            ``"tf1"``, ``"cudnn"``, ``"onnx"``).
        dim: the dimension holding the blocks.

    Returns a new tensor of ``t``'s shape. Raises ValueError for an unknown framework
    or kind, or a size along ``dim`` that is not a multiple of G.

    Example::

        >>> import torch
        >>> reorder_gates(torch.tensor([[0, 1, 2]]), "gru", "pytorch", "keras", dim=-1)
        tensor([[1, 0, 2]])
    """
    for name, framework in (("source", source), ("target", target)):
        if framework not in GATE_ORDERS:
            raise ValueError(f"{name} must be one of {sorted(GATE_ORDERS)}, got {framework!r}")
    if kind not in GATE_ORDERS[source]:
        raise ValueError(f"kind must be one of {sorted(GATE_ORDERS[source])}, got {kind!r}")
    source_order, target_order = GATE_ORDERS[source][kind], GATE_ORDERS[target][kind]
    if t.size(dim) % len(source_order):
        raise ValueError(f"t must have {len(source_order)} equal gate blocks along dim={dim}, "
                         f"got size {t.size(dim)}")
    blocks = dict(zip(source_order, t.chunk(len(source_order), dim=dim)))
    return torch.cat([blocks[gate] for gate in target_order], dim=dim)
