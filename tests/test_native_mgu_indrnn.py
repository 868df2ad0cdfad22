"""The native MGU and IndRNN kernels (csrc/mgu.cpp, csrc/indrnn.cpp) against the
reference backend (the oracle), through the layers: outputs, final states and the
gradients of the input, the initial state and every parameter; the no-gradient path;
the saved layout; gradcheck through the layer and on the backend with lengths;
torch.compile over the ops' fake kernels."""

import pytest
import torch
from torch.func import functional_call

import gatedrnn as gr
from gatedrnn.backends import native
from gatedrnn.cells import IndRNNSpec, MGUSpec
from helpers import assert_compiled_matches_eager
from test_backends_vs_reference import (TOLERANCE, assert_inference_matches, assert_results_close, forward_backward,
                                        initial_state, layer_pair)

I, H = 3, 13  # H odd: a partial vector at the end of every row
MAX = 0.5  # IndRNN's recurrent_max, below some |u|

pytestmark = pytest.mark.usefixtures("native_backend")


def spread_indrnn(layer):
    """u ~ U(-1, 1), so that with recurrent_max = 0.5 some units are clipped and some
    recur negatively, and nonzero biases (the default initialisation zeroes them)."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("weight_hh"):
                p.uniform_(-1.0, 1.0)
            elif name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    return layer


# (id, layer constructor taking the backend name and layer options)
LAYERS = [
    ("mgu", lambda **kw: gr.MGU(I, H, **kw)),
    ("mgu_nobias", lambda **kw: gr.MGU(I, H, bias=False, **kw)),
    ("indrnn_relu_max", lambda **kw: spread_indrnn(gr.IndRNN(I, H, recurrent_max=MAX, **kw))),
    ("indrnn_tanh_max", lambda **kw: spread_indrnn(gr.IndRNN(I, H, nonlinearity="tanh", recurrent_max=MAX, **kw))),
    ("indrnn_relu", lambda **kw: gr.IndRNN(I, H, **kw)),  # the default u ~ U(0, 1), unclipped
    ("indrnn_tanh_nobias", lambda **kw: spread_indrnn(gr.IndRNN(I, H, nonlinearity="tanh", bias=False, **kw))),
]

# (id, T, B, layer kwargs, with hx, lengths for a PackedSequence or None)
SMALL_SCENARIOS = [
    ("T1-B1", 1, 1, {}, True, None),
    ("T6-B1-hx", 6, 1, {}, True, None),  # matrix-vector products
    ("T6-B1-batch_first-hx0", 6, 1, {"batch_first": True}, False, None),
    ("T7-B3-L2-bi-hx0", 7, 3, {"num_layers": 2, "bidirectional": True}, False, None),
    ("T7-B3-L2-bi-hx", 7, 3, {"num_layers": 2, "bidirectional": True}, True, None),
    ("packed-T7-B4-L2-bi-hx", 7, 4, {"num_layers": 2, "bidirectional": True}, True, [3, 7, 1, 5]),
    ("packed-T5-B3-hx0", 5, 3, {}, False, [5, 2, 4]),
]
SCENARIOS = SMALL_SCENARIOS + [
    # B = 67 on two threads: MGU splits the rows 34 + 33; T = 80 makes IndRNN split its
    # 67 * 13 elements, in the middle of a row
    ("T80-B67-hx", 80, 67, {}, True, None),
    ("packed-T80-B67-hx0", 80, 67, {}, False, [80, 1, 37, 12] * 16 + [5, 80, 79]),
]


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_matches_reference(make, scenario, dtype):
    _, T, B, kwargs, with_hx, lengths = scenario
    ours, ref = layer_pair(make, dtype, "native", **kwargs)
    torch.manual_seed(1)
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    hx = initial_state(ref, B, dtype) if with_hx else ()
    assert_results_close(forward_backward(ours, x, hx, lengths), forward_backward(ref, x, hx, lengths),
                         TOLERANCE[dtype])


def test_indrnn_clipped_units_get_no_gradient():
    # tanh: a ReLU unit can be dead, with no gradient though unclipped
    ours, _ = layer_pair(dict(LAYERS)["indrnn_tanh_max"], torch.float64, "native")
    u = ours.weight_hh_l0
    clipped = u.abs() > MAX
    assert clipped.any() and not clipped.all()
    x = torch.randn(9, 4, I, dtype=torch.float64)
    ours(x)[0].sum().backward()
    assert (u.grad[clipped] == 0).all() and (u.grad[~clipped] != 0).all()


@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_inference_matches_reference(make):
    """Without autograd the kernels save nothing for backward; same results."""
    ours, ref = layer_pair(make, torch.float64, "native", num_layers=2, bidirectional=True)
    torch.manual_seed(2)
    assert_inference_matches(ours, ref, torch.randn(6, 4, I, dtype=torch.float64))


# (id, spec, weights for hidden size h)
SPECS = [
    ("mgu", MGUSpec(), lambda h, rand: {"weight_hh": rand(2 * h, h), "bias_hh": rand(2 * h)}),
    ("indrnn_relu_max", IndRNNSpec("relu", MAX), lambda h, rand: {"weight_hh": rand(h), "bias_hh": rand(h)}),
    ("indrnn_tanh", IndRNNSpec("tanh"), lambda h, rand: {"weight_hh": rand(h), "bias_hh": rand(h)}),
]


@pytest.mark.parametrize("save", [True, False], ids=["save", "nosave"])
@pytest.mark.parametrize("name, spec, make_weights", SPECS, ids=[s[0] for s in SPECS])
def test_saved_layout_matches_fake(name, spec, make_weights, save):
    """The kernel saves what _fake_saved declares: mgu [f, n] (T, B, 2H), indrnn nothing."""
    xw = torch.randn(5, 3, spec.num_gates * H)
    h0 = torch.randn(3, H)
    weights = make_weights(H, torch.randn)
    ordered = [weights["weight_hh"], weights["bias_hh"]]
    native.load(spec.name)
    forward = getattr(torch.ops.gatedrnn, f"{spec.name}_forward")
    output, final, saved = forward(xw, [h0], ordered, [0, 1], None, spec.kernel_options(), save)
    expected = native._fake_saved(spec.name, xw, [0, 1], H) if save else []
    assert [tuple(t.shape) for t in saved] == [tuple(t.shape) for t in expected]
    assert output.shape == (5, 3, H) and final[0].shape == (3, H)
    if save and spec.name == "mgu":  # the activations are in (0, 1) and (-1, 1)
        f, n = saved[0].chunk(2, dim=-1)
        assert ((f > 0) & (f < 1)).all() and (n.abs() <= 1).all()


@pytest.mark.parametrize("with_lengths", [False, True], ids=["dense", "lengths"])
@pytest.mark.parametrize("name, spec, make_weights", SPECS, ids=[s[0] for s in SPECS])
def test_gradcheck_backend(name, spec, make_weights, with_lengths):
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_()

    h = 3
    xw, h0, weights = rand(4, 2, spec.num_gates * h), rand(2, h), make_weights(h, rand)
    lengths = torch.tensor([2, 4]) if with_lengths else None
    names = list(weights)

    def fn(xw, h0, *values):
        outputs, (final,) = native.run(spec, xw, (h0,), dict(zip(names, values)), lengths)
        return outputs, final

    assert torch.autograd.gradcheck(fn, (xw, h0, *weights.values()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_gradcheck_layer(make):
    torch.manual_seed(0)
    layer = make(backend="native").double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(4, 3, I, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 3, H, dtype=torch.double, requires_grad=True)

    def fn(x, h0, *values):
        output, final = functional_call(layer, dict(zip(names, values)), (x, h0))
        return output, final

    assert torch.autograd.gradcheck(fn, (x, h0, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("make", [dict(LAYERS)["mgu"], dict(LAYERS)["indrnn_tanh_max"]], ids=["mgu", "indrnn"])
def test_runs_under_torch_compile(make):
    """The fake kernels give the saved shapes; MGU's empty options list round-trips."""
    torch.manual_seed(0)
    layer = make(backend="native", batch_first=True)
    assert_compiled_matches_eager(layer, torch.randn(4, 6, I))
