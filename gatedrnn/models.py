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
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import LastStep, MeanPool
from .init import chrono_, forget_bias_
from .layers import GRU, JANET, LSTM, MGU, RNN, IndRNN, LayerNormLSTM, MinGRU, MinLSTM

__all__ = ["CELLS", "HEADS", "REGULARISED_CELLS", "WEIGHT_INITS", "RecurrentModel", "TransformerModel",
           "build", "glorot_", "LanguageModel", "build_language_model"]

RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "janet": JANET, "mgu": MGU, "indrnn": IndRNN,
             "layernorm-lstm": LayerNormLSTM, "mingru": MinGRU, "minlstm": MinLSTM}
#: every ``--cell`` choice
CELLS = (*RECURRENT, "transformer")
#: the cells that take ``zoneout`` and ``recurrent_dropout``
REGULARISED_CELLS = ("lstm", "gru", "janet", "mgu", "layernorm-lstm")
HEADS = ("last", "mean")
#: ``torch``: each module's own initialisation; ``glorot``: TensorFlow's defaults (:func:`glorot_`)
WEIGHT_INITS = ("torch", "glorot")


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


def glorot_(module: nn.Module) -> nn.Module:
    r"""TensorFlow's default initialisation, in place: every weight matrix Glorot-uniform,
    every bias 0.

    Each parameter of ``module`` with ``bias`` in its name is set to 0; each other
    parameter of two dimensions, of shape (fan_out, fan_in) as PyTorch stores it, is
    drawn from :math:`\mathcal U(-a, a)`, :math:`a = \sqrt{6 / (\text{fan\_in} +
    \text{fan\_out})}` (``torch.nn.init.xavier_uniform_``). A recurrent layer's stacked
    ``weight_ih_l{k}`` (G*H, I) and ``weight_hh_l{k}`` (G*H, H) so get the distribution
    that ``tf.get_variable`` gives TensorFlow's stacked kernels (I, G*H) and (H, G*H).
    One-dimensional weights (layer-norm gains, IndRNN's recurrent vector) are left as
    they are.

    Example::

        >>> import gatedrnn as gr
        >>> janet = glorot_(gr.JANET(1, 128))
        >>> float(janet.weight_hh_l0.abs().max()) <= (6 / (128 + 256)) ** 0.5
        True
    """
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "bias" in name:
                parameter.zero_()
            elif parameter.dim() == 2:
                nn.init.xavier_uniform_(parameter)
    return module


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
          zoneout: float = 0.0, recurrent_dropout: float = 0.0, output_dropout: Optional[float] = None,
          weight_init: str = "torch", forget_bias_init: Optional[float] = None,
          chrono_t_max: Optional[float] = None) -> nn.Module:
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
        output_dropout: dropout before the read-out only; ``None``: ``dropout``.
        weight_init: ``torch`` (each module's own) or ``glorot`` (:func:`glorot_` on the
            whole model, before the bias initialisers below).
        forget_bias_init: the LSTM's forget-gate bias is initialised to this value
            (:func:`gatedrnn.init.forget_bias_`).
        chrono_t_max: the ``t_max`` of chrono initialisation; ``None``: ``t_max``.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {weight_init!r}")
    initialise = glorot_ if weight_init == "glorot" else (lambda module: module)
    if cell == "transformer":
        if output_dropout:
            raise ValueError(f"output_dropout applies to the recurrent models, not the transformer "
                             f"(got {output_dropout})")
        return initialise(TransformerModel(input_size, output_size, hidden=hidden, layers=layers, head=head,
                                           dropout=dropout, max_len=max(t_max or 0, 1024), per_step=per_step))
    if chrono and cell not in ("lstm", "janet"):
        raise ValueError(f"chrono initialisation applies to lstm and janet, not {cell}")
    chrono = chrono or cell == "janet"
    if forget_bias_init is not None and (cell != "lstm" or chrono):
        raise ValueError(f"forget_bias_init applies to the lstm without chrono initialisation "
                         f"(got cell {cell!r}, chrono {chrono})")
    options = {"backend": backend} if cell not in ("mingru", "minlstm") else {}  # those run a scan
    if cell == "indrnn":  # the paper's clip for a ReLU unit over the task's length
        options["max_steps"] = t_max
    if zoneout or recurrent_dropout:
        if cell not in REGULARISED_CELLS:
            raise ValueError(f"zoneout and recurrent_dropout apply to {', '.join(REGULARISED_CELLS)}, not {cell}")
        options.update(zoneout=zoneout, recurrent_dropout=recurrent_dropout)
    layer = initialise(RECURRENT[cell](input_size, hidden, num_layers=layers, batch_first=True,
                                       dropout=dropout if layers > 1 else 0.0, **options))
    if chrono:
        chrono_t_max = t_max if chrono_t_max is None else chrono_t_max
        if chrono_t_max is None or chrono_t_max < 3:
            raise ValueError(f"chrono initialisation needs t_max >= 3 (the sequence length), got {chrono_t_max}")
        chrono_(layer, chrono_t_max)
    if forget_bias_init is not None:
        forget_bias_(layer, forget_bias_init)
    model = RecurrentModel(layer, output_size, head=head, per_step=per_step,
                           dropout=dropout if output_dropout is None else output_dropout)
    initialise(model.readout)
    return model


