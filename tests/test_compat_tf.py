"""gatedrnn.compat.tf: TensorFlow 1.x cells against an independent NumPy transcription
of TensorFlow's equations (rnn_cell_impl / dynamic_rnn), in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gatedrnn as gr
from gatedrnn.compat import tf
from helpers import randomize_

F64 = torch.float64
ATOL = 1e-10
I = 3  # input size used throughout


# -- NumPy reference: TensorFlow's equations, written from TF's layout ----------------

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_relu(x):
    return np.maximum(x, 0.0)


def np_basic_rnn(p, x, h, act):
    return act(np.concatenate([x, h], 1) @ p["kernel"] + p["bias"])


def np_lstm(p, x, c, m, *, forget_bias, act, cell_clip=None, proj_clip=None):
    """TF BasicLSTMCell / LSTMCell: columns i, j, f, o of [x, m] @ kernel + bias."""
    z = np.concatenate([x, m], 1) @ p["kernel"] + p["bias"]
    i, j, f, o = np.split(z, 4, axis=1)
    if "w_i_diag" in p:  # peepholes from the previous c onto i and f
        i = i + p["w_i_diag"] * c
        f = f + p["w_f_diag"] * c
    c_new = sigmoid(f + forget_bias) * c + sigmoid(i) * act(j)
    if cell_clip is not None:
        c_new = np.clip(c_new, -cell_clip, cell_clip)
    if "w_o_diag" in p:  # output peephole sees the new, clipped c
        o = o + p["w_o_diag"] * c_new
    m_new = sigmoid(o) * act(c_new)
    if "projection_kernel" in p:
        m_new = m_new @ p["projection_kernel"]
        if proj_clip is not None:
            m_new = np.clip(m_new, -proj_clip, proj_clip)
    return m_new, c_new


def np_gru(p, x, h):
    """TF1 GRUCell: r applied to h before the candidate matmul."""
    gates = sigmoid(np.concatenate([x, h], 1) @ p["gates_kernel"] + p["gates_bias"])
    r, u = np.split(gates, 2, axis=1)
    cand = np.tanh(np.concatenate([x, r * h], 1) @ p["candidate_kernel"] + p["candidate_bias"])
    return u * h + (1.0 - u) * cand


def np_params(cell):
    return {name: p.detach().numpy().copy() for name, p in cell.named_parameters()}


def np_step(cell, p, x, state, act):
    """One step; state/return in TF's format (tuple (c, h) or the [c, h] concatenation)."""
    if isinstance(cell, tf.BasicRNNCell):
        h = np_basic_rnn(p, x, state, act)
        return h, h
    if isinstance(cell, tf.GRUCell):
        h = np_gru(p, x, state)
        return h, h
    H = cell.num_units
    c, m = state if cell.state_is_tuple else (state[:, :H], state[:, H:])
    m, c = np_lstm(p, x, c, m, forget_bias=cell.forget_bias, act=act,
                   cell_clip=getattr(cell, "cell_clip", None),
                   proj_clip=getattr(cell, "proj_clip", None))
    return m, ((c, m) if cell.state_is_tuple else np.concatenate([c, m], 1))


def np_dynamic_rnn(cell, p, x, lengths, state, act):
    """x (B, T, I); TF semantics: outputs zero past a length, state frozen there."""
    B, T, _ = x.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    outputs = np.zeros((B, T, cell.output_size))
    for t in range(T):
        out, new = np_step(cell, p, x[:, t], state, act)
        valid = (t < lengths)[:, None]  # (B, 1)
        outputs[:, t] = np.where(valid, out, 0.0)
        if isinstance(state, tuple):
            state = tuple(np.where(valid, a, b) for a, b in zip(new, state))
        else:
            state = np.where(valid, new, state)
    return outputs, state


# -- helpers ------------------------------------------------------------------------

def to_np(state):
    if isinstance(state, tuple):
        return tuple(s.detach().numpy() for s in state)
    return state.detach().numpy()


