r"""TensorFlow 1.x RNN cells with TensorFlow's variables and call convention.

For porting TF1 code (``tf.nn.rnn_cell.*`` and ``tf.nn.dynamic_rnn``) without
rewriting it: the parameters have TensorFlow's names, shapes and default
initialisers, so a checkpoint's arrays load as they are, and a cell is called as in
TensorFlow, ``output, new_state = cell(inputs, state)``.

TensorFlow layout, for ``G`` gate blocks, ``H = num_units``, input size ``I`` and
``H_in`` the size of the recurrent input (``num_proj`` if set, else ``H``)::

    kernel             (I + H_in, G*H)   applied to concat([inputs, h]): rows x then h
    bias               (G*H,)
    LSTM blocks        i, j, f, o        (j is the candidate, PyTorch's g)
    GRU                gates_kernel (I+H, 2H) blocks r, u; gates_bias (2H,);
                       candidate_kernel (I+H, H); candidate_bias (H,)

The equations are not written again here: each cell converts its variables to
PyTorch's layout (``weight_ih = kernel[:I].T``, ``weight_hh = kernel[I:].T``, LSTM
blocks reordered by :func:`ijfo_to_ifgo`) and calls the step function of
:mod:`gatedrnn.cells`, the library's single specification. The conversion is part of
the autograd graph, so gradients reach the TensorFlow variables. :meth:`to_layer`
does the same conversion once and returns the equivalent :mod:`gatedrnn` layer.

Default initialisation, as TensorFlow's (``tf.get_variable`` without an initializer
is Glorot-uniform):

=====================  ===========================================================
kernels                Glorot uniform, U(-a, a), a = sqrt(6 / (fan_in + fan_out)),
                       fans from TF's [in, out] shape
``w_*_diag`` (H,)      Glorot uniform with TF's fans of a 1-D shape
                       (fan_in = fan_out = H): a = sqrt(3 / H)
``bias``               zeros (RNN, LSTM)
``gates_bias``         ones (TF's GRUCell default: gates start open-ish)
``candidate_bias``     zeros
=====================  ===========================================================

Example::

    >>> import torch
    >>> from gatedrnn.compat import tf
    >>> cell = tf.LSTMCell(8, input_size=5, use_peepholes=True, num_proj=4)
    >>> state = cell.zero_state(3)
    >>> output, state = cell(torch.randn(3, 5), state)
    >>> output.shape, state.c.shape, state.h.shape
    (torch.Size([3, 4]), torch.Size([3, 8]), torch.Size([3, 4]))
    >>> outputs, final = tf.dynamic_rnn(cell, torch.randn(3, 7, 5),
    ...                                 sequence_length=torch.tensor([7, 2, 0]))
    >>> outputs.shape
    torch.Size([3, 7, 4])
"""

from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from ..cells import gru_step, lstm_step, rnn_step
from ..layers import GRU, LSTM, RNN
from ..validation import (
    check_float,
    check_input,
    check_int,
    check_optional_clip,
    check_state,
)

__all__ = [
    "LSTMStateTuple",
    "BasicRNNCell",
    "BasicLSTMCell",
    "LSTMCell",
    "GRUCell",
    "dynamic_rnn",
    "ijfo_to_ifgo",
    "TF_LSTM_GATES",
]

Activation = Callable[[Tensor], Tensor]

#: TensorFlow's LSTM gate blocks, in the column order of ``kernel`` and ``bias``.
TF_LSTM_GATES = ("i", "j", "f", "o")

# Position in TF's order (i, j, f, o) of each block of PyTorch's order (i, f, g, o).
_IFGO_FROM_IJFO = (0, 2, 1, 3)


class LSTMStateTuple(NamedTuple):
    """LSTM state as TensorFlow's ``LSTMStateTuple``: cell state ``c`` first, then the
    output ``h`` (note: gatedrnn's own layers use ``(h, c)``).

    ``c`` is (B, num_units); ``h`` is (B, num_proj or num_units).
    """

    c: Tensor
    h: Tensor


TFState = Union[Tensor, LSTMStateTuple]


