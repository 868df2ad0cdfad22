"""Every fast backend (fused, native) against the reference backend (the oracle):
outputs, final states and the gradients of the input, the initial state and every
parameter, through the layers and on the backend function directly; gradcheck of the
hand-written backwards; a property-based test over random small shapes."""

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import fused, reference
from gatedrnn.cells import GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec, MGUSpec, RNNSpec

I, H, P = 3, 7, 3  # H not a multiple of 8; P: the LSTM projection

# (id, layer constructor taking the backend name)
LAYERS = [
    ("rnn_tanh", lambda **kw: gr.RNN(I, H, **kw)),
    ("rnn_relu", lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw)),
    ("lstm", lambda **kw: gr.LSTM(I, H, **kw)),
    ("lstm_tf_extras", lambda **kw: gr.LSTM(I, H, proj_size=P, forget_bias=1.0, peepholes=True,
                                            cell_clip=0.5, proj_clip=0.2, **kw)),
    ("gru_reset_after", lambda **kw: gr.GRU(I, H, **kw)),
    ("gru_reset_before", lambda **kw: gr.GRU(I, H, reset_after=False, **kw)),
    ("janet_beta1", lambda **kw: gr.JANET(I, H, **kw)),
    ("janet_beta0.5", lambda **kw: gr.JANET(I, H, beta=0.5, **kw)),
    ("mgu", lambda **kw: gr.MGU(I, H, **kw)),
    ("indrnn_relu_clipped", lambda **kw: spread_recurrent_weights(gr.IndRNN(I, H, recurrent_max=0.8, **kw))),
    ("indrnn_tanh", lambda **kw: gr.IndRNN(I, H, nonlinearity="tanh", **kw)),
    ("layernorm_lstm", lambda **kw: randomise_gains(gr.LayerNormLSTM(I, H, forget_bias=0.5, **kw))),
]


def randomise_gains(layer):
    """Gains and biases off their initial 1 and 0, so that a missing term shows."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("layernorm"):
                p.add_(0.3 * torch.randn_like(p))
    return layer


def spread_recurrent_weights(indrnn):
    """u ~ U(-1.2, 1.2): some entries beyond recurrent_max, where the clip cuts the gradient."""
    with torch.no_grad():
        for name, p in indrnn.named_parameters():
            if name.startswith("weight_hh"):
                p.uniform_(-1.2, 1.2)
    return indrnn

# (id, T, B, layer kwargs, with hx, lengths for a PackedSequence or None)
SCENARIOS = [
    ("T1-B1", 1, 1, {}, True, None),
    ("T7-B3-L2-bi-hx0", 7, 3, {"num_layers": 2, "bidirectional": True}, False, None),
    ("T7-B3-L2-bi-hx", 7, 3, {"num_layers": 2, "bidirectional": True}, True, None),
    ("T5-B1-batch_first-hx", 5, 1, {"batch_first": True}, True, None),
    ("packed-T7-B4-L2-bi-hx", 7, 4, {"num_layers": 2, "bidirectional": True}, True, [3, 7, 1, 5]),
    ("packed-T5-B3-hx0", 5, 3, {}, False, [5, 2, 4]),
    # B = 67: the native kernels split the batch over threads (from 32 rows a thread), unevenly
    ("packed-T4-B67-hx", 4, 67, {}, True, [4, 1, 3, 2] * 16 + [4, 2, 3]),
]

TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}

# B = 67 and the B = 1, H = 181 products split over threads only where torch has several,
# whatever pytest-xdist gives each worker (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("two_threads")



@pytest.fixture(scope="module", params=["fused", "native"])
def backend(request):
    """The backends under test; native only where its kernels build (see conftest.py)."""
    if request.param == "native":
        request.getfixturevalue("native_backend")
    return request.param


def skip_unless_runs(backend, spec):
    """Only the cells with a native kernel (every cell of this file today)."""
    if backend == "native" and backends.native.op_name(spec.name) not in backends.native.CELLS:
        pytest.skip(f"no native kernel for {spec.name}")


def assert_close_rel(ours, theirs, tol, what):
    """Largest error relative to the reference tensor's largest magnitude."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    scale = theirs.abs().max().clamp_min(torch.finfo(theirs.dtype).tiny)
    error = ((ours - theirs).abs().max() / scale).item()
    assert error <= tol, f"{what}: relative error {error:.3g} > {tol:g}"


