r"""minGRU and minLSTM: the minimal RNNs of Feng et al. (2024), "Were RNNs All We Needed?".

Their gates read the input only, never the previous state, so each step is linear in h:

.. math:: h_t = a_t \odot h_{t-1} + b_t, \qquad a_t, b_t \text{ functions of } x_t \text{ only}

and a whole sequence can be computed by a scan over time instead of a Python loop. Both
cells use the paper's stable variant: the candidate goes through

.. math:: g(x) = x + 0.5 \ (x \ge 0), \qquad g(x) = \sigma(x) \ (x < 0)

which is positive, so a_t and b_t are positive and the scan runs in log space
(:func:`parallel_scan_log`). Every mode computes the same function:

* ``mode="auto"`` (default): ``fused`` for CPU tensors where the native kernels build,
  else ``scan``;
* ``mode="fused"``: one native CPU kernel per cell (``csrc/mingru.cpp``, ``csrc/minlstm.cpp``) computes the
  gates and the recurrence from ``W_ih x + b_ih`` in a single pass over time (each unit
  is independent: sequences split across threads, vectors of units walked through all
  steps; one read of xw and one write of h per element), with a hand-written backward
  that saves only h;
* ``mode="scan"``: the paper's log-space parallel scan, no loop over time in Python, any
  device;
* ``mode="sequential"``: the paper's sequential form, one step at a time in linear space,
  as :class:`MinGRUCell` / :class:`MinLSTMCell` run it for step-by-step inference.

Initial state: ``hx`` is the state h_0 itself (any real values; ``h_n`` fed back as
``hx`` continues a sequence exactly). ``hx=None`` means h_0 = g(0) = 0.5 everywhere, the
paper's convention: its code feeds a zero h_0 through ``log_g``.

This module is self-contained: the layers reuse :mod:`gatedrnn.validation`,
:mod:`gatedrnn.sequences` and :mod:`gatedrnn.parameters` but not
:class:`gatedrnn.layers.RecurrentBase`, whose cells all have recurrent weights; a
minimal RNN has none (no ``weight_hh``/``bias_hh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from .backends import native
from .cells import CellSpec
from .parameters import register, reset_uniform_
from .sequences import reverse_within_lengths, to_time_major, valid_mask
from .validation import check_dropout, check_hx, check_input, check_int, check_sizes

__all__ = [
    "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell",
    "g", "log_g", "parallel_scan_log",
    "min_gru_step", "min_lstm_step", "min_gru_log_terms", "min_lstm_log_terms",
]

MODES = ("auto", "fused", "scan", "sequential")
#: h_0 when ``hx`` is None: g(0), as the paper's code (a zero h_0 through log_g).
DEFAULT_H0 = 0.5


# -- the equations ---------------------------------------------------------------------


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


def parallel_scan_log(log_coeffs: Tensor, log_values: Tensor,
                      h0: Optional[Tensor] = None) -> Tensor:
    r"""The paper's log-space parallel scan of :math:`h_t = a_t h_{t-1} + b_t` over dim 0.

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