def ijfo_to_ifgo(t: Tensor, dim: int = 0) -> Tensor:
    """Reorder LSTM gate blocks from TensorFlow's order (i, j, f, o) to PyTorch's
    (i, f, g, o), where TensorFlow's candidate ``j`` is PyTorch's ``g``.

    ``t`` is cut into 4 equal blocks along ``dim``: for TF's ``kernel.T`` (4H, ·) or
    ``bias`` (4H,) use ``dim=0``; for a (B, 4H) pre-activation use ``dim=-1``.

    The permutation swaps the two middle blocks, so it is its own inverse: the same
    call converts PyTorch's order back to TensorFlow's.

    Example::

        >>> ijfo_to_ifgo(torch.tensor([0, 1, 2, 3]))   # blocks i=0, j=1, f=2, o=3
        tensor([0, 2, 1, 3])
    """
    if t.size(dim) % 4 != 0:
        raise ValueError(
            f"t.size({dim}) must be a multiple of 4 (four gate blocks), got {t.size(dim)}"
        )
    blocks = t.chunk(4, dim=dim)  # 4 x (H, ·) along dim
    return torch.cat([blocks[k] for k in _IFGO_FROM_IJFO], dim=dim)


# -- activations ------------------------------------------------------------------

def _activation_name(activation: Activation) -> Optional[str]:
    """'tanh' / 'relu' when ``activation`` is one a gatedrnn layer can express, else None."""
    if activation in (torch.tanh, F.tanh, Tensor.tanh) or isinstance(activation, nn.Tanh):
        return "tanh"
    if activation in (torch.relu, F.relu, Tensor.relu) or isinstance(activation, nn.ReLU):
        return "relu"
    return None


# What a pickle stores instead of a known activation function: its name (torch.load's
# weights_only unpickler refuses functions such as torch.tanh).
_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def _check_activation(activation) -> Activation:
    if activation is None:
        return torch.tanh  # TensorFlow's default for every cell here
    if not callable(activation):
        raise TypeError(
            f"activation must be None or a callable Tensor -> Tensor, got "
            f"{type(activation).__name__} ({activation!r})"
        )
    return activation


# -- initialisation -----------------------------------------------------------------

def _glorot_uniform_(t: Tensor) -> None:
    """TensorFlow's ``glorot_uniform_initializer`` with TF's fans: shape [in, out] gives
    fan_in = in, fan_out = out; a 1-D shape [n] gives fan_in = fan_out = n."""
    fan_in, fan_out = (t.size(0), t.size(1)) if t.dim() == 2 else (t.size(0), t.size(0))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    t.uniform_(-limit, limit)


# -- the common base ------------------------------------------------------------------

