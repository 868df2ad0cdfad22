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

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor
import torch.nn.functional as F

from .parameters import parameter_shapes
from .validation import check_int, check_optional_clip

Activation = Callable[[Tensor], Tensor]
State = Tuple[Tensor, ...]

NONLINEARITIES: Mapping[str, Activation] = {"tanh": torch.tanh, "relu": torch.relu}


def _recurrent(h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor],
               recurrent_mask: Optional[Tensor] = None) -> Tensor:
    """``(h * mask) @ W_hh^T + b_hh``: the recurrent projection, (B, G H).

    ``recurrent_mask`` (B, H_in) is variational recurrent dropout (Gal & Ghahramani
    2016): one scaled Bernoulli mask per sequence on ``h`` wherever it enters a
    recurrent product, never on the state that is carried (see
    :class:`gatedrnn.layers.RecurrentBase`).
    """
    return F.linear(h if recurrent_mask is None else h * recurrent_mask, weight_hh, bias_hh)


def rnn_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    activation: Activation = torch.tanh,
    recurrent_mask: Optional[Tensor] = None,
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
    return activation(xw + _recurrent(h, weight_hh, bias_hh, recurrent_mask))


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
    recurrent_mask: Optional[Tensor] = None,
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
    a_i, a_f, a_g, a_o = (xw + _recurrent(h, weight_hh, bias_hh, recurrent_mask)).chunk(4, dim=-1)  # 4 x (B, H)
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
    recurrent_mask: Optional[Tensor] = None,
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
    if recurrent_mask is not None:  # every recurrent product reads the masked h
        h_in = h * recurrent_mask
    else:
        h_in = h
    if reset_after:
        h_r, h_z, h_n = _recurrent(h_in, weight_hh, bias_hh).chunk(3, dim=-1)  # 3 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
    else:
        b_rz = None if bias_hh is None else bias_hh[: 2 * hidden]
        b_n = None if bias_hh is None else bias_hh[2 * hidden :]
        h_r, h_z = _recurrent(h_in, weight_hh[: 2 * hidden], b_rz).chunk(2, dim=-1)  # 2 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + _recurrent(r * h_in, weight_hh[2 * hidden :], b_n))
    return n + z * (h - n)


def janet_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    beta: float = 1.0,
    recurrent_mask: Optional[Tensor] = None,
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
    s, c_tilde = (xw + _recurrent(h, weight_hh, bias_hh, recurrent_mask)).chunk(2, dim=-1)  # 2 x (B, H)
    return torch.sigmoid(s) * h + (1.0 - torch.sigmoid(s - beta)) * torch.tanh(c_tilde)


def mgu_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    recurrent_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""Minimal gated unit step (Zhou, Wu, Zhang & Zhou 2016), gate blocks f, h.

    .. math::
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        \tilde h &= \tanh(W_{ih} x + b_{ih} + W_{hh} (f \odot h) + b_{hh}) \\
        h' &= (1 - f) \odot h + f \odot \tilde h

    The GRU with its reset and update gates tied into one forget gate f: one gate
    fewer than the GRU, like JANET is one gate fewer than the GRU-sized LSTM.

    Args:
        xw: (B, 2H). h: (B, H). weight_hh: (2H, H). bias_hh: (2H,) or None.

    Returns:
        h', (B, H).
    """
    f, candidate = _mgu_gates(xw, h, weight_hh, bias_hh, recurrent_mask)
    return h + f * (candidate - h)


def _mgu_gates(xw: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor],
               recurrent_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The MGU's forget gate f and candidate h~, (B, H) each (see :func:`mgu_step`)."""
    x_f, x_h = xw.chunk(2, dim=-1)  # 2 x (B, H)
    hidden = h.shape[-1]
    h_in = h if recurrent_mask is None else h * recurrent_mask
    b_f = None if bias_hh is None else bias_hh[:hidden]
    b_h = None if bias_hh is None else bias_hh[hidden:]
    f = torch.sigmoid(x_f + _recurrent(h_in, weight_hh[:hidden], b_f))
    return f, torch.tanh(x_h + _recurrent(f * h_in, weight_hh[hidden:], b_h))


