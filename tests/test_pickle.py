"""Whole-model pickles: ``torch.save(model)`` of a model with gatedrnn layers loads with
``torch.load(weights_only=True)`` once the user allowlists the classes they used (as
PyTorch's word_language_model example does with torch.nn's), nothing internal; and
``gr.safe_globals()`` lists every gatedrnn class a model may pickle."""

import inspect
import io

import pytest
import torch
from torch import nn

import gatedrnn as gr
from gatedrnn import models
from gatedrnn.compat import tf


class RNNModel(nn.Module):
    """PyTorch's word_language_model RNNModel with gatedrnn's layer of the same name:
    encoder -> dropout -> recurrent layer -> dropout -> decoder."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(gr, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        return torch.log_softmax(self.decoder(self.drop(output)), dim=-1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        h = weight.new_zeros(self.nlayers, bsz, self.nhid)
        return (h, weight.new_zeros(self.nlayers, bsz, self.nhid)) if self.rnn_type == "LSTM" else h


def save_and_load(model, allowed):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(allowed):
        return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN", "JANET", "MinGRU"])
def test_word_language_model_checkpoint(rnn_type):
    """Train a step, torch.save(model), load it as the example does, continue: equal."""
    torch.manual_seed(0)
    model = RNNModel(rnn_type, ntoken=11, ninp=6, nhid=5, nlayers=2)
    data, targets = torch.randint(0, 11, (7, 3)), torch.randint(0, 11, (7, 3))
    output, _ = model(data, model.init_hidden(3))
    nn.functional.nll_loss(output.reshape(-1, 11), targets.reshape(-1)).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad

    allowed = [RNNModel, nn.Dropout, nn.Embedding, getattr(gr, rnn_type), nn.Linear]
    loaded = save_and_load(model, allowed)
    loaded.rnn.flatten_parameters()
    model.eval()
    loaded.eval()
    expected, expected_hidden = model(data, model.init_hidden(3))
    got, hidden = loaded(data, loaded.init_hidden(3))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(hidden, expected_hidden, rtol=0, atol=0)
    assert loaded.rnn.spec == model.rnn.spec and loaded.rnn.backend == model.rnn.backend


MODULES = {
    "lstm-options": lambda: gr.LSTM(3, 4, proj_size=2, peepholes=True, forget_bias=1.0, cell_clip=2.0),
    "gru-reset-before": lambda: gr.GRU(3, 4, reset_after=False, bidirectional=True),
    "indrnn": lambda: gr.IndRNN(3, 4, max_steps=10, nonlinearity="tanh"),
    "layernorm-lstm": lambda: gr.LayerNormLSTM(3, 4, eps=1e-3),
    "minlstm-scan": lambda: gr.MinLSTM(3, 4, mode="scan"),
    "janet-zoneout": lambda: gr.JANET(3, 4, beta=2.0, zoneout=0.1),
    "mgu-cell": lambda: gr.MGUCell(3, 4),
    "lstm-cell": lambda: gr.LSTMCell(3, 4, peepholes=True, forget_bias=0.5),
    "mingru-cell": lambda: gr.MinGRUCell(3, 4),
    "time-reversed": lambda: gr.convert.TimeReversed(gr.RNN(3, 4, nonlinearity="relu")),
    "tf-basic-lstm": lambda: tf.BasicLSTMCell(4, 3, forget_bias=0.5),
    "tf-lstm-peepholes-projection": lambda: tf.LSTMCell(4, 3, use_peepholes=True, cell_clip=1.0, num_proj=2),
    "tf-gru": lambda: tf.GRUCell(4, 3),
    "tf-basic-rnn-relu": lambda: tf.BasicRNNCell(4, 3, activation=torch.relu),
    "tf-basic-rnn-tanh-module": lambda: tf.BasicRNNCell(4, 3, activation=nn.Tanh()),
}
SINGLE_STEP = ("mgu-cell", "lstm-cell", "mingru-cell")


@pytest.mark.parametrize("name", MODULES)
def test_a_module_needs_only_its_own_classes(name):
    torch.manual_seed(0)
    module = MODULES[name]().eval()
    classes = [type(m) for m in module.modules()]
    loaded = save_and_load(module, classes)
    if name.startswith("tf-"):  # TF's call: (inputs, state) -> (output, new state)
        x = torch.randn(2, 3)
        calls = loaded(x, loaded.zero_state(2)), module(x, module.zero_state(2))
        assert loaded.activation is module.activation or type(loaded.activation) is type(module.activation)
    else:
        x = torch.randn(5, 2, 3) if name not in SINGLE_STEP else torch.randn(2, 3)
        calls = loaded(x), module(x)
    for got, expected in zip(*map(torch.utils._pytree.tree_leaves, calls)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert [type(m) for m in loaded.modules()] == classes
    assert getattr(loaded, "spec", None) == getattr(module, "spec", None)


def _public_module_classes():
    """Every nn.Module class gatedrnn offers: in the gr namespace, gr.convert,
    gatedrnn.models and gatedrnn.compat.tf."""
    found = set()
    for namespace in (gr, gr.convert, models, tf):
        for name, value in vars(namespace).items():
            if (inspect.isclass(value) and issubclass(value, nn.Module) and not name.startswith("_")
                    and value.__module__.startswith("gatedrnn") and not inspect.isabstract(value)):
                found.add(value)
    return found


def test_safe_globals_lists_every_class_a_model_may_pickle():
    listed = set(gr.safe_globals())
    bases = {gr.layers.RecurrentBase, gr.layers.SpecModule, gr.layers.MinimalRNN, gr.cell_modules.CellBase,
             gr.heads.SequenceHead, tf._LSTMBase}
    assert _public_module_classes() - bases <= listed
    assert all(cls.__module__.startswith("gatedrnn") for cls in listed)

    model = nn.ModuleList([models.build("lstm", 3, 2, hidden=4), models.build("transformer", 3, 2, hidden=8),
                           gr.convert.TimeReversed(gr.GRU(3, 4)), gr.MaxPool(), gr.MeanPool()])
    torch_classes = {type(m) for m in model.modules() if not type(m).__module__.startswith("gatedrnn")}
    torch_classes |= {nn.functional.relu}  # the Transformer's activation, torch.nn's own
    loaded = save_and_load(model, [*torch_classes, *gr.safe_globals()])
    x = torch.randn(2, 5, 3)
    model.eval()
    loaded.eval()
    torch.testing.assert_close(loaded[0](x), model[0](x), rtol=0, atol=0)
    torch.testing.assert_close(loaded[1](x), model[1](x), rtol=0, atol=0)
