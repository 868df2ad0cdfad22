"""gr.MinGRU / gr.MinLSTM and their cells against an independent NumPy implementation of
Feng et al. (2024), "Were RNNs All We Needed?", written here as a plain loop over time in
linear space (no log space, no scan):

    g(x)    = x + 0.5 if x >= 0 else sigmoid(x)
    minGRU:  z = sigmoid(W_z x + b_z),  h' = (1 - z) * h + z * g(W_h x + b_h)
    minLSTM: f = sigmoid(W_f x + b_f),  i = sigmoid(W_i x + b_i),
             h' = f / (f + i) * h + i / (f + i) * g(W_h x + b_h)

with h_0 = 0.5 when no initial state is given. Everything runs in float64.
"""

import numpy as np
import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gatedrnn as gr
from gatedrnn.min_rnn import parallel_scan_log

KINDS = {"gru": (gr.MinGRU, gr.MinGRUCell, 2), "lstm": (gr.MinLSTM, gr.MinLSTMCell, 3)}
F64 = torch.float64


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_g(x):
    return np.where(x >= 0, x + 0.5, np_sigmoid(x))


def np_step(kind, x, h, w, b):
    """x (B, I), h (B, H), w (G*H, I), b (G*H,) -> h' (B, H)."""
    H = h.shape[-1]
    xw = x @ w.T + b
    if kind == "gru":
        z = np_sigmoid(xw[:, :H])
        return (1.0 - z) * h + z * np_g(xw[:, H:])
    f, i = np_sigmoid(xw[:, :H]), np_sigmoid(xw[:, H:2 * H])
    return f / (f + i) * h + i / (f + i) * np_g(xw[:, 2 * H:])


def np_layer(kind, x, h0, params, num_layers, bidirectional):
    """x (T, B, I), h0 (L*D, B, H) -> output (T, B, D*H), h_n (L*D, B, H)."""
    T = x.shape[0]
    suffixes = ["", "_reverse"] if bidirectional else [""]
    h_n = []
    for layer in range(num_layers):
        outputs = []
        for d, suffix in enumerate(suffixes):
            w, b = params[f"weight_ih_l{layer}{suffix}"], params[f"bias_ih_l{layer}{suffix}"]
            h = h0[layer * len(suffixes) + d]
            out = [None] * T
            for t in (range(T) if d == 0 else reversed(range(T))):
                h = np_step(kind, x[t], h, w, b)
                out[t] = h
            outputs.append(np.stack(out))
            h_n.append(h)
        x = np.concatenate(outputs, axis=-1)
    return x, np.stack(h_n)


def make(kind, I, H, scale=0.8, seed=0, **kwargs):
    """A float64 layer with parameters ~ N(0, scale) so that both branches of g and
    strongly open and closed gates occur."""
    torch.manual_seed(seed)
    layer = KINDS[kind][0](I, H, dtype=F64, **kwargs)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, scale)
    return layer


def numpy_params(module):
    return {name: p.detach().numpy().copy() for name, p in module.named_parameters()}


# -- the equations ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["scan", "sequential"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_matches_numpy(kind, mode, batch_first):
    T, B, I, H, L = 7, 3, 4, 5, 2
    layer = make(kind, I, H, num_layers=L, bidirectional=True, batch_first=batch_first, mode=mode)
    x = torch.randn(T, B, I, dtype=F64)
    h0 = torch.randn(2 * L, B, H, dtype=F64)  # any real h_0, negative values included

    out, h_n = layer(x.transpose(0, 1) if batch_first else x, h0)
    if batch_first:
        out = out.transpose(0, 1)
    ref_out, ref_h_n = np_layer(kind, x.numpy(), h0.numpy(), numpy_params(layer), L, True)

    assert out.shape == (T, B, 2 * H) and h_n.shape == (2 * L, B, H)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h_n, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_default_state_is_half(kind):
    """hx=None is h_0 = g(0) = 0.5, the paper's convention."""
    layer = make(kind, 3, 4, num_layers=2)
    x = torch.randn(6, 2, 3, dtype=F64)
    out, h_n = layer(x)
    ref_out, ref_h_n = np_layer(kind, x.numpy(), np.full((2, 2, 4), 0.5), numpy_params(layer), 2, False)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h_n, rtol=1e-10, atol=1e-12)


