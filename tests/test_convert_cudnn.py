"""gatedrnn.convert.from_cudnn / to_cudnn against an independent NumPy transcription of
cuDNN's RNN equations (per-gate W, R, bW, bR; LSTM i, f, g, o; GRU r, z, n with the
reset applied after the recurrent matmul), exact round trips and the errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import gatedrnn as gr
from gatedrnn.convert import CUDNN_KINDS, from_cudnn, from_tf1, to_cudnn

I, H, B, T = 5, 4, 3, 6


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_cudnn_direction(kind, w, b, x, h):
    """One layer, one direction, float64: w = [W_k..., R_k...], b = [bW_k..., bR_k...]."""
    g = CUDNN_KINDS[kind]
    W, R = w[:g], w[g:]
    bW, bR = (b[:g], b[g:]) if b is not None else ([0.0] * g, [0.0] * g)
    c = np.zeros_like(h)
    out = []
    for x_t in x:
        pre = [x_t @ W[k].T + bW[k] for k in range(g)]
        rec = [h @ R[k].T + bR[k] for k in range(g)]
        if kind == "lstm":
            i, f, gg, o = (pre[k] + rec[k] for k in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
            h = sigmoid(o) * np.tanh(c)
        elif kind == "gru":
            r = sigmoid(pre[0] + rec[0])
            z = sigmoid(pre[1] + rec[1])
            n = np.tanh(pre[2] + r * rec[2])
            h = (1 - z) * n + z * h
        else:
            act = np.tanh if kind == "rnn_tanh" else (lambda v: np.maximum(v, 0.0))
            h = act(pre[0] + rec[0])
        out.append(h)
    return np.stack(out), h, c


def np_cudnn(kind, weights, biases, x, num_layers, num_directions):
    """The stack: (T, B, D*H) output and the final h (and c) per layer and direction."""
    per = 2 * CUDNN_KINDS[kind]
    hs, cs = [], []
    for k in range(num_layers):
        outs = []
        for d in range(num_directions):
            first = (k * num_directions + d) * per
            w = [a.reshape(H, -1).astype(np.float64) for a in weights[first:first + per]]
            b = None if biases is None else [a.astype(np.float64) for a in biases[first:first + per]]
            xs = x[::-1] if d == 1 else x
            out, h, c = np_cudnn_direction(kind, w, b, xs, np.zeros((x.shape[1], H)))
            outs.append(out[::-1] if d == 1 else out)
            hs.append(h)
            cs.append(c)
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(hs), np.stack(cs)


def cudnn_params(kind, rng, num_layers=1, num_directions=1, flat=False, bias=True):
    g = CUDNN_KINDS[kind]
    weights, biases = [], []
    for k in range(num_layers):
        size = I if k == 0 else num_directions * H
        for _ in range(num_directions):
            mats = [rng.uniform(-0.5, 0.5, (H, size)) for _ in range(g)]
            mats += [rng.uniform(-0.5, 0.5, (H, H)) for _ in range(g)]
            weights += [m.astype(np.float32).reshape(-1) if flat else m.astype(np.float32) for m in mats]
            biases += [rng.uniform(-0.5, 0.5, H).astype(np.float32) for _ in range(2 * g)]
    return weights, (biases if bias else None)


@pytest.mark.parametrize("kind", sorted(CUDNN_KINDS))
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)],
                         ids=["1layer", "2layers", "2layers-bidir"])
@pytest.mark.parametrize("flat", [False, True], ids=["matrices", "flat"])
def test_from_cudnn_matches_numpy_cudnn(kind, num_layers, bidirectional, flat):
    rng = np.random.default_rng(0)
    d = 2 if bidirectional else 1
    weights, biases = cudnn_params(kind, rng, num_layers, d, flat=flat)
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    layer = from_cudnn(kind, weights, biases, I, H, num_layers=num_layers,
                       bidirectional=bidirectional)
    assert type(layer) is {"lstm": gr.LSTM, "gru": gr.GRU}.get(kind, gr.RNN)
    assert not layer.batch_first and layer.num_layers == num_layers
    out, state = layer(torch.from_numpy(x))
    expected, h_n, c_n = np_cudnn(kind, weights, biases, x.astype(np.float64), num_layers, d)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-5)
    if kind == "lstm":
        assert layer.forget_bias == 0.0  # cuDNN has no run-time forget bias
        np.testing.assert_allclose(state[0].detach().numpy(), h_n, rtol=0, atol=1e-5)
        np.testing.assert_allclose(state[1].detach().numpy(), c_n, rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(state.detach().numpy(), h_n, rtol=0, atol=1e-5)
    if kind == "gru":
        assert layer.reset_after


def test_from_cudnn_without_biases_and_batch_first():
    rng = np.random.default_rng(1)
    weights, _ = cudnn_params("gru", rng)
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    layer = from_cudnn("gru", weights, None, I, H, batch_first=True)
    assert not layer.bias and layer.batch_first
    out, _ = layer(torch.from_numpy(x).transpose(0, 1))
    expected, _, _ = np_cudnn("gru", weights, None, x.astype(np.float64), 1, 1)
    np.testing.assert_allclose(out.transpose(0, 1).detach().numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: gr.LSTM(I, H, num_layers=2, bidirectional=True),
    lambda: gr.GRU(I, H, num_layers=2),
    lambda: gr.RNN(I, H, nonlinearity="relu", bidirectional=True),
    lambda: gr.LSTM(I, H, bias=False),
], ids=["lstm-2-bidir", "gru-2", "rnn-relu-bidir", "lstm-nobias"])
def test_cudnn_round_trip_is_exact(make):
    layer = make()
    back = from_cudnn(**to_cudnn(layer))
    assert type(back) is type(layer)
    sa, sb = layer.state_dict(), back.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    rng = np.random.default_rng(2)
    weights, biases = cudnn_params("lstm", rng)
    again = to_cudnn(from_cudnn("lstm", weights, biases, I, H))
    for a, b in zip(again["weights"] + again["biases"], weights + biases):
        assert a.dtype == np.float32 and np.array_equal(a, b)


def test_to_cudnn_folds_forget_bias_into_the_recurrent_forget_bias():
    """forget_bias is run-time in gatedrnn and absent in cuDNN: to_cudnn folds it (exact);
    from_cudnn gives forget_bias = 0, the rule for cuDNN-trained TF checkpoints."""
    torch.manual_seed(0)
    for bias in (True, False):
        layer = gr.LSTM(I, H, forget_bias=1.0, bias=bias)
        c = to_cudnn(layer)
        assert c["biases"] is not None
        back = from_cudnn(**c)
        assert back.forget_bias == 0.0
        x = torch.randn(T, B, I)
        torch.testing.assert_close(back(x)[0], layer(x)[0], rtol=0, atol=1e-6)


def test_cudnn_checkpoint_in_tf1_cell_needs_forget_bias_zero():
    """The same cuDNN weights through from_tf1 match only with forget_bias=0.0."""
    rng = np.random.default_rng(3)
    weights, biases = cudnn_params("lstm", rng)
    layer = from_cudnn("lstm", weights, biases, I, H)
    v_w = [np.concatenate([weights[k].T, weights[4 + k].T]) for k in range(4)]  # (I+H, H) i,f,g,o
    v_b = [biases[k] + biases[4 + k] for k in range(4)]
    variables = {"kernel": np.concatenate([v_w[0], v_w[2], v_w[1], v_w[3]], axis=1),  # i, j, f, o
                 "bias": np.concatenate([v_b[0], v_b[2], v_b[1], v_b[3]])}
    x = torch.from_numpy(rng.uniform(-1, 1, (T, B, I)).astype(np.float32))
    right = from_tf1("basic_lstm", variables, I, forget_bias=0.0)
    wrong = from_tf1("basic_lstm", variables, I)  # TF's default forget_bias=1.0
    torch.testing.assert_close(right(x)[0], layer(x)[0], rtol=0, atol=1e-5)
    assert (wrong(x)[0] - layer(x)[0]).abs().max() > 1e-2


def E(msg):
    return re.escape(msg)


@pytest.mark.parametrize("args,kw,match", [
    (("lstmp", [], [], I, H), {}, "kind must be one of"),
    (("gru", [np.zeros((H, I))] * 5, None, I, H), {}, "weights must hold num_layers * directions * 2 * gates = 1 * 1 * 2 * 3 = 6 arrays for kind='gru', got 5"),
    (("rnn_tanh", [np.zeros((H, I)), np.zeros((H, H))], [np.zeros(H)], I, H), {}, "biases must hold"),
    (("rnn_tanh", [np.zeros((H, I + 1)), np.zeros((H, H))], None, I, H), {}, f"weights[0] must have shape {(H, I)} or {(H * I,)}, got {(H, I + 1)}"),
    (("rnn_tanh", [np.zeros((H, I)), np.zeros((H, H))], [np.zeros(H), np.zeros(H + 1)], I, H), {}, f"biases[1] must have shape {(H,)}, got {(H + 1,)}"),
    (("rnn_tanh", [np.zeros((H, I)), np.zeros((H, H))] * 2, None, I, H), {"num_layers": 2}, f"weights[2] must have shape {(H, H)}"),
])
def test_from_cudnn_errors(args, kw, match):
    with pytest.raises(ValueError, match=E(match)):
        from_cudnn(*args, **kw)


@pytest.mark.parametrize("layer,match", [
    (gr.LSTM(I, H, peepholes=True), "cuDNN's LSTM has no peepholes"),
    (gr.LSTM(I, H, cell_clip=3.0), "cuDNN's RNN has no cell_clip: needs cell_clip=None, got cell_clip=3.0"),
    (gr.LSTM(I, H, proj_size=2), "cuDNN's RNN has no proj_size"),
    (gr.GRU(I, H, reset_after=False), "needs reset_after=True, got reset_after=False"),
])
def test_to_cudnn_errors(layer, match):
    with pytest.raises(ValueError, match=E(match)):
        to_cudnn(layer)
    with pytest.raises(TypeError, match="got JANET"):
        to_cudnn(gr.JANET(I, H))
