"""Recurrent layers: drop-in replacements for ``torch.nn.RNN``, ``LSTM`` and ``GRU``,
and JANET, MGU, IndRNN, the layer-normalised LSTM, minGRU and minLSTM through the same
machinery.

:class:`RecurrentBase` is written once: parameters, stacking, directions, dropout
between layers, ``batch_first``, unbatched and ``PackedSequence`` input, validation.
The cells' equations live in :mod:`gatedrnn.cells`; the time loop in
:mod:`gatedrnn.backends`. Each layer class only names its cell and its options.

Sequence lengths are handled here, once: a ``PackedSequence`` is unpacked to a padded
(T, B, I) tensor plus lengths; backends freeze each sequence's state past its length;
the backward direction runs on each sequence reversed within its own length.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from . import backends
from .backends import native, torch_kernel
from .cells import (CELL_SPECS, NONLINEARITIES, CellSpec, GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec,
                    LSTMSpec, MGUSpec, RNNSpec, State, ZoneoutSpec)
from .min_rnn import MinGRUSpec, MinLSTMSpec
from .sequences import reverse_within_lengths, to_time_major
from .parameters import register, state_sizes
from .validation import (
    check_bool,
    check_dropout,
    check_float,
    check_hx,
    check_input,
    check_int,
    check_no_projection,
    check_sizes,
    check_optional_clip,
)

TORCHSCRIPT_ADVICE = (
    "torch.jit.script cannot compile gatedrnn's {name}: its forward is Python that TorchScript "
    "does not follow (it checks and lays out dense, packed and unbatched input and picks the "
    "cell's backend per call). Use torch.export.export(model, (x,)) or torch.compile for a "
    "whole-model graph with dynamic batch and time sizes, torch.jit.trace(model, x) for a "
    "TorchScript module of one input layout, or gr.export_onnx(model, x) for ONNX runtimes")


def spec_state(spec: CellSpec) -> Tuple[str, Dict[str, Any]]:
    """A cell spec as plain values, ``(name, options)``: what a pickled module stores, so
    that ``torch.load(weights_only=True)`` needs no gatedrnn class but the modules'."""
    return spec.name, {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}


def spec_from_state(state: Tuple[str, Dict[str, Any]]) -> CellSpec:
    """The inverse of :func:`spec_state`."""
    name, options = state
    return CELL_SPECS[name](**options)


def _split_input_stage(spec: CellSpec, pairs) -> Tuple[Tuple[Tuple[str, str], ...], Tuple[Tuple[str, str], ...]]:
    """(key, name) pairs -> (those of the input stage's parameters, the recurrent ones)."""
    pairs = tuple(pairs)
    return (tuple(p for p in pairs if p[0] in spec.input_parameters),
            tuple(p for p in pairs if p[0] not in spec.input_parameters))


class SpecModule(nn.Module):
    """A module built around a :class:`~gatedrnn.cells.CellSpec` (the layers and cells).

    It pickles its spec as plain values (:func:`spec_state`), so a whole-model pickle
    loads with ``torch.load(weights_only=True)`` once the module classes are allowlisted
    (``gatedrnn.safe_globals()``), and it refuses ``torch.jit.script`` at once with
    what to use instead.
    """

    spec: CellSpec

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["spec"] = spec_state(self.spec)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(dict(state, spec=spec_from_state(state["spec"])))

    def __prepare_scriptable__(self):
        raise RuntimeError(TORCHSCRIPT_ADVICE.format(name=type(self).__name__))