def indrnn_step(
    xw: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    activation: Activation = torch.relu,
    recurrent_max: Optional[float] = None,
) -> Tensor:
    r"""Independently recurrent step (IndRNN, Li, Li, Cook, Zhu & Gao 2018).

    .. math:: h' = \mathrm{act}(W_{ih} x + b_{ih} + u \odot h + b_{hh}),
        \qquad u \leftarrow \mathrm{clip}(u, \pm\text{recurrent\_max})

    Each unit sees only its own past: the recurrent weight is a vector u (H,), not a
    matrix, so a step costs O(H) and |u| bounds how a unit's gradient grows or decays
    over time. ``recurrent_max`` clips u in the forward pass (its gradient is zero
    where clipped), as the authors' code does.

    Args:
        xw: (B, H). h: (B, H). weight_hh: u, (H,). bias_hh: (H,) or None.

    Returns:
        h', (B, H).
    """
    u = weight_hh if recurrent_max is None else weight_hh.clamp(-recurrent_max, recurrent_max)
    pre = xw + u * h  # (B, H)
    return activation(pre if bias_hh is None else pre + bias_hh)


def _block_layer_norm(a: Tensor, blocks: int, weight: Tensor, bias: Optional[Tensor], eps: float) -> Tensor:
    """Layer normalisation of each of the ``blocks`` gate blocks of a (B, blocks*H) tensor.

    Written out rather than ``F.layer_norm``, whose normalised shape would be read from
    the tensor: the ONNX export traces this step and needs the graph free of shapes.
    """
    v = a.unflatten(-1, (blocks, -1))  # (B, blocks, H)
    centred = v - v.mean(-1, keepdim=True)
    normed = (centred * torch.rsqrt(centred.square().mean(-1, keepdim=True) + eps)).flatten(-2)
    out = normed * weight
    return out if bias is None else out + bias


