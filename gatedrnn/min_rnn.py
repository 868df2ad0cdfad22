r"""minGRU and minLSTM: the minimal RNNs of Feng et al. (2024), "Were RNNs All We Needed?".

Their gates read the input only, never the previous state, so each step is linear in h:

.. math:: h_t = a_t \odot h_{t-1} + b_t, \qquad a_t, b_t \text{ functions of } x_t \text{ only}

Both cells use the paper's stable variant: the candidate goes through

.. math:: g(x) = x + 0.5 \ (x \ge 0), \qquad g(x) = \sigma(x) \ (x < 0)

which is positive, so a_t and b_t are positive and a whole sequence is a log-space scan
(:func:`~gatedrnn.backends.scan.parallel_scan_log`) instead of a loop.

This module holds what is theirs: the equations and the specs. They are cells like the
others: a spec with no recurrent weights (``weight_ih`` and ``bias_ih`` only); the
layers :class:`gatedrnn.MinGRU` and :class:`gatedrnn.MinLSTM` are thin subclasses of
:class:`gatedrnn.layers.RecurrentBase`, the cells :class:`gatedrnn.MinGRUCell` and
:class:`gatedrnn.MinLSTMCell` of :class:`gatedrnn.cell_modules.CellBase`. A layer's
``mode`` names the backend it runs on, and every mode computes the same function:

* ``mode="auto"`` (default): ``fused`` for CPU tensors where the native kernels build,
  else ``scan``;
* ``mode="fused"``: the native backend, one C++ kernel per cell that computes the gates
  and the recurrence in a single pass over time (for inputs of up to
  :data:`FUSED_INPUT_MAX` features it forms ``W_ih x + b_ih`` itself too);
* ``mode="scan"``: the scan backend (:mod:`gatedrnn.backends.scan`), no loop over time
  in Python, any device;
* ``mode="sequential"``: the reference backend, one step at a time in linear space,
  as :class:`MinGRUCell` / :class:`MinLSTMCell` run it for step-by-step inference.

Initial state: ``hx`` is the state h_0 itself (any real values; ``h_n`` fed back as
``hx`` continues a sequence exactly). ``hx=None`` means h_0 = g(0) = 0.5 everywhere, the
paper's convention: its code feeds a zero h_0 through ``log_g``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor
import torch.nn.functional as F

from .backends import native  # noqa: F401  (mode="fused" runs it: gr.min_rnn.native, as before)
from .backends.scan import parallel_scan_log
from .cells import CellSpec

__all__ = [
    "MinimalSpec", "MinGRUSpec", "MinLSTMSpec", "g", "log_g", "parallel_scan_log",
    "min_gru_step", "min_lstm_step", "min_gru_log_terms", "min_lstm_log_terms",
]

#: Inputs of up to this many features go to the fused kernel raw: it forms the input
#: projection itself, so the (T, B, G*H) projection and its gradient are never stored
#: (for I = 1 that was half the time of a training step).
FUSED_INPUT_MAX = 16


def g(x: Tensor) -> Tensor:
    r"""The paper's positive activation: :math:`x + 0.5` for :math:`x \ge 0`, else
    :math:`\sigma(x)` (continuous at 0, value 0.5, slope 1 on the right, 1/4 on the left)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    r""":math:`\log g(x)` computed stably: :math:`\log(x + 0.5)` for :math:`x \ge 0`, else
    :math:`-\mathrm{softplus}(-x)`."""
    # relu keeps the log's argument >= 0.5 in the branch torch.where discards, so
    # neither the value nor its gradient there can be inf or NaN.
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def min_gru_log_terms(xw: Tensor) -> Tuple[Tensor, Tensor]:
    r"""minGRU's :math:`(\log a_t, \log b_t)` from ``xw`` (..., 2H), blocks k (z), k_h:

    .. math::
        \log(1 - z_t) = -\mathrm{softplus}(k_t), \qquad
        \log(z_t\, g(\tilde h_t)) = -\mathrm{softplus}(-k_t) + \log g(k_{h,t})

    Returns two (..., H) tensors.
    """
    k, k_h = xw.chunk(2, dim=-1)  # (..., H) each
    return -F.softplus(k), -F.softplus(-k) + log_g(k_h)


def min_lstm_log_terms(xw: Tensor) -> Tuple[Tensor, Tensor]:
    r"""minLSTM's :math:`(\log f'_t, \log(i'_t\, g(\tilde h_t)))` from ``xw`` (..., 3H),
    blocks k_f, k_i, k_h. With :math:`d = \mathrm{softplus}(-k_f) - \mathrm{softplus}(-k_i)
    = \log(i_t / f_t)`:

    .. math::
        \log f'_t = -\mathrm{softplus}(d), \qquad
        \log i'_t = -\mathrm{softplus}(-d)

    Returns two (..., H) tensors.
    """
    k_f, k_i, k_h = xw.chunk(3, dim=-1)  # (..., H) each
    diff = F.softplus(-k_f) - F.softplus(-k_i)  # log(i / f)
    return -F.softplus(diff), -F.softplus(-diff) + log_g(k_h)


