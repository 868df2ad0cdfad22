r"""Weight conversion between gatedrnn layers, Keras 3, TensorFlow 1.x, cuDNN and ONNX.

Each framework stores the same gate blocks in its own order and layout; every function
here reorders the blocks (:func:`gatedrnn.convert.gates.reorder_gates`, with the table
of every framework's order), transposes the kernels and folds biases where that is
exact. One module per framework:

==============================  ===================================  ===================
module                          layout                               layers
==============================  ===================================  ===================
:mod:`gatedrnn.convert.keras`   ``kernel`` (I, G*H),                 one, unidirectional
                                ``recurrent_kernel`` (H, G*H)
:mod:`gatedrnn.convert.tf1`     one ``kernel`` (I + H, G*H) on       one, unidirectional
                                ``concat([x, h])``
:mod:`gatedrnn.convert.cudnn`   (H, I) and (H, H) matrices and two   any stack, both
                                bias vectors per gate                directions
:mod:`gatedrnn.convert.onnx`    ``W`` (D, G*H, I), ``R`` (D, G*H,    one (one node), any
                                H), ``B`` (D, 2*G*H)                 direction
==============================  ===================================  ===================

Biases: gatedrnn (like torch.nn) has two biases, ``bias_ih`` and ``bias_hh``; cuDNN
and ONNX have both too, Keras (except its GRU with ``reset_after=True``) and TF1 one,
``bias_ih + bias_hh``, and converting from them gives ``bias_hh = 0``. Options a target
framework lacks raise ``ValueError`` (``forget_bias`` is folded into the target's bias,
which is exact).

Example::

    >>> import gatedrnn as gr
    >>> lstm = gr.LSTM(5, 3, batch_first=True)
    >>> back = gr.convert.from_keras("lstm", gr.convert.to_keras(lstm))
    >>> back.weight_ih_l0.equal(lstm.weight_ih_l0)
    True
"""

from .cudnn import CUDNN_KINDS, from_cudnn, to_cudnn
from .keras import KERAS_KINDS, from_keras, to_keras
from .onnx import ONNX_OP_TYPES, TimeReversed, from_onnx, from_onnx_weights, to_onnx_weights
from .tf1 import TF1_KINDS, from_tf1, to_tf1

__all__ = ["from_keras", "to_keras", "from_tf1", "to_tf1", "from_cudnn", "to_cudnn",
           "from_onnx_weights", "to_onnx_weights", "from_onnx", "TimeReversed",
           "KERAS_KINDS", "TF1_KINDS", "CUDNN_KINDS", "ONNX_OP_TYPES"]
