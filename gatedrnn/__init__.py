"""gatedrnn: gated recurrent networks for PyTorch, done properly.

Layers that are drop-ins for ``torch.nn.RNN/LSTM/GRU`` (plus JANET), single-step cells,
TensorFlow 1.x cells, initialisers and heads. See the README for the equations.
"""

from . import backends, cells, init
from . import inspect
from . import convert
from .cell_modules import (GRUCell, IndRNNCell, JANETCell, LayerNormLSTMCell, LSTMCell, MGUCell, MinGRUCell,
                           MinLSTMCell, RNNCell)
from .heads import LastStep, MaxPool, MeanPool
from .layers import GRU, JANET, LSTM, MGU, RNN, IndRNN, LayerNormLSTM, MinGRU, MinLSTM
from .onnx_export import export_onnx

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "JANET", "MGU", "IndRNN", "LayerNormLSTM",
    "RNNCell", "LSTMCell", "GRUCell", "JANETCell", "MGUCell", "IndRNNCell", "LayerNormLSTMCell",
    "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell",
    "LastStep", "MeanPool", "MaxPool",
    "export_onnx",
    "backends", "cells", "convert", "init", "inspect",
]
