"""The minimal RNNs' native ops on the standard schema, against the reference backend (a
loop of ``spec.step``): outputs, final states and every gradient, dense and with lengths,
float32 and float64, with the input projection outside (xw given) and inside the kernel
(x, weight_ih and bias_ih given)."""

import pytest
import torch
import torch.nn.functional as F

from gatedrnn.backends import native, reference
from gatedrnn.min_rnn import MinGRUSpec, MinLSTMSpec

pytestmark = pytest.mark.usefixtures("native_backend")

SPECS = [("mingru", MinGRUSpec()), ("minlstm", MinLSTMSpec())]
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5}
H = 13  # not a multiple of any vector width


def inputs(spec, T, B, I, *, projected, bias, dtype, seed=0):
    """(xw or x, h0, the weights native.run gets, the input projection's parameters)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, dtype=dtype, generator=gen)).requires_grad_()

    G = spec.num_gates
    h0 = rand(B, H)
    if not projected:  # large pre-activations: saturated gates and both branches of g
        return rand(T, B, G * H, scale=3.0), h0, {}
    weights = {"weight_ih": rand(G * H, I, scale=1.5)}
    if bias:
        weights["bias_ih"] = rand(G * H)
    return rand(T, B, I), h0, weights


def reference_run(spec, first, h0, weights, lengths):
    """The reference loop, from W_ih x + b_ih when the weights hold the projection."""
    xw = F.linear(first, weights["weight_ih"], weights.get("bias_ih")) if weights else first
    return reference.run(spec, xw, (h0,), {}, lengths)


def results(run, spec, first, h0, weights, lengths, dtype):
    """Output, final state and the gradients of every input of a weighted loss."""
    output, (h_n,) = run(spec, first, h0, weights, lengths)
    gen = torch.Generator().manual_seed(7)
    loss = (output * torch.randn(output.shape, dtype=dtype, generator=gen)).sum() + (h_n * h_n.detach().cos()).sum()
    leaves = [first, h0, *weights.values()]
    return [output, h_n, *torch.autograd.grad(loss, leaves)]


def native_run(spec, first, h0, weights, lengths):
    return native.run(spec, first, (h0,), weights, lengths)


CASES = [  # (id, projected, bias, lengths)
    ("xw-dense", False, True, None),
    ("xw-lengths", False, True, [5, 0, 2, 7, 1, 7, 3, 4, 6]),
    ("x-bias-dense", True, True, None),
    ("x-bias-lengths", True, True, [5, 0, 2, 7, 1, 7, 3, 4, 6]),
    ("x-nobias-lengths", True, False, [1, 7, 7, 3, 0, 2, 2, 5, 6]),
]


@pytest.mark.usefixtures("two_threads")  # B = 9: the batch split unevenly over the threads
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("name, spec", SPECS, ids=[n for n, _ in SPECS])
def test_op_matches_reference(name, spec, case, dtype):
    _, projected, bias, lengths = case
    first, h0, weights = inputs(spec, 7, 9, 3, projected=projected, bias=bias, dtype=dtype)
    lengths = None if lengths is None else torch.tensor(lengths)
    ours = results(native_run, spec, first, h0, weights, lengths, dtype)
    theirs = results(reference_run, spec, first, h0, weights, lengths, dtype)
    what = ["output", "final state", "grad of xw / x", "grad of h0", *(f"grad of {n}" for n in weights)]
    tol = TOLERANCE[dtype]
    for label, a, b in zip(what, ours, theirs):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=label)
    if lengths is not None:  # zero outputs past each length
        past = torch.arange(7).unsqueeze(1) >= lengths
        assert (ours[0][past] == 0).all()


@pytest.mark.parametrize("projected", [False, True], ids=["xw", "x"])
@pytest.mark.parametrize("name, spec", SPECS, ids=[n for n, _ in SPECS])
def test_inference_path_matches_training_path(name, spec, projected):
    first, h0, weights = inputs(spec, 6, 4, 2, projected=projected, bias=True, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 0, 4])
    trained = native.run(spec, first, (h0,), weights, lengths)
    with torch.no_grad():
        inferred = native.run(spec, first, (h0,), weights, lengths)
    torch.testing.assert_close(inferred[0], trained[0].detach(), rtol=0, atol=0)
    torch.testing.assert_close(inferred[1][0], trained[1][0].detach(), rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("name, spec", SPECS, ids=[n for n, _ in SPECS])
def test_gradcheck(name, spec, case):
    _, projected, bias, lengths = case
    first, h0, weights = inputs(spec, 3, 2, 2, projected=projected, bias=bias, dtype=torch.float64, seed=3)
    lengths = None if lengths is None else torch.tensor(lengths[:2]).clamp(max=3)
    names = list(weights)

    def fn(first, h0, *values):
        output, (h_n,) = native.run(spec, first, (h0,), dict(zip(names, values)), lengths)
        return output, h_n

    assert torch.autograd.gradcheck(fn, (first, h0, *weights.values()), eps=1e-6, atol=1e-6)


def test_unknown_weights_are_an_error():
    first, h0, _ = inputs(MinGRUSpec(), 3, 2, 2, projected=False, bias=True, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"unknown weights \['weight_hx'\]"):
        native.run(MinGRUSpec(), first, (h0,), {"weight_hx": h0})