def assert_state_close(actual, expected, atol=ATOL):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=0, atol=atol)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def random_state(cell, batch, seed=1, scale=1.0):
    """A non-zero state in the cell's own format."""
    g = torch.Generator().manual_seed(seed)
    zero = cell.zero_state(batch)
    if isinstance(zero, tuple):
        return type(zero)(*(torch.randn(z.shape, generator=g, dtype=F64) * scale for z in zero))
    return torch.randn(zero.shape, generator=g, dtype=F64) * scale


# (factory, NumPy activation); every cell float64, input size I.
CONFIGS = {
    "rnn_tanh": (lambda: tf.BasicRNNCell(5, I, dtype=F64), np.tanh),
    "rnn_relu": (lambda: tf.BasicRNNCell(5, I, activation=torch.relu, dtype=F64), np_relu),
    "basic_lstm": (lambda: tf.BasicLSTMCell(5, I, forget_bias=0.7, dtype=F64), np.tanh),
    "basic_lstm_concat": (lambda: tf.BasicLSTMCell(5, I, state_is_tuple=False, dtype=F64), np.tanh),
    "basic_lstm_sigmoid": (lambda: tf.BasicLSTMCell(4, I, activation=torch.sigmoid, dtype=F64),
                           sigmoid),
    "lstm": (lambda: tf.LSTMCell(5, I, dtype=F64), np.tanh),
    "lstm_peepholes": (lambda: tf.LSTMCell(5, I, use_peepholes=True, forget_bias=0.3, dtype=F64),
                       np.tanh),
    "lstm_cell_clip": (lambda: tf.LSTMCell(5, I, cell_clip=0.5, dtype=F64), np.tanh),
    "lstm_proj": (lambda: tf.LSTMCell(5, I, num_proj=2, dtype=F64), np.tanh),
    "lstm_proj_clip": (lambda: tf.LSTMCell(5, I, num_proj=4, proj_clip=0.3, dtype=F64), np.tanh),
    "lstm_all": (lambda: tf.LSTMCell(6, I, use_peepholes=True, cell_clip=0.8, num_proj=4,
                                     proj_clip=0.5, forget_bias=0.5, dtype=F64), np.tanh),
    "lstm_all_concat": (lambda: tf.LSTMCell(6, I, use_peepholes=True, cell_clip=0.8, num_proj=4,
                                            proj_clip=0.5, state_is_tuple=False, dtype=F64),
                        np.tanh),
    "lstm_wide_proj": (lambda: tf.LSTMCell(3, I, num_proj=5, dtype=F64), np.tanh),
    "gru": (lambda: tf.GRUCell(5, I, dtype=F64), np.tanh),
}
# What gatedrnn layers can express (to_layer): tanh/relu RNN, tanh LSTM with num_proj < num_units.
LAYER_CONFIGS = [k for k in CONFIGS if k not in ("basic_lstm_sigmoid", "lstm_wide_proj")]


def make(name, seed=0):
    factory, act = CONFIGS[name]
    return randomize_(factory(), seed), act


# -- variables ------------------------------------------------------------------------

@pytest.mark.parametrize("cell, expected", [
    (lambda: tf.BasicRNNCell(5, 3), {"kernel": (8, 5), "bias": (5,)}),
    (lambda: tf.BasicLSTMCell(5, 3), {"kernel": (8, 20), "bias": (20,)}),
    (lambda: tf.LSTMCell(5, 3, use_peepholes=True, num_proj=2),
     {"kernel": (5, 20), "bias": (20,), "w_f_diag": (5,), "w_i_diag": (5,), "w_o_diag": (5,),
      "projection_kernel": (5, 2)}),
    (lambda: tf.GRUCell(5, 3), {"gates_kernel": (8, 10), "gates_bias": (10,),
                                "candidate_kernel": (8, 5), "candidate_bias": (5,)}),
])
def test_variable_names_and_shapes(cell, expected):
    shapes = {name: tuple(p.shape) for name, p in cell().named_parameters()}
    assert shapes == expected


