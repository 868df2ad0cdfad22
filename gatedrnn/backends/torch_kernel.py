"""torch's own fused LSTM kernel (oneDNN on CPU, cuDNN on GPU), for the LSTMs whose
semantics are exactly torch's.

Unlike the other backends, which run one layer's time loop, this one runs the whole
stack through ``torch._VF.lstm``, as ``torch.nn.LSTM`` does. It applies to a
:class:`gatedrnn.LSTM` without peepholes or clipping (a projection is fine) on dense
input; a run-time ``forget_bias`` is folded into ``bias_ih`` (so ``bias=True`` is needed
when it is not 0). ``backend="auto"`` picks it for such LSTMs, because the benchmark
(``gatedrnn bench``) shows oneDNN's LSTM ahead of the native LSTM kernel in inference and
at long sequences; every other cell or option runs on the native kernels.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..cells import LSTMSpec


def supports(layer, lengths: Optional[Tensor]) -> bool:
    """The layer's cell is exactly torch's LSTM and the input is dense."""
    spec = layer.spec
    return (isinstance(spec, LSTMSpec) and lengths is None and not layer.peepholes
            and spec.cell_clip is None and spec.proj_clip is None
            and (layer.bias or spec.forget_bias == 0.0))


def _flat_weights(layer) -> List[Tensor]:
    """torch's flat weight list, with the run-time forget bias folded into bias_ih."""
    hidden, forget_bias = layer.hidden_size, layer.spec.forget_bias
    weights = []
    for names in layer._all_weights:
        for name in names:
            weight = getattr(layer, name)
            if forget_bias != 0.0 and name.startswith("bias_ih"):
                shift = torch.zeros_like(weight)
                shift[hidden:2 * hidden] = forget_bias  # the f block of i, f, g, o
                weight = weight + shift
            weights.append(weight)
    return weights


def run_layer(layer, x: Tensor, state: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """The whole stack on x (T, B, I) from state (h0, c0), each (L*D, B, ·)."""
    output, h_n, c_n = torch._VF.lstm(
        x, state, _flat_weights(layer), layer.bias, layer.num_layers, layer.dropout,
        layer.training, layer.bidirectional, False)
    return output, (h_n, c_n)  # (T, B, D*H_out)