class _FusedMinRNN(torch.autograd.Function):
    """``torch.ops.gatedrnn.<cell>_forward`` (xw (T, B, G*H), h0 (B, H)) -> h (T, B, H),
    with its backward op; the cell's kernel is ``csrc/<cell>.cpp``."""

    @staticmethod
    def forward(ctx, cell: str, xw: Tensor, h0: Tensor) -> Tensor:
        h, _, _ = getattr(torch.ops.gatedrnn, f"{cell}_forward")(xw, [h0], [], [], None, [], False)  # (T, B, H)
        ctx.cell = cell
        ctx.save_for_backward(xw, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        xw, h, h0 = ctx.saved_tensors
        grad_xw, (grad_h0,), _ = getattr(torch.ops.gatedrnn, f"{ctx.cell}_backward")(
            grad_h, [torch.zeros_like(h0)], xw, [h0], [], [], None, [], h, [])
        return None, grad_xw, grad_h0


def _input_weights(weight: Tensor, bias: Optional[Tensor]) -> Tuple[List[Tensor], List[int]]:
    """W_ih and b_ih with their slots in the native ops' weight list."""
    weights = [weight] + ([bias] if bias is not None else [])
    return weights, [native.SLOT_NAMES.index(name) for name in ("weight_ih", "bias_ih")][:len(weights)]


class _FusedMinRNNInput(torch.autograd.Function):
    """``torch.ops.gatedrnn.<cell>_forward_input`` (x (T, B, I), W_ih, b_ih, h0) -> h:
    the input projection inside the kernel, for narrow inputs."""

    @staticmethod
    def forward(ctx, cell: str, x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor) -> Tensor:
        weights, slots = _input_weights(weight, bias)
        h, _, _ = getattr(torch.ops.gatedrnn, f"{cell}_forward")(x, [h0], weights, slots, None, [], False)
        ctx.cell, ctx.has_bias = cell, bias is not None
        ctx.save_for_backward(x, *weights, h, h0)
        return h  # (T, B, H)

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        x, weight, *rest = ctx.saved_tensors
        bias = rest.pop(0) if ctx.has_bias else None
        h, h0 = rest
        weights, slots = _input_weights(weight, bias)
        grad_x, (grad_h0,), (grad_weight, *grad_bias) = getattr(torch.ops.gatedrnn, f"{ctx.cell}_backward")(
            grad_h, [torch.zeros_like(h0)], x, [h0], weights, slots, None, [], h, [])
        return None, grad_x, grad_weight, (grad_bias[0] if grad_bias else None), grad_h0


#: Inputs up to this many features take the fused kernels' own input projection: the
#: (T, B, G*H) projection and its gradient are then never stored (for I = 1 that was
#: half the time of a training step).
FUSED_INPUT_MAX = 16


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
class MinGRUSpec(CellSpec):
    """minGRU as a :class:`~gatedrnn.cells.CellSpec` (blocks z, h; no recurrent weights):
    what the ONNX export traces into its ``Scan`` body."""

    name: ClassVar[str] = "mingru"
    gates: ClassVar[Tuple[str, ...]] = ("z", "h")

    gate_notes: ClassVar[dict] = {
        "z": "update gate, sigmoid of x_t only: the share of the state replaced by the candidate",
        "h": "candidate g(W x_t + b), positive: the new content, read from the input alone",
    }

    def step(self, xw: Tensor, state, weights) -> Tuple[Tensor]:
        return (min_gru_step(xw, state[0]),)

    def gate_values(self, xw, state, weights, new_state):
        k, k_h = xw.chunk(2, dim=-1)  # (B, H) each
        return {"z": torch.sigmoid(k), "h": g(k_h)}

    def equations(self) -> List[str]:
        return ["z_t = sigmoid(W_iz x_t + b_iz),  h~_t = g(W_ih x_t + b_ih)",
                "h_t = (1 - z_t) * h_{t-1} + z_t * h~_t"]


@dataclass(frozen=True)
class MinLSTMSpec(CellSpec):
    """minLSTM as a :class:`~gatedrnn.cells.CellSpec` (blocks f, i, h)."""

    name: ClassVar[str] = "minlstm"
    gates: ClassVar[Tuple[str, ...]] = ("f", "i", "h")

    gate_notes: ClassVar[dict] = {
        "f": "forget gate f / (f + i), from x_t only: the share of the state kept",
        "i": "input gate i / (f + i), from x_t only: the share taken from the candidate",
        "h": "candidate g(W x_t + b), positive: the new content, read from the input alone",
    }
    forget_gate: ClassVar[Optional[str]] = "f"

    def step(self, xw: Tensor, state, weights) -> Tuple[Tensor]:
        return (min_lstm_step(xw, state[0]),)

    def gate_values(self, xw, state, weights, new_state):
        k_f, k_i, k_h = xw.chunk(3, dim=-1)  # (B, H) each
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return {"f": f / (f + i), "i": i / (f + i), "h": g(k_h)}

    def equations(self) -> List[str]:
        return ["f_t = sigmoid(W_if x_t + b_if),  i_t = sigmoid(W_ii x_t + b_ii),  h~_t = g(W_ih x_t + b_ih)",
                "h_t = (f_t * h_{t-1} + i_t * h~_t) / (f_t + i_t)"]


def _check_mode(mode) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, one of {MODES}, got {type(mode).__name__} ({mode!r})")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


# -- layers ------------------------------------------------------------------------------


class MinRNNBase(nn.Module):
    """A stack of minimal-RNN layers; see :class:`MinGRU` for the interface.

    Subclasses set ``gates`` (the blocks of ``weight_ih``), ``log_terms`` (for the scan),
    ``step`` (for the sequential mode), ``kernel`` (the native op's name, for the fused
    mode) and ``frozen_gates`` (per block, the pre-activation that makes a step keep the
    state exactly, or None: how the fused mode freezes padded steps).
    """

    gates: Tuple[str, ...] = ()
    log_terms: Callable[[Tensor], Tuple[Tensor, Tensor]]
    step: Callable[[Tensor, Tensor], Tensor]
    kernel: str
    frozen_gates: Tuple[Optional[float], ...]
    spec: CellSpec
    #: no projection; h_0 when ``hx`` is None (what an ONNX graph uses when h0 is not fed)
    proj_size = 0
    initial_state_value = DEFAULT_H0

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, mode: str = "auto", device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, _ = check_sizes(input_size, hidden_size, 0)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_dropout(dropout)
        self.bidirectional = bool(bidirectional)
        self.mode = mode

        factory_kwargs = {"device": device, "dtype": dtype}
        gh = len(self.gates) * self.hidden_size
        self._all_weights: List[List[str]] = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.output_size
            for direction in range(self.num_directions):
                suffix = self._suffix(layer, direction)
                shapes = {"weight_ih": (gh, layer_input)}
                if self.bias:
                    shapes["bias_ih"] = (gh,)
                register(self, shapes, suffix, factory_kwargs)
                self._all_weights.append([name + suffix for name in shapes])
        self.reset_parameters()

    @property
    def mode(self) -> str:
        """``"auto"``, ``"fused"`` (the native kernel), ``"scan"`` (log-space parallel scan)
        or ``"sequential"`` (a loop over steps); see the module docstring."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = _check_mode(mode)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Feature size of the output: directions x hidden size."""
        return self.num_directions * self.hidden_size

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        """Parameters grouped per layer and direction, as ``torch.nn.RNNBase``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        reset_uniform_(self.parameters(), self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, mode="auto")
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    @property
    def real_hidden_size(self) -> int:
        return self.hidden_size

    def _prepare_input(self, input) -> Tuple[Tensor, Optional[Tensor], bool]:
        """-> (x (T, B, I), lengths (B,) or None, batched), as the other layers."""
        if isinstance(input, PackedSequence):
            check_input("input", input.data, self.input_size, (2,), self.weight_ih_l0)
        else:
            check_input("input", input, self.input_size, (2, 3), self.weight_ih_l0)
        return to_time_major(input, self.batch_first)

    def _prepare_state(self, hx, batch: int, batched: bool, x: Tensor) -> Tuple[Tensor]:
        """-> (h_0 (L*D, B, H),): a one-element state tuple, as the other layers."""
        layers = self.num_layers * self.num_directions
        if hx is None:
            return (x.new_full((layers, batch, self.hidden_size), DEFAULT_H0),)
        shape = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        (h0,) = check_hx(hx, [shape], self.weight_ih_l0)
        return (h0 if batched else h0.unsqueeze(1),)

    def _direction_inputs(self, x: Tensor, layer: int, direction: int):
        """``W_ih x + b_ih`` of all steps, (T, B, G*H), and no recurrent weights (what
        :func:`gatedrnn.inspect.record` replays the step with)."""
        suffix = self._suffix(layer, direction)
        bias = getattr(self, "bias_ih" + suffix) if self.bias else None
        return F.linear(x, getattr(self, "weight_ih" + suffix), bias), {}

    def resolved_mode(self, x: Tensor) -> str:
        """The mode a run on ``x`` uses: ``auto`` becomes ``fused`` for CPU float32/64
        tensors where the native kernels build, else ``scan``."""
        if self.mode != "auto":
            return self.mode
        fused = (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                 and native.is_available())
        return "fused" if fused else "scan"

    def _run_direction(self, x: Tensor, h0: Tensor, lengths: Optional[Tensor],
                       pad: Optional[Tensor], layer: int, direction: int) -> Tuple[Tensor, Tensor]:
        """One layer in one direction: x (T, B, I_l), h0 (B, H) -> (output (T, B, H), h_n (B, H))."""
        suffix = self._suffix(layer, direction)
        weight = getattr(self, "weight_ih" + suffix)
        bias = getattr(self, "bias_ih" + suffix) if self.bias else None
        if pad is None and x.shape[-1] <= FUSED_INPUT_MAX and self.resolved_mode(x) == "fused":
            native.load(self.kernel)
            h = _FusedMinRNNInput.apply(self.kernel, x if direction == 0 else x.flip(0), weight, bias, h0)
            return (h if direction == 0 else h.flip(0)), h[-1]  # (T, B, H), (B, H)
        xw = F.linear(x, weight, bias)  # (T, B, G*H)
        if direction == 1:  # the backward direction is the forward scan of each reversed sequence
            xw = reverse_within_lengths(xw, lengths)
        mode = self.resolved_mode(xw)
        if mode == "fused":
            native.load(self.kernel)  # raises, with the reason, where the kernels cannot be built
            if pad is not None:  # gates that keep the state exactly: frozen past each length
                xw = torch.cat([block if value is None else block.masked_fill(pad, value)
                                for block, value in zip(xw.chunk(len(self.gates), -1), self.frozen_gates)], -1)
            h = _FusedMinRNN.apply(self.kernel, xw, h0)  # (T, B, H)
        elif mode == "scan":
            log_coeffs, log_values = self.log_terms(xw)  # (T, B, H) each
            if pad is not None:  # a = 1, b = 0: the state stays frozen past each length
                log_coeffs = log_coeffs.masked_fill(pad, 0.0)
                log_values = log_values.masked_fill(pad, float("-inf"))
            h = parallel_scan_log(log_coeffs, log_values, h0)  # (T, B, H)
        else:
            # unbind, not xw[t]: its backward stacks the T step gradients once, where
            # indexing would add a zero-padded (T, B, G*H) gradient for every step.
            h, states = h0, []
            pads = [None] * xw.size(0) if pad is None else pad.unbind(0)
            for xw_t, pad_t in zip(xw.unbind(0), pads):
                new = self.step(xw_t, h)  # (B, H)
                h = new if pad_t is None else torch.where(pad_t, h, new)
                states.append(h)
            h = torch.stack(states)  # (T, B, H)
        h_n = h[-1]  # frozen past each length, so the last row is each sequence's final state
        if pad is not None:  # zero outputs past each length, as the other layers do
            h = h.masked_fill(pad, 0.0)
        if direction == 1:
            h = reverse_within_lengths(h, lengths)
        return h, h_n

    def forward(self, input: Union[Tensor, PackedSequence],
                hx: Optional[Tensor] = None) -> Tuple[Union[Tensor, PackedSequence], Tensor]:
        x, lengths, batched = self._prepare_input(input)  # (T, B, I)
        (h0,) = self._prepare_state(hx, x.size(1), batched, x)  # (L*D, B, H)
        pad = None if lengths is None else ~valid_mask(x.size(0), lengths).unsqueeze(-1)  # (T, B, 1)

        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                output, h_n = self._run_direction(x, h0[index], lengths, pad, layer, direction)
                outputs.append(output)
                finals.append(h_n)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        h_n = torch.stack(finals)  # (L*D, B, H)

        if isinstance(input, PackedSequence):
            order = input.sorted_indices
            if order is not None:  # back to the packed (descending length) order
                x, lengths = x.index_select(1, order), lengths[order.cpu()]
            data = pack_padded_sequence(x, lengths.cpu()).data  # (sum of lengths, D*H)
            return PackedSequence(data, input.batch_sizes, order, input.unsorted_indices), h_n
        if not batched:
            return x.squeeze(1), h_n.squeeze(1)  # (T, D*H), (L*D, H)
        return (x.transpose(0, 1) if self.batch_first else x), h_n


class MinGRU(MinRNNBase):
    r"""minGRU layer (Feng et al. 2024), with the interface of ``torch.nn.GRU``.

    Gate blocks z, h (``weight_ih_l{k}`` is (2H, I_k), ``bias_ih_l{k}`` (2H,)); there is
    no ``weight_hh``/``bias_hh``: the gates read x_t only.

    .. math::
        z_t &= \sigma(W_{iz} x_t + b_{iz}) \\
        \tilde h_t &= g(W_{i\tilde h} x_t + b_{i\tilde h}), \quad
            g(x) = x + 0.5 \ (x \ge 0), \ \sigma(x) \ (x < 0) \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``mode="scan"`` computes all steps at once with :func:`parallel_scan_log`
    (log a_t = -softplus(k_z), log b_t = -softplus(-k_z) + log g(k_h));
    ``mode="fused"`` runs the whole layer direction in one native kernel;
    ``mode="sequential"`` runs the step above in a loop; all
    give the same outputs and gradients (``auto``, the default: fused on CPU). ``hx=None`` means h_0 = g(0) = 0.5 (the paper's convention); a given
    ``hx`` is h_0 itself, any real values.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        device, dtype: as ``torch.nn.GRU``.
        mode: ``"auto"`` (default), ``"fused"``, ``"scan"`` or ``"sequential"`` (see
            :mod:`gatedrnn.min_rnn`); may be changed after construction.

    Shapes: input (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a
    ``PackedSequence``; ``hx`` (L*D, B, H) or (L*D, H) unbatched. Returns ``output``
    (T, B, D*H) (same layout as the input) and ``h_n`` (L*D, B, H).

    Example::

        >>> gru = MinGRU(10, 20, num_layers=2, batch_first=True)
        >>> output, h_n = gru(torch.randn(3, 5, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 20]), torch.Size([2, 3, 20]))
    """

    gates = MinGRUSpec.gates
    spec = MinGRUSpec()
    log_terms = staticmethod(min_gru_log_terms)
    step = staticmethod(min_gru_step)
    kernel = "mingru"
    frozen_gates = (float("-inf"), None)  # z = 0 keeps h


class MinLSTM(MinRNNBase):
    r"""minLSTM layer (Feng et al. 2024), with the interface of ``torch.nn.GRU``.

    Gate blocks f, i, h (``weight_ih_l{k}`` is (3H, I_k), ``bias_ih_l{k}`` (3H,)); no
    ``weight_hh``/``bias_hh``, and no cell state: h is the only state.

    .. math::
        f_t &= \sigma(W_{if} x_t + b_{if}), \quad i_t = \sigma(W_{ii} x_t + b_{ii}) \\
        f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t} \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot g(W_{i\tilde h} x_t + b_{i\tilde h})

    ``mode="scan"`` uses :func:`parallel_scan_log` with log f'_t = -softplus(d),
    log i'_t = -softplus(-d), d = softplus(-k_f) - softplus(-k_i). Arguments, modes,
    ``hx`` (h_0 = 0.5 when None) and shapes as :class:`MinGRU`; forward returns
    ``(output, h_n)``.

    Example::

        >>> lstm = MinLSTM(10, 20, bidirectional=True)
        >>> output, h_n = lstm(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 40]), torch.Size([2, 3, 20]))
    """

    gates = MinLSTMSpec.gates
    spec = MinLSTMSpec()
    log_terms = staticmethod(min_lstm_log_terms)
    step = staticmethod(min_lstm_step)
    kernel = "minlstm"
    frozen_gates = (float("inf"), float("-inf"), None)  # f = 1, i = 0 keep h


# -- single-step cells -------------------------------------------------------------------


class MinCellBase(nn.Module):
    """One step of a minimal RNN; subclasses set ``gates`` and ``step``."""

    gates: Tuple[str, ...] = ()
    step: Callable[[Tensor, Tensor], Tensor]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, _ = check_sizes(input_size, hidden_size, 0)
        self.bias = bool(bias)
        gh = len(self.gates) * self.hidden_size
        shapes = {"weight_ih": (gh, self.input_size)}
        if self.bias:
            shapes["bias_ih"] = (gh,)
        register(self, shapes, "", {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        reset_uniform_(self.parameters(), self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        check_input("input", input, self.input_size, (1, 2), self.weight_ih)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)  # (B, I)
        if hx is None:
            h = x.new_full((x.size(0), self.hidden_size), DEFAULT_H0)  # (B, H)
        else:
            shape = (x.size(0), self.hidden_size) if batched else (self.hidden_size,)
            (h,) = check_hx(hx, [shape], self.weight_ih)
            h = h if batched else h.unsqueeze(0)  # (B, H)
        xw = F.linear(x, self.weight_ih, self.bias_ih if self.bias else None)  # (B, G*H)
        h = self.step(xw, h)  # (B, H)
        return h if batched else h.squeeze(0)


class MinGRUCell(MinCellBase):
    r"""One minGRU step (see :func:`min_gru_step`), with the parameters of one direction
    of :class:`MinGRU` without the suffix: ``weight_ih`` (2H, I), ``bias_ih`` (2H,).

    Input (B, I) or unbatched (I,); ``hx`` (B, H) / (H,), None meaning 0.5. Returns h'.

    Example::

        >>> cell = MinGRUCell(10, 20)
        >>> h = None
        >>> for x_t in torch.randn(5, 3, 10):
        ...     h = cell(x_t, h)
        >>> h.shape
        torch.Size([3, 20])
    """

    gates = MinGRU.gates
    step = staticmethod(min_gru_step)


class MinLSTMCell(MinCellBase):
    r"""One minLSTM step (see :func:`min_lstm_step`), with the parameters of one direction
    of :class:`MinLSTM` without the suffix: ``weight_ih`` (3H, I), ``bias_ih`` (3H,).

    Input (B, I) or unbatched (I,); ``hx`` (B, H) / (H,), None meaning 0.5. Returns h'.

    Example::

        >>> cell = MinLSTMCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    gates = MinLSTM.gates
    step = staticmethod(min_lstm_step)
