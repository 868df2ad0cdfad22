"""Recurrent layers: drop-in replacements for ``torch.nn.RNN``, ``LSTM`` and ``GRU``,
and JANET, MGU, IndRNN and the layer-normalised LSTM through the same machinery.

:class:`RecurrentBase` is written once: parameters, stacking, directions, dropout
between layers, ``batch_first``, unbatched and ``PackedSequence`` input, validation.
The cells' equations live in :mod:`gatedrnn.cells`; the time loop in
:mod:`gatedrnn.backends`. Each layer class only names its cell and its options.

Sequence lengths are handled here, once: a ``PackedSequence`` is unpacked to a padded
(T, B, I) tensor plus lengths; backends freeze each sequence's state past its length;
the backward direction runs on each sequence reversed within its own length.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from . import backends
from .backends import torch_kernel
from .cells import (NONLINEARITIES, CellSpec, GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec,
                    MGUSpec, RNNSpec, State, ZoneoutSpec)
from .sequences import reverse_within_lengths, to_time_major
from .parameters import register, state_sizes, strip_suffix
from .validation import (
    check_dropout,
    check_float,
    check_hx,
    check_input,
    check_int,
    check_sizes,
    check_optional_clip,
)


class RecurrentBase(nn.Module):
    """A stack of recurrent layers of one cell; see :class:`LSTM` for the interface.

    Subclasses set the cell spec and its options; everything else is here.
    """

    def __init__(
        self,
        spec: CellSpec,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        peepholes: bool = False,
        backend: str = "auto",
        device=None,
        dtype=None,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.input_size, self.hidden_size, self.proj_size = check_sizes(input_size, hidden_size, proj_size)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_dropout(dropout)
        self.bidirectional = bool(bidirectional)
        self.peepholes = bool(peepholes)
        self.backend = backends.check_name(backend)
        self.zoneout = check_dropout(zoneout, "zoneout")
        self.recurrent_dropout = check_dropout(recurrent_dropout, "recurrent_dropout")

        factory_kwargs = {"device": device, "dtype": dtype}
        num_directions = 2 if self.bidirectional else 1
        self._all_weights: List[List[str]] = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.output_size
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = spec.parameter_shapes(
                    layer_input, self.hidden_size,
                    bias=self.bias, proj_size=self.proj_size, peepholes=self.peepholes,
                )
                register(self, shapes, suffix, factory_kwargs)
                self._all_weights.append([name + suffix for name in shapes])
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def real_hidden_size(self) -> int:
        """Size of ``h``: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def output_size(self) -> int:
        """Feature size of the output: directions x real hidden size."""
        return self.num_directions * self.real_hidden_size

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        """Parameters grouped per layer and direction, as ``torch.nn.RNNBase``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        """The cell's initialisation (:meth:`~gatedrnn.cells.CellSpec.init_parameter_`):
        torch.nn's U(-1/sqrt(H), 1/sqrt(H)) unless the cell's paper says otherwise."""
        for names in self._all_weights:
            for name in names:
                self.spec.init_parameter_(strip_suffix(name), getattr(self, name), self.hidden_size)

    def flatten_parameters(self) -> None:
        """No-op, for code written against ``torch.nn.LSTM``."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, proj_size=0, peepholes=False, backend="auto",
                        zoneout=0.0, recurrent_dropout=0.0)
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # -- input and state handling -------------------------------------------------

    def _prepare_input(self, input) -> Tuple[Tensor, Optional[Tensor], bool]:
        """-> (x (T, B, I), lengths (B,) or None, batched)."""
        if isinstance(input, PackedSequence):
            check_input("input", input.data, self.input_size, (2,), self.weight_ih_l0)
        else:
            check_input("input", input, self.input_size, (2, 3), self.weight_ih_l0)
        return to_time_major(input, self.batch_first)

    def _prepare_state(self, hx, batch: int, batched: bool, x: Tensor) -> Tuple[Tensor, ...]:
        """-> one (L*D, B, ·) tensor per state element (h, and c for the LSTM)."""
        layers = self.num_layers * self.num_directions
        sizes = state_sizes(len(self.spec.state_names), self.hidden_size, self.proj_size)
        if hx is None:
            return tuple(x.new_zeros(layers, batch, size) for size in sizes)
        shapes = [(layers, batch, size) if batched else (layers, size) for size in sizes]
        state = check_hx(hx, shapes, self.weight_ih_l0)
        return state if batched else tuple(h.unsqueeze(1) for h in state)

    # -- the forward pass -----------------------------------------------------------

    def _direction_inputs(self, x: Tensor, layer: int, direction: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The input stage of all steps at once (one GEMM, :meth:`CellSpec.project_input`),
        (T, B, G*H), and the recurrent weights of one layer and direction, keyed as the
        step functions take them."""
        names = self._all_weights[layer * self.num_directions + direction]
        params = {strip_suffix(name): getattr(self, name) for name in names}
        inputs = {name: p for name, p in params.items() if name in self.spec.input_parameters}
        xw = self.spec.project_input(x, inputs)  # (T, B, G*H)
        return xw, {name: p for name, p in params.items() if name not in inputs}

    @property
    def regularising(self) -> bool:
        """Whether zoneout or recurrent dropout applies now (training mode only)."""
        return self.training and (self.zoneout > 0 or self.recurrent_dropout > 0)

    def _regularise(self, xw: Tensor, state: State, weights: Dict[str, Tensor]):
        """Draw this run's masks -> (spec, xw, weights) that apply them.

        Recurrent dropout (Gal & Ghahramani 2016): one inverted-dropout mask (B, H_out)
        per sequence, layer and direction, on h where it enters a recurrent product.
        Zoneout (Krueger et al. 2016): a fresh Bernoulli(zoneout) keep mask at every
        step for every state element, appended to ``xw`` (see
        :class:`~gatedrnn.cells.ZoneoutSpec`). Masks come from torch's global
        generator, recurrent dropout's first: runs are reproducible under
        ``torch.manual_seed``.
        """
        spec = self.spec
        if self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            mask = torch.bernoulli(xw.new_full((xw.shape[1], state[0].shape[-1]), keep)) / keep  # (B, H_out)
            weights = {**weights, "recurrent_mask": mask}
        if self.zoneout > 0:
            masks = [torch.bernoulli(xw.new_full((*xw.shape[:2], s.shape[-1]), self.zoneout)) for s in state]
            xw = torch.cat([xw, *masks], dim=-1)  # (T, B, G*H + state widths)
            spec = ZoneoutSpec(cell=spec)
        return spec, xw, weights

    def _time_loop(self, xw: Tensor):
        """The backend of this run; zoneout and recurrent dropout run on the reference."""
        if not self.regularising:
            return backends.select(self.backend, self.spec, xw)
        if self.backend not in ("auto", "reference"):
            raise ValueError(f"zoneout and recurrent_dropout train on the reference backend; "
                             f"backend={self.backend!r} cannot apply them (use backend='auto')")
        return backends.get("reference")

    def _run_direction(self, x: Tensor, state: State, lengths: Optional[Tensor],
                       layer: int, direction: int) -> Tuple[Tensor, State]:
        """One layer in one direction: input GEMM here, time loop in the backend."""
        xw, weights = self._direction_inputs(x, layer, direction)
        if direction == 1:
            xw = reverse_within_lengths(xw, lengths)
        backend, spec = self._time_loop(xw), self.spec
        if self.regularising:
            spec, xw, weights = self._regularise(xw, state, weights)
        output, final = backend.run(spec, xw, state, weights, lengths)
        if direction == 1:
            output = reverse_within_lengths(output, lengths)
        return output, final  # (T, B, H_out)

    def _run_stack(self, x: Tensor, state0: State, lengths: Optional[Tensor]) -> Tuple[Tensor, State]:
        """Every layer and direction through a time-loop backend, dropout between layers."""
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                output, final = self._run_direction(
                    x, tuple(s[index] for s in state0), lengths, layer, direction)
                outputs.append(output)
                finals.append(final)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H_out)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, tuple(torch.stack(parts) for parts in zip(*finals))  # (L*D, B, ·) each

    def _forward(self, input, hx):
        """-> (output, state tuple of (L*D, B, ·) or (L*D, ·) tensors)."""
        x, lengths, batched = self._prepare_input(input)
        state0 = self._prepare_state(hx, x.size(1), batched, x)
        if not self.regularising and backends.uses_torch_kernel(self.backend, self, lengths):
            x, state_n = torch_kernel.run_layer(self, x, state0)
        else:
            x, state_n = self._run_stack(x, state0, lengths)

        if isinstance(input, PackedSequence):
            order = input.sorted_indices
            if order is not None:  # back to the packed (descending length) order
                x, lengths = x.index_select(1, order), lengths[order.cpu()]
            data = pack_padded_sequence(x, lengths.cpu()).data  # (sum of lengths, D*H_out)
            output = PackedSequence(data, input.batch_sizes, order, input.unsorted_indices)
        elif not batched:
            output = x.squeeze(1)
            state_n = tuple(s.squeeze(1) for s in state_n)
        else:
            output = x.transpose(0, 1) if self.batch_first else x
        return output, state_n


class RNN(RecurrentBase):
    r"""Elman RNN layer, a drop-in for ``torch.nn.RNN``.

    .. math:: h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    Args:
        input_size, hidden_size, num_layers, nonlinearity (``"tanh"`` | ``"relu"``),
        bias, batch_first, dropout, bidirectional: as ``torch.nn.RNN``.
        backend: ``"auto"`` or a name from :func:`gatedrnn.backends.available`.

    Shapes: input (T, B, I) ((B, T, I) with ``batch_first``), (T, I) unbatched, or a
    ``PackedSequence``; ``hx`` (L*D, B, H). Returns ``output`` (T, B, D*H) and ``h_n``
    (L*D, B, H).

    Example::

        >>> rnn = RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 *, backend: str = "auto") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(RNNSpec(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, backend=backend,
                         device=device, dtype=dtype)

    def forward(self, input: Union[Tensor, PackedSequence], hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, hx)
        return output, h_n


class LSTM(RecurrentBase):
    r"""LSTM layer, a drop-in for ``torch.nn.LSTM`` with TensorFlow's extras.

    Gate blocks i, f, g, o (PyTorch order); per step (see :func:`gatedrnn.cells.lstm_step`)

    .. math::
        i &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi} + p_i \odot c) \\
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf} + \text{forget\_bias} + p_f \odot c) \\
        g &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        c' &= \mathrm{clip}(f \odot c + i \odot g,\ \pm\text{cell\_clip}) \\
        o &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho} + p_o \odot c') \\
        h' &= \mathrm{clip}(W_{hr} (o \odot \tanh c'),\ \pm\text{proj\_clip})

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size: as ``torch.nn.LSTM``.
        forget_bias: constant added to the forget pre-activation at run time
            (TensorFlow ``BasicLSTMCell``); not a parameter.
        peepholes: add diagonal peephole weights ``weight_ci_l{k}``, ``weight_cf_l{k}``
            (from c_{t-1}) and ``weight_co_l{k}`` (from c_t), each (H,), as TensorFlow
            ``LSTMCell(use_peepholes=True)``.
        cell_clip: clip c to [-cell_clip, cell_clip] (None: no clipping).
        proj_clip: clip the projected h (needs ``proj_size > 0``).
        zoneout, recurrent_dropout: see :class:`GRU`.
        backend: ``"auto"`` or a name from :func:`gatedrnn.backends.available`.

    Shapes: input (T, B, I) / (B, T, I) / (T, I) / ``PackedSequence``; ``hx = (h_0, c_0)``
    with h_0 (L*D, B, P or H), c_0 (L*D, B, H). Returns ``output, (h_n, c_n)``.

    Example::

        >>> lstm = LSTM(10, 20, batch_first=True, forget_bias=1.0)
        >>> output, (h_n, c_n) = lstm(torch.randn(3, 5, 10))
        >>> output.shape
        torch.Size([3, 5, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None,
                 *, forget_bias: float = 0.0, peepholes: bool = False,
                 cell_clip: Optional[float] = None, proj_clip: Optional[float] = None,
                 zoneout: float = 0.0, recurrent_dropout: float = 0.0,
                 backend: str = "auto") -> None:
        if proj_clip is not None and not proj_size:
            raise ValueError(f"proj_clip needs proj_size > 0, got proj_clip={proj_clip}, proj_size={proj_size}")
        spec = LSTMSpec(
            forget_bias=check_float("forget_bias", forget_bias),
            cell_clip=check_optional_clip("cell_clip", cell_clip),
            proj_clip=check_optional_clip("proj_clip", proj_clip),
        )
        super().__init__(spec, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, peepholes=peepholes,
                         backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    @property
    def forget_bias(self) -> float:
        return self.spec.forget_bias

    @property
    def cell_clip(self) -> Optional[float]:
        return self.spec.cell_clip

    @property
    def proj_clip(self) -> Optional[float]:
        return self.spec.proj_clip

    def extra_repr(self) -> str:
        s = super().extra_repr()
        for name in ("forget_bias", "cell_clip", "proj_clip"):
            if getattr(self, name) not in (None, 0.0):
                s += f", {name}={getattr(self, name)!r}"
        return s

    def forward(self, input, hx: Optional[Tuple[Tensor, Tensor]] = None):
        output, (h_n, c_n) = self._forward(input, hx)
        return output, (h_n, c_n)


class GRU(RecurrentBase):
    r"""GRU layer, a drop-in for ``torch.nn.GRU``; gate blocks r, z, n.

    .. math::
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))
             \quad \text{reset\_after=True (PyTorch, cuDNN)} \\
        n &= \tanh(W_{in} x + b_{in} + W_{hn} (r \odot h) + b_{hn})
             \quad \text{reset\_after=False (TF1, Keras, ONNX default)} \\
        h' &= (1 - z) \odot n + z \odot h

    Args: as ``torch.nn.GRU``, plus ``reset_after``, ``backend`` and two regularisers
    that act in training mode only (the layer is the plain cell in evaluation mode):

    - ``zoneout`` (Krueger et al. 2016): at every step each state unit keeps its
      previous value with this probability, ``s_t = m_t s_{t-1} + (1 - m_t) cell(x_t,
      s_{t-1})``, m_t ~ Bernoulli(zoneout) drawn afresh per step.
    - ``recurrent_dropout`` (Gal & Ghahramani 2016): one inverted-dropout mask per
      sequence on ``h`` where it enters the recurrent products (``W_hh (h * m)``;
      the carried state is not masked).

    With either one set, training runs on the reference backend (autograd through the
    step function), a few times slower than the fused kernels.

    Example::

        >>> gru = GRU(10, 20, reset_after=False)
        >>> output, h_n = gru(torch.randn(5, 3, 10))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 *, reset_after: bool = True, zoneout: float = 0.0,
                 recurrent_dropout: float = 0.0, backend: str = "auto") -> None:
        super().__init__(GRUSpec(reset_after=bool(reset_after)), input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional,
                         backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    @property
    def reset_after(self) -> bool:
        return self.spec.reset_after

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, hx)
        return output, h_n