class _TFCell(nn.Module):
    """What every TF cell shares: sizes, activation, the TF -> PyTorch weight
    conversion hook and the call. Subclasses define the variables, ``_torch_weights``,
    ``_step``, the state format and ``to_layer``."""

    def __init__(self, num_units: int, input_size: int, activation) -> None:
        super().__init__()
        self.num_units = check_int("num_units", num_units, 1)
        self.input_size = check_int("input_size", input_size, 1)
        self.activation = _check_activation(activation)

    def __getstate__(self):
        """Pickled with a tanh or relu activation function as its name, so that
        ``torch.load(..., weights_only=True)`` needs only the cell's class allowlisted
        (an activation module, e.g. ``nn.Tanh()``, is a submodule and pickles as one)."""
        state = self.__dict__.copy()
        activation = state.get("activation")
        if not isinstance(activation, nn.Module) and _activation_name(activation) is not None:
            state["activation"] = _activation_name(activation)
        return state

    def __setstate__(self, state) -> None:
        if isinstance(state.get("activation"), str):
            state = {**state, "activation": _ACTIVATIONS[state["activation"]]}
        super().__setstate__(state)

    # -- TF's cell interface ----------------------------------------------------

    @property
    def output_size(self) -> int:
        return self.num_units

    @property
    def state_size(self):
        return self.num_units

    def zero_state(self, batch_size: int, dtype: Optional[torch.dtype] = None) -> TFState:
        """Zero-filled state for ``batch_size`` sequences, with the parameters' device and
        (unless ``dtype`` is given, as TF's second argument) dtype."""
        check_int("batch_size", batch_size, 0)
        like = self._like
        dtype = like.dtype if dtype is None else dtype
        return self._zeros(batch_size, dtype, like.device)

    def forward(self, inputs: Tensor, state: Optional[TFState] = None) -> Tuple[Tensor, TFState]:
        """``output, new_state = cell(inputs, state)``: one step, inputs (B, input_size).
        ``state`` None means :meth:`zero_state`."""
        check_input("inputs", inputs, self.input_size, (2,), self._like)
        batch = inputs.size(0)
        state = self.zero_state(batch) if state is None else self._check_state("state", state, batch)
        w = self._torch_weights()
        xw = F.linear(inputs, w["weight_ih"], w["bias_ih"])  # (B, G*H)
        return self._step(xw, state, w)

    # -- hooks for subclasses ------------------------------------------------------

    @property
    def _like(self) -> Tensor:
        """A parameter whose dtype and device inputs and states must have."""
        return next(self.parameters())

    def _zeros(self, batch: int, dtype, device) -> TFState:
        return torch.zeros(batch, self.num_units, dtype=dtype, device=device)

    def _check_state(self, name: str, state, batch: int) -> TFState:
        return check_state(name, state, (batch, self.num_units), self._like)

    def _torch_weights(self) -> Dict[str, Tensor]:
        """The variables in PyTorch's layout (``weight_ih`` (G*H, I), ``bias_ih``,
        ``weight_hh`` (G*H, H_in), extras), differentiable w.r.t. the TF variables."""
        raise NotImplementedError

    def _step(self, xw: Tensor, state: TFState, w: Dict[str, Tensor]) -> Tuple[Tensor, TFState]:
        """One step from the input projection ``xw`` (B, G*H)."""
        raise NotImplementedError

    def _split_kernel(self, kernel: Tensor) -> Tuple[Tensor, Tensor]:
        """TF's kernel (I + H_in, N) -> (W_ih (N, I), W_hh (N, H_in)), PyTorch layout:
        TF multiplies ``concat([x, h]) @ kernel``, so the first I rows act on x."""
        return kernel[: self.input_size].t(), kernel[self.input_size :].t()

    def _load_layer(self, layer: nn.Module, w: Dict[str, Tensor]) -> nn.Module:
        """Copy the converted weights into ``layer`` (layer 0); ``bias_hh`` = 0 because TF
        has one bias, all of it in ``bias_ih``."""
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "weight_hr",
                         "weight_ci", "weight_cf", "weight_co"):
                if name in w and w[name] is not None:
                    getattr(layer, name + "_l0").copy_(w[name])
            layer.bias_hh_l0.zero_()
        return layer

    def _factory(self) -> Dict[str, object]:
        return {"device": self._like.device, "dtype": self._like.dtype}

    def extra_repr(self) -> str:
        s = f"num_units={self.num_units}, input_size={self.input_size}"
        if _activation_name(self.activation) != "tanh":
            s += f", activation={getattr(self.activation, '__name__', self.activation)!r}"
        return s


# -- BasicRNNCell -----------------------------------------------------------------

