"""The native layer-normalised LSTM kernel (csrc/layernorm_lstm.cpp) against the
reference backend (the oracle), through the layer: outputs, final states and the
gradients of the input, the initial state and every parameter; the no-gradient path;
the saved layout; gradcheck on the backend with and without lengths; torch.compile
over the ops' fake kernels."""

import pytest
import torch

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import native
from gatedrnn.cells import LayerNormLSTMSpec
from helpers import assert_compiled_matches_eager
from test_native_mgu_indrnn import SMALL_SCENARIOS
from test_backends_vs_reference import (TOLERANCE, assert_close_rel, assert_inference_matches, forward_backward,
                                        initial_state, randomise_gains)

I, H = 3, 13  # H odd: a partial vector at the end of every gate block

pytestmark = pytest.mark.usefixtures("native_backend")

# (id, layer constructor taking the backend name and layer options); gains and biases
# randomised away from 1 and 0 so that a missing term shows
LAYERS = [
    ("default", lambda **kw: randomise_gains(gr.LayerNormLSTM(I, H, **kw))),
    ("forget_bias0.5", lambda **kw: randomise_gains(gr.LayerNormLSTM(I, H, forget_bias=0.5, **kw))),
    ("nobias", lambda **kw: randomise_gains(gr.LayerNormLSTM(I, H, bias=False, **kw))),
]

# (id, T, B, layer kwargs, with hx, lengths for a PackedSequence or None)
SCENARIOS = SMALL_SCENARIOS + [
    # B = 67 on two threads: the rows split 34 + 33
    ("T20-B67-hx", 20, 67, {}, True, None),
    ("packed-T20-B67-hx0", 20, 67, {}, False, [20, 1, 11, 6] * 16 + [5, 20, 19]),
]


def layer_pair(make, dtype, **kwargs):
    """(native in ``dtype``, reference in float64) layers with the same parameters."""
    torch.manual_seed(0)
    ref = make(backend="reference", **kwargs).double()
    ours = make(backend="native", **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def leaf(t, dtype):
    return t.detach().to(dtype).requires_grad_()


def test_auto_backend_picks_the_native_kernel():
    layer = gr.LayerNormLSTM(I, H)
    assert backends.resolve("auto", layer, torch.randn(4, 2, I)) == "native"


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_matches_reference(make, scenario, dtype):
    """Against the reference in float64 whatever ``dtype``: the normalisations amplify
    rounding, and a float32 reference is itself up to 1e-4 off here (B = 67, no bias)."""
    _, T, B, kwargs, with_hx, lengths = scenario
    ours, ref = layer_pair(make, dtype, **kwargs)
    torch.manual_seed(1)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    hx = initial_state(ref, B, torch.float64) if with_hx else ()
    out_o, final_o, grads_o = forward_backward(ours, leaf(x, dtype), tuple(leaf(h, dtype) for h in hx), lengths)
    out_r, final_r, grads_r = forward_backward(ref, x, hx, lengths)
    tol = TOLERANCE[dtype]
    assert out_o.dtype == dtype
    assert_close_rel(out_o.double(), out_r, tol, "output")
    for k, (a, b) in enumerate(zip(final_o, final_r, strict=True)):
        assert_close_rel(a.double(), b, tol, f"final state {k}")
    assert grads_o.keys() == grads_r.keys()
    for name, g in grads_r.items():
        assert grads_o[name] is not None, f"no gradient for {name}"
        assert_close_rel(grads_o[name].double(), g, tol, f"gradient of {name}")


@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_inference_matches_reference(make):
    """Without autograd the kernel saves nothing for backward; same results."""
    ours, ref = layer_pair(make, torch.float64, num_layers=2, bidirectional=True)
    torch.manual_seed(2)
    assert_inference_matches(ours, ref, torch.randn(6, 4, I, dtype=torch.float64))


def backend_inputs(h, rand, bias=True):
    """xw (T = 4, B = 2), the state (h, c) and the recurrent weights for hidden size h."""
    weights = {"weight_hh": rand(4 * h, h), "layernorm_hh_weight": rand(4 * h),
               "layernorm_c_weight": rand(h), "layernorm_c_bias": rand(h)}
    if bias:
        weights["bias_hh"] = rand(4 * h)
    return rand(4, 2, 4 * h), (rand(2, h), rand(2, h)), weights


@pytest.mark.parametrize("save", [True, False], ids=["save", "nosave"])
def test_saved_layout_matches_fake(save):
    """The kernel saves what _fake_saved declares: i, f, g, o and n (T, B, 4H), rstd
    (T, B, 4), m (T, B, H), rstd_c (T, B, 1), c_t (T, B, H)."""
    spec = LayerNormLSTMSpec()
    xw, state, weights = backend_inputs(H, torch.randn)
    slots = [0, 1, 6, 7, 8]
    ordered = [weights[name] for name in ("weight_hh", "bias_hh", "layernorm_hh_weight",
                                          "layernorm_c_weight", "layernorm_c_bias")]
    native.load(spec.name)
    output, final, saved = torch.ops.gatedrnn.layernorm_lstm_forward(
        xw, list(state), ordered, slots, None, spec.kernel_options(), save)
    expected = native._fake_saved(spec.name, xw, slots, H) if save else []
    assert [tuple(t.shape) for t in saved] == [tuple(t.shape) for t in expected]
    assert output.shape == (4, 2, H) and [tuple(s.shape) for s in final] == [(2, H), (2, H)]
    if save:  # the activations are in (0, 1) and (-1, 1); the normalised rows have mean 0
        i, f, g, o = saved[0].chunk(4, dim=-1)
        assert all(((a > 0) & (a < 1)).all() for a in (i, f, o)) and (g.abs() <= 1).all()
        torch.testing.assert_close(saved[1].unflatten(-1, (4, H)).mean(-1), torch.zeros(4, 2, 4))
        torch.testing.assert_close(saved[5][-1], final[1])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["dense", "lengths"])
def test_gradcheck_backend(with_lengths, bias):
    spec = LayerNormLSTMSpec(forget_bias=0.5)
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_()

    xw, state, weights = backend_inputs(3, rand, bias)
    lengths = torch.tensor([2, 4]) if with_lengths else None
    names = list(weights)

    def fn(xw, h0, c0, *values):
        outputs, final = native.run(spec, xw, (h0, c0), dict(zip(names, values)), lengths)
        return (outputs, *final)

    assert torch.autograd.gradcheck(fn, (xw, *state, *weights.values()), eps=1e-6, atol=1e-6)


def test_runs_under_torch_compile():
    """The fake kernels give the saved shapes; the options list round-trips."""
    torch.manual_seed(0)
    layer = dict(LAYERS)["forget_bias0.5"](backend="native", batch_first=True)
    assert_compiled_matches_eager(layer, torch.randn(4, 6, I))