def test_default_initialisation_is_tensorflows():
    torch.manual_seed(0)
    lstm = tf.LSTMCell(64, 32, use_peepholes=True, num_proj=16)
    limit = np.sqrt(6 / (32 + 16 + 4 * 64))  # glorot on [I + P, 4H]
    k = lstm.kernel.detach().abs()
    assert k.max() <= limit and k.max() > 0.95 * limit
    assert torch.all(lstm.bias == 0)
    peep = torch.stack([lstm.w_f_diag, lstm.w_i_diag, lstm.w_o_diag]).detach().abs()
    assert peep.max() <= np.sqrt(3 / 64) and peep.max() > 0.8 * np.sqrt(3 / 64)
    proj = lstm.projection_kernel.detach().abs()
    assert proj.max() <= np.sqrt(6 / (64 + 16)) and proj.max() > 0.9 * np.sqrt(6 / (64 + 16))
    gru = tf.GRUCell(64, 32)
    assert torch.all(gru.gates_bias == 1.0) and torch.all(gru.candidate_bias == 0.0)
    assert gru.gates_kernel.detach().abs().max() <= np.sqrt(6 / (96 + 128))
    rnn = tf.BasicRNNCell(64, 32)
    assert torch.all(rnn.bias == 0) and rnn.kernel.detach().abs().max() <= np.sqrt(6 / (96 + 64))


def test_dtype_device_and_sizes():
    cell = tf.LSTMCell(5, 3, num_proj=2, dtype=F64, device="cpu")
    assert all(p.dtype == F64 for p in cell.parameters())
    z = cell.zero_state(4)
    assert isinstance(z, tf.LSTMStateTuple) and z._fields == ("c", "h")
    assert z.c.shape == (4, 5) and z.h.shape == (4, 2) and z.c.dtype == F64
    assert not z.c.any() and not z.h.any()
    assert cell.state_size == tf.LSTMStateTuple(5, 2) and cell.output_size == 2
    flat = tf.BasicLSTMCell(5, 3, state_is_tuple=False)
    assert flat.state_size == 10 and flat.zero_state(4).shape == (4, 10)
    assert flat.zero_state(4).dtype == torch.float32
    gru = tf.GRUCell(5, 3)
    assert gru.state_size == gru.output_size == 5 and gru.zero_state(2).shape == (2, 5)
    assert tf.BasicRNNCell(5, 3).state_size == 5


# -- one step against NumPy ------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_matches_numpy(name):
    cell, act = make(name)
    p = np_params(cell)
    x = torch.randn(4, I, dtype=F64, generator=torch.Generator().manual_seed(2)) * 2
    state = random_state(cell, 4, scale=1.5)
    out, new_state = cell(x, state)
    ref_out, ref_state = np_step(cell, p, x.numpy(), to_np(state), act)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=ATOL)
    assert_state_close(to_np(new_state), ref_state)
    if isinstance(cell, (tf.BasicLSTMCell, tf.LSTMCell)):
        assert isinstance(new_state, tf.LSTMStateTuple) == cell.state_is_tuple
    # The clipping must actually bite here, or this case would not test it.
    if getattr(cell, "cell_clip", None):
        c = ref_state[0] if isinstance(ref_state, tuple) else ref_state[:, :cell.num_units]
        assert np.isclose(np.abs(c).max(), cell.cell_clip)
    if getattr(cell, "proj_clip", None):
        assert np.isclose(np.abs(ref_out).max(), cell.proj_clip)


def test_state_none_is_zero_state():
    cell, _ = make("lstm_all")
    x = torch.randn(3, I, dtype=F64)
    out_none, s_none = cell(x)
    out_zero, s_zero = cell(x, cell.zero_state(3))
    assert torch.equal(out_none, out_zero) and torch.equal(s_none.c, s_zero.c)


