"""Forward-mode AD and functorch through every layer and cell: ``torch.func.jvp``,
``jacfwd``, ``vmap``, ``grad``, ``functional_call`` and ``torch.autograd.forward_ad``
dual tensors give what plain autograd through the reference backend gives (computed
here by reverse mode only: ``torch.autograd.functional.jvp``'s double-vjp trick, the
reverse-mode Jacobian, a loop over the batch), whatever the layer's backend; never
zeros."""

import pytest
import torch
from torch.autograd import forward_ad
from torch.func import functional_call, grad, jacfwd, jvp, vmap

import gatedrnn as gr

F64 = torch.float64
I, H, T, B = 3, 4, 4, 2

LAYERS = {
    "rnn-tanh": lambda **kw: gr.RNN(I, H, **kw),
    "rnn-relu": lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: gr.LSTM(I, H, **kw),
    "lstm-peepholes": lambda **kw: gr.LSTM(I, H, peepholes=True, forget_bias=1.0, **kw),
    "lstm-projection-clips": lambda **kw: gr.LSTM(I, H, proj_size=2, cell_clip=0.5, proj_clip=0.3, **kw),
    "gru": lambda **kw: gr.GRU(I, H, **kw),
    "gru-reset-before": lambda **kw: gr.GRU(I, H, reset_after=False, **kw),
    "janet": lambda **kw: gr.JANET(I, H, **kw),
    "mgu": lambda **kw: gr.MGU(I, H, **kw),
    "indrnn": lambda **kw: gr.IndRNN(I, H, nonlinearity="tanh", **kw),
    "layernorm-lstm": lambda **kw: gr.LayerNormLSTM(I, H, **kw),
    "mingru": lambda backend="auto", **kw: gr.MinGRU(I, H, mode=_MODE[backend], **kw),
    "minlstm": lambda backend="auto", **kw: gr.MinLSTM(I, H, mode=_MODE[backend], **kw),
}
_MODE = {"auto": "auto", "reference": "sequential", "fused": "scan", "native": "fused"}
CELLS = {
    "rnn": lambda: gr.RNNCell(I, H), "lstm": lambda: gr.LSTMCell(I, H, peepholes=True),
    "gru": lambda: gr.GRUCell(I, H), "janet": lambda: gr.JANETCell(I, H), "mgu": lambda: gr.MGUCell(I, H),
    "indrnn": lambda: gr.IndRNNCell(I, H), "layernorm-lstm": lambda: gr.LayerNormLSTMCell(I, H),
    "mingru": lambda: gr.MinGRUCell(I, H), "minlstm": lambda: gr.MinLSTMCell(I, H),
}
BACKENDS = ["auto", "fused"] + (["native"] if gr.backends.native.is_available() else [])


def layers(name, backend, **kw):
    """The layer on ``backend`` and the same layer on the reference backend, float64."""
    torch.manual_seed(0)
    fast = LAYERS[name](backend=backend, **kw).double()
    reference = LAYERS[name](backend="reference", **kw).double()
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def flat(result):
    """A module's outputs as one vector: output and every final state."""
    parts = result if isinstance(result, tuple) else (result,)
    return torch.cat([t.reshape(-1) for part in parts for t in (part if isinstance(part, tuple) else (part,))])


def reverse_jvp(module, x, v):
    """J v by reverse mode only (the double-vjp trick), the oracle."""
    return torch.autograd.functional.jvp(lambda x: flat(module(x)), x, v)[1]


def skip_unsupported(name, backend):
    if backend == "native" and name in ("mingru", "minlstm") and "mingru" not in gr.backends.native._state["cells"]:
        pytest.skip("the minimal RNNs' native kernels are not on the standard op schema yet")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LAYERS)