class BasicRNNCell(_TFCell):
    r"""TensorFlow's ``BasicRNNCell``: the Elman RNN.

    .. math:: h' = \mathrm{act}([x, h]\,K + b), \qquad \text{output} = h'

    Variables: ``kernel`` (I + H, H), ``bias`` (H,). State and output (B, H).

    Args:
        num_units: H. input_size: I (TF infers it at the first call; here it is given).
        activation: callable, default ``torch.tanh``.
        device, dtype: of the parameters.

    Example::

        >>> cell = BasicRNNCell(4, input_size=3)
        >>> output, state = cell(torch.randn(2, 3), cell.zero_state(2))
        >>> output.shape, (output is state)
        (torch.Size([2, 4]), True)
    """

    def __init__(self, num_units: int, input_size: int, activation: Optional[Activation] = None,
                 *, device=None, dtype=None) -> None:
        super().__init__(num_units, input_size, activation)
        factory = {"device": device, "dtype": dtype}
        self.kernel = nn.Parameter(torch.empty(input_size + num_units, num_units, **factory))
        self.bias = nn.Parameter(torch.empty(num_units, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF defaults: Glorot-uniform kernel, zero bias."""
        with torch.no_grad():
            _glorot_uniform_(self.kernel)
            self.bias.zero_()

    def _torch_weights(self) -> Dict[str, Tensor]:
        weight_ih, weight_hh = self._split_kernel(self.kernel)  # (H, I), (H, H)
        return {"weight_ih": weight_ih, "weight_hh": weight_hh, "bias_ih": self.bias}

    def _step(self, xw, state, w):
        h = rnn_step(xw, state, w["weight_hh"], activation=self.activation)  # (B, H)
        return h, h

    def to_layer(self, batch_first: bool = True) -> RNN:
        """The equivalent :class:`gatedrnn.RNN` (one layer), weights converted.

        Raises ValueError unless the activation is tanh or relu."""
        nonlinearity = _activation_name(self.activation)
        if nonlinearity is None:
            raise ValueError(
                f"activation {self.activation!r} cannot be expressed by gatedrnn.RNN: "
                f"to_layer supports tanh and relu"
            )
        layer = RNN(self.input_size, self.num_units, nonlinearity=nonlinearity,
                    batch_first=batch_first, **self._factory())
        return self._load_layer(layer, self._torch_weights())


# -- LSTMs --------------------------------------------------------------------------

class _LSTMBase(_TFCell):
    """Shared by :class:`BasicLSTMCell` and :class:`LSTMCell` (in TensorFlow neither
    derives from the other, so neither does here)."""

    def __init__(self, num_units: int, input_size: int, *, forget_bias, state_is_tuple,
                 activation, use_peepholes=False, cell_clip=None, num_proj=None,
                 proj_clip=None, device=None, dtype=None) -> None:
        super().__init__(num_units, input_size, activation)
        self.forget_bias = check_float("forget_bias", forget_bias)
        self.state_is_tuple = bool(state_is_tuple)
        self.use_peepholes = bool(use_peepholes)
        self.cell_clip = check_optional_clip("cell_clip", cell_clip)
        self.num_proj = None if num_proj is None else check_int("num_proj", num_proj, 1)
        self.proj_clip = check_optional_clip("proj_clip", proj_clip)
        if self.proj_clip is not None and self.num_proj is None:
            # TensorFlow silently ignores proj_clip without a projection; a porting
            # mistake is better caught than ignored.
            raise ValueError(f"proj_clip needs num_proj, got proj_clip={proj_clip}, num_proj=None")

        factory = {"device": device, "dtype": dtype}
        h_in = self.output_size
        self.kernel = nn.Parameter(torch.empty(input_size + h_in, 4 * num_units, **factory))
        self.bias = nn.Parameter(torch.empty(4 * num_units, **factory))
        if self.use_peepholes:
            self.w_f_diag = nn.Parameter(torch.empty(num_units, **factory))
            self.w_i_diag = nn.Parameter(torch.empty(num_units, **factory))
            self.w_o_diag = nn.Parameter(torch.empty(num_units, **factory))
        if self.num_proj is not None:
            self.projection_kernel = nn.Parameter(torch.empty(num_units, self.num_proj, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF defaults: Glorot-uniform kernels and peepholes, zero bias."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name == "bias":
                    p.zero_()
                else:
                    _glorot_uniform_(p)

    @property
    def output_size(self) -> int:
        return self.num_units if self.num_proj is None else self.num_proj

    @property
    def state_size(self):
        """``LSTMStateTuple(num_units, output_size)``, or their sum when not a tuple."""
        if self.state_is_tuple:
            return LSTMStateTuple(self.num_units, self.output_size)
        return self.num_units + self.output_size

    def _zeros(self, batch, dtype, device):
        c = torch.zeros(batch, self.num_units, dtype=dtype, device=device)
        h = torch.zeros(batch, self.output_size, dtype=dtype, device=device)
        return LSTMStateTuple(c, h) if self.state_is_tuple else torch.cat([c, h], dim=-1)

    def _check_state(self, name, state, batch):
        if not self.state_is_tuple:
            return check_state(name, state, (batch, self.num_units + self.output_size), self._like)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            got = type(state).__name__ + (f" of length {len(state)}"
                                          if isinstance(state, (tuple, list)) else "")
            raise TypeError(
                f"{name} must be an LSTMStateTuple (c, h) of two tensors "
                f"(state_is_tuple=True), got {got}"
            )
        c = check_state(f"{name}.c", state[0], (batch, self.num_units), self._like)
        h = check_state(f"{name}.h", state[1], (batch, self.output_size), self._like)
        return LSTMStateTuple(c, h)

    def _torch_weights(self):
        weight_ih, weight_hh = self._split_kernel(self.kernel)  # (4H, I), (4H, H_in), i,j,f,o
        w = {
            "weight_ih": ijfo_to_ifgo(weight_ih),  # (4H, I), i,f,g,o
            "weight_hh": ijfo_to_ifgo(weight_hh),  # (4H, H_in)
            "bias_ih": ijfo_to_ifgo(self.bias),  # (4H,)
            "weight_hr": None, "weight_ci": None, "weight_cf": None, "weight_co": None,
        }
        if self.use_peepholes:
            w.update(weight_ci=self.w_i_diag, weight_cf=self.w_f_diag, weight_co=self.w_o_diag)
        if self.num_proj is not None:
            # TF: m @ projection_kernel; PyTorch: F.linear(m, weight_hr) = m @ weight_hr.T
            w["weight_hr"] = self.projection_kernel.t()  # (P, H)
        return w

    def _step(self, xw, state, w):
        if self.state_is_tuple:
            c, h = state
        else:  # TF's concatenated layout [c, h] along the features
            c, h = state.split([self.num_units, self.output_size], dim=-1)
        h_new, c_new = lstm_step(
            xw, (h, c), w["weight_hh"], None, w["weight_hr"],
            w["weight_ci"], w["weight_cf"], w["weight_co"],
            forget_bias=self.forget_bias, cell_clip=self.cell_clip,
            proj_clip=self.proj_clip, activation=self.activation,
        )  # (B, H_out), (B, H)
        new_state = (LSTMStateTuple(c_new, h_new) if self.state_is_tuple
                     else torch.cat([c_new, h_new], dim=-1))  # (B, H + H_out)
        return h_new, new_state

    def to_layer(self, batch_first: bool = True) -> LSTM:
        """The equivalent :class:`gatedrnn.LSTM` (one layer; ``forget_bias``,
        ``peepholes``, ``cell_clip``, ``proj_size``, ``proj_clip`` carried over), weights
        converted. Its state is ``(h_n, c_n)``, each (1, B, ·).

        Raises ValueError when the activation is not tanh, or when
        ``num_proj >= num_units`` (gatedrnn.LSTM, like torch.nn.LSTM, needs a
        projection smaller than the cell)."""
        if _activation_name(self.activation) != "tanh":
            raise ValueError(
                f"activation {self.activation!r} cannot be expressed by gatedrnn.LSTM: "
                f"to_layer supports tanh only"
            )
        if self.num_proj is not None and self.num_proj >= self.num_units:
            raise ValueError(
                f"to_layer needs num_proj < num_units (gatedrnn.LSTM proj_size must be "
                f"smaller than hidden_size), got num_proj={self.num_proj}, "
                f"num_units={self.num_units}"
            )
        layer = LSTM(self.input_size, self.num_units, batch_first=batch_first,
                     proj_size=self.num_proj or 0, forget_bias=self.forget_bias,
                     peepholes=self.use_peepholes, cell_clip=self.cell_clip,
                     proj_clip=self.proj_clip, **self._factory())
        return self._load_layer(layer, self._torch_weights())

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", forget_bias={self.forget_bias}"
        if not self.state_is_tuple:
            s += ", state_is_tuple=False"
        for name in ("use_peepholes", "cell_clip", "num_proj", "proj_clip"):
            if getattr(self, name) not in (None, False):
                s += f", {name}={getattr(self, name)!r}"
        return s


class BasicLSTMCell(_LSTMBase):
    r"""TensorFlow's ``BasicLSTMCell``.

    .. math::
        [i, j, f, o] &= [x, h]\,K + b \\
        c' &= \sigma(f + \text{forget\_bias}) \odot c + \sigma(i) \odot \mathrm{act}(j) \\
        h' &= \sigma(o) \odot \mathrm{act}(c'), \qquad \text{output} = h'

    Variables: ``kernel`` (I + H, 4H), ``bias`` (4H,), column blocks i, j, f, o.
    ``forget_bias`` is a constant added at run time, not part of ``bias``.
    State: ``LSTMStateTuple(c, h)``, each (B, H), or with ``state_is_tuple=False``
    the (B, 2H) concatenation ``[c, h]``.

    Args:
        num_units: H. input_size: I. forget_bias: default 1.0.
        state_is_tuple: default True. activation: default ``torch.tanh``.
        device, dtype: of the parameters.

    Example::

        >>> cell = BasicLSTMCell(4, input_size=3)
        >>> h, (c, h_again) = cell(torch.randn(2, 3), cell.zero_state(2))
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    def __init__(self, num_units: int, input_size: int, forget_bias: float = 1.0,
                 state_is_tuple: bool = True, activation: Optional[Activation] = None,
                 *, device=None, dtype=None) -> None:
        super().__init__(num_units, input_size, forget_bias=forget_bias,
                         state_is_tuple=state_is_tuple, activation=activation,
                         device=device, dtype=dtype)


class LSTMCell(_LSTMBase):
    r"""TensorFlow's ``LSTMCell``: the LSTM with optional peepholes, cell clipping and
    a projection.

    .. math::
        [i, j, f, o] &= [x, m]\,K + b \\
        c' &= \mathrm{clip}\big(\sigma(f + \text{forget\_bias} + w_f \odot c) \odot c
              + \sigma(i + w_i \odot c) \odot \mathrm{act}(j),\ \pm\text{cell\_clip}\big) \\
        m' &= \sigma(o + w_o \odot c') \odot \mathrm{act}(c') \\
        m' &\leftarrow \mathrm{clip}(m'\,P,\ \pm\text{proj\_clip})
              \quad\text{(with num\_proj)}, \qquad \text{output} = m'

    The peephole terms (``w_f_diag``, ``w_i_diag`` see c, ``w_o_diag`` sees the new,
    clipped c') are present with ``use_peepholes`` only.

    Variables: ``kernel`` (I + H_in, 4H) with H_in = num_proj or H, blocks i, j, f, o;
    ``bias`` (4H,); ``w_f_diag``, ``w_i_diag``, ``w_o_diag`` (H,) with
    ``use_peepholes``; ``projection_kernel`` (H, num_proj) with ``num_proj``.
    State: ``LSTMStateTuple(c (B, H), h (B, H_in))`` or (``state_is_tuple=False``,
    keyword-only here) the (B, H + H_in) concatenation ``[c, h]``.

    Args:
        num_units: H. input_size: I. use_peepholes: default False.
        cell_clip: clip c to [-cell_clip, cell_clip] (None: no clipping).
        num_proj: projection size (None: no projection).
        proj_clip: clip the projected output (needs ``num_proj``; TF would ignore it).
        forget_bias: default 1.0. activation: default ``torch.tanh``.
        state_is_tuple, device, dtype: keyword-only.

    Example::

        >>> cell = LSTMCell(8, input_size=5, use_peepholes=True, cell_clip=3.0, num_proj=4)
        >>> m, state = cell(torch.randn(2, 5), cell.zero_state(2))
        >>> m.shape, state.c.shape
        (torch.Size([2, 4]), torch.Size([2, 8]))
    """

    def __init__(self, num_units: int, input_size: int, use_peepholes: bool = False,
                 cell_clip: Optional[float] = None, num_proj: Optional[int] = None,
                 proj_clip: Optional[float] = None, forget_bias: float = 1.0,
                 activation: Optional[Activation] = None, *, state_is_tuple: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(num_units, input_size, forget_bias=forget_bias,
                         state_is_tuple=state_is_tuple, activation=activation,
                         use_peepholes=use_peepholes, cell_clip=cell_clip,
                         num_proj=num_proj, proj_clip=proj_clip, device=device, dtype=dtype)


# -- GRUCell ------------------------------------------------------------------------

class GRUCell(_TFCell):
    r"""TensorFlow 1.x ``GRUCell`` (reset gate applied before the candidate matmul).

    .. math::
        [r, u] &= \sigma([x, h]\,K_g + b_g) \\
        \tilde h &= \tanh([x, r \odot h]\,K_c + b_c) \\
        h' &= u \odot h + (1 - u) \odot \tilde h, \qquad \text{output} = h'

    This is :func:`gatedrnn.cells.gru_step` with ``reset_after=False`` and
    z = u, n = h-tilde.

    Variables: ``gates_kernel`` (I + H, 2H), blocks r, u; ``gates_bias`` (2H,),
    initialised to 1.0 as in TensorFlow; ``candidate_kernel`` (I + H, H);
    ``candidate_bias`` (H,), zeros. State and output (B, H).

    Args:
        num_units: H. input_size: I.
        activation: None or ``torch.tanh`` only: ``gru_step`` fixes the candidate's
            nonlinearity to tanh, so any other raises ValueError.
        device, dtype: of the parameters.

    Example::

        >>> cell = GRUCell(4, input_size=3)
        >>> output, state = cell(torch.randn(2, 3), cell.zero_state(2))
        >>> output.shape
        torch.Size([2, 4])
    """

    def __init__(self, num_units: int, input_size: int, activation: Optional[Activation] = None,
                 *, device=None, dtype=None) -> None:
        super().__init__(num_units, input_size, activation)
        if _activation_name(self.activation) != "tanh":
            raise ValueError(
                f"activation must be None or torch.tanh for GRUCell (gatedrnn's gru_step "
                f"uses tanh for the candidate), got {activation!r}"
            )
        factory = {"device": device, "dtype": dtype}
        n = input_size + num_units
        self.gates_kernel = nn.Parameter(torch.empty(n, 2 * num_units, **factory))
        self.gates_bias = nn.Parameter(torch.empty(2 * num_units, **factory))
        self.candidate_kernel = nn.Parameter(torch.empty(n, num_units, **factory))
        self.candidate_bias = nn.Parameter(torch.empty(num_units, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF defaults: Glorot-uniform kernels, gates_bias 1.0, candidate_bias 0."""
        with torch.no_grad():
            _glorot_uniform_(self.gates_kernel)
            _glorot_uniform_(self.candidate_kernel)
            self.gates_bias.fill_(1.0)
            self.candidate_bias.zero_()

    def _torch_weights(self):
        # TF's r, u, candidate blocks are PyTorch's r, z, n: stacking them is the conversion.
        g_ih, g_hh = self._split_kernel(self.gates_kernel)  # (2H, I), (2H, H)
        c_ih, c_hh = self._split_kernel(self.candidate_kernel)  # (H, I), (H, H)
        return {
            "weight_ih": torch.cat([g_ih, c_ih], dim=0),  # (3H, I)
            "weight_hh": torch.cat([g_hh, c_hh], dim=0),  # (3H, H)
            "bias_ih": torch.cat([self.gates_bias, self.candidate_bias]),  # (3H,)
        }

    def _step(self, xw, state, w):
        h = gru_step(xw, state, w["weight_hh"], None, reset_after=False)  # (B, H)
        return h, h

    def to_layer(self, batch_first: bool = True) -> GRU:
        """The equivalent :class:`gatedrnn.GRU` with ``reset_after=False`` (one layer),
        weights converted."""
        layer = GRU(self.input_size, self.num_units, batch_first=batch_first,
                    reset_after=False, **self._factory())
        return self._load_layer(layer, self._torch_weights())


# -- dynamic_rnn --------------------------------------------------------------------

def _check_sequence_length(sequence_length, batch: int, steps: int, device) -> Optional[Tensor]:
    """-> (B,) int64 lengths on ``device``, or None."""
    if sequence_length is None:
        return None
    if isinstance(sequence_length, (list, tuple)):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in sequence_length):
            raise TypeError(f"sequence_length must hold ints, got {sequence_length!r}")
        sequence_length = torch.tensor(sequence_length, dtype=torch.int64)
    if not isinstance(sequence_length, Tensor):
        raise TypeError(
            f"sequence_length must be None, a Tensor or a list of ints, "
            f"got {type(sequence_length).__name__}"
        )
    if sequence_length.is_floating_point() or sequence_length.is_complex() \
            or sequence_length.dtype == torch.bool:
        raise TypeError(f"sequence_length must have an integer dtype, got {sequence_length.dtype}")
    if tuple(sequence_length.shape) != (batch,):
        raise ValueError(
            f"sequence_length must have shape (batch,) = ({batch},), "
            f"got {tuple(sequence_length.shape)}"
        )
    if batch and (sequence_length.min() < 0 or sequence_length.max() > steps):
        raise ValueError(
            f"sequence_length values must be in [0, {steps}] (the number of time steps), "
            f"got {sequence_length.tolist()}"
        )
    return sequence_length.to(device=device, dtype=torch.int64)


def _map_state(fn, new: TFState, old: TFState) -> TFState:
    """Apply ``fn`` to each (new, old) pair of state tensors, keeping the structure."""
    if isinstance(new, tuple):
        return type(new)(*(fn(a, b) for a, b in zip(new, old)))
    return fn(new, old)


def dynamic_rnn(
    cell: _TFCell,
    inputs: Tensor,
    sequence_length=None,
    initial_state: Optional[TFState] = None,
    time_major: bool = False,
) -> Tuple[Tensor, TFState]:
    """Run ``cell`` over a sequence, as TensorFlow's ``tf.nn.dynamic_rnn``.

    Past ``sequence_length[b]`` steps, sequence b's outputs are zero and its state is
    frozen, so ``final_state`` is the state after its last valid step (the initial
    state when its length is 0).

    Args:
        cell: one of this module's cells.
        inputs: (B, T, I), or (T, B, I) with ``time_major=True``.
        sequence_length: None (all T steps) or (B,) ints in [0, T].
        initial_state: None (``cell.zero_state(B)``) or a state of ``cell``'s format.
        time_major: layout of ``inputs`` and ``outputs``.

    Returns:
        ``(outputs, final_state)``: outputs (B, T, cell.output_size) ((T, B, ·) with
        ``time_major``), final_state in the cell's state format.

    Example::

        >>> cell = GRUCell(4, input_size=3)
        >>> outputs, h = dynamic_rnn(cell, torch.randn(2, 5, 3), sequence_length=[5, 3])
        >>> outputs.shape, h.shape
        (torch.Size([2, 5, 4]), torch.Size([2, 4]))
    """
    if not isinstance(cell, _TFCell):
        raise TypeError(
            f"cell must be a gatedrnn.compat.tf cell (BasicRNNCell, BasicLSTMCell, LSTMCell, "
            f"GRUCell), got {type(cell).__name__}"
        )
    check_input("inputs", inputs, cell.input_size, (3,), cell._like)
    x = inputs if time_major else inputs.transpose(0, 1)  # (T, B, I)
    steps, batch = x.size(0), x.size(1)
    lengths = _check_sequence_length(sequence_length, batch, steps, x.device)
    if initial_state is None:
        state = cell.zero_state(batch)
    else:
        state = cell._check_state("initial_state", initial_state, batch)

    w = cell._torch_weights()  # converted once, not at every step
    xw = F.linear(x, w["weight_ih"], w["bias_ih"])  # (T, B, G*H): one GEMM for all steps
    outputs = []
    # unbind, not xw[t]: indexing would make backward accumulate T full-size gradients.
    for t, xw_t in enumerate(xw.unbind(0)):  # (B, G*H)
        output, new_state = cell._step(xw_t, state, w)  # (B, H_out)
        if lengths is None:
            state = new_state
        else:
            valid = (lengths > t).unsqueeze(-1)  # (B, 1): sequence b still running
            # where, not multiplication by a mask: keeps finished sequences exact (and NaN-free).
            state = _map_state(lambda new, old: torch.where(valid, new, old), new_state, state)
            output = torch.where(valid, output, torch.zeros_like(output))
        outputs.append(output)
    if outputs:
        out = torch.stack(outputs)  # (T, B, H_out)
    else:
        out = x.new_zeros(0, batch, cell.output_size)
    return (out if time_major else out.transpose(0, 1)), state