class JANET(RecurrentBase):
    r"""JANET layer, the forget-gate-only LSTM (van der Westhuizen & Lasenby 2018).

    Gate blocks f, g (``weight_ih_l{k}`` is (2H, I)):

    .. math::
        s_t &= W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} \\
        \tilde c_t &= W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg} \\
        c_t &= \sigma(s_t) \odot c_{t-1} + (1 - \sigma(s_t - \beta)) \odot \tanh(\tilde c_t) \\
        h_t &= c_t

    The paper always initialises with chrono initialisation, t_max = the sequence length:
    call :func:`gatedrnn.init.chrono_` after construction.

    Args: as ``torch.nn.GRU``, plus ``beta`` (default 1.0), ``zoneout``,
    ``recurrent_dropout`` (see :class:`GRU`) and ``backend``.
    Returns ``output, h_n`` like the GRU (the cell state is the output).

    Example::

        >>> janet = JANET(1, 64, batch_first=True)
        >>> output, h_n = janet(torch.randn(8, 100, 1))
        >>> output.shape, h_n.shape
        (torch.Size([8, 100, 64]), torch.Size([1, 8, 64]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 *, beta: float = 1.0, zoneout: float = 0.0, recurrent_dropout: float = 0.0,
                 backend: str = "auto") -> None:
        super().__init__(JANETSpec(beta=check_float("beta", beta)), input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional,
                         backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    @property
    def beta(self) -> float:
        return self.spec.beta

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, hx)
        return output, h_n


class MGU(RecurrentBase):
    r"""Minimal gated unit layer (Zhou, Wu, Zhang & Zhou 2016): one forget gate.

    Gate blocks f, h (``weight_ih_l{k}`` is (2H, I), ``weight_hh_l{k}`` (2H, H)):

    .. math::
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        \tilde h_t &= \tanh(W_{ih} x_t + b_{ih} + W_{hh} (f_t \odot h_{t-1}) + b_{hh}) \\
        h_t &= (1 - f_t) \odot h_{t-1} + f_t \odot \tilde h_t

    The other forget-gate-only answer besides JANET: the GRU with its reset and
    update gates tied. Initialised as torch.nn's GRU (the paper gives no scheme).

    Args: as ``torch.nn.GRU``, plus ``zoneout``, ``recurrent_dropout`` (see
    :class:`GRU`) and ``backend``. Returns ``output, h_n``.

    Example::

        >>> mgu = MGU(10, 20, batch_first=True)
        >>> output, h_n = mgu(torch.randn(3, 5, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 20]), torch.Size([1, 3, 20]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 *, zoneout: float = 0.0, recurrent_dropout: float = 0.0,
                 backend: str = "auto") -> None:
        super().__init__(MGUSpec(), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, hx)
        return output, h_n


