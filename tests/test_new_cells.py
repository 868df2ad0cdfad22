"""MGU, IndRNN and the layer-normalised LSTM against independent NumPy transcriptions
of their papers' equations; their single-step cells, parameters, initialisation,
recorded gates and argument checks."""

import numpy as np
import pytest
import torch

import gatedrnn as gr
from gatedrnn.inspect import record


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def params(layer, k=0, suffix=""):
    """The layer's parameters of layer k as NumPy arrays, keyed without suffix."""
    tail = f"_l{k}{suffix}"
    return {name[: -len(tail)]: p.detach().numpy() for name, p in layer.named_parameters()
            if name.endswith(tail)}


def numpy_mgu(x, h, p):
    """Zhou et al. 2016, eq. (10): f gates both the forgetting and the candidate's view of h."""
    H = h.shape[-1]
    W, U, b, c = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    out = []
    for x_t in x:
        f = sigmoid(x_t @ W[:H].T + b[:H] + h @ U[:H].T + c[:H])
        cand = np.tanh(x_t @ W[H:].T + b[H:] + (f * h) @ U[H:].T + c[H:])
        h = (1 - f) * h + f * cand
        out.append(h)
    return np.stack(out), h


def numpy_indrnn(x, h, p, relu=True, recurrent_max=None):
    """Li et al. 2018, eq. (2): h_t = sigma(W x_t + u * h_{t-1} + b)."""
    u = p["weight_hh"] if recurrent_max is None else np.clip(p["weight_hh"], -recurrent_max, recurrent_max)
    out = []
    for x_t in x:
        a = x_t @ p["weight_ih"].T + p["bias_ih"] + u * h + p["bias_hh"]
        h = np.maximum(a, 0) if relu else np.tanh(a)
        out.append(h)
    return np.stack(out), h


def layer_norm_blocks(v, gain, blocks, eps=1e-5):
    B = v.shape[0]
    v = v.reshape(B, blocks, -1)
    normed = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps)
    return normed.reshape(B, -1) * gain


def numpy_layernorm_lstm(x, h, c, p):
    """Ba et al. 2016, eqs. (20)-(22), statistics per gate block."""
    H = h.shape[-1]
    out = []
    for x_t in x:
        a = (layer_norm_blocks(x_t @ p["weight_ih"].T, p["layernorm_ih_weight"], 4)
             + layer_norm_blocks(h @ p["weight_hh"].T, p["layernorm_hh_weight"], 4) + p["bias_hh"])
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(layer_norm_blocks(c, p["layernorm_c_weight"], 1) + p["layernorm_c_bias"])
        out.append(h)
    return np.stack(out), h, c


def randomise(layer):
    """Move every parameter off its initial value (gains 1, biases 0 would hide mistakes)."""
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_mgu_matches_numpy_two_layers(backend):
    torch.manual_seed(0)
    layer = randomise(gr.MGU(3, 6, num_layers=2, backend=backend).double())
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    h0 = torch.randn(2, 4, 6, dtype=torch.float64)
    output, h_n = layer(x, h0)
    seq, h_last0 = numpy_mgu(x.numpy(), h0[0].numpy(), params(layer, 0))
    seq, h_last1 = numpy_mgu(seq, h0[1].numpy(), params(layer, 1))
    np.testing.assert_allclose(output.detach().numpy(), seq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), np.stack([h_last0, h_last1]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nonlinearity, recurrent_max", [("relu", None), ("relu", 0.7), ("tanh", 0.7)])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_indrnn_matches_numpy(backend, nonlinearity, recurrent_max):
    torch.manual_seed(1)
    layer = gr.IndRNN(3, 6, nonlinearity=nonlinearity, recurrent_max=recurrent_max, backend=backend).double()
    randomise(layer)
    with torch.no_grad():
        layer.weight_hh_l0.uniform_(-1.2, 1.2)  # some beyond the clip
    x = torch.randn(11, 4, 3, dtype=torch.float64)
    h0 = torch.rand(1, 4, 6, dtype=torch.float64)
    output, h_n = layer(x, h0)
    seq, h_last = numpy_indrnn(x.numpy(), h0[0].numpy(), params(layer), nonlinearity == "relu", recurrent_max)
    np.testing.assert_allclose(output.detach().numpy(), seq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n[0].detach().numpy(), h_last, rtol=1e-12, atol=1e-12)


def test_layernorm_lstm_matches_numpy_bidirectional():
    torch.manual_seed(2)
    layer = randomise(gr.LayerNormLSTM(3, 5, bidirectional=True).double())
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    output, (h_n, c_n) = layer(x)
    zeros = np.zeros((2, 5))
    seq_f, h_f, c_f = numpy_layernorm_lstm(x.numpy(), zeros, zeros, params(layer))
    seq_b, h_b, c_b = numpy_layernorm_lstm(x.numpy()[::-1], zeros, zeros, params(layer, suffix="_reverse"))
    expected = np.concatenate([seq_f, seq_b[::-1]], axis=-1)
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c_n.detach().numpy(), np.stack([c_f, c_b]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), np.stack([h_f, h_b]), rtol=1e-10, atol=1e-12)