@pytest.mark.parametrize("name, step", [
    ("rnn_tanh", "rnn_step"), ("basic_lstm", "lstm_step"), ("lstm_all", "lstm_step"),
    ("gru", "gru_step"),
])
def test_equations_come_from_gatedrnn_cells(monkeypatch, name, step):
    """The cells delegate to gatedrnn.cells' step functions (one specification)."""
    calls = []
    original = getattr(tf, step)

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf, step, spy)
    cell, _ = make(name)
    cell(torch.randn(2, I, dtype=F64), cell.zero_state(2))
    tf.dynamic_rnn(cell, torch.randn(2, 3, I, dtype=F64))
    assert len(calls) == 4
    if step == "gru_step":
        assert all(kw["reset_after"] is False for kw in calls)


# -- the gate-order helper ----------------------------------------------------------

def test_ijfo_to_ifgo():
    H = 2
    blocks = {g: torch.full((H, 3), float(k)) for k, g in enumerate("ijfo")}
    tf_layout = torch.cat([blocks[g] for g in tf.TF_LSTM_GATES])  # (4H, 3)
    torch_layout = tf.ijfo_to_ifgo(tf_layout)
    expected = torch.cat([blocks["i"], blocks["f"], blocks["j"], blocks["o"]])  # j is g
    assert torch.equal(torch_layout, expected)
    assert torch.equal(tf.ijfo_to_ifgo(torch_layout), tf_layout)  # its own inverse
    row = torch.arange(8.0).unsqueeze(0)  # (1, 4H): blocks along dim=-1
    assert tf.ijfo_to_ifgo(row, dim=-1).tolist() == [[0, 1, 4, 5, 2, 3, 6, 7]]
    with pytest.raises(ValueError, match="multiple of 4"):
        tf.ijfo_to_ifgo(torch.zeros(6))


# -- dynamic_rnn ----------------------------------------------------------------------

@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("name", ["rnn_relu", "basic_lstm_concat", "lstm_all", "lstm_wide_proj",
                                  "gru", "basic_lstm_sigmoid"])
def test_dynamic_rnn_matches_numpy(name, time_major):
    cell, act = make(name)
    p = np_params(cell)
    B, T = 4, 5
    x = torch.randn(B, T, I, dtype=F64, generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([5, 2, 0, 3])
    state0 = random_state(cell, B)
    ref_out, ref_state = np_dynamic_rnn(cell, p, x.numpy(), lengths.numpy(), to_np(state0), act)
    inputs = x.transpose(0, 1) if time_major else x
    out, state = tf.dynamic_rnn(cell, inputs, sequence_length=lengths, initial_state=state0,
                                time_major=time_major)
    out = out.transpose(0, 1) if time_major else out
    assert out.shape == (B, T, cell.output_size)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=ATOL)
    assert_state_close(to_np(state), ref_state)
    # TF semantics, stated directly: zeros past the length, state of length 0 untouched.
    assert not out[1, 2:].any() and not out[2].any() and not out[3, 3:].any()
    assert out[0, -1].abs().sum() > 0
    assert_state_close(to_np(state)[0][2] if isinstance(state, tuple) else to_np(state)[2],
                       to_np(state0)[0][2] if isinstance(state0, tuple) else to_np(state0)[2],
                       atol=0)


def test_dynamic_rnn_frozen_state_is_state_at_last_step():
    cell, _ = make("lstm_all")
    x = torch.randn(3, 6, I, dtype=F64)
    _, full = tf.dynamic_rnn(cell, x[:, :4])
    _, frozen = tf.dynamic_rnn(cell, x, sequence_length=[4, 4, 4])
    assert torch.allclose(full.c, frozen.c, rtol=0, atol=ATOL)
    assert torch.allclose(full.h, frozen.h, rtol=0, atol=ATOL)