def layer_pair(make, dtype, backend, **kwargs):
    torch.manual_seed(0)
    ref = make(backend="reference", **kwargs).to(dtype)
    skip_unless_runs(backend, ref.spec)
    ours = make(backend=backend, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def initial_state(layer, batch, dtype):
    layers = layer.num_layers * layer.num_directions
    sizes = [layer.real_hidden_size] + [layer.hidden_size] * (len(layer.spec.state_names) - 1)
    return tuple(torch.randn(layers, batch, size, dtype=dtype, requires_grad=True) for size in sizes)


def assert_inference_matches(ours, ref, x):
    """Under no_grad (the fast backends save nothing for backward) ``ours`` gives ``ref``'s
    output and final states on x (T, B = 4, I) and on x packed to lengths 2, 6, 1, 4."""
    packed = pack_padded_sequence(x, torch.tensor([2, 6, 1, 4]), enforce_sorted=False)
    with torch.no_grad():
        for inp in (x, packed):
            (out_o, final_o), (out_r, final_r) = ours(inp), ref(inp)
            if isinstance(inp, PackedSequence):
                out_o, out_r = out_o.data, out_r.data
            assert_close_rel(out_o, out_r, 1e-12, "output")
            final_o, final_r = (final if isinstance(final, tuple) else (final,) for final in (final_o, final_r))
            for k, (a, b) in enumerate(zip(final_o, final_r, strict=True)):
                assert_close_rel(a, b, 1e-12, f"final state {k}")


def forward_backward(layer, x, hx, lengths):
    """Output, final states and the gradients of input, hx and every parameter."""
    layer.zero_grad()
    for leaf in [x, *hx]:
        leaf.grad = None
    if lengths is not None:
        inp = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    else:
        inp = x.transpose(0, 1) if layer.batch_first else x
    state = None if not hx else (hx if len(layer.spec.state_names) == 2 else hx[0])
    output, final = layer(inp, state)
    out = output.data if isinstance(output, PackedSequence) else output
    final = final if isinstance(final, tuple) else (final,)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s * s.detach().sin()).sum() for s in final)
    loss.backward()
    grads = {"input": x.grad, **{f"hx{k}": h.grad for k, h in enumerate(hx)}}
    grads.update((name, p.grad) for name, p in layer.named_parameters())
    return out.detach(), [s.detach() for s in final], grads


def assert_results_close(ours, ref, tol):
    """Two forward_backward results (output, final states, gradients) agree within ``tol``
    relative error, the same dtype, every gradient present."""
    (out_o, final_o, grads_o), (out_r, final_r, grads_r) = ours, ref
    assert_close_rel(out_o, out_r, tol, "output")
    for k, (a, b) in enumerate(zip(final_o, final_r, strict=True)):
        assert_close_rel(a, b, tol, f"final state {k}")
    assert grads_o.keys() == grads_r.keys()
    for name, g in grads_r.items():
        assert grads_o[name] is not None, f"no gradient for {name}"
        assert_close_rel(grads_o[name], g, tol, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_matches_reference(backend, make, scenario, dtype):
    _, T, B, kwargs, with_hx, lengths = scenario
    ours, ref = layer_pair(make, dtype, backend, **kwargs)
    torch.manual_seed(1)
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    hx = initial_state(ref, B, dtype) if with_hx else ()
    assert_results_close(forward_backward(ours, x, hx, lengths), forward_backward(ref, x, hx, lengths),
                         TOLERANCE[dtype])


@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_inference_matches_reference(backend, make):
    """Without autograd the fast backends save nothing for backward; same results."""
    ours, ref = layer_pair(make, torch.float64, backend, num_layers=2, bidirectional=True)
    torch.manual_seed(2)
    assert_inference_matches(ours, ref, torch.randn(6, 4, I, dtype=torch.float64))


def test_layer_weight_gradients_without_input_gradient(backend):
    """Only the parameters need gradients (no input or state gradient asked for)."""
    make = dict(LAYERS)["lstm_tf_extras"]
    ours, ref = layer_pair(make, torch.float64, backend)
    x = torch.randn(5, 2, I, dtype=torch.float64)
    for layer in (ours, ref):
        output, (h_n, c_n) = layer(x)
        (output.sum() + c_n.sum()).backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert_close_rel(p.grad, q.grad, 1e-9, name)


# -- the backend function directly ------------------------------------------------------

SPECS = [
    ("rnn_tanh", RNNSpec()),
    ("rnn_relu", RNNSpec("relu")),
    ("lstm", LSTMSpec()),
    ("lstm_tf_extras", LSTMSpec(forget_bias=1.0, cell_clip=0.8, proj_clip=0.15)),
    ("gru_reset_after", GRUSpec()),
    ("gru_reset_before", GRUSpec(reset_after=False)),
    ("janet_beta1", JANETSpec()),
    ("janet_beta0.5", JANETSpec(beta=0.5)),
    ("mgu", MGUSpec()),
    ("indrnn_relu_clipped", IndRNNSpec(recurrent_max=0.8)),
    ("indrnn_tanh", IndRNNSpec("tanh")),
    ("layernorm_lstm", LayerNormLSTMSpec(forget_bias=0.5)),
]


def backend_inputs(spec, T, B, H, *, bias=True, proj=0, peepholes=False, dtype=torch.float64,
                   generator=None):
    """xw, state and weights for a direct backend call, all requiring grad."""
    def rand(*shape):
        return torch.randn(*shape, dtype=dtype, generator=generator).requires_grad_()

    G, Ph = spec.num_gates, proj or H
    shapes = spec.parameter_shapes(1, H, bias=bias, proj_size=proj, peepholes=peepholes)
    weights = {name: rand(*shape) for name, shape in shapes.items() if name not in spec.input_parameters}
    state = (rand(B, Ph), rand(B, H)) if len(spec.state_names) == 2 else (rand(B, H),)
    return rand(T, B, G * H), state, weights


def spec_options(name):
    return {"proj": 2, "peepholes": True} if name == "lstm_tf_extras" else {}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["dense", "lengths"])