#: a recurrent layer's state: h (L*D, B, H), or (h, c) for the LSTM
LayerState = Union[Tensor, Tuple[Tensor, ...]]


class LanguageModel(RecurrentModel):
    """``one-hot ids -> recurrent layer -> dropout -> Linear``: a next-token model whose
    state can be carried from one chunk of a stream to the next (truncated BPTT).

    The inputs are one-hot, as in Karpathy, Johnson & Fei-Fei (2015): the layer's own
    ``W_ih`` is the embedding.

    Shapes: ``forward(ids (B, T) int64, state=None) -> (logits (B, T, V), state)``; the
    state is the layer's (``h_n`` (L, B, H), or ``(h_n, c_n)`` for the LSTM) and goes back
    in as ``state`` to continue the streams.

    Example::

        >>> import torch
        >>> from gatedrnn.models import build_language_model
        >>> model = build_language_model("lstm", vocabulary_size=98, hidden=32, t_max=50)
        >>> logits, state = model(torch.randint(0, 98, (4, 50)))
        >>> logits.shape, state[0].shape
        (torch.Size([4, 50, 98]), torch.Size([1, 4, 32]))
        >>> logits, state = model(torch.randint(0, 98, (4, 50)), state)  # the next chunk
    """

    def __init__(self, layer: nn.Module, vocabulary_size: int, dropout: float = 0.0) -> None:
        super().__init__(layer, vocabulary_size, dropout=dropout, per_step=True)
        self.vocabulary_size = vocabulary_size

    def forward(self, ids: Tensor, state: Optional[LayerState] = None) -> Tuple[Tensor, LayerState]:
        if ids.dim() != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids must be (B, T) int64 token ids, got {tuple(ids.shape)} {ids.dtype}")
        x = F.one_hot(ids, self.vocabulary_size).to(self.readout.weight.dtype)  # (B, T, V)
        output, state = self.recurrent(x, state)  # (B, T, H)
        return self.readout(self.dropout(output)), state


def build_language_model(cell: str, vocabulary_size: int, hidden: int = 128, layers: int = 1,
                         dropout: float = 0.0, t_max: Optional[int] = None, **options) -> LanguageModel:
    """The :class:`LanguageModel` of ``cell``: its recurrent layer is the one :func:`build`
    makes for the cell (the same options and initialisation; JANET chrono-initialised with
    ``t_max``, the truncation length), fed one-hot ids of ``vocabulary_size`` tokens.

    ``options`` are :func:`build`'s other keyword arguments (``chrono``, ``backend``,
    ``zoneout``, ``recurrent_dropout``, ``output_dropout``, ``weight_init``, ...), applied
    as there to the layer and the read-out. Every recurrent cell carries its state; the
    Transformer cannot, and raises ``ValueError``.
    """
    if cell == "transformer":
        raise ValueError("cell transformer has no recurrent state to carry from one chunk to the next "
                         "(truncated backpropagation through time); choose one of "
                         f"{', '.join(RECURRENT)}")
    built = build(cell, vocabulary_size, vocabulary_size, hidden=hidden, layers=layers, dropout=dropout,
                  per_step=True, t_max=t_max, **options)
    model = LanguageModel(built.recurrent, vocabulary_size, dropout=built.dropout.p)
    model.readout = built.readout  # initialised as build() does it
    return model
