"""The native GRU kernel (csrc/gru.cpp) against the reference backend (the oracle):
outputs, final state and the gradients of xw, h0, weight_hh and bias_hh, both reset
modes, with and without bias_hh and lengths; the no-gradient path; the saved layout;
gradcheck through the layer."""

import pytest
import torch
from torch.func import functional_call

import gatedrnn as gr
from gatedrnn.backends import native, reference
from gatedrnn.cells import GRUSpec

H = 37  # not a multiple of any vector width

# two_threads: the kernels split the batch over threads (B >= 8 here), as on any multi-core machine
pytestmark = pytest.mark.usefixtures("native_backend", "two_threads")

# (id, T, B, lengths or None); B >= 8 splits the batch over threads where there are several.
SHAPES = [
    ("T1-B1", 1, 1, None),
    ("T1-B3-len", 1, 3, [1, 0, 1]),
    ("T7-B1", 7, 1, None),
    ("T7-B1-len4", 7, 1, [4]),
    ("T9-B13", 9, 13, None),
    ("T9-B13-len-random", 9, 13, "random"),
]
MODES = [("reset_after", True), ("reset_before", False)]
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


def assert_close_rel(ours, theirs, tol, what):
    """Largest error relative to the reference tensor's largest magnitude."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    scale = theirs.abs().max().clamp_min(torch.finfo(theirs.dtype).tiny)
    error = ((ours - theirs).abs().max() / scale).item()
    assert error <= tol, f"{what}: relative error {error:.3g} > {tol:g}"


def make_lengths(spec, steps, batch):
    if spec is None:
        return None
    if spec == "random":
        g = torch.Generator().manual_seed(steps * 100 + batch)
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        lengths[0], lengths[1] = steps, 1  # the longest and the shortest
        return lengths
    return torch.tensor(spec, dtype=torch.int64)


def make_inputs(steps, batch, dtype, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    bound = H ** -0.5

    def uniform(*shape):
        return ((torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * bound).to(dtype)

    xw = torch.randn(steps, batch, 3 * H, generator=g, dtype=torch.float64).to(dtype)
    h0 = torch.randn(batch, H, generator=g, dtype=torch.float64).to(dtype)
    weights = {"weight_hh": uniform(3 * H, H) * 2}  # a bit larger than torch's init
    if bias:
        weights["bias_hh"] = uniform(3 * H)
    return xw, h0, weights


def run_with_grads(backend, spec, xw, h0, weights, lengths):
    """Output, final h and the gradients of xw, h0 and each weight of a weighted sum of
    the outputs plus the final state."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (xw, h0, *weights.values())]
    xw_, h0_, *ws = leaves
    out, (final,) = backend.run(spec, xw_, (h0_,), dict(zip(weights, ws)), lengths)
    w_out = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    w_fin = torch.linspace(2, -1, final.numel(), dtype=out.dtype).view_as(final)
    loss = (out * w_out).sum() + (final * w_fin).sum()
    grads = torch.autograd.grad(loss, leaves)
    names = ["xw", "h0", *weights]
    return out.detach(), final.detach(), dict(zip(names, grads))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("mode", MODES, ids=[m[0] for m in MODES])
def test_matches_reference(mode, shape, bias, dtype):
    spec = GRUSpec(reset_after=mode[1])
    _, steps, batch, length_spec = shape
    lengths = make_lengths(length_spec, steps, batch)
    xw, h0, weights = make_inputs(steps, batch, dtype, bias)
    assert native.supports(spec, xw)
    out, final, grads = run_with_grads(native, spec, xw, h0, weights, lengths)
    ref_out, ref_final, ref_grads = run_with_grads(reference, spec, xw, h0, weights, lengths)
    tol = TOLERANCE[dtype]
    assert_close_rel(out, ref_out, tol, "output")
    assert_close_rel(final, ref_final, tol, "final state")
    assert set(grads) == set(ref_grads)
    for name in ref_grads:
        assert_close_rel(grads[name], ref_grads[name], tol, f"grad {name}")
    if lengths is not None:  # zero output past each length
        past = torch.arange(steps).unsqueeze(1) >= lengths.unsqueeze(0)
        assert (out[past] == 0).all()


@pytest.mark.parametrize("mode", MODES, ids=[m[0] for m in MODES])
def test_no_grad_path_matches_reference(mode):
    """save=false: the per-thread scratch instead of the saved tensors."""
    spec = GRUSpec(reset_after=mode[1])
    xw, h0, weights = make_inputs(9, 13, torch.float64, True, seed=1)
    lengths = make_lengths("random", 9, 13)
    with torch.no_grad():
        out, (final,) = native.run(spec, xw, (h0,), weights, lengths)
        ref_out, (ref_final,) = reference.run(spec, xw, (h0,), weights, lengths)
    assert_close_rel(out, ref_out, 1e-12, "output")
    assert_close_rel(final, ref_final, 1e-12, "final state")


@pytest.mark.parametrize("save", [True, False], ids=["save", "nosave"])
@pytest.mark.parametrize("mode", MODES, ids=[m[0] for m in MODES])
def test_saved_layout_matches_fake(mode, save):
    """The kernel saves what _fake_saved declares: [r, z, n] (T, B, 3H) and (T, B, H)."""
    spec = GRUSpec(reset_after=mode[1])
    xw, h0, weights = make_inputs(5, 3, torch.float32, True)
    ordered = [weights["weight_hh"], weights["bias_hh"]]
    native.load("gru")
    output, final, saved = torch.ops.gatedrnn.gru_forward(
        xw, [h0], ordered, [0, 1], None, spec.kernel_options(), save)
    expected = native._fake_saved("gru", xw, [0, 1], H) if save else []
    assert [tuple(t.shape) for t in saved] == [tuple(t.shape) for t in expected]
    assert output.shape == (5, 3, H) and final[0].shape == (3, H)
    if save:  # the gate activations are in (0, 1), (0, 1), (-1, 1)
        r, z, n = saved[0].chunk(3, dim=-1)
        assert ((r > 0) & (r < 1) & (z > 0) & (z < 1)).all() and (n.abs() <= 1).all()


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_gradcheck_layer(reset_after):
    torch.manual_seed(0)
    layer = gr.GRU(3, 5, reset_after=reset_after, backend="native").double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(4, 3, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 3, 5, dtype=torch.double, requires_grad=True)

    def fn(x, h0, *values):
        output, final = functional_call(layer, dict(zip(names, values)), (x, h0))
        return output, final

    assert torch.autograd.gradcheck(fn, (x, h0, *params), eps=1e-6, atol=1e-5)