@pytest.mark.parametrize("time_major", [False, True])
def test_dynamic_rnn_default_state_and_lengths(time_major):
    cell, act = make("gru")
    x = torch.randn(2, 4, I, dtype=F64)
    inputs = x.transpose(0, 1) if time_major else x
    out, h = tf.dynamic_rnn(cell, inputs, time_major=time_major)
    out2, h2 = tf.dynamic_rnn(cell, inputs, sequence_length=torch.tensor([4, 4]),
                              initial_state=cell.zero_state(2), time_major=time_major)
    ref_out, ref_h = np_dynamic_rnn(cell, np_params(cell), x.numpy(), None, np.zeros((2, 5)), act)
    out = out.transpose(0, 1) if time_major else out
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=ATOL)
    np.testing.assert_allclose(h.detach().numpy(), ref_h, rtol=0, atol=ATOL)
    assert torch.equal(h, h2) and torch.equal(out2.transpose(0, 1) if time_major else out2, out)


# -- to_layer -------------------------------------------------------------------------

def layer_hx(cell, state):
    """TF state -> the gatedrnn layer's hx (leading layer dim of 1)."""
    if isinstance(cell, (tf.BasicRNNCell, tf.GRUCell)):
        return state.unsqueeze(0)
    c, h = state if cell.state_is_tuple else state.split([cell.num_units, cell.output_size], -1)
    return h.unsqueeze(0), c.unsqueeze(0)


def tf_state_from_layer(cell, state_n):
    if isinstance(cell, (tf.BasicRNNCell, tf.GRUCell)):
        return state_n[0][0]  # (1, B, H) -> (B, H)
    h, c = state_n[0][0], state_n[1][0]
    return tf.LSTMStateTuple(c, h) if cell.state_is_tuple else torch.cat([c, h], -1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("name", LAYER_CONFIGS)
def test_to_layer_matches_dynamic_rnn(name, with_lengths, batch_first):
    cell, _ = make(name)
    layer = cell.to_layer(batch_first=batch_first)
    expected_type = {tf.BasicRNNCell: gr.RNN, tf.GRUCell: gr.GRU}.get(type(cell), gr.LSTM)
    assert type(layer) is expected_type and layer.batch_first == batch_first
    assert not layer.bias_hh_l0.any()
    if isinstance(cell, tf.GRUCell):
        assert layer.reset_after is False
    B, T = 4, 5
    x = torch.randn(B, T, I, dtype=F64, generator=torch.Generator().manual_seed(4))
    state0 = random_state(cell, B)
    lengths = torch.tensor([5, 2, 1, 3]) if with_lengths else None
    inputs = x if batch_first else x.transpose(0, 1)
    out_tf, state_tf = tf.dynamic_rnn(cell, inputs, sequence_length=lengths,
                                      initial_state=state0, time_major=not batch_first)
    if with_lengths:
        packed = pack_padded_sequence(inputs, lengths, batch_first=batch_first,
                                      enforce_sorted=False)
        out_packed, state_n = layer(packed, layer_hx(cell, state0))
        out_layer, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=T)
    else:
        out_layer, state_n = layer(inputs, layer_hx(cell, state0))
    if not isinstance(state_n, tuple):
        state_n = (state_n,)
    np.testing.assert_allclose(out_layer.detach().numpy(), out_tf.detach().numpy(),
                               rtol=0, atol=ATOL)
    assert_state_close(to_np(tf_state_from_layer(cell, state_n)), to_np(state_tf))


def test_to_layer_weight_layout():
    cell, _ = make("lstm_all")
    layer = cell.to_layer()
    H = cell.num_units
    i, j, f, o = cell.kernel.detach().split(H, dim=1)  # TF blocks, each (I + P, H)
    expected_ih = torch.cat([i, f, j, o], dim=1)[:I].T  # PyTorch i, f, g, o
    assert torch.equal(layer.weight_ih_l0.detach(), expected_ih)
    assert torch.equal(layer.weight_hr_l0.detach(), cell.projection_kernel.detach().T)
    assert torch.equal(layer.weight_ci_l0.detach(), cell.w_i_diag.detach())
    assert torch.equal(layer.weight_co_l0.detach(), cell.w_o_diag.detach())
    assert (layer.forget_bias, layer.cell_clip, layer.proj_clip) == (0.5, 0.8, 0.5)


