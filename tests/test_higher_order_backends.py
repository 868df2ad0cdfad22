"""Higher-order autograd through the fast backends, against the reference backend (a plain
autograd loop, differentiable to any order), in float64.

The native ops' backward op and the fused backend's hand-written backward are not
themselves differentiable: with ``create_graph=True`` they recompute the run through the
reference loop. Checked: the double-backward gradients of a gradient-penalty loss (with
respect to the parameters, the input and the initial state) for every cell and every
backend that runs it, dense and packed, one and two layers, bidirectional; gradgradcheck
on small shapes; vmap over the backward (jacrev, gradcheck's batched gradients);
forward-mode AD on a native op is an error, never zeros."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import fused, native, reference
from gatedrnn.cells import GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec, MGUSpec, RNNSpec
from gatedrnn.min_rnn import MinGRUSpec, MinLSTMSpec

F64 = torch.float64
I, H = 3, 4

# -- the backends directly ----------------------------------------------------------------

SPECS = [
    ("rnn_tanh", RNNSpec(), {}),
    ("rnn_relu", RNNSpec("relu"), {}),
    ("lstm", LSTMSpec(), {}),
    ("lstm_peepholes", LSTMSpec(), {"peepholes": True}),
    ("lstm_projection", LSTMSpec(), {"proj_size": 2}),
    ("lstm_clips_forget_bias", LSTMSpec(forget_bias=1.0, cell_clip=0.9, proj_clip=0.5),
     {"proj_size": 2, "peepholes": True}),
    ("gru_reset_after", GRUSpec(), {}),
    ("gru_reset_before", GRUSpec(reset_after=False), {}),
    ("janet", JANETSpec(beta=0.5), {}),
    ("mgu", MGUSpec(), {}),
    ("indrnn", IndRNNSpec(recurrent_max=0.8), {}),
    ("layernorm_lstm", LayerNormLSTMSpec(forget_bias=0.5), {}),
    ("mingru", MinGRUSpec(), {}),
    ("minlstm", MinLSTMSpec(), {}),
    ("mingru_projection_inside", MinGRUSpec(), {"projection_inside": True}),
    ("minlstm_projection_inside", MinLSTMSpec(), {"projection_inside": True}),
]


def backend_inputs(spec, T, B, hidden, options, seed=0):
    """xw (or x, with the projection inside), state and weights, float64, requiring grad."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (0.7 * torch.randn(*shape, dtype=F64, generator=gen)).requires_grad_()

    proj = options.get("proj_size", 0)
    shapes = spec.parameter_shapes(I, hidden, proj_size=proj, peepholes=options.get("peepholes", False))
    if options.get("projection_inside"):
        weights = {name: rand(*shapes[name]) for name in ("weight_ih", "bias_ih")}
        first = rand(T, B, I)
    else:  # the minimal RNNs have no recurrent weights
        recurrent = {} if isinstance(spec, (MinGRUSpec, MinLSTMSpec)) else shapes
        weights = {name: rand(*shape) for name, shape in recurrent.items() if name not in spec.input_parameters}
        first = rand(T, B, spec.num_gates * hidden)
    sizes = [proj or hidden] + [hidden] * (len(spec.state_names) - 1)
    return first, tuple(rand(B, size) for size in sizes), weights


def reference_run(spec, first, state, weights, lengths):
    if "weight_ih" in weights:  # the native kernel's own projection, done first here
        first, weights = F.linear(first, weights["weight_ih"], weights["bias_ih"]), {}
    return reference.run(spec, first, state, weights, lengths)


def runs(backend):
    return {"native": native.run, "fused": fused.run, "reference": reference_run}[backend]


def skip_unless_runs(backend, spec, options):
    if backend == "fused" and (spec.name not in fused._KERNELS or options.get("projection_inside")):
        pytest.skip(f"the fused backend does not run {spec.name}" + (" with the projection inside" * bool(options)))


@pytest.fixture(params=["native", "fused"])
def backend(request):
    if request.param == "native":
        request.getfixturevalue("native_backend")
    return request.param