class RecurrentBase(SpecModule):
    """A stack of recurrent layers of one cell; see :class:`LSTM` for the interface.

    Subclasses set the cell spec and its options; everything else is here. Besides
    torch.nn's attributes (``input_size`` ... ``proj_size``, ``all_weights``), a layer
    has torch.nn's ``mode`` (:attr:`CellSpec.mode`), ``_flat_weights_names`` (every
    parameter name, in registration order) and ``_flat_weights`` (the tensors those
    names hold now: a replaced, re-parametrised or deleted parameter shows at once,
    and the forward reads the same tensors).
    """

    #: The drop-ins of torch.nn's layers accept what torch.nn accepts: ``dropout=1``.
    #: The other layers keep dropout in [0, 1), where a stack can still learn.
    torch_nn_ranges: ClassVar[bool] = False
    #: Under autocast, return the autocast dtype as the torch.nn layer of this cell does
    #: (RNN, LSTM); the others return the input's dtype (as torch.nn's GRU).
    autocast_lowers: ClassVar[bool] = False

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
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.peepholes = check_bool("peepholes", peepholes)
        self.dropout = check_dropout(dropout, closed=self.torch_nn_ranges, num_layers=self.num_layers)
        self.backend = backends.check_name(backend)
        self.zoneout = check_dropout(zoneout, "zoneout")
        self.recurrent_dropout = check_dropout(recurrent_dropout, "recurrent_dropout")

        factory_kwargs = {"device": device, "dtype": dtype}
        self._all_weights: List[List[str]] = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.output_size
            for direction in range(self.num_directions):
                shapes = spec.parameter_shapes(
                    layer_input, self.hidden_size,
                    bias=self.bias, proj_size=self.proj_size, peepholes=self.peepholes,
                )
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                register(self, shapes, suffix, factory_kwargs)
                self._all_weights.append([name + suffix for name in shapes])
        #: The step functions' names of one layer and direction's parameters (every
        #: layer and direction has the same, with its own suffix).
        self._weight_keys: Tuple[str, ...] = tuple(shapes)
        self._flat_weights_names: List[str] = [name for names in self._all_weights for name in names]
        #: Per layer and direction, what each call reads: (step-function name, attribute
        #: name) pairs of the input stage's parameters, and of the recurrent ones.
        self._direction_names = [_split_input_stage(spec, zip(self._weight_keys, names))
                                 for names in self._all_weights]
        self.reset_parameters()

    @property
    def mode(self) -> str:
        """torch.nn's name of the cell (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``, ...; see
        :attr:`gatedrnn.cells.CellSpec.mode`)."""
        return self.spec.mode

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

    @property
    def _flat_weights(self) -> List[Optional[Tensor]]:
        """The tensors named by ``_flat_weights_names`` now (None for a name that holds
        nothing, as torch.nn), what the forward runs with."""
        return [getattr(self, name, None) for name in self._flat_weights_names]

    def reset_parameters(self) -> None:
        """The cell's initialisation (:meth:`~gatedrnn.cells.CellSpec.init_parameter_`):
        torch.nn's U(-1/sqrt(H), 1/sqrt(H)) unless the cell's paper says otherwise."""
        for names in self._all_weights:
            for key, name in zip(self._weight_keys, names):
                self.spec.init_parameter_(key, getattr(self, name), self.hidden_size)

    def flatten_parameters(self) -> None:
        """No-op, for code written against ``torch.nn.LSTM``."""

    #: The constructor options :meth:`extra_repr` shows when they differ from these.
    _repr_defaults: ClassVar[Dict[str, Any]] = dict(
        num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
        peepholes=False, backend="auto", zoneout=0.0, recurrent_dropout=0.0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in self._repr_defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    # -- input and state handling -------------------------------------------------

    def _prepare_input(self, input) -> Tuple[Tensor, Optional[Tensor], bool]:
        """-> (x (T, B, I), lengths (B,) or None, batched)."""
        like = self.weight_ih_l0
        if isinstance(input, PackedSequence):
            check_input("input", input.data, self.input_size, (2,), like)
        else:
            check_input("input", input, self.input_size, (2, 3), like)
        return to_time_major(input, self.batch_first)

    def _prepare_state(self, hx, batch: int, batched: bool, x: Tensor) -> Tuple[Tensor, ...]:
        """-> one (L*D, B, ·) tensor per state element (h, and c for the LSTM); the
        spec's :attr:`~gatedrnn.cells.CellSpec.initial_state` where ``hx`` is None."""
        layers = self.num_layers * self.num_directions
        sizes = state_sizes(len(self.spec.state_names), self.hidden_size, self.proj_size)
        if hx is None:
            value = self.spec.initial_state
            return tuple(x.new_zeros((layers, batch, size)) if value == 0 else x.new_full((layers, batch, size), value)
                         for size in sizes)
        shapes = [(layers, batch, size) if batched else (layers, size) for size in sizes]
        state = check_hx(hx, shapes, self.weight_ih_l0, batched=batched)
        return state if batched else tuple(h.unsqueeze(1) for h in state)

    # -- the forward pass -----------------------------------------------------------

    def _direction_parameters(self, index: int) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """The input stage's and the recurrent parameters of layer-and-direction ``index``,
        keyed as the step functions take them: the current tensors (replaced,
        re-parametrised or weight-dropped ones included)."""
        input_names, recurrent_names = self._direction_names[index]
        return ({key: getattr(self, name) for key, name in input_names},
                {key: getattr(self, name) for key, name in recurrent_names})

    def _direction_inputs(self, x: Tensor, layer: int, direction: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The input stage of all steps at once (one GEMM, :meth:`CellSpec.project_input`),
        (T, B, G*H), and the recurrent weights of one layer and direction."""
        inputs, weights = self._direction_parameters(layer * self.num_directions + direction)
        return self.spec.project_input(x, inputs), weights

    def regularising(self) -> bool:
        """Whether zoneout or recurrent dropout applies now (training mode only). A method,
        not a property: nn.Module.__getattr__ would turn an AttributeError inside a property
        into one naming the property."""
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

    def _run_direction(self, x: Tensor, state: State, lengths: Optional[Tensor], index: int,
                       reverse: bool, regularising: bool) -> Tuple[Tensor, State]:
        """Layer-and-direction ``index`` (``reverse``: the backward direction): the input
        GEMM here (or in the kernel, for narrow inputs: :attr:`CellSpec.kernel_input_max`),
        the time loop in the backend :func:`gatedrnn.backends.select` picks. Zoneout and
        recurrent dropout run on the reference."""
        spec = self.spec
        inputs, weights = self._direction_parameters(index)
        if regularising:
            if self.backend not in ("auto", "reference"):
                raise ValueError(f"zoneout and recurrent_dropout train on the reference backend; "
                                 f"backend={self.backend!r} cannot apply them (use backend='auto')")
            backend = backends.get("reference")
        else:
            backend = backends.select(self.backend, spec, x, *state, *inputs.values(), *weights.values())
        if backend is native and x.size(-1) <= spec.kernel_input_max:
            xw, weights = x, {**inputs, **weights}  # the kernel forms W_ih x + b_ih itself
        else:
            xw = spec.project_input(x, inputs)  # (T, B, G*H)
        if reverse:
            xw = reverse_within_lengths(xw, lengths)
        if regularising:
            spec, xw, weights = self._regularise(xw, state, weights)
        output, final = backend.run(spec, xw, state, weights, lengths)
        if reverse:
            output = reverse_within_lengths(output, lengths)
        return output, final  # (T, B, H_out)

    def _run_stack(self, x: Tensor, state0: State, lengths: Optional[Tensor],
                   regularising: bool) -> Tuple[Tensor, State]:
        """Every layer and direction through a time-loop backend, dropout between layers."""
        finals, directions = [], self.num_directions
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                output, final = self._run_direction(
                    x, tuple(s[index] for s in state0), lengths, index, direction == 1, regularising)
                outputs.append(output)
                finals.append(final)
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H_out)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, tuple(torch.stack(parts) for parts in zip(*finals))  # (L*D, B, ·) each

    def _forward(self, input, hx):
        """-> (output, state tuple of (L*D, B, ·) or (L*D, ·) tensors), in the parameters'
        dtype."""
        x, lengths, batched = self._prepare_input(input)
        state0 = self._prepare_state(hx, x.size(1), batched, x)
        regularising = self.regularising()
        if not regularising and backends.uses_torch_kernel(self.backend, self, lengths, x, *state0):
            x, state_n = torch_kernel.run_layer(self, x, state0)
        else:
            x, state_n = self._run_stack(x, state0, lengths, regularising)

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

    def forward(self, input: Union[Tensor, PackedSequence], hx=None):
        """``output, h_n`` (``output, (h_n, c_n)`` for a cell with a cell state); see the
        layer's docstring."""
        if torch._C._is_any_autocast_enabled() and autocast_active(self.weight_ih_l0):
            output, state = autocast_forward(self, self._forward, input, hx)
        else:
            output, state = self._forward(input, hx)
        return output, (state[0] if len(state) == 1 else state)


def autocast_active(like: Tensor) -> bool:
    """Whether autocast is on for the device of the parameter ``like``."""
    return (torch._C._is_any_autocast_enabled() and like.device.type in ("cpu", "cuda", "xpu", "mps")
            and torch.is_autocast_enabled(like.device.type))


def autocast_forward(module: nn.Module, forward, input, hx):
    """``forward(input, hx)`` of a layer or cell under autocast.

    The recurrence runs in the parameters' dtype, autocast off, the input and state cast
    to it: the kernels stay exact and fast, and a state is not rounded to a lower
    precision at every step. The outputs come back in the autocast dtype where the
    torch.nn counterpart returns it (``module.autocast_lowers``: RNN, LSTM, RNNCell),
    else in the input's dtype (as torch.nn's GRU, LSTMCell and GRUCell).
    """
    like = module.weight_ih_l0 if hasattr(module, "weight_ih_l0") else module.weight_ih
    device, dtype = like.device.type, like.dtype
    data = input.data if isinstance(input, PackedSequence) else input
    target = torch.get_autocast_dtype(device) if module.autocast_lowers else data.dtype

    def cast(value, to):
        if isinstance(value, PackedSequence):
            return value._replace(data=value.data.to(to))
        if isinstance(value, (tuple, list)):
            return tuple(cast(v, to) for v in value)
        return value.to(to) if isinstance(value, Tensor) and value.is_floating_point() else value

    with torch.autocast(device, enabled=False):
        result = forward(cast(input, dtype), cast(hx, dtype))
    return cast(result, target)


class RNN(RecurrentBase):
    r"""Elman RNN layer, a drop-in for ``torch.nn.RNN``.

    .. math:: h_t = \mathrm{act}(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    Args:
        input_size, hidden_size, num_layers, nonlinearity (``"tanh"`` | ``"relu"``),
        bias, batch_first, dropout, bidirectional: as ``torch.nn.RNN``.
        backend: ``"auto"`` or a name from :func:`gatedrnn.backends.available`.
        proj_size: refused, as ``torch.nn.RNN`` does (projections are the LSTM's).

    Shapes: input (T, B, I) ((B, T, I) with ``batch_first``), (T, I) unbatched, or a
    ``PackedSequence``; ``hx`` (L*D, B, H). Returns ``output`` (T, B, D*H) and ``h_n``
    (L*D, B, H).

    Example::

        >>> rnn = RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    torch_nn_ranges = True
    autocast_lowers = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 *, backend: str = "auto", proj_size: Optional[int] = None) -> None:
        check_no_projection(proj_size)
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(RNNSpec(nonlinearity), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, backend=backend,
                         device=device, dtype=dtype)


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

    torch_nn_ranges = True
    autocast_lowers = True
    _repr_defaults = {**RecurrentBase._repr_defaults, "forget_bias": 0.0, "cell_clip": None, "proj_clip": None}

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

    torch_nn_ranges = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None,
                 *, reset_after: bool = True, zoneout: float = 0.0,
                 recurrent_dropout: float = 0.0, backend: str = "auto", proj_size: Optional[int] = None) -> None:
        check_no_projection(proj_size)
        super().__init__(GRUSpec(reset_after=check_bool("reset_after", reset_after)), input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional,
                         backend=backend, device=device, dtype=dtype,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)

    @property
    def reset_after(self) -> bool:
        return self.spec.reset_after


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


#: A minimal RNN's modes and the backend that runs each (see :mod:`gatedrnn.min_rnn`).
MIN_RNN_MODES: Dict[str, str] = {"auto": "auto", "fused": "native", "scan": "scan", "sequential": "reference"}


def _check_mode(mode) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, one of {tuple(MIN_RNN_MODES)}, got {type(mode).__name__} ({mode!r})")
    if mode not in MIN_RNN_MODES:
        raise ValueError(f"mode must be one of {tuple(MIN_RNN_MODES)}, got {mode!r}")
    return mode


class MinimalRNN(RecurrentBase):
    """A stack of minimal-RNN layers: :class:`~gatedrnn.layers.RecurrentBase` with the
    execution ``mode`` (a backend, :data:`MIN_RNN_MODES`) in place of ``backend``; subclasses
    name their spec class."""

    spec_class: ClassVar[type]
    _repr_defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                          mode="auto")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 mode: str = "auto", device=None, dtype=None) -> None:
        super().__init__(self.spec_class(), input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, backend=MIN_RNN_MODES[_check_mode(mode)], device=device, dtype=dtype)
        self._mode = mode

    @property
    def mode(self) -> str:
        """``"auto"``, ``"fused"`` (the native kernel), ``"scan"`` (log-space parallel scan)
        or ``"sequential"`` (a loop over steps); see :mod:`gatedrnn.min_rnn`. Unlike
        torch.nn's ``mode`` (the cell's name) this is how the layer runs; it may be set."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self.backend = MIN_RNN_MODES[_check_mode(mode)]
        self._mode = mode

    @property
    def gates(self) -> Tuple[str, ...]:
        return self.spec.gates

    @property
    def kernel(self) -> str:
        """The native ops' name (``torch.ops.gatedrnn.<kernel>_forward``)."""
        return native.op_name(self.spec.name)

    def step(self, xw: Tensor, h: Tensor) -> Tensor:
        """One step in linear space: ``xw`` (B, G*H), h (B, H) -> h' (B, H)."""
        return self.spec.step(xw, (h,), {})[0]

    def resolved_mode(self, x: Tensor) -> str:
        """The mode a run on ``x`` uses: ``auto`` becomes ``fused`` for CPU float32/64
        tensors where the native kernels build, else ``scan``."""
        backend = backends.resolve(self.backend, self, x)
        return next(mode for mode, name in MIN_RNN_MODES.items() if name == backend)


class MinGRU(MinimalRNN):
    r"""minGRU layer (Feng et al. 2024), with the interface of ``torch.nn.GRU``.

    Gate blocks z, h (``weight_ih_l{k}`` is (2H, I_k), ``bias_ih_l{k}`` (2H,)); there is
    no ``weight_hh``/``bias_hh``: the gates read x_t only.

    .. math::
        z_t &= \sigma(W_{iz} x_t + b_{iz}) \\
        \tilde h_t &= g(W_{i\tilde h} x_t + b_{i\tilde h}), \quad
            g(x) = x + 0.5 \ (x \ge 0), \ \sigma(x) \ (x < 0) \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``hx=None`` means h_0 = g(0) = 0.5 (the paper's convention); a given ``hx`` is h_0
    itself, any real values.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        device, dtype: as ``torch.nn.GRU``.
        mode: ``"auto"`` (default), ``"fused"``, ``"scan"`` or ``"sequential"`` (see
            :mod:`gatedrnn.min_rnn`); all give the same outputs and gradients; may be
            changed after construction.

    Shapes as :class:`gatedrnn.GRU`. Returns ``output`` (T, B, D*H) and ``h_n`` (L*D, B, H).

    Example::

        >>> gru = MinGRU(10, 20, num_layers=2, batch_first=True)
        >>> output, h_n = gru(torch.randn(3, 5, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 20]), torch.Size([2, 3, 20]))
    """

    spec_class = MinGRUSpec


class MinLSTM(MinimalRNN):
    r"""minLSTM layer (Feng et al. 2024), with the interface of ``torch.nn.GRU``.

    Gate blocks f, i, h (``weight_ih_l{k}`` is (3H, I_k), ``bias_ih_l{k}`` (3H,)); no
    ``weight_hh``/``bias_hh``, and no cell state: h is the only state.

    .. math::
        f_t &= \sigma(W_{if} x_t + b_{if}), \quad i_t = \sigma(W_{ii} x_t + b_{ii}) \\
        h_t &= \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot
              g(W_{i\tilde h} x_t + b_{i\tilde h})

    Arguments, modes, ``hx`` (h_0 = 0.5 when None) and shapes as :class:`MinGRU`.

    Example::

        >>> lstm = MinLSTM(10, 20, bidirectional=True)
        >>> output, h_n = lstm(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 40]), torch.Size([2, 3, 20]))
    """

    spec_class = MinLSTMSpec