def min_gru_step(xw: Tensor, h: Tensor) -> Tensor:
    r"""One minGRU step in linear space, as the paper's sequential mode.

    .. math::
        z_t = \sigma(k_t), \quad \tilde h_t = g(k_{h,t}), \quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``xw`` (B, 2H) = ``W_ih x_t + b_ih`` with blocks z, h; ``h`` (B, H). Returns (B, H).
    """
    k, k_h = xw.chunk(2, dim=-1)  # (B, H) each
    z = torch.sigmoid(k)
    return (1 - z) * h + z * g(k_h)


def min_lstm_step(xw: Tensor, h: Tensor) -> Tensor:
    r"""One minLSTM step in linear space, as the paper's sequential mode.

    .. math::
        f_t = \sigma(k_{f,t}), \quad i_t = \sigma(k_{i,t}), \quad
        f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \quad
        h_t = f'_t \odot h_{t-1} + i'_t \odot g(k_{h,t})

    ``xw`` (B, 3H) = ``W_ih x_t + b_ih`` with blocks f, i, h; ``h`` (B, H). Returns (B, H).
    """
    k_f, k_i, k_h = xw.chunk(3, dim=-1)  # (B, H) each
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    total = f + i
    return (f / total) * h + (i / total) * g(k_h)


@dataclass(frozen=True)
class MinimalSpec(CellSpec):
    """What the minimal RNNs share: no recurrent weights (the gates read x_t only), the
    state h_0 = g(0) = 0.5 without ``hx``, log-space terms for the scan backend."""

    initial_state: ClassVar[float] = 0.5
    kernel_input_max: ClassVar[int] = FUSED_INPUT_MAX
    #: The step in linear space, ``(xw (B, G*H), h (B, H)) -> h'``.
    linear_step: ClassVar[Callable[[Tensor, Tensor], Tensor]]

    def step(self, xw: Tensor, state, weights) -> Tuple[Tensor]:
        return (self.linear_step(xw, state[0]),)

    def parameter_shapes(self, input_size, hidden_size, *, bias=True, proj_size=0, peepholes=False):
        gh = self.num_gates * hidden_size
        return {"weight_ih": (gh, input_size), **({"bias_ih": (gh,)} if bias else {})}


@dataclass(frozen=True)
class MinGRUSpec(MinimalSpec):
    """minGRU, blocks z, h; see :func:`min_gru_step` and :func:`min_gru_log_terms`."""

    name: ClassVar[str] = "mingru"
    gates: ClassVar[Tuple[str, ...]] = ("z", "h")
    gate_notes: ClassVar[Mapping[str, str]] = {
        "z": "update gate, sigmoid of x_t only: the share of the state replaced by the candidate",
        "h": "candidate g(W x_t + b), positive: the new content, read from the input alone",
    }

    linear_step = staticmethod(min_gru_step)
    log_terms = staticmethod(min_gru_log_terms)

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        k, k_h = xw.chunk(2, dim=-1)  # (B, H) each
        return {"z": torch.sigmoid(k), "h": g(k_h)}

    def equations(self) -> List[str]:
        return ["z_t = sigmoid(W_iz x_t + b_iz),  h~_t = g(W_ih x_t + b_ih)",
                "h_t = (1 - z_t) * h_{t-1} + z_t * h~_t"]


@dataclass(frozen=True)
class MinLSTMSpec(MinimalSpec):
    """minLSTM, blocks f, i, h; see :func:`min_lstm_step` and :func:`min_lstm_log_terms`."""

    name: ClassVar[str] = "minlstm"
    gates: ClassVar[Tuple[str, ...]] = ("f", "i", "h")
    forget_gate: ClassVar[Optional[str]] = "f"
    gate_notes: ClassVar[Mapping[str, str]] = {
        "f": "forget gate f / (f + i), from x_t only: the share of the state kept",
        "i": "input gate i / (f + i), from x_t only: the share taken from the candidate",
        "h": "candidate g(W x_t + b), positive: the new content, read from the input alone",
    }

    linear_step = staticmethod(min_lstm_step)
    log_terms = staticmethod(min_lstm_log_terms)

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        k_f, k_i, k_h = xw.chunk(3, dim=-1)  # (B, H) each
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return {"f": f / (f + i), "i": i / (f + i), "h": g(k_h)}

    def equations(self) -> List[str]:
        return ["f_t = sigmoid(W_if x_t + b_if),  i_t = sigmoid(W_ii x_t + b_ii),  h~_t = g(W_ih x_t + b_ih)",
                "h_t = (f_t * h_{t-1} + i_t * h~_t) / (f_t + i_t)"]
