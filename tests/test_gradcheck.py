"""torch.autograd.gradcheck (float64, finite differences) for every layer and cell,
with respect to the input, the initial state and every parameter."""

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr

I, H, T, B = 3, 4, 5, 2

LAYERS = {
    "rnn_tanh": lambda: gr.RNN(I, H, num_layers=2, bidirectional=True),
    "rnn_relu": lambda: gr.RNN(I, H, nonlinearity="relu"),
    "lstm": lambda: gr.LSTM(I, H, num_layers=2, bidirectional=True),
    "lstm_tf_extras": lambda: gr.LSTM(I, H, bidirectional=True, proj_size=2, forget_bias=1.0,
                                      peepholes=True, cell_clip=0.6, proj_clip=0.3),
    "gru_reset_after": lambda: gr.GRU(I, H, num_layers=2, bidirectional=True),
    "gru_reset_before": lambda: gr.GRU(I, H, bidirectional=True, reset_after=False),
    "janet": lambda: gr.JANET(I, H, num_layers=2, bidirectional=True),
    "janet_beta0_nobias": lambda: gr.JANET(I, H, beta=0.0, bias=False),
}


def state_for(layer, batch):
    layers = layer.num_layers * layer.num_directions
    h0 = torch.randn(layers, batch, layer.real_hidden_size, dtype=torch.double, requires_grad=True)
    if isinstance(layer, gr.LSTM):
        return (h0, torch.randn(layers, batch, H, dtype=torch.double, requires_grad=True))
    return (h0,)


def check_layer(layer, make_input, x, hx):
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in layer.parameters()]

    def fn(x, *rest):
        state = rest[: len(hx)]
        values = dict(zip(names, rest[len(hx):]))
        output, final = functional_call(layer, values, (make_input(x), state if len(state) > 1 else state[0]))
        out = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
        final = final if isinstance(final, tuple) else (final,)
        return (out,) + final

    assert torch.autograd.gradcheck(fn, (x, *hx, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_gradcheck_layer(name):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    x = torch.randn(T, B, I, dtype=torch.double, requires_grad=True)
    check_layer(layer, lambda x: x, x, state_for(layer, B))


@pytest.mark.parametrize("name", ["lstm_tf_extras", "gru_reset_before", "janet"])
def test_gradcheck_layer_packed(name):
    torch.manual_seed(1)
    layer = LAYERS[name]().double()
    lengths = torch.tensor([2, 5, 3])
    x = torch.randn(T, len(lengths), I, dtype=torch.double, requires_grad=True)
    check_layer(layer, lambda x: pack_padded_sequence(x, lengths, enforce_sorted=False), x,
                state_for(layer, len(lengths)))


CELLS = {
    "rnn": lambda: gr.RNNCell(I, H),
    "lstm": lambda: gr.LSTMCell(I, H, peepholes=True, proj_size=2, forget_bias=0.5, cell_clip=0.7),
    "gru": lambda: gr.GRUCell(I, H),
    "gru_reset_before": lambda: gr.GRUCell(I, H, reset_after=False),
    "janet": lambda: gr.JANETCell(I, H, beta=2.0),
}


@pytest.mark.parametrize("name", CELLS)
def test_gradcheck_cell(name):
    torch.manual_seed(0)
    cell = CELLS[name]().double()
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in cell.parameters()]
    x = torch.randn(B, I, dtype=torch.double, requires_grad=True)
    h = torch.randn(B, cell.proj_size or H, dtype=torch.double, requires_grad=True)
    c = torch.randn(B, H, dtype=torch.double, requires_grad=True)
    lstm = isinstance(cell, gr.LSTMCell)

    def fn(x, h, c, *params):
        return functional_call(cell, dict(zip(names, params)), (x, (h, c) if lstm else h))

    assert torch.autograd.gradcheck(fn, (x, h, c, *params), eps=1e-6, atol=1e-5)
