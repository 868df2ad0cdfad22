"""gatedrnn layers loaded with a torch.nn module's state_dict give its outputs, final
states and gradients (input, initial state and every parameter)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr

# (id, gatedrnn class, torch class, constructor kwargs)
CELLS = [
    ("rnn_tanh", gr.RNN, nn.RNN, {}),
    ("rnn_relu", gr.RNN, nn.RNN, {"nonlinearity": "relu"}),
    ("lstm", gr.LSTM, nn.LSTM, {}),
    ("lstm_proj", gr.LSTM, nn.LSTM, {"proj_size": 3}),
    ("gru", gr.GRU, nn.GRU, {}),
]
I, H, T, B = 4, 5, 6, 3


def make_pair(ours, theirs, **kwargs):
    torch.manual_seed(0)
    reference = theirs(I, H, **kwargs).double()
    layer = ours(I, H, **kwargs).double()
    layer.load_state_dict(reference.state_dict())
    return layer, reference


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def initial_state(reference, batch_shape):
    """Random (h0[, c0]) of the shapes torch expects."""
    layers = reference.num_layers * (2 if reference.bidirectional else 1)
    proj = getattr(reference, "proj_size", 0)
    h0 = torch.randn(layers, *batch_shape, proj or H, dtype=torch.double, requires_grad=True)
    if isinstance(reference, nn.LSTM):
        return (h0, torch.randn(layers, *batch_shape, H, dtype=torch.double, requires_grad=True))
    return h0


def forward_backward(module, x, hx):
    """Output, final states and the gradients of input, hx and every parameter."""
    module.zero_grad()
    inputs = [x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x]
    for tensor in inputs + list(as_tuple(hx) if hx is not None else ()):
        tensor.grad = None
    output, state = module(x, hx)
    out = output.data if isinstance(output, nn.utils.rnn.PackedSequence) else output
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s * s).sum() for s in as_tuple(state))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["input"] = inputs[0].grad.clone()
    for k, tensor in enumerate(as_tuple(hx) if hx is not None else ()):
        grads[f"hx{k}"] = tensor.grad.clone()
    return out.detach(), [s.detach() for s in as_tuple(state)], grads


def assert_same(ours, theirs, atol=1e-10):
    out_o, state_o, grads_o = ours
    out_t, state_t, grads_t = theirs
    torch.testing.assert_close(out_o, out_t, atol=atol, rtol=0)
    assert len(state_o) == len(state_t)
    for a, b in zip(state_o, state_t):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
    assert grads_o.keys() == grads_t.keys()
    for name in grads_t:
        torch.testing.assert_close(grads_o[name], grads_t[name], atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("cell_id, ours, theirs, kwargs", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bt"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["hx0", "hx"])
def test_parity_dense(cell_id, ours, theirs, kwargs, num_layers, bidirectional, batch_first, with_hx):
    layer, reference = make_pair(ours, theirs, num_layers=num_layers, bidirectional=bidirectional,
                                 batch_first=batch_first, **kwargs)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(*shape, dtype=torch.double, requires_grad=True)
    hx = initial_state(reference, (B,)) if with_hx else None
    assert_same(forward_backward(layer, x, hx), forward_backward(reference, x, hx))


@pytest.mark.parametrize("cell_id, ours, theirs, kwargs", CELLS, ids=[c[0] for c in CELLS])
def test_parity_no_bias(cell_id, ours, theirs, kwargs):
    layer, reference = make_pair(ours, theirs, bias=False, num_layers=2, **kwargs)
    assert not any("bias" in name for name, _ in layer.named_parameters())
    x = torch.randn(T, B, I, dtype=torch.double, requires_grad=True)
    assert_same(forward_backward(layer, x, None), forward_backward(reference, x, None))


@pytest.mark.parametrize("cell_id, ours, theirs, kwargs", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_parity_packed(cell_id, ours, theirs, kwargs, bidirectional):
    layer, reference = make_pair(ours, theirs, num_layers=2, bidirectional=bidirectional,
                                 batch_first=True, **kwargs)
    lengths = torch.tensor([3, 6, 1, 4])  # unsorted: exercises sorted/unsorted indices
    x = torch.randn(len(lengths), T, I, dtype=torch.double)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    packed.data.requires_grad_(True)
    hx = initial_state(reference, (len(lengths),))
    ours_result = forward_backward(layer, packed, hx)
    theirs_result = forward_backward(reference, packed, hx)
    assert_same(ours_result, theirs_result)


@pytest.mark.parametrize("cell_id, ours, theirs, kwargs", CELLS, ids=[c[0] for c in CELLS])
def test_parity_unbatched(cell_id, ours, theirs, kwargs):
    layer, reference = make_pair(ours, theirs, num_layers=2, bidirectional=True, **kwargs)
    x = torch.randn(T, I, dtype=torch.double, requires_grad=True)
    hx = initial_state(reference, ())
    result = forward_backward(layer, x, hx)
    assert result[0].shape == (T, 2 * (kwargs.get("proj_size") or H))
    assert_same(result, forward_backward(reference, x, hx))


@pytest.mark.parametrize("cell_id, ours, theirs, kwargs", CELLS, ids=[c[0] for c in CELLS])
def test_parameter_names_and_shapes_match_torch(cell_id, ours, theirs, kwargs):
    layer, reference = make_pair(ours, theirs, num_layers=2, bidirectional=True, **kwargs)
    assert [(n, p.shape) for n, p in layer.named_parameters()] == \
        [(n, p.shape) for n, p in reference.named_parameters()]


def test_default_initialisation_is_torch_uniform():
    layer = gr.LSTM(3, 400)
    bound = 1 / 400 ** 0.5
    for p in layer.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.95 * bound  # not a narrower distribution


def test_dropout_between_layers():
    torch.manual_seed(0)
    layer = gr.GRU(I, H, num_layers=2, dropout=0.5).double()
    plain = gr.GRU(I, H, num_layers=2).double()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I, dtype=torch.double)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], plain(x)[0])  # identity at evaluation
    layer.train()
    assert not torch.allclose(layer(x)[0], plain(x)[0])
    # no dropout after the last layer: a 1-layer stack ignores it
    single = gr.GRU(I, H, num_layers=1).double()
    single.load_state_dict({k: v for k, v in layer.state_dict().items() if k.endswith("l0")})
    one = nn.GRU(I, H, num_layers=1).double()
    one.load_state_dict(single.state_dict())
    torch.testing.assert_close(single.train()(x)[0], one(x)[0])


@pytest.mark.parametrize("cell_cls, torch_cls, kwargs", [
    (gr.RNNCell, nn.RNNCell, {}), (gr.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    (gr.LSTMCell, nn.LSTMCell, {}), (gr.GRUCell, nn.GRUCell, {}),
    (gr.GRUCell, nn.GRUCell, {"bias": False}),
], ids=["rnn", "rnn_relu", "lstm", "gru", "gru_nobias"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_single_step_cells_match_torch(cell_cls, torch_cls, kwargs, batched):
    torch.manual_seed(0)
    reference = torch_cls(I, H, **kwargs).double()
    cell = cell_cls(I, H, **kwargs).double()
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(*((B,) if batched else ()), I, dtype=torch.double)
    h = torch.randn(*((B,) if batched else ()), H, dtype=torch.double)
    hx = (h, torch.randn_like(h)) if cell_cls is gr.LSTMCell else h
    for state in (None, hx):
        for a, b in zip(as_tuple(cell(x, state)), as_tuple(reference(x, state))):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
