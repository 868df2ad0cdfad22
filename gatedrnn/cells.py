r"""Cell equations: one pure step function per cell, the executable specification.

Every step function takes the input projection of one time step, already computed for
all steps by the layer as one GEMM,

.. math:: xw_t = W_{ih} x_t + b_{ih} \qquad (B, G H)

with the gate blocks stacked in the cell's order (:attr:`CellSpec.gates`), the previous
state, and the recurrent weights. It returns the new state. The first element of every
state is the output ``h``.

Each cell is also described by a frozen :class:`CellSpec` that carries its options
(``forget_bias``, ``beta``, ...) and its gate names, so that a backend can run any cell
through one protocol: ``spec.step(xw_t, state, weights) -> state``.

Example::

    >>> import torch
    >>> from gatedrnn.cells import janet_step
    >>> B, H = 3, 4
    >>> xw = torch.randn(B, 2 * H)                 # (B, 2H): blocks f, g
    >>> h = torch.zeros(B, H)
    >>> janet_step(xw, h, torch.randn(2 * H, H)).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping, Optional, Tuple

import torch
from torch import Tensor
import torch.nn.functional as F

Activation = Callable[[Tensor], Tensor]
State = Tuple[Tensor, ...]

NONLINEARITIES: Mapping[str, Activation] = {"tanh": torch.tanh, "relu": torch.relu}


def _recurrent(h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
    """``h @ W_hh^T + b_hh``: the recurrent projection, (B, G H)."""
    return F.linear(h, weight_hh, bias_hh)


def rnn_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    activation: Activation = torch.tanh,
) -> Tensor:
    r"""Elman RNN step (``torch.nn.RNN``, TensorFlow ``BasicRNNCell``).

    .. math:: h' = \mathrm{act}(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    Args:
        xw: input projection ``W_ih x + b_ih``, shape (B, H).
        h: previous hidden state, (B, H).
        weight_hh: (H, H). bias_hh: (H,) or None.
        activation: ``torch.tanh`` (default) or ``torch.relu``.

    Returns:
        h', shape (B, H).
    """
    return activation(xw + _recurrent(h, weight_hh, bias_hh))


def lstm_step(
    xw: Tensor,
    state: Tuple[Tensor, Tensor],
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    weight_hr: Optional[Tensor] = None,
    weight_ci: Optional[Tensor] = None,
    weight_cf: Optional[Tensor] = None,
    weight_co: Optional[Tensor] = None,
    *,
    forget_bias: float = 0.0,
    cell_clip: Optional[float] = None,
    proj_clip: Optional[float] = None,
    activation: Activation = torch.tanh,
) -> Tuple[Tensor, Tensor]:
    r"""LSTM step, gate blocks in PyTorch order i, f, g, o.

    .. math::
        a &= W_{ih} x + b_{ih} + W_{hh} h + b_{hh} = [a_i, a_f, a_g, a_o] \\
        i &= \sigma(a_i + p_i \odot c) \\
        f &= \sigma(a_f + \text{forget\_bias} + p_f \odot c) \\
        g &= \tanh(a_g) \\
        c' &= \mathrm{clip}(f \odot c + i \odot g, \pm\text{cell\_clip}) \\
        o &= \sigma(a_o + p_o \odot c') \\
        h' &= \mathrm{clip}(W_{hr} (o \odot \tanh c'), \pm\text{proj\_clip})

    ``forget_bias`` is a constant added at run time, as in TensorFlow's
    ``BasicLSTMCell``; the peephole terms (TensorFlow ``LSTMCell(use_peepholes=True)``)
    are present only when ``weight_ci/cf/co`` are given; the projection only when
    ``weight_hr`` is given. ``tanh`` above is ``activation``.

    Args:
        xw: (B, 4H). state: ``(h, c)`` with h (B, P) (P = proj_size or H), c (B, H).
        weight_hh: (4H, P). bias_hh: (4H,) or None. weight_hr: (P, H) or None.
        weight_ci, weight_cf, weight_co: (H,) each, or None.

    Returns:
        ``(h', c')``.
    """
    h, c = state
    a_i, a_f, a_g, a_o = (xw + _recurrent(h, weight_hh, bias_hh)).chunk(4, dim=-1)  # 4 x (B, H)
    if weight_ci is not None:
        a_i = a_i + weight_ci * c
        a_f = a_f + weight_cf * c
    if forget_bias != 0.0:
        a_f = a_f + forget_bias
    c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * activation(a_g)  # (B, H)
    if cell_clip is not None:
        c_new = c_new.clamp(-cell_clip, cell_clip)
    if weight_co is not None:
        a_o = a_o + weight_co * c_new
    h_new = torch.sigmoid(a_o) * activation(c_new)  # (B, H)
    if weight_hr is not None:
        h_new = F.linear(h_new, weight_hr)  # (B, P)
        if proj_clip is not None:
            h_new = h_new.clamp(-proj_clip, proj_clip)
    return h_new, c_new


def gru_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    reset_after: bool = True,
) -> Tensor:
    r"""GRU step, gate blocks in PyTorch order r, z, n.

    .. math::
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))
            \quad\text{(reset\_after, PyTorch / cuDNN)} \\
        n &= \tanh(W_{in} x + b_{in} + W_{hn} (r \odot h) + b_{hn})
            \quad\text{(reset before: TF1 GRUCell, Keras reset\_after=False, ONNX default)} \\
        h' &= (1 - z) \odot n + z \odot h

    Args:
        xw: (B, 3H). h: (B, H). weight_hh: (3H, H). bias_hh: (3H,) or None.

    Returns:
        h', (B, H).
    """
    x_r, x_z, x_n = xw.chunk(3, dim=-1)  # 3 x (B, H)
    hidden = h.shape[-1]
    if reset_after:
        h_r, h_z, h_n = _recurrent(h, weight_hh, bias_hh).chunk(3, dim=-1)  # 3 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
    else:
        b_rz = None if bias_hh is None else bias_hh[: 2 * hidden]
        b_n = None if bias_hh is None else bias_hh[2 * hidden :]
        h_r, h_z = _recurrent(h, weight_hh[: 2 * hidden], b_rz).chunk(2, dim=-1)  # 2 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + _recurrent(r * h, weight_hh[2 * hidden :], b_n))
    return n + z * (h - n)


def janet_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    beta: float = 1.0,
) -> Tensor:
    r"""JANET step (van der Westhuizen & Lasenby 2018), gate blocks f, g.

    .. math::
        s &= W_{if} x + b_{if} + W_{hf} h + b_{hf} \\
        \tilde c &= W_{ig} x + b_{ig} + W_{hg} h + b_{hg} \\
        c' &= \sigma(s) \odot c + (1 - \sigma(s - \beta)) \odot \tanh(\tilde c) \\
        h' &= c'

    The state is the cell state itself (``h = c``). ``beta`` shifts the input gate so
    that slightly more information is accumulated than forgotten (paper: beta = 1).

    Args:
        xw: (B, 2H). h: (B, H). weight_hh: (2H, H). bias_hh: (2H,) or None.

    Returns:
        h' = c', (B, H).
    """
    s, c_tilde = (xw + _recurrent(h, weight_hh, bias_hh)).chunk(2, dim=-1)  # 2 x (B, H)
    return torch.sigmoid(s) * h + (1.0 - torch.sigmoid(s - beta)) * torch.tanh(c_tilde)


@dataclass(frozen=True)
class CellSpec:
    """What a backend needs to run a cell: its gate blocks, options and step.

    ``weights`` passed to :meth:`step` is a mapping with ``weight_hh`` and, where the
    layer has them, ``bias_hh``, ``weight_hr``, ``weight_ci``, ``weight_cf``,
    ``weight_co`` (the parameter names of the layer without the ``_l{k}`` suffix).
    """

    name: ClassVar[str]
    gates: ClassVar[Tuple[str, ...]]
    state_names: ClassVar[Tuple[str, ...]] = ("h",)

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        raise NotImplementedError


@dataclass(frozen=True)
class RNNSpec(CellSpec):
    """Elman RNN: one block ``h`` (the candidate), see :func:`rnn_step`."""

    name: ClassVar[str] = "rnn"
    gates: ClassVar[Tuple[str, ...]] = ("h",)
    nonlinearity: str = "tanh"

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (rnn_step(xw, state[0], **weights, activation=NONLINEARITIES[self.nonlinearity]),)


@dataclass(frozen=True)
class LSTMSpec(CellSpec):
    """LSTM, blocks i, f, g, o; state ``(h, c)``, see :func:`lstm_step`."""

    name: ClassVar[str] = "lstm"
    gates: ClassVar[Tuple[str, ...]] = ("i", "f", "g", "o")
    state_names: ClassVar[Tuple[str, ...]] = ("h", "c")
    forget_bias: float = 0.0
    cell_clip: Optional[float] = None
    proj_clip: Optional[float] = None

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return lstm_step(
            xw, state, **weights,
            forget_bias=self.forget_bias, cell_clip=self.cell_clip, proj_clip=self.proj_clip,
        )


@dataclass(frozen=True)
class GRUSpec(CellSpec):
    """GRU, blocks r, z, n, see :func:`gru_step`."""

    name: ClassVar[str] = "gru"
    gates: ClassVar[Tuple[str, ...]] = ("r", "z", "n")
    reset_after: bool = True

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (gru_step(xw, state[0], **weights, reset_after=self.reset_after),)


@dataclass(frozen=True)
class JANETSpec(CellSpec):
    """JANET, blocks f, g; state ``h = c``, see :func:`janet_step`."""

    name: ClassVar[str] = "janet"
    gates: ClassVar[Tuple[str, ...]] = ("f", "g")
    beta: float = 1.0

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (janet_step(xw, state[0], **weights, beta=self.beta),)
