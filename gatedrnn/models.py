r"""Models for the tasks: a recurrent stack with a head and a linear read-out, and a
small causal Transformer baseline with the same interface.

Both take x (B, T, I) and return (B, C) — or (B, T, C) with ``per_step=True`` (a
prediction at every step, as the copy task needs).

:func:`build` is what ``gatedrnn train --cell C`` uses::

    >>> import torch
    >>> from gatedrnn.models import build
    >>> model = build("janet", input_size=1, output_size=10, hidden=64, t_max=40)
    >>> model(torch.randn(8, 40, 1)).shape
    torch.Size([8, 10])
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .heads import LastStep, MeanPool
from .init import chrono_
from .layers import GRU, JANET, LSTM, MGU, RNN, IndRNN, LayerNormLSTM, MinGRU, MinLSTM

__all__ = ["CELLS", "HEADS", "REGULARISED_CELLS", "RecurrentModel", "TransformerModel", "build"]

RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "janet": JANET, "mgu": MGU, "indrnn": IndRNN,
             "layernorm-lstm": LayerNormLSTM, "mingru": MinGRU, "minlstm": MinLSTM}
#: every ``--cell`` choice
CELLS = (*RECURRENT, "transformer")
#: the cells that take ``zoneout`` and ``recurrent_dropout``
REGULARISED_CELLS = ("lstm", "gru", "janet", "mgu", "layernorm-lstm")
HEADS = ("last", "mean")


def _head(head: str) -> nn.Module:
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    return LastStep(batch_first=True) if head == "last" else MeanPool(batch_first=True)


class RecurrentModel(nn.Module):
    """``layer -> head -> dropout -> Linear``: the classic sequence classifier/regressor.

    With ``per_step=True`` the head is skipped and the read-out applies at every step.

    Shapes: x (B, T, I) -> (B, C), or (B, T, C) with ``per_step``.
    """

    def __init__(self, layer: nn.Module, output_size: int, head: str = "last",
                 dropout: float = 0.0, per_step: bool = False) -> None:
        super().__init__()
        self.recurrent = layer
        self.head = None if per_step else _head(head)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(layer.output_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.recurrent(x)  # (B, T, H)
        features = output if self.head is None else self.head(output)  # (B, T, H) or (B, H)
        return self.readout(self.dropout(features))


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal position encoding of Vaswani et al. (2017) to (B, T, D)."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)  # (T, 1)
        frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("table", table, persistent=False)  # (T, D)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.table[: x.size(1)]


class TransformerModel(nn.Module):
    """A small causal Transformer encoder: the baseline recurrent cells are compared with.

    ``Linear(I, D) -> + sinusoidal positions -> TransformerEncoder (pre-norm, causal
    mask, 4 heads, feed-forward 2D) -> LayerNorm -> head -> Linear(D, C)``, D =
    ``hidden``. The causal mask makes step t see steps <= t only, like a recurrent
    layer, so the last-step head has seen the whole sequence and nothing else differs.

    Shapes: x (B, T, I) -> (B, C), or (B, T, C) with ``per_step``.
    """

    def __init__(self, input_size: int, output_size: int, hidden: int = 64, layers: int = 2,
                 heads: int = 4, head: str = "last", dropout: float = 0.0, max_len: int = 1024,
                 per_step: bool = False) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden must be a multiple of the {heads} attention heads, got {hidden}")
        self.embed = nn.Linear(input_size, hidden)
        self.positions = SinusoidalPositions(hidden, max_len)
        block = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = None if per_step else _head(head)
        self.readout = nn.Linear(hidden, output_size)

    def forward(self, x: Tensor) -> Tensor:
        steps = x.size(1)
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=x.device, dtype=x.dtype)
        z = self.encoder(self.positions(self.embed(x)), mask=mask, is_causal=True)  # (B, T, D)
        z = self.norm(z)
        return self.readout(z if self.head is None else self.head(z))


def build(cell: str, input_size: int, output_size: int, hidden: int = 128, layers: int = 1,
          head: str = "last", dropout: float = 0.0, per_step: bool = False,
          t_max: Optional[int] = None, chrono: bool = False, backend: str = "auto",
          zoneout: float = 0.0, recurrent_dropout: float = 0.0) -> nn.Module:
    """The model ``gatedrnn train`` trains.

    Args:
        cell: one of :data:`CELLS`.
        hidden, layers: width and depth (for the Transformer: model width and blocks).
        head: ``last`` (the last step's output) or ``mean`` (mean over time).
        dropout: between recurrent layers and before the read-out (Transformer: inside
            its blocks).
        t_max: the task's sequence length. JANET is always chrono-initialised with it,
            as in the paper; the LSTM too when ``chrono`` is set; IndRNN clips its
            recurrent weights to 2^(1/t_max) (``max_steps``).
        backend: the recurrent layers' backend (``auto`` picks the fastest).
        zoneout, recurrent_dropout: the layer options of :data:`REGULARISED_CELLS`
            (training mode only).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    if cell == "transformer":
        return TransformerModel(input_size, output_size, hidden=hidden, layers=layers, head=head,
                                dropout=dropout, max_len=max(t_max or 0, 1024), per_step=per_step)
    if chrono and cell not in ("lstm", "janet"):
        raise ValueError(f"chrono initialisation applies to lstm and janet, not {cell}")
    options = {"backend": backend} if cell not in ("mingru", "minlstm") else {}  # those run a scan
    if cell == "indrnn":  # the paper's clip for a ReLU unit over the task's length
        options["max_steps"] = t_max
    if zoneout or recurrent_dropout:
        if cell not in REGULARISED_CELLS:
            raise ValueError(f"zoneout and recurrent_dropout apply to {', '.join(REGULARISED_CELLS)}, not {cell}")
        options.update(zoneout=zoneout, recurrent_dropout=recurrent_dropout)
    layer = RECURRENT[cell](input_size, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0, **options)
    if cell == "janet" or chrono:
        if t_max is None or t_max < 3:
            raise ValueError(f"chrono initialisation needs t_max >= 3 (the sequence length), got {t_max}")
        chrono_(layer, t_max)
    return RecurrentModel(layer, output_size, head=head, dropout=dropout, per_step=per_step)