@pytest.mark.parametrize("name, spec", SPECS, ids=[n for n, _ in SPECS])
def test_gradcheck_backend(backend, name, spec, with_lengths):
    skip_unless_runs(backend, spec)
    run = backends.get(backend).run
    gen = torch.Generator().manual_seed(3)
    xw, state, weights = backend_inputs(spec, 3, 2, 3, generator=gen, **spec_options(name))
    lengths = torch.tensor([1, 3]) if with_lengths else None
    names, k = list(weights), len(state)

    def fn(xw, *rest):
        outputs, final = run(spec, xw, rest[:k], dict(zip(names, rest[k:])), lengths)
        return (outputs, *final)

    assert torch.autograd.gradcheck(fn, (xw, *state, *weights.values()), eps=1e-6, atol=1e-6)


def test_fused_backend_is_one_autograd_function():
    spec = LSTMSpec()
    xw, state, weights = backend_inputs(spec, 4, 2, 3)
    outputs, (h_n, c_n) = fused.run(spec, xw, state, weights)
    assert type(outputs.grad_fn).__name__ == "_FusedRecurrenceBackward"
    assert h_n.grad_fn is outputs.grad_fn and c_n.grad_fn is outputs.grad_fn


# -- property-based: random small shapes and options ------------------------------------


@st.composite
def cases(draw):
    name, spec = draw(st.sampled_from(SPECS))
    T, B, H_ = draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 9))
    lstm = isinstance(spec, LSTMSpec)
    options = {
        "bias": draw(st.booleans()),
        "proj": draw(st.integers(1, 4)) if lstm and draw(st.booleans()) else 0,
        "peepholes": lstm and draw(st.booleans()),
    }
    if lstm and not options["proj"] and spec.proj_clip is not None:
        spec = LSTMSpec(forget_bias=spec.forget_bias, cell_clip=spec.cell_clip)
    lengths = draw(st.one_of(st.none(), st.lists(st.integers(0, T), min_size=B, max_size=B)))
    seed = draw(st.integers(0, 2**31 - 1))
    return spec, T, B, H_, options, lengths, seed


@settings(max_examples=40, deadline=None)
@given(cases())
def test_backend_matches_reference_property(backend, case):
    spec, T, B, H_, options, lengths, seed = case
    assume(backend != "native" or backends.native.op_name(spec.name) in backends.native.CELLS)
    gen = torch.Generator().manual_seed(seed)
    xw, state, weights = backend_inputs(spec, T, B, H_, generator=gen, **options)
    lengths = None if lengths is None else torch.tensor(lengths)
    leaves = [xw, *state, *weights.values()]
    results = []
    for module in (backends.get(backend), reference):
        outputs, final = module.run(spec, xw, state, weights, lengths)
        w_out = torch.randn(outputs.shape, dtype=outputs.dtype, generator=torch.Generator().manual_seed(seed))
        loss = (outputs * w_out).sum() + sum((s * s).sum() for s in final)
        results.append([outputs, *final, *torch.autograd.grad(loss, leaves)])
        with torch.no_grad():  # the inference path too
            out_ng, final_ng = module.run(spec, xw, state, weights, lengths)
        results[-1] += [out_ng, *final_ng]
    for k, (a, b) in enumerate(zip(*results)):
        assert_close_rel(a.detach(), b.detach(), 1e-9, f"result {k}")


@pytest.mark.parametrize("name, spec", SPECS, ids=[n for n, _ in SPECS])
def test_single_sequence_with_a_large_hidden_size(backend, name, spec):
    skip_unless_runs(backend, spec)
    """B = 1 with H = 181: the native kernels' matrix-vector path, split over threads
    (from 64K multiply-adds a step), with an odd H."""
    gen = torch.Generator().manual_seed(5)
    xw, state, weights = backend_inputs(spec, 3, 1, 181, generator=gen, **spec_options(name))
    with torch.no_grad():
        for w in weights.values():
            w.mul_(0.1)  # keep the activations away from saturation
    leaves = [xw, *state, *weights.values()]
    results = []
    for module in (backends.get(backend), reference):
        outputs, final = module.run(spec, xw, state, weights)
        loss = (outputs * outputs.detach().cos()).sum() + sum((s * s).sum() for s in final)
        results.append([outputs, *final, *torch.autograd.grad(loss, leaves)])
    for k, (a, b) in enumerate(zip(*results)):
        assert_close_rel(a.detach(), b.detach(), 1e-9, f"result {k}")
