"""Single-step cells: drop-ins for ``torch.nn.RNNCell``, ``LSTMCell`` and ``GRUCell``.

Each runs one step of the same step function the layers use
(:mod:`gatedrnn.cells`), with the same parameter names without the ``_l{k}`` suffix.
Input (B, I) or unbatched (I,); ``hx`` None (zeros), (B, H) / (H,), or for the LSTM a
tuple ``(h, c)``.
"""

from __future__ import annotations

from typing import ClassVar, Optional

import torch
from torch import Tensor

from .cells import (NONLINEARITIES, CellSpec, GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec,
                    MGUSpec, RNNSpec, State)
from .layers import SpecModule, autocast_active, autocast_forward
from .min_rnn import MinGRUSpec, MinLSTMSpec
from .parameters import register, state_sizes
from .validation import check_bool, check_float, check_hx, check_input, check_optional_clip, check_sizes


class CellBase(SpecModule):
    """One step of a cell; subclasses name the cell and its options."""

    #: The drop-ins of torch.nn's cells accept what torch.nn accepts: zero input and
    #: hidden sizes (an empty state); the other cells keep sizes >= 1.
    torch_nn_ranges: ClassVar[bool] = False
    #: Under autocast, return the autocast dtype as torch.nn's RNNCell does; the others
    #: return the input's dtype (as torch.nn's LSTMCell and GRUCell).
    autocast_lowers: ClassVar[bool] = False

    def __init__(self, spec: CellSpec, input_size: int, hidden_size: int, bias: bool = True,
                 proj_size: int = 0, peepholes: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        self.input_size, self.hidden_size, self.proj_size = check_sizes(
            input_size, hidden_size, proj_size, minimum=0 if self.torch_nn_ranges else 1)
        self.bias = check_bool("bias", bias)
        self.peepholes = check_bool("peepholes", peepholes)
        shapes = spec.parameter_shapes(self.input_size, self.hidden_size, bias=self.bias,
                                       proj_size=self.proj_size, peepholes=self.peepholes)
        register(self, shapes, "", {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The cell's initialisation, as the layers' (see
        :meth:`~gatedrnn.cells.CellSpec.init_parameter_`)."""
        for name, parameter in self.named_parameters():
            self.spec.init_parameter_(name, parameter, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s

    def _step(self, input: Tensor, hx) -> State:
        """-> the new state, (B, ·) per element ((·) for unbatched input), in the
        parameters' dtype."""
        check_input("input", input, self.input_size, (1, 2), self.weight_ih, cell=True)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)  # (B, I)
        sizes = state_sizes(len(self.spec.state_names), self.hidden_size, self.proj_size)
        if hx is None:
            value = self.spec.initial_state
            state = tuple(x.new_zeros((x.size(0), size)) if value == 0 else x.new_full((x.size(0), size), value)
                          for size in sizes)
        else:
            shapes = [(x.size(0), size) if batched else (size,) for size in sizes]
            state = check_hx(hx, shapes, self.weight_ih, batched=batched, cell=True)
            state = state if batched else tuple(h.unsqueeze(0) for h in state)
        params = dict(self.named_parameters(recurse=False))
        inputs = {name: p for name, p in params.items() if name in self.spec.input_parameters}
        xw = self.spec.project_input(x, inputs)  # (B, G*H)
        weights = {name: p for name, p in params.items() if name not in inputs}
        new_state = self.spec.step(xw, state, weights)
        return new_state if batched else tuple(h.squeeze(0) for h in new_state)

    def forward(self, input: Tensor, hx=None):
        """``h'`` (``(h', c')`` for a cell with a cell state); see the cell's docstring."""
        if torch._C._is_any_autocast_enabled() and autocast_active(self.weight_ih):
            state = autocast_forward(self, self._step, input, hx)
        else:
            state = self._step(input, hx)
        return state[0] if len(state) == 1 else state


class RNNCell(CellBase):
    r"""Elman RNN cell, a drop-in for ``torch.nn.RNNCell``:
    :math:`h' = \mathrm{act}(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`.

    Example::

        >>> cell = RNNCell(10, 20, nonlinearity="relu")
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    torch_nn_ranges = True
    autocast_lowers = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(RNNSpec(nonlinearity), input_size, hidden_size, bias,
                         device=device, dtype=dtype)


class LSTMCell(CellBase):
    r"""LSTM cell, a drop-in for ``torch.nn.LSTMCell``, with the options of
    :class:`gatedrnn.LSTM` (``forget_bias``, ``peepholes``, ``cell_clip``, ``proj_size``,
    ``proj_clip``); equations in :func:`gatedrnn.cells.lstm_step`.

    Example::

        >>> cell = LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
    """

    torch_nn_ranges = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, *, forget_bias: float = 0.0, peepholes: bool = False,
                 cell_clip: Optional[float] = None, proj_size: int = 0,
                 proj_clip: Optional[float] = None) -> None:
        if proj_clip is not None and not proj_size:
            raise ValueError(f"proj_clip needs proj_size > 0, got proj_clip={proj_clip}, proj_size={proj_size}")
        spec = LSTMSpec(forget_bias=check_float("forget_bias", forget_bias),
                        cell_clip=check_optional_clip("cell_clip", cell_clip),
                        proj_clip=check_optional_clip("proj_clip", proj_clip))
        super().__init__(spec, input_size, hidden_size, bias, proj_size, peepholes,
                         device=device, dtype=dtype)


class GRUCell(CellBase):
    r"""GRU cell, a drop-in for ``torch.nn.GRUCell``, with ``reset_after`` (see
    :func:`gatedrnn.cells.gru_step`).

    Example::

        >>> cell = GRUCell(10, 20, reset_after=False)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    torch_nn_ranges = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, *, reset_after: bool = True) -> None:
        super().__init__(GRUSpec(reset_after=check_bool("reset_after", reset_after)), input_size, hidden_size, bias,
                         device=device, dtype=dtype)


class JANETCell(CellBase):
    r"""JANET cell: ``h1 = cell(x, h0)`` (see :func:`gatedrnn.cells.janet_step`).

    .. math:: c' = \sigma(s) \odot c + (1 - \sigma(s - \beta)) \odot \tanh(\tilde c),\quad h' = c'

    Example::

        >>> cell = JANETCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, *, beta: float = 1.0) -> None:
        super().__init__(JANETSpec(beta=check_float("beta", beta)), input_size, hidden_size,
                         bias, device=device, dtype=dtype)


class MGUCell(CellBase):
    r"""Minimal gated unit cell (see :func:`gatedrnn.cells.mgu_step`).

    .. math:: h' = (1 - f) \odot h + f \odot \tanh(W_{ih} x + b_{ih} + W_{hh} (f \odot h) + b_{hh})

    Example::

        >>> cell = MGUCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(MGUSpec(), input_size, hidden_size, bias, device=device, dtype=dtype)


class IndRNNCell(CellBase):
    r"""IndRNN cell, :math:`h' = \mathrm{act}(W_{ih} x + b_{ih} + u \odot h + b_{hh})`
    (see :class:`gatedrnn.IndRNN` for the options).

    Example::

        >>> cell = IndRNNCell(10, 20, max_steps=100)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "relu", device=None, dtype=None, *,
                 max_steps: Optional[int] = None, recurrent_max: Optional[float] = None) -> None:
        spec = IndRNNSpec.from_options(nonlinearity, max_steps, recurrent_max)
        super().__init__(spec, input_size, hidden_size, bias, device=device, dtype=dtype)


class LayerNormLSTMCell(CellBase):
    r"""Layer-normalised LSTM cell (see :class:`gatedrnn.LayerNormLSTM`).

    Example::

        >>> cell = LayerNormLSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, *, forget_bias: float = 0.0, eps: float = 1e-5) -> None:
        spec = LayerNormLSTMSpec(forget_bias=check_float("forget_bias", forget_bias),
                                 eps=check_optional_clip("eps", eps))
        super().__init__(spec, input_size, hidden_size, bias, device=device, dtype=dtype)


class MinGRUCell(CellBase):
    r"""One minGRU step (see :func:`min_gru_step`), with the parameters of one direction
    of :class:`MinGRU` without the suffix: ``weight_ih`` (2H, I), ``bias_ih`` (2H,).
    Input (B, I) or unbatched (I,); ``hx`` (B, H) / (H,), None meaning 0.5. Returns h'.

    Example::

        >>> cell, h = MinGRUCell(10, 20), None
        >>> for x_t in torch.randn(5, 3, 10):
        ...     h = cell(x_t, h)
        >>> h.shape
        torch.Size([3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(MinGRUSpec(), input_size, hidden_size, bias, device=device, dtype=dtype)


class MinLSTMCell(CellBase):
    r"""One minLSTM step (see :func:`min_lstm_step`), parameters as :class:`MinGRUCell`
    with three blocks (3H rows).

    Example::

        >>> MinLSTMCell(10, 20)(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(MinLSTMSpec(), input_size, hidden_size, bias, device=device, dtype=dtype)
