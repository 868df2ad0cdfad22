r"""The scan backend: a log-space parallel scan over time, for cells whose step is linear
in the state.

A cell whose gates read the input only (the minimal RNNs, :mod:`gatedrnn.min_rnn`) has
the step :math:`h_t = a_t \odot h_{t-1} + b_t` with :math:`a_t, b_t > 0` functions of
``xw_t`` alone. Its spec gives :math:`(\log a_t, \log b_t)` for all steps at once
(:meth:`~gatedrnn.cells.CellSpec.log_terms`), and the whole sequence is two cumulative
sums (:func:`parallel_scan_log`): no loop over time in Python, any device, autograd
through torch's own ops (to any order, and in forward mode).

Lengths freeze each sequence past its end: a step with :math:`\log a = 0` and
:math:`\log b = -\infty` keeps the state unchanged, and the outputs there are zeroed.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..cells import CellSpec, State
from ..sequences import valid_mask


def parallel_scan_log(log_coeffs: Tensor, log_values: Tensor,
                      h0: Optional[Tensor] = None) -> Tensor:
    r"""The log-space parallel scan of :math:`h_t = a_t h_{t-1} + b_t` over dim 0
    (Feng et al. 2024, after Heinsen 2023).

    With :math:`A_t = \sum_{s \le t} \log a_s` (``a_star``),

    .. math::
        h_t = e^{A_t} h_0 + \exp\Big(A_t + \operatorname{logcumsumexp}_{s \le t}
              (\log b_s - A_s)\Big)

    which is :math:`h_t = (\prod_{s \le t} a_s) h_0 + \sum_{s \le t} (\prod_{s < r \le t}
    a_r) b_s`. The h_0 term is kept outside log space, so h_0 may be any real number;
    the paper puts log h_0 first in ``log_values`` instead, which needs h_0 > 0.

    Args:
        log_coeffs: :math:`\log a_t`, (T, ...). A step with log a = 0 and log b = -inf
            leaves the state unchanged (how padded steps are frozen).
        log_values: :math:`\log b_t`, (T, ...).
        h0: the state before the first step, broadcastable to ``log_values[0]``
            (None: zero).

    Returns:
        h: (T, ...), h_1 ... h_T.

    Example::

        >>> a, b = torch.rand(5, 3), torch.rand(5, 3)
        >>> h = parallel_scan_log(a.log(), b.log(), torch.ones(3))
        >>> torch.allclose(h[1], a[1] * (a[0] + b[0]) + b[1])
        True
    """
    a_star = torch.cumsum(log_coeffs, dim=0)  # (T, ...)
    h = torch.exp(a_star + torch.logcumsumexp(log_values - a_star, dim=0))  # (T, ...)
    if h0 is not None:
        h = h + torch.exp(a_star) * h0
    return h


def is_available() -> bool:
    """Pure PyTorch: always."""
    return True


def supports(spec: CellSpec, xw: Tensor) -> bool:
    """Cells that give log-space terms, on floating-point tensors of any device."""
    return spec.log_terms is not None and xw.is_floating_point()


def run(spec: CellSpec, xw: Tensor, state: State, weights: Mapping[str, Tensor],
        lengths: Optional[Tensor] = None) -> Tuple[Tensor, State]:
    """See :func:`gatedrnn.backends.reference.run`; ``weights`` is empty (such a cell has
    no recurrent weights)."""
    log_coeffs, log_values = spec.log_terms(xw)  # (T, B, H) each
    pad = None
    if lengths is not None:  # a = 1, b = 0: the state stays frozen past each length
        pad = ~valid_mask(xw.size(0), lengths).unsqueeze(-1)  # (T, B, 1)
        log_coeffs = log_coeffs.masked_fill(pad, 0.0)
        log_values = log_values.masked_fill(pad, float("-inf"))
    h = parallel_scan_log(log_coeffs, log_values, state[0])  # (T, B, H)
    h_n = h[-1]  # frozen past each length: the last row is each sequence's final state
    if pad is not None:  # zero outputs past each length, as every backend does
        h = h.masked_fill(pad, 0.0)
    return h, (h_n,)