def test_layernorm_lstm_gradcheck():
    torch.manual_seed(3)
    layer = randomise(gr.LayerNormLSTM(2, 3).double())
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    params_ = list(layer.parameters())
    names = [n for n, _ in layer.named_parameters()]

    def fn(x, *ps):
        out = torch.func.functional_call(layer, dict(zip(names, ps)), (x,))
        return out[0]

    assert torch.autograd.gradcheck(fn, (x, *[p.detach().requires_grad_() for p in params_]))


@pytest.mark.parametrize("make_layer, make_cell", [
    (lambda: gr.MGU(3, 5), lambda: gr.MGUCell(3, 5)),
    (lambda: gr.IndRNN(3, 5, max_steps=10), lambda: gr.IndRNNCell(3, 5, max_steps=10)),
    (lambda: gr.LayerNormLSTM(3, 5, forget_bias=1.0), lambda: gr.LayerNormLSTMCell(3, 5, forget_bias=1.0)),
])
def test_cell_steps_equal_the_layer(make_layer, make_cell):
    torch.manual_seed(4)
    layer, cell = randomise(make_layer()).double(), make_cell().double()
    cell.load_state_dict({name[: -len("_l0")]: p for name, p in layer.state_dict().items()})
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    output, _ = layer(x)
    state = None
    for t in range(6):
        state = cell(x[t], state)
        h = state[0] if isinstance(state, tuple) else state
        torch.testing.assert_close(h, output[t], rtol=1e-12, atol=1e-12)


def test_parameter_names_and_shapes():
    assert {n: tuple(p.shape) for n, p in gr.MGU(3, 5).named_parameters()} == {
        "weight_ih_l0": (10, 3), "weight_hh_l0": (10, 5), "bias_ih_l0": (10,), "bias_hh_l0": (10,)}
    assert {n: tuple(p.shape) for n, p in gr.IndRNN(3, 5, bias=False).named_parameters()} == {
        "weight_ih_l0": (5, 3), "weight_hh_l0": (5,)}
    assert {n: tuple(p.shape) for n, p in gr.LayerNormLSTM(3, 5).named_parameters()} == {
        "weight_ih_l0": (20, 3), "weight_hh_l0": (20, 5), "bias_hh_l0": (20,),
        "layernorm_ih_weight_l0": (20,), "layernorm_hh_weight_l0": (20,),
        "layernorm_c_weight_l0": (5,), "layernorm_c_bias_l0": (5,)}


def test_initialisation_follows_the_papers():
    torch.manual_seed(5)
    indrnn = gr.IndRNN(3, 500, max_steps=100)
    u = indrnn.weight_hh_l0
    assert indrnn.recurrent_max == pytest.approx(2 ** (1 / 100))
    assert u.min() >= 0 and u.max() <= 1.0 and u.max() > 0.99  # U(0, 1): 2^(1/100) > 1
    assert torch.count_nonzero(indrnn.bias_ih_l0) == 0 and torch.count_nonzero(indrnn.bias_hh_l0) == 0
    clipped = gr.IndRNN(3, 500, recurrent_max=0.5).weight_hh_l0
    assert 0.49 < clipped.max() <= 0.5
    ln = gr.LayerNormLSTM(3, 5)
    for name in ("layernorm_ih_weight_l0", "layernorm_hh_weight_l0", "layernorm_c_weight_l0"):
        assert torch.equal(getattr(ln, name), torch.ones_like(getattr(ln, name)))
    assert torch.count_nonzero(ln.layernorm_c_bias_l0) == 0
    assert ln.weight_hh_l0.abs().max() <= 1 / 5 ** 0.5


def test_recorded_mgu_gates_satisfy_the_equation():
    torch.manual_seed(6)
    layer = gr.MGU(2, 4).double()
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    trace = record(layer, x)
    lt = trace.layers[0]
    f, cand, h = lt.gates["f"], lt.gates["h"], lt.hidden
    h_prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])
    torch.testing.assert_close(h, (1 - f) * h_prev + f * cand, rtol=1e-12, atol=1e-12)


def test_layernorm_lstm_records_its_cell_state():
    torch.manual_seed(7)
    layer = gr.LayerNormLSTM(2, 4).double()
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    lt = record(layer, x).layers[0]
    c_prev = torch.cat([torch.zeros_like(lt.cell[:1]), lt.cell[:-1]])
    torch.testing.assert_close(lt.cell, lt.gates["f"] * c_prev + lt.gates["i"] * lt.gates["g"],
                               rtol=1e-12, atol=1e-12)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="max_steps or recurrent_max"):
        gr.IndRNN(3, 5, max_steps=10, recurrent_max=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        gr.IndRNN(3, 5, max_steps=0)
    with pytest.raises(ValueError, match="recurrent_max"):
        gr.IndRNN(3, 5, recurrent_max=-1.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        gr.IndRNN(3, 5, nonlinearity="gelu")
    with pytest.raises(ValueError, match="eps"):
        gr.LayerNormLSTM(3, 5, eps=0.0)
    with pytest.raises(ValueError, match="backend 'torch' runs only LSTMs"):
        gr.LayerNormLSTM(3, 5, backend="torch")(torch.randn(2, 1, 3))