def penalty_second_order(run, spec, first, state, weights, lengths):
    """The gradients of a gradient penalty: d/dθ sum_k |dL/dθ_k|^2 (weighted) for every input θ."""
    leaves = [first, *state, *weights.values()]
    output, final = run(spec, first, state, weights, lengths)
    gen = torch.Generator().manual_seed(11)
    loss = (output * torch.randn(output.shape, dtype=F64, generator=gen)).sum() + sum((s * s).sum() for s in final)
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    penalty = sum((g * g).sum() + (g * torch.randn(g.shape, dtype=F64, generator=gen)).sum() for g in grads)
    return torch.autograd.grad(penalty, leaves)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["dense", "lengths"])
@pytest.mark.parametrize("name, spec, options", SPECS, ids=[s[0] for s in SPECS])
def test_double_backward_matches_reference(backend, name, spec, options, with_lengths):
    skip_unless_runs(backend, spec, options)
    first, state, weights = backend_inputs(spec, 5, 3, H, options)
    lengths = torch.tensor([5, 2, 0]) if with_lengths else None
    ours = penalty_second_order(runs(backend), spec, first, state, weights, lengths)
    theirs = penalty_second_order(reference_run, spec, first, state, weights, lengths)
    labels = ["xw", *(f"state {k}" for k in range(len(state))), *weights]
    for label, a, b in zip(labels, ours, theirs):
        assert b.abs().max() > 0, f"{label}: a zero second derivative proves nothing"
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=f"second-order gradient of {label}")


@pytest.mark.parametrize("name, spec, options", SPECS, ids=[s[0] for s in SPECS])
def test_gradgradcheck(backend, name, spec, options):
    skip_unless_runs(backend, spec, options)
    first, state, weights = backend_inputs(spec, 2, 2, 2, options, seed=1)
    lengths = torch.tensor([2, 1])
    names, k = list(weights), len(state)

    def fn(first, *rest):
        output, final = runs(backend)(spec, first, rest[:k], dict(zip(names, rest[k:])), lengths)
        return (output, *final)

    assert torch.autograd.gradgradcheck(fn, (first, *state, *weights.values()), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("vmap", [torch.func.vmap, torch._vmap_internals.vmap], ids=["func", "legacy"])
@pytest.mark.parametrize("name, spec, options", SPECS, ids=[s[0] for s in SPECS])
def test_vmap_over_the_backward_matches_reference(backend, name, spec, options, vmap):
    """vmap over the vector-Jacobian product (jacrev, gradcheck's check_batched_grad: the
    legacy vmap) gives the rows the reference loop gives one at a time."""
    skip_unless_runs(backend, spec, options)
    first, state, weights = backend_inputs(spec, 4, 3, H, options)
    lengths = torch.tensor([4, 2, 1])
    leaves = [first, *state, *weights.values()]
    output, final = runs(backend)(spec, first, state, weights, lengths)
    expected_output, expected_final = reference_run(spec, first, state, weights, lengths)
    cotangents = torch.randn(3, *output.shape, dtype=F64, generator=torch.Generator().manual_seed(3))

    def vjp(outputs, v):
        return torch.autograd.grad(outputs, leaves, v, retain_graph=True, allow_unused=True)

    with warnings.catch_warnings():  # the legacy vmap asks for torch.vmap
        warnings.simplefilter("ignore", FutureWarning)
        batched = vmap(lambda v: vjp(output, v))(cotangents)
    for k, v in enumerate(cotangents):
        for label, got, want in zip(["xw", "state", *weights], batched, vjp(expected_output, v)):
            want = torch.zeros_like(leaves[0] if got is None else got[k]) if want is None else want
            torch.testing.assert_close(got[k], want, rtol=1e-9, atol=1e-12, msg=f"row {k}, gradient of {label}")


@pytest.mark.usefixtures("native_backend")
def test_forward_mode_ad_on_a_native_op_is_an_error():
    spec = JANETSpec()
    first, state, weights = backend_inputs(spec, 3, 2, H, {})
    primals = (first.detach(), state[0].detach())

    def fn(xw, h0):
        return native.run(spec, xw, (h0,), {k: v.detach() for k, v in weights.items()})[0]

    with pytest.raises((RuntimeError, NotImplementedError), match="forward"):
        torch.func.jvp(fn, primals, tuple(torch.ones_like(p) for p in primals))
    with torch.autograd.forward_ad.dual_level(), pytest.raises((RuntimeError, NotImplementedError), match="forward"):
        fn(torch.autograd.forward_ad.make_dual(primals[0], torch.ones_like(primals[0])), primals[1])


def test_forward_mode_ad_on_the_fused_backend_is_an_error():
    spec = JANETSpec()
    first, state, weights = backend_inputs(spec, 3, 2, H, {})
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(first.detach(), torch.ones_like(first))
        with pytest.raises(NotImplementedError, match="fused backend has no forward-mode AD"):
            fused.run(spec, dual, state, weights)


# -- through the layers -------------------------------------------------------------------

LAYERS = [
    ("rnn_tanh", lambda **kw: gr.RNN(I, H, **kw)),
    ("rnn_relu", lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw)),
    ("lstm", lambda **kw: gr.LSTM(I, H, **kw)),
    ("lstm_peepholes", lambda **kw: gr.LSTM(I, H, peepholes=True, **kw)),
    ("lstm_projection", lambda **kw: gr.LSTM(I, H, proj_size=2, **kw)),
    ("lstm_clips_forget_bias", lambda **kw: gr.LSTM(I, H, forget_bias=1.0, cell_clip=0.9, proj_clip=0.5,
                                                    proj_size=2, **kw)),
    ("gru_reset_after", lambda **kw: gr.GRU(I, H, **kw)),
    ("gru_reset_before", lambda **kw: gr.GRU(I, H, reset_after=False, **kw)),
    ("janet", lambda **kw: gr.JANET(I, H, **kw)),
    ("mgu", lambda **kw: gr.MGU(I, H, **kw)),
    ("indrnn", lambda **kw: gr.IndRNN(I, H, **kw)),
    ("layernorm_lstm", lambda **kw: gr.LayerNormLSTM(I, H, **kw)),
]

