"""The native ops are compile-ready: every op passes torch.library.opcheck (schema, fake
kernel, autograd registration, AOT dispatch with dynamic shapes), with and without lengths,
saving or not, and the minimal RNNs' input-projection slots; native.supports and
native.run compile with torch.compile(fullgraph=True), forward and backward equal to eager."""

import pytest
import torch

from gatedrnn.backends import native
from gatedrnn.cells import GRUSpec, IndRNNSpec, JANETSpec, LayerNormLSTMSpec, LSTMSpec, MGUSpec, RNNSpec
from gatedrnn.min_rnn import MinGRUSpec, MinLSTMSpec

pytestmark = pytest.mark.usefixtures("native_backend")

T, B, I, H = 4, 3, 2, 5

# (id, spec, parameter options, projection inside the kernel)
CASES = [
    ("rnn", RNNSpec("relu"), {}, False),
    ("lstm_projection_peepholes", LSTMSpec(forget_bias=1.0, cell_clip=0.5), {"proj_size": 3, "peepholes": True}, False),
    ("gru", GRUSpec(), {}, False),
    ("gru_reset_before", GRUSpec(reset_after=False), {}, False),
    ("janet", JANETSpec(), {}, False),
    ("mgu", MGUSpec(), {}, False),
    ("indrnn", IndRNNSpec(recurrent_max=0.9), {}, False),
    ("layernorm_lstm", LayerNormLSTMSpec(), {}, False),
    ("mingru", MinGRUSpec(), {}, False),
    ("minlstm_projection_inside", MinLSTMSpec(), {}, True),
]


def inputs(spec, options, projected, requires_grad=True, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, dtype=dtype, generator=gen).requires_grad_(requires_grad)

    proj = options.get("proj_size", 0)
    shapes = spec.parameter_shapes(I, H, proj_size=proj, peepholes=options.get("peepholes", False))
    if projected:
        weights = {name: rand(*shapes[name]) for name in ("weight_ih", "bias_ih")}
        first = rand(T, B, I)
    else:
        recurrent = {} if isinstance(spec, (MinGRUSpec, MinLSTMSpec)) else shapes
        weights = {name: rand(*shape) for name, shape in recurrent.items() if name not in spec.input_parameters}
        first = rand(T, B, spec.num_gates * H)
    state = tuple(rand(B, size) for size in [proj or H] + [H] * (len(spec.state_names) - 1))
    return first, state, weights


def op_arguments(spec, first, state, weights, lengths, save):
    slots = [i for i, name in enumerate(native.SLOT_NAMES) if name in weights]
    return (first, list(state), [weights[native.SLOT_NAMES[i]] for i in slots], slots, lengths,
            spec.kernel_options(), save)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["dense", "lengths"])
@pytest.mark.parametrize("name, spec, options, projected", CASES, ids=[c[0] for c in CASES])
def test_ops_pass_opcheck(name, spec, options, projected, with_lengths):
    cell = native.op_name(spec.name)
    native.load(cell)
    first, state, weights = inputs(spec, options, projected)
    lengths = torch.tensor([4, 1, 3]) if with_lengths else None
    forward = getattr(torch.ops.gatedrnn, f"{cell}_forward").default
    for save in (True, False) if lengths is None else (True,):  # save=False: backward runs forward again
        torch.library.opcheck(forward, op_arguments(spec, first, state, weights, lengths, save))
    # the backward op on what forward returned (no gradients through it: a first-order op)
    args = op_arguments(spec, first.detach(), tuple(s.detach() for s in state),
                        {k: v.detach() for k, v in weights.items()}, lengths, True)
    output, final, saved = forward(*args)
    backward = getattr(torch.ops.gatedrnn, f"{cell}_backward").default
    grads = (torch.randn_like(output), [torch.randn_like(s) for s in final])
    torch.library.opcheck(backward, (*grads, args[0], args[1], args[2], args[3], lengths, args[5], output, saved))


def run_and_grads(run, spec, first, state, weights, lengths):
    output, final = run(spec, first, state, weights, lengths)
    loss = (output * output.detach().cos()).sum() + sum((s * s).sum() for s in final)
    return [output, *final, *torch.autograd.grad(loss, [first, *state, *weights.values()])]


@pytest.mark.parametrize("name, spec, options, projected", CASES, ids=[c[0] for c in CASES])
def test_supports_and_run_compile_into_one_graph(name, spec, options, projected):
    first, state, weights = inputs(spec, options, projected, dtype=torch.float32)
    lengths = torch.tensor([4, 1, 3])

    def run(spec, first, state, weights, lengths):
        assert native.supports(spec, first)
        return native.run(spec, first, state, weights, lengths)

    torch._dynamo.reset()
    compiled = torch.compile(run, backend="aot_eager", fullgraph=True, dynamic=True)
    eager = run_and_grads(run, spec, first, state, weights, lengths)
    graph = run_and_grads(compiled, spec, first, state, weights, lengths)
    for k, (a, b) in enumerate(zip(graph, eager)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=f"result {k}")


@pytest.mark.slow
def test_run_compiles_with_inductor():
    spec = JANETSpec()
    first, state, weights = inputs(spec, {}, False, dtype=torch.float32)
    torch._dynamo.reset()
    compiled = torch.compile(native.run, fullgraph=True)
    eager = run_and_grads(native.run, spec, first, state, weights, None)
    graph = run_and_grads(compiled, spec, first, state, weights, None)
    for a, b in zip(graph, eager):
        torch.testing.assert_close(a, b)
