"""gatedrnn.convert: Keras 3 (torch backend) layers and an independent NumPy
transcription of TensorFlow 1.x's cell equations as oracles, exact round trips and
every ValueError."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import gatedrnn as gr
from gatedrnn.convert import from_keras, from_tf1, to_keras, to_tf1
from helpers import randomize_

I, U, B, T = 5, 4, 3, 6

# Keras 3.15's torch backend calls np.array(tensor, copy=False) in convert_to_numpy.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def rand(rng, *shape, scale=0.5, dtype=np.float32):
    return rng.uniform(-scale, scale, shape).astype(dtype)


def run(layer, x):
    """-> output, [h_n[0], c_n[0]] (numpy) for any gatedrnn layer."""
    out, state = layer(torch.as_tensor(x))
    states = list(state) if isinstance(state, tuple) else [state]
    return out.detach().numpy(), [s[0].detach().numpy() for s in states]


def assert_params_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# -- Keras 3 ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "torch"
    return keras


def keras_run(keras, kind, weights, x, **kwargs):
    """Keras layer with ``weights`` on x (B, T, I) -> output, final states (numpy)."""
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
           "simple_rnn": keras.layers.SimpleRNN}[kind]
    layer = cls(weights[1].shape[0], return_sequences=True, return_state=True,
                use_bias=len(weights) == 3, **kwargs)
    layer.build((None,) + x.shape[1:])
    layer.set_weights(weights)
    outs = [keras.ops.convert_to_numpy(o) for o in layer(x)]
    return outs[0], outs[1:]


def keras_weights(kind, rng, reset_after=True, bias=True):
    g = {"lstm": 4, "gru": 3, "simple_rnn": 1}[kind]
    w = [rand(rng, I, g * U), rand(rng, U, g * U)]
    if bias:
        w.append(rand(rng, 2, g * U) if kind == "gru" and reset_after else rand(rng, g * U))
    return w


KERAS_CASES = [("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False}),
               ("simple_rnn", {})]


@pytest.mark.parametrize("kind,kw", KERAS_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_from_keras_matches_keras(keras, kind, kw, bias):
    rng = np.random.default_rng(0)
    weights = keras_weights(kind, rng, bias=bias, **kw)
    x = rand(rng, B, T, I, scale=1.0)
    expected_out, expected_states = keras_run(keras, kind, weights, x, **kw)
    layer = from_keras(kind, weights, **kw)
    assert layer.batch_first and layer.bias == bias
    assert type(layer) is {"lstm": gr.LSTM, "gru": gr.GRU, "simple_rnn": gr.RNN}[kind]
    if kind == "gru":
        assert layer.reset_after == kw["reset_after"]
    out, states = run(layer, x)
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=1e-5)
    assert len(states) == len(expected_states)  # LSTM: [h, c]; others: [h]
    for s, e in zip(states, expected_states):
        np.testing.assert_allclose(s, e, rtol=0, atol=1e-5)


def make_layer(kind, reset_after=True, **kw):
    if kind == "lstm":
        return gr.LSTM(I, U, batch_first=True, **kw)
    if kind == "gru":
        return gr.GRU(I, U, batch_first=True, reset_after=reset_after, **kw)
    return gr.RNN(I, U, batch_first=True, **kw)


@pytest.mark.parametrize("kind,kw", KERAS_CASES)
def test_to_keras_matches_keras(keras, kind, kw):
    """Nonzero bias_hh (and forget_bias) are folded into the Keras bias."""
    extra = {"forget_bias": 1.0} if kind == "lstm" else {}
    layer = randomize_(make_layer(kind, **kw, **extra), seed=3, scale=0.5)
    assert layer.bias_hh_l0.abs().min() > 0
    x = np.random.default_rng(1).uniform(-1, 1, (B, T, I)).astype(np.float32)
    expected_out, expected_states = run(layer, x)
    out, states = keras_run(keras, kind, to_keras(layer), x, **kw)
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=1e-5)
    for s, e in zip(states, expected_states):
        np.testing.assert_allclose(s, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind,kw", KERAS_CASES)
def test_keras_round_trips_are_exact(kind, kw):
    rng = np.random.default_rng(2)
    weights = keras_weights(kind, rng, **kw)
    back = to_keras(from_keras(kind, weights, **kw))
    assert len(back) == len(weights)
    for a, b in zip(back, weights):
        assert a.dtype == np.float32 and a.shape == b.shape and np.array_equal(a, b)

    layer = randomize_(make_layer(kind, **kw), seed=4, scale=0.5)
    if not (kind == "gru" and kw["reset_after"]):  # Keras has one bias: start with bias_hh = 0
        with torch.no_grad():
            layer.bias_hh_l0.zero_()
    assert_params_equal(from_keras(kind, to_keras(layer), **kw), layer)

    nobias = randomize_(make_layer(kind, bias=False, **kw), seed=5, scale=0.5)
    assert len(to_keras(nobias)) == 2
    assert_params_equal(from_keras(kind, to_keras(nobias), **kw), nobias)


def test_to_keras_gate_order_and_forget_bias():
    lstm = gr.LSTM(I, U, forget_bias=2.0)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.weight_ih_l0[U:2 * U] = 1.0  # f block
    kernel, _, bias = to_keras(lstm)
    assert np.all(kernel[:, U:2 * U] == 1.0) and np.count_nonzero(kernel) == I * U
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.full(U, 2.0), np.zeros(2 * U)])

    gru = gr.GRU(I, U)
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
        gru.weight_ih_l0[:U] = 1.0  # r block -> Keras's second block
    kernel = to_keras(gru)[0]
    assert np.all(kernel[:, U:2 * U] == 1.0) and np.count_nonzero(kernel) == I * U


def test_reset_before_gru_folds_the_recurrent_n_bias_exactly():
    gru = randomize_(gr.GRU(I, U, batch_first=True, reset_after=False, dtype=torch.float64), scale=0.5)
    back = from_keras("gru", to_keras(gru), reset_after=False).double()
    x = np.random.default_rng(0).normal(size=(B, T, I))
    np.testing.assert_allclose(run(back, x)[0], run(gru, x)[0], rtol=0, atol=1e-6)


# -- TensorFlow 1.x -----------------------------------------------------------------

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_tf1(kind, v, x, *, forget_bias=1.0, cell_clip=None, proj_clip=None, act=np.tanh):
    """TF1's cells in TF's variable layout run over x (T, B, I) from a zero state.
    -> outputs (T, B, ·), (h, c) (c None for RNN / GRU)."""
    batch = x.shape[1]
    if kind == "gru":
        h = np.zeros((batch, v["candidate/kernel"].shape[1]))
    elif kind == "basic_rnn":
        h = np.zeros((batch, v["kernel"].shape[1]))
    else:
        c = np.zeros((batch, v["kernel"].shape[1] // 4))
        h = np.zeros((batch, v["kernel"].shape[0] - x.shape[2]))
    outs = []
    for xt in x:
        if kind == "basic_rnn":
            h = act(np.concatenate([xt, h], 1) @ v["kernel"] + v["bias"])
        elif kind == "gru":
            r, u = np.split(sigmoid(np.concatenate([xt, h], 1) @ v["gates/kernel"]
                                    + v["gates/bias"]), 2, axis=1)
            cand = np.tanh(np.concatenate([xt, r * h], 1) @ v["candidate/kernel"]
                           + v["candidate/bias"])
            h = u * h + (1 - u) * cand
        else:
            i, j, f, o = np.split(np.concatenate([xt, h], 1) @ v["kernel"] + v["bias"], 4, axis=1)
            if "w_i_diag" in v:
                i, f = i + v["w_i_diag"] * c, f + v["w_f_diag"] * c
            c = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(j)
            if cell_clip is not None:
                c = np.clip(c, -cell_clip, cell_clip)
            if "w_o_diag" in v:
                o = o + v["w_o_diag"] * c
            h = sigmoid(o) * np.tanh(c)
            if "projection/kernel" in v:
                h = h @ v["projection/kernel"]
                if proj_clip is not None:
                    h = np.clip(h, -proj_clip, proj_clip)
        outs.append(h)
    return np.stack(outs), (h, None if kind in ("gru", "basic_rnn") else c)


def tf1_variables(kind, rng, peepholes=False, num_proj=None, scale=0.5):
    r = lambda *s: rand(rng, *s, scale=scale, dtype=np.float64)  # noqa: E731
    if kind == "gru":
        return {"gates/kernel": r(I + U, 2 * U), "gates/bias": r(2 * U),
                "candidate/kernel": r(I + U, U), "candidate/bias": r(U)}
    if kind == "basic_rnn":
        return {"kernel": r(I + U, U), "bias": r(U)}
    v = {"kernel": r(I + (num_proj or U), 4 * U), "bias": r(4 * U)}
    if peepholes:
        v.update(w_f_diag=r(U), w_i_diag=r(U), w_o_diag=r(U))
    if num_proj:
        v["projection/kernel"] = r(U, num_proj)
    return v


TF1_CASES = [
    ("basic_rnn", {}, {}),
    ("basic_rnn", {"activation": torch.relu}, {"act": lambda z: np.maximum(z, 0)}),
    ("basic_lstm", {}, {}),
    ("basic_lstm", {"forget_bias": 0.0}, {"forget_bias": 0.0}),
    ("lstm", {"forget_bias": 0.5}, {"forget_bias": 0.5}),
    ("lstm", {"cell_clip": 0.3, "proj_clip": 0.2, "tf": {"peepholes": True, "num_proj": 3}},
     {"cell_clip": 0.3, "proj_clip": 0.2}),
    ("lstm", {"tf": {"peepholes": True}}, {}),
    ("gru", {}, {}),
]


@pytest.mark.parametrize("kind,kwargs,np_kwargs", TF1_CASES)
def test_from_tf1_matches_numpy(kind, kwargs, np_kwargs):
    kwargs = dict(kwargs)
    rng = np.random.default_rng(0)
    v = tf1_variables(kind, rng, **kwargs.pop("tf", {}), scale=1.5)
    x = rng.normal(size=(T, B, I))
    expected, (h, c) = np_tf1(kind, v, x, **np_kwargs)
    layer = from_tf1(kind, v, I, **kwargs)
    assert not layer.batch_first and layer.weight_ih_l0.dtype == torch.float64
    if "cell_clip" in kwargs:  # the clips must actually bite
        assert np.abs(expected).max() == pytest.approx(kwargs["proj_clip"])
    out, states = run(layer, x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(states[0], h, rtol=0, atol=1e-10)
    if c is not None:
        np.testing.assert_allclose(states[1], c, rtol=0, atol=1e-10)


def test_from_tf1_takes_tensors_and_float32():
    v = {k: torch.from_numpy(a).float() for k, a in
         tf1_variables("lstm", np.random.default_rng(0)).items()}
    layer = from_tf1("lstm", v, I)
    assert layer.weight_ih_l0.dtype == torch.float32 and layer.forget_bias == 1.0
    assert all(np.array_equal(to_tf1(layer)[k], v[k].numpy()) for k in v)


TF1_LAYERS = [
    ("basic_rnn", lambda: gr.RNN(I, U, dtype=torch.float64), {}),
    ("basic_rnn", lambda: gr.RNN(I, U, nonlinearity="relu", dtype=torch.float64),
     {"activation": torch.relu}),
    ("lstm", lambda: gr.LSTM(I, U, forget_bias=0.7, dtype=torch.float64), {"forget_bias": 0.7}),
    ("lstm", lambda: gr.LSTM(I, U, proj_size=2, peepholes=True, cell_clip=0.4, proj_clip=0.3,
                             dtype=torch.float64),
     {"forget_bias": 0.0, "cell_clip": 0.4, "proj_clip": 0.3}),
    ("gru", lambda: gr.GRU(I, U, reset_after=False, dtype=torch.float64), {}),
]


@pytest.mark.parametrize("kind,make,kwargs", TF1_LAYERS)
def test_tf1_round_trip(kind, make, kwargs):
    layer = randomize_(make(), seed=7)
    v = to_tf1(layer)
    back = from_tf1(kind, v, I, **kwargs)
    # bias_hh is folded into TF's single bias: same function ...
    x = np.random.default_rng(3).normal(size=(T, B, I))
    out, states = run(layer, x)
    out_back, states_back = run(back, x)
    np.testing.assert_allclose(out_back, out, rtol=0, atol=1e-12)
    for a, b in zip(states_back, states):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # ... and exact round trips from there on
    v2 = to_tf1(back)
    assert v2.keys() == v.keys() and all(np.array_equal(v2[k], v[k]) for k in v)
    with torch.no_grad():
        layer.bias_ih_l0.add_(layer.bias_hh_l0)
        layer.bias_hh_l0.zero_()
    assert_params_equal(back, layer)
    # the NumPy TF equations agree with the original layer
    np_kwargs = {k: kwargs[k] for k in ("forget_bias", "cell_clip", "proj_clip") if k in kwargs}
    if "activation" in kwargs:
        np_kwargs["act"] = lambda z: np.maximum(z, 0)
    expected, _ = np_tf1(kind, v, x, **np_kwargs)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_to_tf1_bias_false_gives_zero_biases():
    v = to_tf1(gr.GRU(I, U, bias=False, reset_after=False))
    assert not v["gates/bias"].any() and not v["candidate/bias"].any()
    assert v["gates/kernel"].shape == (I + U, 2 * U)


# -- errors --------------------------------------------------------------------------

def E(msg):
    return re.escape(msg)


W_LSTM = [np.zeros((I, 4 * U)), np.zeros((U, 4 * U)), np.zeros(4 * U)]


@pytest.mark.parametrize("kind,weights,kw,match", [
    ("lstmx", W_LSTM, {}, "kind must be one of ['gru', 'lstm', 'simple_rnn'], got 'lstmx'"),
    ("lstm", W_LSTM[:1], {}, "weights must hold 2 or 3 arrays (kernel, recurrent_kernel[, bias]) "
                             "for kind='lstm', got 1"),
    ("lstm", W_LSTM + [np.zeros(1)], {}, "got 4"),
    ("lstm", [np.zeros((I, 10))] + W_LSTM[1:], {},
     "weights[0] (kernel) must have shape (input_size, 4*units) for kind='lstm', got (5, 10)"),
    ("lstm", [W_LSTM[0], np.zeros((U, 3 * U)), W_LSTM[2]], {},
     "weights[1] (recurrent_kernel) must have shape (4, 16), got (4, 12)"),
    ("lstm", W_LSTM[:2] + [np.zeros(4 * U + 1)], {},
     "weights[2] (bias) must have shape (16,), got (17,)"),
    ("gru", [np.zeros((I, 3 * U)), np.zeros((U, 3 * U)), np.zeros(3 * U)], {},
     "weights[2] (bias) must have shape (2, 12), got (12,)"),
    ("gru", [np.zeros((I, 3 * U)), np.zeros((U, 3 * U)), np.zeros((2, 3 * U))],
     {"reset_after": False}, "weights[2] (bias) must have shape (12,), got (2, 12)"),
    ("simple_rnn", [np.zeros((I, U)), np.zeros((U + 1, U))], {},
     "weights[1] (recurrent_kernel) must have shape (4, 4), got (5, 4)"),
])
def test_from_keras_errors(kind, weights, kw, match):
    with pytest.raises(ValueError, match=E(match)):
        from_keras(kind, weights, **kw)


@pytest.mark.parametrize("layer,match", [
    (gr.LSTM(I, U, num_layers=2), "to_keras converts a single layer, got num_layers=2"),
    (gr.GRU(I, U, bidirectional=True), "to_keras converts a unidirectional layer, got bidirectional=True"),
    (gr.LSTM(I, U, peepholes=True), "Keras's LSTM has no peepholes: to_keras needs "
                                    "peepholes=False, got peepholes=True"),
    (gr.LSTM(I, U, cell_clip=1.0), "Keras's LSTM has no cell_clip: to_keras needs "
                                   "cell_clip=None, got cell_clip=1.0"),
    (gr.LSTM(I, U, proj_size=2), "Keras's LSTM has no proj_size: to_keras needs proj_size=0, "
                                 "got proj_size=2"),
    (gr.LSTM(I, U, proj_size=2, proj_clip=1.0), "Keras's LSTM has no proj_clip"),
    (gr.LSTM(I, U, bias=False, forget_bias=1.0),
     "forget_bias=1.0 cannot be folded into a Keras bias when the layer has bias=False"),
])
def test_to_keras_errors(layer, match):
    with pytest.raises(ValueError, match=E(match)):
        to_keras(layer)


def test_not_a_layer_is_a_type_error():
    for fn in (to_keras, to_tf1):
        with pytest.raises(TypeError, match="layer must be a gatedrnn.RNN, LSTM or GRU, got JANET"):
            fn(gr.JANET(I, U))


V_LSTM = {"kernel": np.zeros((I + U, 4 * U)), "bias": np.zeros(4 * U)}


@pytest.mark.parametrize("kind,variables,kw,match", [
    ("rnn", V_LSTM, {}, "kind must be one of ['basic_rnn', 'basic_lstm', 'lstm', 'gru'], got 'rnn'"),
    ("lstm", {"bias": np.zeros(4 * U)}, {},
     "variables must contain 'kernel' for kind='lstm', got keys ['bias']"),
    ("gru", V_LSTM, {}, "variables must contain 'candidate/kernel' for kind='gru'"),
    ("lstm", {"kernel": np.zeros((I + U, 10)), "bias": np.zeros(10)}, {},
     "variables['kernel'] must have shape (input_size + units_in, 4*num_units), got (9, 10)"),
    ("lstm", {"kernel": V_LSTM["kernel"]}, {}, "missing ['bias'], unexpected []"),
    ("basic_lstm", dict(V_LSTM, w_i_diag=np.zeros(U)), {}, "missing [], unexpected ['w_i_diag']"),
    ("lstm", dict(V_LSTM, w_i_diag=np.zeros(U)), {},
     "missing ['w_f_diag', 'w_o_diag'], unexpected []"),
    ("lstm", {"kernel": V_LSTM["kernel"], "bias": np.zeros(4 * U + 1)}, {},
     "variables['bias'] must have shape (16,), got (17,)"),
    ("lstm", dict(V_LSTM, **{"projection/kernel": np.zeros((U, 2))}), {},
     "variables['kernel'] must have shape (7, 16), got (9, 16)"),
    ("lstm", {"kernel": np.zeros((I + 3, 4 * U)), "bias": np.zeros(4 * U),
              "projection/kernel": np.zeros((U, 2))}, {"num_proj": 3},
     "variables['projection/kernel'] must have shape (4, 3), got (4, 2)"),
    ("basic_rnn", {"kernel": np.zeros((I + U, U)), "bias": np.zeros(U)}, {"num_units": 5},
     "num_units does not match the kernel: kernel gives 4"),
    ("gru", {"gates/kernel": np.zeros((I + U, 2 * U)), "gates/bias": np.zeros(2 * U + 2),
             "candidate/kernel": np.zeros((I + U, U)), "candidate/bias": np.zeros(U)}, {},
     "variables['gates/bias'] must have shape (8,), got (10,)"),
])
def test_from_tf1_errors(kind, variables, kw, match):
    with pytest.raises(ValueError, match=E(match)):
        from_tf1(kind, variables, I, **kw)


@pytest.mark.parametrize("layer,match", [
    (gr.GRU(I, U), "TF1's GRUCell is the reset-before GRU: to_tf1 needs reset_after=False, "
                   "got reset_after=True"),
    (gr.RNN(I, U, num_layers=2), "to_tf1 converts a single layer, got num_layers=2"),
    (gr.LSTM(I, U, bidirectional=True), "to_tf1 converts a unidirectional layer"),
])
def test_to_tf1_errors(layer, match):
    with pytest.raises(ValueError, match=E(match)):
        to_tf1(layer)