def layernorm_lstm_step(
    xw: Tensor,
    state: Tuple[Tensor, Tensor],
    weight_hh: Tensor,
    layernorm_hh_weight: Tensor,
    layernorm_c_weight: Tensor,
    layernorm_c_bias: Tensor,
    bias_hh: Optional[Tensor] = None,
    *,
    forget_bias: float = 0.0,
    eps: float = 1e-5,
    recurrent_mask: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Layer-normalised LSTM step (Ba, Kiros & Hinton 2016, eqs. 20-22), blocks i, f, g, o.

    .. math::
        a &= \mathrm{LN}(W_{ih} x;\ \gamma_{ih}) + \mathrm{LN}(W_{hh} h;\ \gamma_{hh}) + b
            = [a_i, a_f, a_g, a_o] \\
        c' &= \sigma(a_f + \text{forget\_bias}) \odot c + \sigma(a_i) \odot \tanh(a_g) \\
        h' &= \sigma(a_o) \odot \tanh(\mathrm{LN}(c';\ \gamma_c, \beta_c))

    :math:`\mathrm{LN}(v; \gamma, \beta) = \gamma \odot (v - \mu) / \sqrt{\sigma^2 + \epsilon}
    + \beta`, with mean and variance taken over each gate block of H units separately
    (as TensorFlow Addons' ``LayerNormLSTMCell``; haste normalises all 4H together). The
    one bias b is ``bias_hh``: a bias on ``W_ih x`` would vanish in the normalisation,
    so the layer has no ``bias_ih``. The input term does not depend on the state, so the
    layer computes it for all steps at once (:func:`layernorm_input`) and the step takes
    it as ``xw``.

    Args:
        xw: ``LN(W_ih x; gamma_ih)``, (B, 4H). state: ``(h, c)``, (B, H) each.
        weight_hh: (4H, H). layernorm_hh_weight: gains, (4H,).
        layernorm_c_weight, layernorm_c_bias: gain and bias of LN(c), (H,).
        bias_hh: b, (4H,) or None.

    Returns:
        ``(h', c')``.
    """
    h, c = state
    a = xw + _block_layer_norm(_recurrent(h, weight_hh, None, recurrent_mask), 4, layernorm_hh_weight,
                               bias_hh, eps)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)  # 4 x (B, H)
    c_new = torch.sigmoid(a_f + forget_bias) * c + torch.sigmoid(a_i) * torch.tanh(a_g)  # (B, H)
    c_normed = _block_layer_norm(c_new, 1, layernorm_c_weight, layernorm_c_bias, eps)
    return torch.sigmoid(a_o) * torch.tanh(c_normed), c_new


def layernorm_input(x: Tensor, weight_ih: Tensor, layernorm_ih_weight: Tensor, eps: float = 1e-5) -> Tensor:
    """The layer-normalised LSTM's input term ``LN(W_ih x; gamma_ih)``, (..., I) -> (..., 4H)."""
    return _block_layer_norm(F.linear(x, weight_ih), 4, layernorm_ih_weight, None, eps)


#: Every cell's spec class by :attr:`CellSpec.name`, filled as the classes are defined.
CELL_SPECS: Dict[str, type] = {}


@dataclass(frozen=True)
class CellSpec:
    """What a backend needs to run a cell: its gate blocks, options and step.

    ``weights`` passed to :meth:`step` is a mapping with ``weight_hh`` and, where the
    layer has them, the cell's other recurrent parameters (``bias_hh``, ``weight_hr``,
    peepholes, ...: the parameter names of the layer without the ``_l{k}`` suffix,
    every one but the input projection's ``weight_ih`` and ``bias_ih``), plus
    ``recurrent_mask`` (B, H) when the layer applies recurrent dropout.

    A new cell is one step function and one subclass: its gates, its options, and,
    where they differ from the LSTM family's, its parameter shapes
    (:meth:`parameter_shapes`), their initialisation (:meth:`init_parameter_`) and its
    gate values (:meth:`gate_values`).
    """

    name: ClassVar[str]
    gates: ClassVar[Tuple[str, ...]]
    state_names: ClassVar[Tuple[str, ...]] = ("h",)
    #: One line per gate (of :meth:`gate_values`): what it is and what it does.
    gate_notes: ClassVar[Mapping[str, str]] = {}
    #: The gate whose value near 1 keeps the state (forget-gate histograms), if any.
    forget_gate: ClassVar[Optional[str]] = None
    #: The parameters of the input stage (:meth:`project_input`); the rest go to :meth:`step`.
    input_parameters: ClassVar[Tuple[str, ...]] = ("weight_ih", "bias_ih")
    #: The value of every state element when the layer or cell is called without ``hx``.
    initial_state: ClassVar[float] = 0.0
    #: Inputs of up to this many features go to the native kernel raw, with the input
    #: parameters: the kernel forms ``W_ih x + b_ih`` itself, so the (T, B, G*H)
    #: projection and its gradient are never stored (0: never).
    kernel_input_max: ClassVar[int] = 0
    #: For a cell whose step is linear in its state, ``h' = a * h + b`` with a, b > 0
    #: read from ``xw`` alone: ``log_terms(xw) -> (log a, log b)``, (..., H) each, for all
    #: steps at once (what :mod:`gatedrnn.backends.scan` runs); None for every other cell.
    log_terms: ClassVar[Optional[Callable[[Tensor], Tuple[Tensor, Tensor]]]] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("name"), str):  # a cell of its own, not a wrapper
            CELL_SPECS[cls.name] = cls

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    @property
    def mode(self) -> str:
        """The cell as torch.nn's ``RNNBase.mode`` names it (``"LSTM"``, ``"GRU"``,
        ``"RNN_TANH"``, ``"RNN_RELU"``); the other cells by their name in capitals
        (``"JANET"``, ``"LAYERNORM_LSTM"``)."""
        return self.name.upper().replace("-", "_")

    def equations(self) -> List[str]:
        """The cell's equations in plain text, one per line, with its own options."""
        raise NotImplementedError

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        raise NotImplementedError

    def project_input(self, x: Tensor, weights: Mapping[str, Tensor]) -> Tensor:
        """The input stage, for all steps at once (it does not depend on the state):
        ``W_ih x + b_ih``, (..., I) -> (..., G H). ``weights`` holds the parameters named in
        :attr:`input_parameters` that the layer has."""
        return F.linear(x, weights["weight_ih"], weights.get("bias_ih"))

    def parameter_shapes(self, input_size: int, hidden_size: int, *, bias: bool = True,
                         proj_size: int = 0, peepholes: bool = False) -> Dict[str, Tuple[int, ...]]:
        """Shapes of one layer's parameters, in registration order (torch.nn's names)."""
        return parameter_shapes(self.num_gates, input_size, hidden_size, bias=bias,
                                proj_size=proj_size, peepholes=peepholes)

    def init_parameter_(self, name: str, parameter: Tensor, hidden_size: int) -> None:
        """Initialise one parameter (name without suffix) in place: torch.nn's
        U(-1/sqrt(H), 1/sqrt(H)) unless the cell's paper says otherwise (an empty cell,
        H = 0, has nothing to draw)."""
        bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
        with torch.no_grad():
            parameter.uniform_(-bound, bound)

    def kernel_options(self) -> List[float]:
        """The cell's constants, in the order its native kernel reads them."""
        return []

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "CellSpec":
        """The spec whose :meth:`kernel_options` are ``options`` (their inverse): how a
        kernel's autograd formula, which sees only the op's arguments, finds the cell."""
        return cls()

    def gate_values(self, xw: Tensor, state: State, weights: Mapping[str, Tensor],
                    new_state: State) -> Dict[str, Tensor]:
        """Post-activation gate values of one step, each (B, H), keyed by gate name
        (for :func:`gatedrnn.inspect.record`); ``new_state`` is what :meth:`step`
        returned from ``state``."""
        return {}