def test_parallel_scan_log_is_the_linear_recurrence():
    torch.manual_seed(0)
    a, b, h0 = torch.rand(9, 4, dtype=F64), torch.rand(9, 4, dtype=F64), torch.randn(4, dtype=F64)
    h, expected = parallel_scan_log(a.log(), b.log(), h0), []
    state = h0
    for t in range(9):
        state = a[t] * state + b[t]
        expected.append(state)
    torch.testing.assert_close(h, torch.stack(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_numpy_and_layer(kind):
    T, B, I, H = 6, 3, 4, 5
    layer = make(kind, I, H)
    cell = KINDS[kind][1](I, H, dtype=F64)
    cell.load_state_dict({"weight_ih": layer.weight_ih_l0, "bias_ih": layer.bias_ih_l0})
    x, h0 = torch.randn(T, B, I, dtype=F64), torch.randn(1, B, H, dtype=F64)

    h, steps = h0[0], []
    for t in range(T):
        expected = np_step(kind, x[t].numpy(), h.detach().numpy(), layer.weight_ih_l0.detach().numpy(),
                           layer.bias_ih_l0.detach().numpy())
        h = cell(x[t], h)
        np.testing.assert_allclose(h.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
        steps.append(h)
    for mode in ("scan", "fused", "sequential"):
        layer.mode = mode
        out, h_n = layer(x, h0)
        torch.testing.assert_close(out, torch.stack(steps), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h_n[0], h, rtol=1e-10, atol=1e-12)
    assert torch.equal(cell(x[0]), cell(x[0], torch.full((B, H), 0.5, dtype=F64)))
    assert cell(x[0, 0]).shape == (H,)  # unbatched


# -- scan against sequential -----------------------------------------------------------


def run_both_modes(layer, x, h0, fast_mode):
    """Outputs, h_n and the gradients of (input, h0, every parameter) of a random
    linear function of output and h_n, in ``fast_mode`` and in the sequential mode."""
    torch.manual_seed(123)
    results = {}
    for mode in (fast_mode, "sequential"):
        layer.mode = mode
        xs, h0s = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, h_n = layer(xs, h0s)
        torch.manual_seed(1)
        loss = (out * torch.randn_like(out)).sum() + (h_n * torch.randn_like(h_n)).sum()
        tensors = [xs, h0s, *layer.parameters()]
        results[mode] = (out, h_n, torch.autograd.grad(loss, tensors))
    return results[fast_mode], results["sequential"]


@pytest.mark.parametrize("fast_mode", ["scan", "fused"])
@pytest.mark.parametrize("kind", KINDS)
def test_scan_equals_sequential_with_gradients(kind, fast_mode):
    layer = make(kind, 3, 4, scale=1.5, num_layers=2, bidirectional=True)
    x, h0 = torch.randn(12, 3, 3, dtype=F64), torch.randn(4, 3, 4, dtype=F64)
    (out_s, hn_s, grads_s), (out_q, hn_q, grads_q) = run_both_modes(layer, x, h0, fast_mode)
    torch.testing.assert_close(out_s, out_q, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hn_s, hn_q, rtol=1e-10, atol=1e-12)
    names = ["input", "h0", *(name for name, _ in layer.named_parameters())]
    assert len(grads_s) == len(names) == 2 + 2 * 2 * 2
    for name, gs, gq in zip(names, grads_s, grads_q):
        assert gs.abs().max() > 0, name
        torch.testing.assert_close(gs, gq, rtol=1e-9, atol=1e-9, msg=f"gradient of {name}")


@pytest.mark.parametrize("mode", ["scan", "fused"])
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_scan(kind, mode):
    layer = make(kind, 2, 2, scale=1.0, bidirectional=True)
    layer.mode = mode
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, dtype=F64, requires_grad=True)
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(x, h0, *params):
        out, h_n = functional_call(layer, dict(zip(names, params)), (x, h0))
        return out, h_n

    assert torch.autograd.gradcheck(f, (x, h0, *params))


@pytest.mark.parametrize("kind", KINDS)
def test_long_sequence_stays_finite_and_equals_sequential(kind):
    T = 2000
    layer = make(kind, 3, 4, scale=2.0)  # large weights: gates often near 0 or 1
    x, h0 = torch.randn(T, 2, 3, dtype=F64), torch.randn(1, 2, 4, dtype=F64)
    out_s, hn_s = layer(x, h0)
    layer.mode = "sequential"
    out_q, hn_q = layer(x, h0)
    assert torch.isfinite(out_s).all() and torch.isfinite(hn_s).all()
    torch.testing.assert_close(out_s, out_q, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hn_s, hn_q, rtol=1e-6, atol=1e-6)

    layer.mode = "scan"
    x32 = x.float().requires_grad_()
    out32, _ = layer.float()(x32)
    out32.sum().backward()
    assert torch.isfinite(out32).all() and torch.isfinite(x32.grad).all()


@pytest.mark.parametrize("kind", KINDS)
def test_state_continues_a_sequence(kind):
    """h_n fed back as hx continues exactly: hx is the state itself."""
    layer = make(kind, 3, 4, num_layers=2, bidirectional=False)
    x = torch.randn(10, 2, 3, dtype=F64)
    out, h_n = layer(x)
    out1, h1 = layer(x[:4])
    out2, h2 = layer(x[4:], h1)
    torch.testing.assert_close(torch.cat([out1, out2]), out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h2, h_n, rtol=1e-12, atol=1e-12)


# -- layout: packing, directions, batch_first, unbatched -------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["scan", "sequential"])
def test_packed_equals_each_sequence_alone(kind, mode):
    I, H, L = 3, 4, 2
    layer = make(kind, I, H, num_layers=L, bidirectional=True, mode=mode)
    lengths = [5, 2, 7, 1]
    seqs = [torch.randn(n, I, dtype=F64, requires_grad=True) for n in lengths]
    h0 = torch.randn(2 * L, len(lengths), H, dtype=F64)
    padded = torch.nn.utils.rnn.pad_sequence(seqs)  # (7, 4, I)
    packed = pack_padded_sequence(padded, torch.tensor(lengths), enforce_sorted=False)

    out, h_n = layer(packed, h0)
    out, out_lengths = pad_packed_sequence(out)
    assert out_lengths.tolist() == lengths and h_n.shape == (2 * L, 4, H)
    for b, seq in enumerate(seqs):
        alone_out, alone_h_n = layer(seq, h0[:, b])  # unbatched
        torch.testing.assert_close(out[: lengths[b], b], alone_out, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h_n[:, b], alone_h_n, rtol=1e-10, atol=1e-12)
        assert (out[lengths[b]:, b] == 0).all()

    (out.sum() + h_n.sum()).backward()  # padded steps (log b = -inf) give finite gradients
    params = list(layer.parameters())
    assert all(torch.isfinite(t.grad).all() for t in seqs + params)


@pytest.mark.parametrize("kind", KINDS)
def test_packed_gradients_scan_equal_sequential(kind):
    layer = make(kind, 2, 3, bidirectional=True)
    padded = torch.randn(6, 3, 2, dtype=F64)
    lengths = torch.tensor([6, 3, 4])
    grads = {}
    for mode in ("scan", "fused", "sequential"):
        layer.mode = mode
        x = padded.clone().requires_grad_()
        out, h_n = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
        torch.manual_seed(0)
        loss = (out.data * torch.randn_like(out.data)).sum() + h_n.square().sum()
        grads[mode] = torch.autograd.grad(loss, [x, *layer.parameters()])
    for fast_mode in ("scan", "fused"):
        for gs, gq in zip(grads[fast_mode], grads["sequential"]):
            torch.testing.assert_close(gs, gq, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first_and_unbatched(kind):
    layer = make(kind, 3, 4, num_layers=2, bidirectional=True)
    x, h0 = torch.randn(5, 2, 3, dtype=F64), torch.randn(4, 2, 4, dtype=F64)
    out, h_n = layer(x, h0)

    bf = make(kind, 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(layer.state_dict())
    out_bf, h_n_bf = bf(x.transpose(0, 1), h0)
    torch.testing.assert_close(out_bf.transpose(0, 1), out, rtol=0, atol=0)
    torch.testing.assert_close(h_n_bf, h_n, rtol=0, atol=0)  # h_n is never batch-first

    out_u, h_n_u = layer(x[:, 1], h0[:, 1])
    assert out_u.shape == (5, 8) and h_n_u.shape == (4, 4)
    torch.testing.assert_close(out_u, out[:, 1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_n_u, h_n[:, 1], rtol=1e-12, atol=1e-12)


def test_parameters_named_as_torch_without_recurrent_weights():
    layer = gr.MinLSTM(3, 4, num_layers=2, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (12, 3), "bias_ih_l0": (12,),
        "weight_ih_l0_reverse": (12, 3), "bias_ih_l0_reverse": (12,),
        "weight_ih_l1": (12, 8), "bias_ih_l1": (12,),
        "weight_ih_l1_reverse": (12, 8), "bias_ih_l1_reverse": (12,),
    }
    assert [list(map(tuple, map(torch.Tensor.size, w))) for w in layer.all_weights][2] == [(12, 8), (12,)]
    assert list(dict(gr.MinGRU(3, 4, bias=False).named_parameters())) == ["weight_ih_l0"]
    assert all(p.abs().max() <= 0.5 for p in gr.MinGRU(3, 4).parameters())  # U(-1/sqrt(4), 1/sqrt(4))
    assert gr.MinGRU(3, 4, mode="sequential").output_size == 4 and layer.output_size == 8
    assert "mode='sequential'" in repr(gr.MinGRU(3, 4, mode="sequential"))


def test_dropout_between_layers_in_training_only():
    layer = make("gru", 3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3, dtype=F64)
    layer.eval()
    a, b = layer(x)[0], layer(x)[0]
    assert torch.equal(a, b)
    layer.train()
    torch.manual_seed(0)
    assert not torch.equal(layer(x)[0], a)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode="parallel"), ValueError, r"mode must be one of \('auto', 'fused', 'scan', 'sequential'\), got 'parallel'"),
    (dict(mode=1), TypeError, "mode must be a str"),
    (dict(hidden_size=0), ValueError, "hidden_size must be >= 1, got 0"),
    (dict(input_size=2.0), TypeError, "input_size must be an int"),
    (dict(num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_arguments(kind, kwargs, error, match):
    args = dict(input_size=3, hidden_size=4) | kwargs
    with pytest.raises(error, match=match):
        KINDS[kind][0](**args)


def test_bad_mode_assignment():
    layer = gr.MinGRU(3, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        layer.mode = "fast"


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs(kind):
    layer = KINDS[kind][0](3, 4, num_layers=2)
    with pytest.raises(ValueError, match="expected input size 3, got 5"):
        layer(torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match="input must be 2-D or 3-D"):
        layer(torch.randn(6, 2, 1, 3))
    with pytest.raises(TypeError, match="floating-point dtype"):
        layer(torch.ones(6, 2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="input has dtype torch.float64 but the parameters have dtype"):
        layer(torch.randn(6, 2, 3, dtype=F64))
    with pytest.raises(ValueError, match="empty sequence"):
        layer(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match=r"hx has the wrong shape: expected \(2, 2, 4\), got \(1, 2, 4\)"):
        layer(torch.randn(6, 2, 3), torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match=r"expected \(2, 4\)"):  # unbatched input, batched hx
        layer(torch.randn(6, 3), torch.randn(2, 1, 4))
    with pytest.raises(TypeError, match="hx must be a Tensor, got tuple"):
        layer(torch.randn(6, 2, 3), (torch.randn(2, 2, 4), torch.randn(2, 2, 4)))

    cell = KINDS[kind][1](3, 4)
    with pytest.raises(ValueError, match="expected input size 3, got 2"):
        cell(torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"hx has the wrong shape: expected \(2, 4\)"):
        cell(torch.randn(2, 3), torch.randn(4))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
def test_fused_kernel_against_the_step_loop(native_backend, kind, dtype):
    """The ops on 2 threads (B = 9 rows split unevenly, H = 37 not a vector-width multiple),
    large pre-activations so that gates saturate; gradients of xw and h0."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = make(kind, 1, 37)
        G = len(layer.gates)
        g = torch.Generator().manual_seed(0)
        xw = (3 * torch.randn(60, 9, G * 37, dtype=dtype, generator=g)).requires_grad_()
        h0 = torch.randn(9, 37, dtype=dtype, generator=g).requires_grad_()
        h, _ = gr.backends.native.run(layer.spec, xw, (h0,), {})
        state, expected = h0, []
        for xw_t in xw.unbind(0):
            state = layer.step(xw_t, state)
            expected.append(state)
        expected = torch.stack(expected)
        tol = 1e-12 if dtype == F64 else 1e-5
        torch.testing.assert_close(h, expected, rtol=tol, atol=tol)
        weights = torch.randn(h.shape, dtype=dtype, generator=g)
        theirs = torch.autograd.grad((expected * weights).sum(), (xw, h0))
        ours = torch.autograd.grad((h * weights).sum(), (xw, h0))
        for name, x, y in zip(("xw", "h0"), ours, theirs):
            torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=f"gradient of {name}")
    finally:
        torch.set_num_threads(threads)


def test_auto_mode_is_fused_on_cpu_and_scan_without_native(native_backend, monkeypatch):
    layer = gr.MinGRU(2, 3)
    x = torch.randn(4, 1, 2)
    assert layer.mode == "auto" and layer.resolved_mode(x) == "fused"
    monkeypatch.setattr(gr.min_rnn.native, "is_available", lambda: False)
    assert layer.resolved_mode(x) == "scan"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("input_size", [1, gr.min_rnn.FUSED_INPUT_MAX + 1], ids=["projection-inside", "projection-outside"])
def test_fused_input_paths_equal_sequential(native_backend, kind, input_size):
    """Narrow inputs take the kernel's own input projection, wider ones a GEMM first."""
    layer = make(kind, input_size, 5, num_layers=2, bidirectional=True)
    x, h0 = torch.randn(9, 3, input_size, dtype=F64), torch.randn(4, 3, 5, dtype=F64)
    (out_f, hn_f, grads_f), (out_q, hn_q, grads_q) = run_both_modes(layer, x, h0, "fused")
    torch.testing.assert_close(out_f, out_q, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hn_f, hn_q, rtol=1e-10, atol=1e-12)
    for gf, gq in zip(grads_f, grads_q):
        torch.testing.assert_close(gf, gq, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_gates_satisfy_the_step(kind):
    """gr.inspect.record replays the minimal RNNs too: h_t from the recorded gates."""
    from gatedrnn.inspect import record

    layer = make(kind, 2, 4, num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 2, dtype=F64)
    trace = record(layer, x)
    out, _ = layer(x)
    for lt in trace.layers:
        h = lt.hidden
        h_prev = torch.cat([torch.full_like(h[:1], 0.5), h[:-1]])
        if "reverse" in lt.name:
            h_prev = torch.cat([h[1:], torch.full_like(h[:1], 0.5)])
        if kind == "gru":
            expected = (1 - lt.gates["z"]) * h_prev + lt.gates["z"] * lt.gates["h"]
        else:
            expected = lt.gates["f"] * h_prev + lt.gates["i"] * lt.gates["h"]
        torch.testing.assert_close(h, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([trace.layers[2].hidden, trace.layers[3].hidden], -1), out,
                               rtol=1e-12, atol=1e-12)
