"""gatedrnn: gated recurrent networks for PyTorch, done properly.

Layers that are drop-ins for ``torch.nn.RNN/LSTM/GRU`` (plus JANET), single-step cells,
TensorFlow 1.x cells, initialisers and heads. See the README for the equations.
"""

from typing import List

from . import backends, cells, init
from . import inspect
from . import convert
from . import models
from .cell_modules import (GRUCell, IndRNNCell, JANETCell, LayerNormLSTMCell, LSTMCell, MGUCell, MinGRUCell,
                           MinLSTMCell, RNNCell)
from .heads import LastStep, MaxPool, MeanPool
from .layers import GRU, JANET, LSTM, MGU, RNN, IndRNN, LayerNormLSTM, MinGRU, MinLSTM
from .onnx_export import export_onnx

__version__ = "0.1.0"


def safe_globals() -> List[type]:
    """Every gatedrnn class a whole-model pickle (``torch.save(model)``) may hold: the
    layers, cells, heads, :class:`gatedrnn.convert.TimeReversed`, the models of
    :mod:`gatedrnn.models` and TensorFlow's cells of :mod:`gatedrnn.compat.tf`. A gatedrnn module pickles its cell spec as plain values,
    so nothing internal needs allowlisting; list torch.nn's classes of the model as
    usual.

    Example::

        >>> import torch, torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.GRU(3, 8, batch_first=True), gr.LastStep(batch_first=True),
        ...                       nn.Linear(8, 1))
        >>> torch.save(model, "model.pt")
        >>> with torch.serialization.safe_globals([nn.Sequential, nn.Linear, *gr.safe_globals()]):
        ...     model = torch.load("model.pt", weights_only=True)

    A TensorFlow cell pickles a tanh or relu activation by name; any other activation
    function is pickled as itself and must be allowlisted too.
    """
    from .compat import tf

    return [RNN, LSTM, GRU, JANET, MGU, IndRNN, LayerNormLSTM, MinGRU, MinLSTM,
            RNNCell, LSTMCell, GRUCell, JANETCell, MGUCell, IndRNNCell, LayerNormLSTMCell, MinGRUCell, MinLSTMCell,
            LastStep, MeanPool, MaxPool, convert.TimeReversed,
            models.RecurrentModel, models.LanguageModel, models.TransformerModel, models.SinusoidalPositions,
            tf.BasicRNNCell, tf.BasicLSTMCell, tf.LSTMCell, tf.GRUCell]


__all__ = [
    "RNN", "LSTM", "GRU", "JANET", "MGU", "IndRNN", "LayerNormLSTM",
    "RNNCell", "LSTMCell", "GRUCell", "JANETCell", "MGUCell", "IndRNNCell", "LayerNormLSTMCell",
    "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell",
    "LastStep", "MeanPool", "MaxPool",
    "export_onnx", "safe_globals",
    "backends", "cells", "convert", "init", "inspect", "models",
]