def _preactivation(xw: Tensor, h: Tensor, weights: Mapping[str, Tensor]) -> Tensor:
    """``xw + W_hh h + b_hh``, (B, G H)."""
    return xw + F.linear(h, weights["weight_hh"], weights.get("bias_hh"))


def _finite_or_none(value: float) -> Optional[float]:
    """A kernel's clip option back to the spec's: infinity means no clipping (None)."""
    return None if math.isinf(value) else float(value)


@dataclass(frozen=True)
class RNNSpec(CellSpec):
    """Elman RNN: one block ``h`` (the candidate), see :func:`rnn_step`. No gates."""

    name: ClassVar[str] = "rnn"
    gates: ClassVar[Tuple[str, ...]] = ("h",)
    nonlinearity: str = "tanh"

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (rnn_step(xw, state[0], **weights, activation=NONLINEARITIES[self.nonlinearity]),)

    @property
    def mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"

    def kernel_options(self) -> List[float]:
        return [1.0 if self.nonlinearity == "relu" else 0.0]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "RNNSpec":
        return cls("relu" if options[0] else "tanh")

    def equations(self) -> List[str]:
        return [f"h_t = {self.nonlinearity}(W_ih x_t + b_ih + W_hh h_{{t-1}} + b_hh)"]


@dataclass(frozen=True)
class LSTMSpec(CellSpec):
    """LSTM, blocks i, f, g, o; state ``(h, c)``, see :func:`lstm_step`."""

    name: ClassVar[str] = "lstm"
    gates: ClassVar[Tuple[str, ...]] = ("i", "f", "g", "o")
    state_names: ClassVar[Tuple[str, ...]] = ("h", "c")
    gate_notes: ClassVar[Mapping[str, str]] = {
        "i": "input gate, sigmoid: how much of the candidate g is written into the cell",
        "f": "forget gate, sigmoid: how much of the previous cell state c is kept",
        "g": "candidate, tanh: the new content proposed for the cell",
        "o": "output gate, sigmoid: how much of tanh(c) is shown as the output h",
    }
    forget_gate: ClassVar[Optional[str]] = "f"
    forget_bias: float = 0.0
    cell_clip: Optional[float] = None
    proj_clip: Optional[float] = None

    def equations(self) -> List[str]:
        return ["i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)",
                "f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf"
                + (f" + {self.forget_bias:g})" if self.forget_bias else ")"),
                "g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)",
                "o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)",
                "c_t = f_t * c_{t-1} + i_t * g_t",
                "h_t = o_t * tanh(c_t)"]

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return lstm_step(
            xw, state, **weights,
            forget_bias=self.forget_bias, cell_clip=self.cell_clip, proj_clip=self.proj_clip,
        )

    def kernel_options(self) -> List[float]:
        inf = float("inf")
        return [self.forget_bias, self.cell_clip or inf, self.proj_clip or inf]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "LSTMSpec":
        forget_bias, cell_clip, proj_clip = options
        return cls(forget_bias, _finite_or_none(cell_clip), _finite_or_none(proj_clip))

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        """i, f, g, o, with the peepholes and ``forget_bias``."""
        h, c = state
        a_i, a_f, a_g, a_o = _preactivation(xw, h, weights).chunk(4, dim=-1)  # 4 x (B, H)
        if weights.get("weight_ci") is not None:
            a_i = a_i + weights["weight_ci"] * c
            a_f = a_f + weights["weight_cf"] * c
            a_o = a_o + weights["weight_co"] * new_state[1]  # o peeps at the new cell state
        a_f = a_f + self.forget_bias
        return {"i": torch.sigmoid(a_i), "f": torch.sigmoid(a_f),
                "g": torch.tanh(a_g), "o": torch.sigmoid(a_o)}