@pytest.mark.parametrize("cell, match", [
    (lambda: tf.BasicRNNCell(3, 2, activation=torch.sigmoid), "activation"),
    (lambda: tf.BasicLSTMCell(3, 2, activation=torch.relu), "activation"),
    (lambda: tf.LSTMCell(3, 2, activation=torch.sigmoid), "activation"),
    (lambda: tf.LSTMCell(3, 2, num_proj=3), "num_proj"),
])
def test_to_layer_rejects_what_layers_cannot_express(cell, match):
    with pytest.raises(ValueError, match=match):
        cell().to_layer()


# -- gradients ----------------------------------------------------------------------

def _gradcheck_cell(cell, x, state):
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    flat_state = list(state) if isinstance(state, tuple) else [state]
    flat_state = [s.detach().clone().requires_grad_() for s in flat_state]

    def fn(x, *args):
        states, ps = args[: len(flat_state)], args[len(flat_state):]
        st = type(state)(*states) if isinstance(state, tuple) else states[0]
        out, new = torch.func.functional_call(cell, dict(zip(names, ps)), (x, st))
        return (out, *(new if isinstance(new, tuple) else (new,)))

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), *flat_state, *params))


@pytest.mark.parametrize("cell", [
    lambda: tf.BasicRNNCell(3, 2, dtype=F64),
    lambda: tf.BasicLSTMCell(3, 2, forget_bias=0.5, dtype=F64),
    lambda: tf.LSTMCell(4, 2, use_peepholes=True, cell_clip=5.0, num_proj=3, proj_clip=5.0,
                        dtype=F64),
    lambda: tf.LSTMCell(3, 2, use_peepholes=True, state_is_tuple=False, dtype=F64),
    lambda: tf.GRUCell(3, 2, dtype=F64),
])
def test_gradcheck_cells(cell):
    cell = randomize_(cell(), seed=5)
    x = torch.randn(2, 2, dtype=F64)
    _gradcheck_cell(cell, x, random_state(cell, 2))


def test_gradcheck_dynamic_rnn_with_lengths():
    cell = randomize_(tf.LSTMCell(3, 2, use_peepholes=True, num_proj=2, dtype=F64), seed=6)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    x = torch.randn(2, 3, 2, dtype=F64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=F64, requires_grad=True)

    class Run(torch.nn.Module):  # so that functional_call can swap in the parameters
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x, c0, h0):
            out, st = tf.dynamic_rnn(self.cell, x, sequence_length=[3, 1],
                                     initial_state=tf.LSTMStateTuple(c0, h0))
            return out, st.c, st.h

    run = Run()

    def fn(x, c0, h0, *ps):
        return torch.func.functional_call(run, {"cell." + n: p for n, p in zip(names, ps)},
                                          (x, c0, h0))

    assert torch.autograd.gradcheck(fn, (x, c0, h0, *params))


# -- argument checks --------------------------------------------------------------------

def test_bad_inputs_to_a_cell():
    cell = tf.BasicLSTMCell(4, 3)
    state = cell.zero_state(2)
    with pytest.raises(ValueError, match="inputs.*input size 3"):
        cell(torch.randn(2, 5), state)
    with pytest.raises(ValueError, match="inputs must be 2-D"):
        cell(torch.randn(2, 1, 3), state)
    with pytest.raises(TypeError, match="inputs must have a floating-point dtype"):
        cell(torch.ones(2, 3, dtype=torch.int64), state)
    with pytest.raises(TypeError, match="inputs has dtype torch.float64"):
        cell(torch.randn(2, 3, dtype=F64), state)
    with pytest.raises(TypeError, match="inputs must be a Tensor"):
        cell([[0.0] * 3] * 2, state)


