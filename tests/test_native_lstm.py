"""The native LSTM kernel (csrc/lstm.cpp) against the reference backend (the oracle):
outputs, final states and the gradients of xw, h0, c0 and every recurrent weight, for
every combination of bias, projection, peepholes, cell/projection clips and lengths;
the no-grad (scratch) path; the saved-tensor layout; gradcheck through the layer."""

import itertools

import pytest
import torch

import gatedrnn as gr
from gatedrnn.backends import native, reference
from gatedrnn.cells import LSTMSpec
from gatedrnn.parameters import RECURRENT_NAMES

# two_threads: the kernels split the batch over threads (B >= 8 here), as on any multi-core machine
pytestmark = pytest.mark.usefixtures("native_backend", "two_threads")

T, B, H, P = 6, 9, 11, 5  # H, P not multiples of any vector width; B split across threads
CELL_CLIP, PROJ_CLIP, FORGET_BIAS = 0.8, 0.3, 0.7  # clips small enough to be active
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}
DTYPES = {"f64": torch.float64, "f32": torch.float32}

# (bias, projection, peepholes, cell clip, projection clip, lengths); a projection clip
# needs a projection.
OPTIONS = [combo for combo in itertools.product([True, False], repeat=6) if combo[1] or not combo[4]]


def option_id(combo):
    names = ["bias", "proj", "peep", "cclip", "pclip", "lengths"]
    return "-".join(name for name, on in zip(names, combo) if on) or "plain"


def make_case(dtype, bias, proj, peep, cell_clip, proj_clip, lengths, batch=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    out_size = P if proj else H
    weights = {"weight_hh": 0.5 * rand(4 * H, out_size)}
    if bias:
        weights["bias_hh"] = rand(4 * H)
    if proj:
        weights["weight_hr"] = 0.5 * rand(out_size, H)
    if peep:
        weights.update(weight_ci=rand(H), weight_cf=rand(H), weight_co=rand(H))
    xw, h0, c0 = rand(T, batch, 4 * H), rand(batch, out_size), rand(batch, H)
    lens = None
    if lengths:
        lens = torch.randint(1, T + 1, (batch,), generator=g)
        lens[0], lens[-1] = T, 1  # full length and the shortest, whatever the draw
    spec = LSTMSpec(forget_bias=FORGET_BIAS, cell_clip=CELL_CLIP if cell_clip else None,
                    proj_clip=PROJ_CLIP if proj_clip else None)
    # weights of the loss: outputs and both final states
    loss_weights = (rand(T, batch, out_size), rand(batch, out_size), rand(batch, H))
    return spec, xw, (h0, c0), weights, lens, loss_weights


def run_with_grads(backend, spec, xw, state, weights, lens, loss_weights):
    inputs = [t.clone().requires_grad_(True) for t in (xw, *state, *weights.values())]
    named = dict(zip(weights, inputs[3:]))
    output, (h, c) = backend.run(spec, inputs[0], (inputs[1], inputs[2]), named, lens)
    w_out, w_h, w_c = loss_weights
    loss = (output * w_out).sum() + (h * w_h).sum() + (c * w_c).sum()
    grads = torch.autograd.grad(loss, inputs)
    names = ["output", "h_n", "c_n", "grad_xw", "grad_h0", "grad_c0"] + [f"grad_{n}" for n in weights]
    return dict(zip(names, (output, h, c, *grads)))


def assert_close_rel(ours, theirs, tol, what):
    """Largest error relative to the reference tensor's largest magnitude."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    scale = theirs.abs().max().clamp_min(torch.finfo(theirs.dtype).tiny)
    error = ((ours - theirs).abs().max() / scale).item()
    assert error <= tol, f"{what}: relative error {error:.3g} > {tol:g}"


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("options", OPTIONS, ids=[option_id(c) for c in OPTIONS])
def test_matches_reference(options, dtype):
    case = make_case(dtype, *options)
    spec, lens = case[0], case[4]
    ours = run_with_grads(native, *case)
    ref = run_with_grads(reference, *case)
    assert ours.keys() == ref.keys()
    for name in ref:
        assert_close_rel(ours[name], ref[name], TOLERANCE[dtype], name)
    # the options under test are exercised, not vacuous
    if spec.cell_clip is not None:
        assert (ref["c_n"].abs() == CELL_CLIP).any(), "cell clip never active"
    if spec.proj_clip is not None:
        assert (ref["output"].abs() == PROJ_CLIP).any(), "projection clip never active"
    if lens is not None:
        assert (ref["output"][-1, -1] == 0).all() and (lens < T).any()


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_batch_of_one(lengths):
    case = make_case(torch.float64, True, True, True, True, True, lengths, batch=1, seed=3)
    ours, ref = run_with_grads(native, *case), run_with_grads(reference, *case)
    for name in ref:
        assert_close_rel(ours[name], ref[name], 1e-9, name)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("proj", [False, True], ids=["noproj", "proj"])
def test_no_grad_path_matches_reference(proj, dtype):
    """Without a gradient the kernel saves nothing and uses per-thread scratch."""
    spec, xw, state, weights, lens, _ = make_case(dtype, True, proj, True, True, proj, True, seed=1)
    with torch.no_grad():
        ours = native.run(spec, xw, state, weights, lens)
        ref = reference.run(spec, xw, state, weights, lens)
    for name, a, b in zip(["output", "h_n", "c_n"], (ours[0], *ours[1]), (ref[0], *ref[1])):
        assert_close_rel(a, b, TOLERANCE[dtype], name)


@pytest.mark.parametrize("proj", [False, True], ids=["noproj", "proj"])
@pytest.mark.parametrize("save", [False, True], ids=["nosave", "save"])
def test_saved_layout_matches_fake(save, proj):
    """The kernel saves what _fake_saved declares (torch.compile relies on it)."""
    spec, xw, state, weights, lens, _ = make_case(torch.float32, True, proj, True, True, proj, False)
    slots = [i for i, name in enumerate(RECURRENT_NAMES) if name in weights]
    ordered = [weights[RECURRENT_NAMES[i]] for i in slots]
    options = spec.kernel_options()
    native.load("lstm")
    _, _, saved = torch.ops.gatedrnn.lstm_forward(xw, list(state), ordered, slots, lens, options, save)
    expected = native._fake_saved("lstm", xw, slots, H) if save else []
    assert [s.shape for s in saved] == [e.shape for e in expected]
    assert all(s.dtype == xw.dtype for s in saved)


def test_gradcheck_layer():
    torch.manual_seed(0)
    layer = gr.LSTM(3, 4, proj_size=2, forget_bias=1.0, peepholes=True, cell_clip=0.6, proj_clip=0.3,
                    backend="native").double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(5, 2, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(1, 2, 4, dtype=torch.double, requires_grad=True)

    def fn(x, h0, c0, *values):
        output, (h, c) = torch.func.functional_call(layer, dict(zip(names, values)), (x, (h0, c0)))
        return output, h, c

    assert torch.autograd.gradcheck(fn, (x, h0, c0, *params), eps=1e-6, atol=1e-5)