class IndRNN(RecurrentBase):
    r"""Independently recurrent layer (IndRNN, Li, Li, Cook, Zhu & Gao 2018).

    .. math:: h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh})

    ``weight_hh_l{k}`` is the vector u, (H,): each unit recurs on itself only, so a
    step is O(H) and stacking layers (``num_layers``) mixes the units.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional:
            as ``torch.nn.RNN``.
        nonlinearity: ``"relu"`` (default, the paper's) or ``"tanh"``.
        max_steps: clip u to [-2^(1/max_steps), 2^(1/max_steps)] in the forward pass,
            the paper's bound that keeps a ReLU unit's gradient within a factor 2 over
            ``max_steps`` steps (its gradient is zero where clipped).
        recurrent_max: clip u to [-recurrent_max, recurrent_max] instead.
        backend: ``"auto"`` or a name from :func:`gatedrnn.backends.available`.

    Initialisation as the authors' code: u ~ U(0, min(1, recurrent_max)), biases 0,
    W_ih ~ U(-1/sqrt(H), 1/sqrt(H)).

    Example::

        >>> indrnn = IndRNN(2, 128, num_layers=2, batch_first=True, max_steps=200)
        >>> output, h_n = indrnn(torch.randn(4, 200, 2))
        >>> output.shape
        torch.Size([4, 200, 128])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "relu", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 *, max_steps: Optional[int] = None, recurrent_max: Optional[float] = None,
                 backend: str = "auto") -> None:
        spec = IndRNNSpec.from_options(nonlinearity, max_steps, recurrent_max)
        self.nonlinearity = nonlinearity
        super().__init__(spec, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, backend=backend, device=device, dtype=dtype)

    @property
    def recurrent_max(self) -> Optional[float]:
        return self.spec.recurrent_max

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, hx)
        return output, h_n


class LayerNormLSTM(RecurrentBase):
    r"""Layer-normalised LSTM layer (Ba, Kiros & Hinton 2016, eqs. 20-22).

    .. math::
        a_t &= \mathrm{LN}(W_{ih} x_t;\ \gamma_{ih}) + \mathrm{LN}(W_{hh} h_{t-1};\ \gamma_{hh}) + b
              = [a_i, a_f, a_g, a_o] \\
        c_t &= \sigma(a_f + \text{forget\_bias}) \odot c_{t-1} + \sigma(a_i) \odot \tanh(a_g) \\
        h_t &= \sigma(a_o) \odot \tanh(\mathrm{LN}(c_t;\ \gamma_c, \beta_c))

    Each LN normalises every gate block of H units on its own (mean and variance per
    block, as TensorFlow Addons' ``LayerNormLSTMCell``; haste's ``LayerNormLSTM``
    normalises the 4H units together). Parameters per layer: ``weight_ih_l{k}`` (4H, I),
    ``weight_hh_l{k}`` (4H, H), ``bias_hh_l{k}`` (4H,: the b above; there is no
    ``bias_ih``, which the normalisation would remove), the gains
    ``layernorm_ih_weight_l{k}``, ``layernorm_hh_weight_l{k}`` (4H,, initialised to 1),
    ``layernorm_c_weight_l{k}`` (H,, 1) and ``layernorm_c_bias_l{k}`` (H,, 0).

    Args: as :class:`LSTM` without ``proj_size``, ``peepholes`` and the clips, plus
    ``eps`` (the normalisation's, 1e-5). The input term is computed for all steps at once
    before the time loop (:meth:`~gatedrnn.cells.CellSpec.project_input`); the loop runs on
    every backend. Returns ``output, (h_n, c_n)``.

    Example::

        >>> lstm = LayerNormLSTM(10, 20, batch_first=True)
        >>> output, (h_n, c_n) = lstm(torch.randn(3, 5, 10))
        >>> output.shape
        torch.Size([3, 5, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 *, forget_bias: float = 0.0, eps: float = 1e-5, zoneout: float = 0.0,
                 recurrent_dropout: float = 0.0, backend: str = "auto") -> None:
        spec = LayerNormLSTMSpec(forget_bias=check_float("forget_bias", forget_bias),
                                 eps=check_optional_clip("eps", eps))
        super().__init__(spec, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    @property
    def forget_bias(self) -> float:
        return self.spec.forget_bias

    def forward(self, input, hx: Optional[Tuple[Tensor, Tensor]] = None):
        output, (h_n, c_n) = self._forward(input, hx)
        return output, (h_n, c_n)