# (id, layer kwargs, lengths of a PackedSequence or None)
SCENARIOS = [
    ("L2-bi-dense", {"num_layers": 2, "bidirectional": True}, None),
    ("L1-packed", {}, [4, 1, 3]),
    ("L2-bi-packed", {"num_layers": 2, "bidirectional": True}, [2, 4, 3]),
]


@pytest.fixture(params=["native", "fused", "torch"])
def layer_backend(request):
    if request.param == "native":
        request.getfixturevalue("native_backend")
    return request.param


def layer_second_order(layer, x, hx, lengths):
    """Gradient penalty through the layer: the gradients of sum |dL/dθ|^2 for the input,
    the initial state and every parameter."""
    inp = x if lengths is None else pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    output, final = layer(inp, hx if len(hx) == 2 else hx[0])
    out = output.data if isinstance(output, PackedSequence) else output
    final = final if isinstance(final, tuple) else (final,)
    gen = torch.Generator().manual_seed(5)
    loss = (out * torch.randn(out.shape, dtype=F64, generator=gen)).sum() + sum((s * s).sum() for s in final)
    leaves = [x, *hx, *layer.parameters()]
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    penalty = sum((g * g).sum() for g in grads)
    return torch.autograd.grad(penalty, leaves, allow_unused=True)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("make", [m for _, m in LAYERS], ids=[n for n, _ in LAYERS])
def test_layer_double_backward_matches_reference(layer_backend, make, scenario):
    _, kwargs, lengths = scenario
    torch.manual_seed(0)
    ref = make(backend="reference", **kwargs).double()
    if layer_backend == "torch" and not backends.torch_kernel.supports(ref, None if lengths is None else 1):
        pytest.skip("torch's kernel runs plain LSTMs on dense input only")
    ours = make(backend=layer_backend, **kwargs).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, I, dtype=F64, requires_grad=True)
    sizes = [ref.real_hidden_size] + [ref.hidden_size] * (len(ref.spec.state_names) - 1)
    hx = tuple(torch.randn(ref.num_layers * ref.num_directions, 3, size, dtype=F64, requires_grad=True)
               for size in sizes)
    theirs = layer_second_order(ref, x, hx, lengths)
    for a, b, name in zip(layer_second_order(ours, x, hx, lengths), theirs,
                          ["input", *(f"hx{k}" for k in range(len(hx))), *(n for n, _ in ref.named_parameters())]):
        assert b is not None and b.abs().max() > 0, name
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=f"second-order gradient of {name}")