@dataclass(frozen=True)
class GRUSpec(CellSpec):
    """GRU, blocks r, z, n, see :func:`gru_step`."""

    name: ClassVar[str] = "gru"
    gates: ClassVar[Tuple[str, ...]] = ("r", "z", "n")
    gate_notes: ClassVar[Mapping[str, str]] = {
        "r": "reset gate, sigmoid: how much of the previous state enters the candidate",
        "z": "update gate, sigmoid: the share of the previous state h that is kept",
        "n": "candidate, tanh: the new state proposed from the input and the reset state",
    }
    forget_gate: ClassVar[Optional[str]] = "z"
    reset_after: bool = True

    def equations(self) -> List[str]:
        candidate = ("n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))" if self.reset_after
                     else "n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)")
        return ["r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)",
                "z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)",
                candidate,
                "h_t = (1 - z_t) * n_t + z_t * h_{t-1}"]

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (gru_step(xw, state[0], **weights, reset_after=self.reset_after),)

    def kernel_options(self) -> List[float]:
        return [1.0 if self.reset_after else 0.0]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "GRUSpec":
        return cls(reset_after=bool(options[0]))

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        """r, z and the candidate n."""
        h = state[0]
        hidden = h.shape[-1]
        x_r, x_z, x_n = xw.chunk(3, dim=-1)  # 3 x (B, H)
        bias_hh = weights.get("bias_hh")
        if self.reset_after:
            h_r, h_z, h_n = F.linear(h, weights["weight_hh"], bias_hh).chunk(3, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            n_in = r * h_n
        else:
            h_r, h_z = F.linear(h, weights["weight_hh"][: 2 * hidden],
                                None if bias_hh is None else bias_hh[: 2 * hidden]).chunk(2, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            n_in = F.linear(r * h, weights["weight_hh"][2 * hidden:],
                            None if bias_hh is None else bias_hh[2 * hidden:])
        return {"r": r, "z": torch.sigmoid(x_z + h_z), "n": torch.tanh(x_n + n_in)}


@dataclass(frozen=True)
class JANETSpec(CellSpec):
    """JANET, blocks f, g; state ``h = c``, see :func:`janet_step`."""

    name: ClassVar[str] = "janet"
    gates: ClassVar[Tuple[str, ...]] = ("f", "g")
    gate_notes: ClassVar[Mapping[str, str]] = {
        "f": "forget gate = sigmoid(s): how much of the previous state is kept; the input "
             "is written with the coupled weight 1 - sigmoid(s - beta)",
        "g": "candidate = tanh(c~): the new content written into the state",
    }
    forget_gate: ClassVar[Optional[str]] = "f"
    beta: float = 1.0

    def equations(self) -> List[str]:
        return ["s_t = W_if x_t + b_if + W_hf h_{t-1} + b_hf",
                "c~_t = W_ig x_t + b_ig + W_hg h_{t-1} + b_hg",
                "f_t = sigmoid(s_t),  g_t = tanh(c~_t)",
                f"h_t = c_t = f_t * c_{{t-1}} + (1 - sigmoid(s_t - {self.beta:g})) * g_t"
                f"   (beta = {self.beta:g})"]

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (janet_step(xw, state[0], **weights, beta=self.beta),)

    def kernel_options(self) -> List[float]:
        return [self.beta]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "JANETSpec":
        return cls(beta=options[0])

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        """f = sigmoid(s) and g = tanh(c~)."""
        s, c_tilde = _preactivation(xw, state[0], weights).chunk(2, dim=-1)  # 2 x (B, H)
        return {"f": torch.sigmoid(s), "g": torch.tanh(c_tilde)}


@dataclass(frozen=True)
class MGUSpec(CellSpec):
    """Minimal gated unit, blocks f, h (the candidate), see :func:`mgu_step`."""

    name: ClassVar[str] = "mgu"
    gates: ClassVar[Tuple[str, ...]] = ("f", "h")
    gate_notes: ClassVar[Mapping[str, str]] = {
        "f": "forget gate, sigmoid: the share of the state replaced by the candidate "
             "(1 - f is kept), and how much of h the candidate sees",
        "h": "candidate, tanh: the new state proposed from the input and f * h",
    }

    def equations(self) -> List[str]:
        return ["f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)",
                "h~_t = tanh(W_ih x_t + b_ih + W_hh (f_t * h_{t-1}) + b_hh)",
                "h_t = (1 - f_t) * h_{t-1} + f_t * h~_t"]

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (mgu_step(xw, state[0], **weights),)

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        """f and the candidate h~."""
        f, candidate = _mgu_gates(xw, state[0], weights["weight_hh"], weights.get("bias_hh"))
        return {"f": f, "h": candidate}


@dataclass(frozen=True)
class IndRNNSpec(CellSpec):
    """IndRNN, one block ``h``; ``weight_hh`` is the vector u (H,), see :func:`indrnn_step`.

    Initialisation as the authors' code: u ~ U(0, min(1, recurrent_max)), biases 0,
    W_ih as torch.nn.
    """

    name: ClassVar[str] = "indrnn"
    gates: ClassVar[Tuple[str, ...]] = ("h",)
    nonlinearity: str = "relu"
    recurrent_max: Optional[float] = None

    @classmethod
    def from_options(cls, nonlinearity: str, max_steps: Optional[int],
                     recurrent_max: Optional[float]) -> "IndRNNSpec":
        """The spec of the layer and cell arguments, checked: ``max_steps`` T gives
        ``recurrent_max = 2 ** (1 / T)``."""
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        if max_steps is not None and recurrent_max is not None:
            raise ValueError(f"give max_steps or recurrent_max, not both "
                             f"(got max_steps={max_steps}, recurrent_max={recurrent_max})")
        if max_steps is not None:
            recurrent_max = 2.0 ** (1.0 / check_int("max_steps", max_steps, 1))
        return cls(nonlinearity, check_optional_clip("recurrent_max", recurrent_max))

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return (indrnn_step(xw, state[0], **weights, activation=NONLINEARITIES[self.nonlinearity],
                            recurrent_max=self.recurrent_max),)

    def equations(self) -> List[str]:
        clip = (f",  u clipped to [-{self.recurrent_max:.4g}, {self.recurrent_max:.4g}]"
                if self.recurrent_max is not None else "")
        return [f"h_t = {self.nonlinearity}(W_ih x_t + b_ih + u * h_{{t-1}} + b_hh){clip}"]

    def parameter_shapes(self, input_size, hidden_size, *, bias=True, proj_size=0, peepholes=False):
        shapes = super().parameter_shapes(input_size, hidden_size, bias=bias)
        shapes["weight_hh"] = (hidden_size,)
        return shapes

    def init_parameter_(self, name, parameter, hidden_size) -> None:
        with torch.no_grad():
            if name == "weight_hh":
                parameter.uniform_(0.0, min(1.0, self.recurrent_max or 1.0))
            elif name.startswith("bias"):
                parameter.zero_()
            else:
                super().init_parameter_(name, parameter, hidden_size)

    def kernel_options(self) -> List[float]:
        return [1.0 if self.nonlinearity == "relu" else 0.0, self.recurrent_max or float("inf")]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "IndRNNSpec":
        return cls("relu" if options[0] else "tanh", _finite_or_none(options[1]))


#: The layer-normalised LSTM's parameters besides ``weight_ih``, ``weight_hh``, ``bias_hh``.
LAYERNORM_NAMES = ("layernorm_ih_weight", "layernorm_hh_weight", "layernorm_c_weight", "layernorm_c_bias")


@dataclass(frozen=True)
class LayerNormLSTMSpec(CellSpec):
    """Layer-normalised LSTM, blocks i, f, g, o; state ``(h, c)``, see
    :func:`layernorm_lstm_step`. Gains start at 1, ``layernorm_c_bias`` at 0."""

    name: ClassVar[str] = "layernorm-lstm"
    gates: ClassVar[Tuple[str, ...]] = ("i", "f", "g", "o")
    state_names: ClassVar[Tuple[str, ...]] = ("h", "c")
    gate_notes: ClassVar[Mapping[str, str]] = LSTMSpec.gate_notes
    forget_gate: ClassVar[Optional[str]] = "f"
    input_parameters: ClassVar[Tuple[str, ...]] = ("weight_ih", "layernorm_ih_weight")
    forget_bias: float = 0.0
    eps: float = 1e-5

    def project_input(self, x: Tensor, weights: Mapping[str, Tensor]) -> Tensor:
        return layernorm_input(x, weights["weight_ih"], weights["layernorm_ih_weight"], self.eps)

    def kernel_options(self) -> List[float]:
        return [self.forget_bias, self.eps]

    @classmethod
    def from_kernel_options(cls, options: Sequence[float]) -> "LayerNormLSTMSpec":
        return cls(forget_bias=options[0], eps=options[1])

    def equations(self) -> List[str]:
        return ["a_t = LN(W_ih x_t; g_ih) + LN(W_hh h_{t-1}; g_hh) + b   (LN per gate block)",
                "i_t, f_t, g_t, o_t = sigmoid(a_i), sigmoid(a_f"
                + (f" + {self.forget_bias:g})" if self.forget_bias else ")") + ", tanh(a_g), sigmoid(a_o)",
                "c_t = f_t * c_{t-1} + i_t * g_t",
                "h_t = o_t * tanh(LN(c_t; g_c, b_c))"]

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        return layernorm_lstm_step(xw, state, **weights, forget_bias=self.forget_bias, eps=self.eps)

    def parameter_shapes(self, input_size, hidden_size, *, bias=True, proj_size=0, peepholes=False):
        gh = 4 * hidden_size
        shapes = {"weight_ih": (gh, input_size), "weight_hh": (gh, hidden_size)}
        if bias:
            shapes["bias_hh"] = (gh,)
        shapes.update(layernorm_ih_weight=(gh,), layernorm_hh_weight=(gh,),
                      layernorm_c_weight=(hidden_size,), layernorm_c_bias=(hidden_size,))
        return shapes

    def init_parameter_(self, name, parameter, hidden_size) -> None:
        with torch.no_grad():
            if name.startswith("layernorm") and name.endswith("weight"):
                parameter.fill_(1.0)
            elif name == "layernorm_c_bias":
                parameter.zero_()
            else:
                super().init_parameter_(name, parameter, hidden_size)

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        """i, f, g, o after the normalisation (``forget_bias`` included)."""
        h = state[0]
        a = xw + _block_layer_norm(F.linear(h, weights["weight_hh"]), 4, weights["layernorm_hh_weight"],
                                   weights.get("bias_hh"), self.eps)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
        return {"i": torch.sigmoid(a_i), "f": torch.sigmoid(a_f + self.forget_bias),
                "g": torch.tanh(a_g), "o": torch.sigmoid(a_o)}


@dataclass(frozen=True)
class ZoneoutSpec(CellSpec):
    r"""Any cell with zoneout (Krueger et al. 2016) on every state element.

    .. math:: s_t = m_t \odot s_{t-1} + (1 - m_t) \odot \mathrm{cell}(x_t, s_{t-1})

    with fresh Bernoulli(p) keep masks m_t at every step. The masks travel with the
    input projection: ``xw`` is (B, G H + sum of the state widths), the cell's own
    projection first, then one mask per state element (h, then c). The layer builds
    this spec only in training mode; in evaluation the cell runs as it is.
    """

    cell: CellSpec

    @property
    def name(self) -> str:
        return f"{self.cell.name}+zoneout"

    @property
    def gates(self) -> Tuple[str, ...]:
        return self.cell.gates

    @property
    def state_names(self) -> Tuple[str, ...]:
        return self.cell.state_names

    def step(self, xw: Tensor, state: State, weights: Mapping[str, Tensor]) -> State:
        widths = [xw.shape[-1] - sum(s.shape[-1] for s in state)] + [s.shape[-1] for s in state]
        cell_xw, *keep = xw.split(widths, dim=-1)
        new_state = self.cell.step(cell_xw, state, weights)
        return tuple(torch.lerp(new, old, m) for new, old, m in zip(new_state, state, keep))

    def gate_values(self, xw, state, weights, new_state) -> Dict[str, Tensor]:
        cell_width = xw.shape[-1] - sum(s.shape[-1] for s in state)
        return self.cell.gate_values(xw[..., :cell_width], state, weights, new_state)