def test_jvp_and_dual_tensors_equal_reverse_mode(name, backend):
    skip_unsupported(name, backend)
    fast, reference = layers(name, backend, num_layers=2, bidirectional=True)
    x, v = torch.randn(T, B, I, dtype=F64), torch.randn(T, B, I, dtype=F64)
    expected = reverse_jvp(reference, x, v)
    assert expected.abs().max() > 0
    _, tangent = jvp(lambda x: flat(fast(x)), (x,), (v,))
    torch.testing.assert_close(tangent, expected)
    with forward_ad.dual_level():
        dual_out = fast(forward_ad.make_dual(x, v))
        tangent = flat(tuple(forward_ad.unpack_dual(t).tangent for t in
                             (dual_out[0], *(dual_out[1] if isinstance(dual_out[1], tuple) else (dual_out[1],)))))
    torch.testing.assert_close(tangent, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LAYERS)
def test_jvp_over_parameters_with_functional_call(name, backend):
    """Tangents on the weights only (the input is a plain tensor): still routed right."""
    skip_unsupported(name, backend)
    fast, reference = layers(name, backend)
    x = torch.randn(T, B, I, dtype=F64)
    params = {k: p.detach() for k, p in fast.named_parameters()}
    tangents = {k: torch.randn_like(p) for k, p in params.items()}
    _, tangent = jvp(lambda p: flat(functional_call(fast, p, (x,))), (params,), (tangents,))
    _, expected = torch.autograd.functional.jvp(
        lambda *p: flat(functional_call(reference, dict(zip(params, p)), (x,))),
        tuple(params.values()), tuple(tangents.values()))
    assert expected.abs().max() > 0
    torch.testing.assert_close(tangent, expected)


@pytest.mark.parametrize("name", LAYERS)
def test_vmap_grad_and_jacfwd_equal_plain_autograd(name):
    fast, reference = layers(name, "auto")
    xs = torch.randn(3, T, B, I, dtype=F64)
    batched = vmap(lambda x: flat(fast(x)))(xs)
    torch.testing.assert_close(batched, torch.stack([flat(reference(x)) for x in xs]))

    x = xs[0].clone().requires_grad_()
    weights = torch.randn(flat(reference(x)).shape, dtype=F64)
    expected = torch.autograd.grad(flat(reference(x)) @ weights, x)[0]
    torch.testing.assert_close(grad(lambda x: flat(fast(x)) @ weights)(x.detach()), expected)

    small = xs[0, :2, :1]  # (2, 1, I): a Jacobian small enough for every case
    jacobian = jacfwd(lambda x: flat(fast(x)))(small)
    torch.testing.assert_close(jacobian, torch.autograd.functional.jacobian(lambda x: flat(reference(x)), small))


@pytest.mark.parametrize("name", CELLS)
def test_cells_under_every_transform(name):
    torch.manual_seed(0)
    cell = CELLS[name]().double()
    x, v = torch.randn(B, I, dtype=F64), torch.randn(B, I, dtype=F64)
    expected = reverse_jvp(cell, x, v)
    assert expected.abs().max() > 0
    torch.testing.assert_close(jvp(lambda x: flat(cell(x)), (x,), (v,))[1], expected)
    xs = torch.randn(3, B, I, dtype=F64)
    torch.testing.assert_close(vmap(lambda x: flat(cell(x)))(xs), torch.stack([flat(cell(x)) for x in xs]))
    torch.testing.assert_close(jacfwd(lambda x: flat(cell(x)))(x),
                               torch.autograd.functional.jacobian(lambda x: flat(cell(x)), x))


def test_transforms_leave_the_fast_path_alone():
    """Outside any transform auto keeps its fast backend (the routing costs nothing there)."""
    x = torch.randn(T, B, I)
    assert not gr.backends.transformed(x)
    expected = "native" if gr.backends.native.is_available() else "fused"
    assert gr.backends.resolve("auto", gr.GRU(I, H), x) == expected
    with forward_ad.dual_level():
        assert not gr.backends.transformed(x)
        assert gr.backends.transformed(forward_ad.make_dual(x, torch.ones_like(x)))