def test_bad_states():
    lstm = tf.LSTMCell(4, 3, num_proj=2)
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"state\.c has the wrong shape"):
        lstm(x, tf.LSTMStateTuple(torch.zeros(2, 3), torch.zeros(2, 2)))
    with pytest.raises(ValueError, match=r"state\.h has the wrong shape"):
        lstm(x, tf.LSTMStateTuple(torch.zeros(2, 4), torch.zeros(2, 4)))
    with pytest.raises(TypeError, match="state must be an LSTMStateTuple"):
        lstm(x, torch.zeros(2, 6))
    with pytest.raises(TypeError, match=r"state\.h has dtype"):
        lstm(x, tf.LSTMStateTuple(torch.zeros(2, 4), torch.zeros(2, 2, dtype=F64)))
    flat = tf.BasicLSTMCell(4, 3, state_is_tuple=False)
    with pytest.raises(ValueError, match=r"state has the wrong shape: expected \(2, 8\)"):
        flat(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="state has the wrong shape"):
        tf.GRUCell(4, 3)(x, torch.zeros(3, 4))
    with pytest.raises(TypeError, match="state must be a Tensor"):
        tf.BasicRNNCell(4, 3)(x, (torch.zeros(2, 4),))


def test_bad_dynamic_rnn_arguments():
    cell = tf.GRUCell(4, 3)
    x = torch.randn(2, 5, 3)
    with pytest.raises(TypeError, match="cell must be"):
        tf.dynamic_rnn(gr.GRUCell(3, 4), x)
    with pytest.raises(ValueError, match="inputs must be 3-D"):
        tf.dynamic_rnn(cell, x[:, 0])
    with pytest.raises(ValueError, match=r"sequence_length must have shape \(batch,\)"):
        tf.dynamic_rnn(cell, x, sequence_length=torch.tensor([5, 5, 5]))
    with pytest.raises(ValueError, match=r"sequence_length values must be in \[0, 5\]"):
        tf.dynamic_rnn(cell, x, sequence_length=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match="sequence_length values"):
        tf.dynamic_rnn(cell, x, sequence_length=[-1, 1])
    with pytest.raises(TypeError, match="sequence_length must have an integer dtype"):
        tf.dynamic_rnn(cell, x, sequence_length=torch.tensor([5.0, 1.0]))
    with pytest.raises(ValueError, match="initial_state has the wrong shape"):
        tf.dynamic_rnn(cell, x, initial_state=torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"sequence_length values must be in \[0, 2\]"):
        tf.dynamic_rnn(cell, x, sequence_length=[3, 1, 1, 1, 1],
                       time_major=True)  # (T, B) = (2, 5) here


@pytest.mark.parametrize("make_cell, error, match", [
    (lambda: tf.BasicRNNCell(0, 3), ValueError, "num_units"),
    (lambda: tf.BasicLSTMCell(4, "3"), TypeError, "input_size"),
    (lambda: tf.BasicLSTMCell(4, 3, forget_bias="1"), TypeError, "forget_bias"),
    (lambda: tf.LSTMCell(4, 3, cell_clip=-1.0), ValueError, "cell_clip"),
    (lambda: tf.LSTMCell(4, 3, num_proj=0), ValueError, "num_proj"),
    (lambda: tf.LSTMCell(4, 3, proj_clip=1.0), ValueError, "proj_clip needs num_proj"),
    (lambda: tf.BasicRNNCell(4, 3, activation="tanh"), TypeError, "activation"),
    (lambda: tf.GRUCell(4, 3, activation=torch.relu), ValueError, "activation"),
])
def test_bad_constructor_arguments(make_cell, error, match):
    with pytest.raises(error, match=match):
        make_cell()


def test_gru_accepts_tanh_spelled_differently():
    for act in (None, torch.tanh, torch.nn.functional.tanh, torch.nn.Tanh()):
        assert tf.GRUCell(2, 2, activation=act)(torch.randn(1, 2), None)[0].shape == (1, 2)
