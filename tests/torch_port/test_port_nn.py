"""The RNN, LSTM, GRU and cell tests of PyTorch's ``test/test_nn.py`` (``TestNN`` and
``TestNNDeviceType``, pytorch/pytorch main, torch 2.13 era), re-written to run on torch.nn
and on gatedrnn.

Ported (upstream test -> test here):

- test_RNN_cell, test_LSTM_cell -> test_cell_steps (upstream a smoke test; here every
  output and gradient is compared with torch.nn's, same weights, float64)
- test_RNN_cell_forward_zero_hidden_size -> test_cell_zero_hidden_size
- test_RNN_cell_no_broadcasting -> test_cell_no_broadcasting
- test_LSTM_cell_forward_input_size / _hidden_size -> test_lstm_cell_wrong_sizes
- test_RNN_nonlinearity, test_RNN_nonlinearity_passed_as_arg -> test_rnn_nonlinearity*
- test_rnn_weight_norm -> test_rnn_weight_norm_flat_weights, and the ``_flat_weights``
  contract it and test_partial_flat_weights rely on -> test_flat_weights_follow_parameters
- test_cudnn_forward_exception (runs on CPU upstream) -> test_forward_exception
- test_rnn_args_check, test_projections_lstm_args_check -> test_rnn_args_check,
  test_projections_lstm_args_check
- test_rnn_check_device, test_projections_lstm_check_device (multi-GPU upstream) ->
  test_rnn_check_device: the same checks with the meta device standing in for a second one
- test_rnn_initial_hidden_state, test_projections_lstm_initial_hidden_state
- test_projections_errors_on_gru_and_rnn
- _test_RNN_cpu_vs_cudnn (test_RNN_cpu_vs_cudnn_no_dropout / _with_dropout, cuDNN
  upstream) and test_rnn_fused (CUDA) -> test_matches_torch_nn*: the module under test
  against torch.nn on CPU, same weights, float64, over the same option grid (bias,
  bidirectional, batch_first, non-contiguous tensors, packed lengths as list or tensor,
  relu/tanh, projections; dropout 0 and 1)
- test_RNN_cudnn_weight_norm -> test_weight_norm_keeps_output (CPU)
- test_partial_flat_weights -> test_partial_flat_weights (a dtype move instead of .cuda())
- test_cudnn_weight_format -> test_weight_storage_replaced (the weight's storage replaced
  with set_; the cuDNN warning about non-contiguous weights has no CPU counterpart)
- test_cudnn_weight_tying -> test_weight_tying (CPU, against tied torch.nn)
- test_RNN_dropout, test_RNN_dropout_state, test_RNN_change_dropout (their CPU halves)
- test_error_RNN_seq_len_zero (its CPU half), test_RNN_input_size_zero
- test_rnn_retain_variables, test_lstmcell_backward_only_one_output_grad (CUDA-only
  upstream, nothing CUDA-specific in it)
- test_LSTM_grad_and_gradgrad, test_GRU_grad_and_gradgrad (+ RNN)
- test_LSTM_differentiable_backward_using_oneDNN -> test_differentiable_backward (oneDNN
  on/off is torch-internal; the user-visible part, d(output)/d(input) with create_graph and
  its backward, is compared with torch.nn)
- _test_variable_sequence / test_variable_sequence -> test_variable_sequence
- test_invalid_dropout_p (nn.Dropout upstream) -> test_rnn_invalid_dropout: the RNN's own
  dropout argument checks from torch.nn.RNNBase

Skipped: test_pack_sequence_batch_sizes_throw (needs CUDA tensors),
test_cudnn_rnn_dropout_states_device (two GPUs), the cuDNN-only warning of
test_cudnn_weight_format, the cuDNN double-backward error of _test_rnn_mod, and
test_save_lstm_compatibility (loads a torch <= 1.7 LSTM ``__dict__``: torch-internal
pickle history that gatedrnn never had).
"""

import copy
import io
import re

import pytest
import torch
import torch.nn.utils.rnn as rnn_utils
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from port_utils import assert_close, case, check_error, pair

D = torch.float64


def _randn(*shape, dtype=D, **kwargs):
    return torch.randn(*shape, dtype=dtype, **kwargs)


def _grads(module):
    return {name: p.grad for name, p in module.named_parameters()}


# -- cells ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_cell_steps(impl, kind, bias):
    """Six steps of a cell from the same state, then backward: outputs and every gradient
    equal torch.nn's."""
    cell, reference = pair(impl, kind, 10, 20, bias=bias)
    x0, h0, c0 = _randn(3, 10), _randn(3, 20), _randn(3, 20)

    def run(module):
        x, h, c = (t.clone().requires_grad_() for t in (x0, h0, c0))
        state = (h, c) if kind == "LSTMCell" else h
        for _ in range(6):
            state = module(x, state)
        total = sum(s.sum() for s in state) if kind == "LSTMCell" else state.sum()
        total.backward()
        leaf_grads = [x.grad, h.grad] + ([c.grad] if kind == "LSTMCell" else [])
        return state, leaf_grads, _grads(module)

    assert_close(run(cell), run(reference))


@pytest.mark.parametrize("kind, kwargs", [("RNNCell", {"nonlinearity": "relu"}),
                                          ("RNNCell", {"nonlinearity": "tanh"}),
                                          ("GRUCell", {})], ids=["rnn_relu", "rnn_tanh", "gru"])
def test_cell_zero_hidden_size(impl, kind, kwargs):
    cell = getattr(impl, kind)(10, 0, **kwargs)
    assert cell(torch.randn(3, 10), torch.randn(3, 0)).shape == torch.Size([3, 0])


_BAD_CELL_INPUTS = {  # which tensor is wrong -> (input, bad hx); hidden 20, input 10
    "hx_batch": lambda: (torch.randn(3, 10), torch.randn(1, 20)),
    "hx_size": lambda: (torch.randn(3, 10), torch.randn(3, 1)),
    "input_size": lambda: (torch.randn(3, 1), torch.randn(3, 20)),
}


@pytest.mark.parametrize("bad", sorted(_BAD_CELL_INPUTS))
@pytest.mark.parametrize("kind, where", [("RNNCell", None), ("GRUCell", None),
                                         ("LSTMCell", 0), ("LSTMCell", 1)],
                         ids=["rnn", "gru", "lstm_h", "lstm_c"])
def test_cell_no_broadcasting(impl, kind, where, bad):
    """A state or input that would broadcast is an error, never broadcast."""
    x, bad_hx = _BAD_CELL_INPUTS[bad]()
    good = torch.randn(3, 20)
    cell = getattr(impl, kind)(10, 20)
    if where is None:
        hx = bad_hx
    elif bad == "input_size":
        hx = (good, good)
    else:
        hx = (bad_hx, good) if where == 0 else (good, bad_hx)
    with pytest.raises(RuntimeError):
        cell(x, hx)


def test_lstm_cell_wrong_sizes(impl):
    lstm = impl.LSTMCell(10, 20)
    with pytest.raises(Exception):
        lstm(torch.randn(3, 11), (torch.randn(3, 20), torch.randn(3, 20)))
    hx, cx = torch.randn(3, 21), torch.randn(3, 20)
    with pytest.raises(Exception):
        lstm(torch.randn(3, 10), (hx, cx))
    with pytest.raises(Exception):
        lstm(torch.randn(3, 10), (cx, hx))


def test_lstmcell_backward_only_one_output_grad(impl):
    """A backward from h alone or c alone (the other gradient undefined) still reaches
    the input."""
    cell = impl.LSTMCell(2, 3).to(D)
    x = _randn(1, 2, requires_grad=True)
    for i in range(2):
        cell(x)[i].sum().backward()
        assert x.grad is not None and x.grad.abs().sum().item() != 0


# -- construction ---------------------------------------------------------------------------

def test_rnn_nonlinearity(impl):
    assert impl.RNN(1, 10).nonlinearity == "tanh"
    assert impl.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    check_error(impl, ValueError, "Unknown nonlinearity", ["nonlinearity", "garbage"],
                lambda: impl.RNN(1, 10, nonlinearity="garbage"))


def test_rnn_nonlinearity_passed_as_arg(impl):
    rnn, reference = pair(impl, "RNN", 2, 3, 1, "relu")
    assert rnn.nonlinearity == "relu"
    x = _randn(4, 2, 2) * 3
    assert_close(rnn(x), reference(x))


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_projections_errors_on_gru_and_rnn(impl, mode):
    check_error(impl, ValueError, "proj_size argument is only supported for LSTM, not RNN or GRU",
                ["proj_size", ("LSTM",)], lambda: getattr(impl, mode)(30, 20, 2, proj_size=10))


_INVALID_DROPOUT = [case(-0.1, id="negative"), case(1.1, id="above_one"),
                    case(True, id="bool"),
                    case("0.5", id="str")]


@pytest.mark.parametrize("dropout", _INVALID_DROPOUT)
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_invalid_dropout(impl, mode, dropout):
    check_error(impl, ValueError, r"dropout should be a number in range \[0, 1\]",
                ["dropout", ("[0, 1]", "[0, 1)")],
                lambda: getattr(impl, mode)(3, 4, 2, dropout=dropout))


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_dropout_one_layer_warns(impl, mode):
    with pytest.warns(UserWarning, match="dropout option adds dropout after all but last recurrent layer"):
        getattr(impl, mode)(3, 4, 1, dropout=0.5)


# -- weights and parametrizations ---------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize("name, kwargs, count", [("weight_ih_l0", {}, 4),
                                                 ("weight_hr_l0", {"proj_size": 16}, 5)],
                         ids=["lstm", "lstm_proj"])
def test_rnn_weight_norm_flat_weights(impl, name, kwargs, count):
    """weight_norm turns one of ``_flat_weights`` into a plain tensor; removing it puts the
    Parameter back, and ``_parameters`` / ``named_parameters`` no longer hold ``_g``/``_v``."""
    lstm = impl.LSTM(32, 32, **kwargs)
    lstm = torch.nn.utils.weight_norm(lstm, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == count - 1
    lstm = torch.nn.utils.remove_weight_norm(lstm, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == count
    named = dict(lstm.named_parameters())
    assert lstm._parameters.get(name) is not None and named.get(name) is not None
    for suffix in ("_g", "_v"):
        assert name + suffix not in lstm._parameters and name + suffix not in named


@pytest.mark.parametrize("mode, kwargs", [("RNN", {}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})],
                         ids=["rnn", "gru", "lstm", "lstm_proj"])
def test_flat_weights_follow_parameters(impl, mode, kwargs):
    """The ``_flat_weights`` contract that test_rnn_weight_norm and test_partial_flat_weights
    rely on: torch.nn's names in torch.nn's order, the very tensors the module holds, and
    the new one after a weight is re-assigned (what weight-drop wrappers do)."""
    module = getattr(impl, mode)(3, 4, 2, bidirectional=True, **kwargs)
    assert module._flat_weights_names == getattr(nn, mode)(3, 4, 2, bidirectional=True, **kwargs)._flat_weights_names
    assert all(w is getattr(module, n) for w, n in zip(module._flat_weights, module._flat_weights_names))
    replacement = nn.Parameter(torch.zeros_like(module.weight_hh_l0))
    module.weight_hh_l0 = replacement
    assert module._flat_weights[module._flat_weights_names.index("weight_hh_l0")] is replacement


@pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize("name, kwargs", [("weight_hh_l0", {}), ("weight_hr_l0", {"proj_size": 3})],
                         ids=["lstm", "lstm_proj"])
def test_weight_norm_keeps_output(impl, name, kwargs):
    """weight_norm reparametrises without changing the output; removing it neither."""
    lstm = impl.LSTM(10, 6, 2, **kwargs)
    x = torch.randn(7, 6, 10)
    expected = lstm(x)
    lstm = torch.nn.utils.weight_norm(lstm, name=name)
    assert_close(lstm(x), expected)
    lstm = torch.nn.utils.remove_weight_norm(lstm, name=name)
    assert_close(lstm(x), expected)


def test_partial_flat_weights(impl):
    """A module with one weight deleted survives a conversion (``_apply``) and works
    again once the weight is put back."""
    lstm = impl.LSTM(10, 6, 2)
    x = torch.randn(3, 2, 10)
    expected = lstm(x)
    weight = lstm.weight_hh_l0
    del lstm.weight_hh_l0
    assert not hasattr(lstm, "weight_hh_l0")
    lstm.double()
    lstm.weight_hh_l0 = nn.Parameter(weight.detach().double())
    assert_close(lstm(x.double())[0], expected[0].double())


_FORMAT_RNNS = [("LSTM", {}), ("LSTM", {"proj_size": 10}), ("GRU", {}), ("RNN", {})]
_FORMAT_IDS = ["lstm", "lstm_proj", "gru", "rnn"]


def _state_for(kind, kwargs, layers, batch, hidden, **options):
    """An initial state of the shape ``kind`` wants; every tensor a fresh leaf."""
    h = torch.randn(layers, batch, kwargs.get("proj_size") or hidden, **options)
    if kind == "LSTM":
        return (h, torch.randn(layers, batch, hidden, **options))
    return h


@pytest.mark.parametrize("kind, kwargs", _FORMAT_RNNS, ids=_FORMAT_IDS)
def test_weight_storage_replaced(impl, kind, kwargs):
    """A weight whose storage is swapped for a copy (``set_``) gives the same outputs and
    gradients, and keeps sharing the new storage."""
    rnn = getattr(impl, kind)(10, 20, batch_first=True, **kwargs)
    x = torch.randn(5, 4, 10, requires_grad=True)
    hx = _state_for(kind, kwargs, 1, 5, 20, requires_grad=True)
    leaves = [x, *(hx if isinstance(hx, tuple) else (hx,))] + list(rnn.parameters())

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        output = rnn(x, hx)
        output[0].sum().backward()
        return output, [leaf.grad.clone() for leaf in leaves]

    expected, expected_grads = forward_backward()
    weight = rnn.weight_hh_l0
    storage = weight.data.clone()
    with torch.no_grad():
        weight.set_(storage)
    for _ in range(2):
        output, grads = forward_backward()
        assert_close(output, expected)
        assert_close(grads, expected_grads)
    storage[:] = 4
    assert torch.equal(rnn.weight_hh_l0.data, storage)


@pytest.mark.parametrize("kind, kwargs", _FORMAT_RNNS, ids=_FORMAT_IDS)
def test_weight_tying(impl, kind, kwargs):
    """One Parameter registered under two names (bias_ih_l0 and bias_ih_l0_reverse) is
    used in both places, and stays tied through an optimiser step: outputs equal those of
    torch.nn tied the same way."""
    rnn, reference = pair(impl, kind, 10, 20, batch_first=True, bidirectional=True, **kwargs)
    x = _randn(5, 4, 10)
    hx = _state_for(kind, kwargs, 2, 5, 20, dtype=D)
    results = []
    for module in (rnn, reference):
        module.bias_ih_l0_reverse = module.bias_ih_l0
        optimiser = torch.optim.SGD(module.parameters(), lr=0.1)
        module(x, hx)[0].sum().backward()
        optimiser.step()
        assert module.bias_ih_l0_reverse is module.bias_ih_l0
        results.append(module(x, hx))
    assert_close(results[0], results[1])


# -- argument and shape checks ---------------------------------------------------------------

_INPUT, _HIDDEN = (6, 4, 3), (2, 4, 5)  # seq_len, batch, input_size / layers, batch, hidden


def _with(shape, dim, size):
    shape = list(shape)
    shape[dim] = size
    return tuple(shape)


_ARGS_CHECKS = {  # (input shape, hidden shape); 7: a prime, no size divides it
    "input_batch": (_with(_INPUT, 1, 7), _HIDDEN),
    "hidden_batch": (_INPUT, _with(_HIDDEN, 1, 7)),
    "input_size": (_with(_INPUT, 2, 7), _HIDDEN),
    "hidden_size": (_INPUT, _with(_HIDDEN, 2, 7)),
    "hidden_layers": (_INPUT, _with(_HIDDEN, 0, 7)),
}


def _args_check_cases():
    """Upstream's grid: for the LSTM, a wrong hidden shape is tried as h, as c and as both
    (a wrong input with both states right)."""
    for bad, (_, hidden_shape) in _ARGS_CHECKS.items():
        variants = [("RNN", None), ("GRU", None), ("LSTM", "both")]
        if hidden_shape != _HIDDEN:
            variants += [("LSTM", "h"), ("LSTM", "c")]
        for mode, which in variants:
            yield pytest.param(mode, which, bad, id=f"{mode.lower()}{'_' + which if which else ''}-{bad}")


@pytest.mark.parametrize("mode, which, bad", list(_args_check_cases()))
def test_rnn_args_check(impl, mode, which, bad):
    """A wrong input or hidden shape raises a RuntimeError, for h and c alike."""
    input_shape, hidden_shape = _ARGS_CHECKS[bad]
    model = getattr(impl, mode)(3, 5, 2)
    hidden, good = torch.randn(hidden_shape), torch.randn(_HIDDEN)
    hx = {None: hidden, "both": (hidden, hidden), "h": (hidden, good), "c": (good, hidden)}[which]
    with pytest.raises(RuntimeError):
        model(torch.randn(input_shape), hx)


_PROJ_H, _PROJ_C = (2, 4, 2), (2, 4, 5)  # proj_size 2, hidden_size 5
_PROJ_CHECKS = {  # (input shape, h shape, c shape)
    "input_batch": (_with(_INPUT, 1, 7), _PROJ_H, _PROJ_C),
    "hidden_batch": (_INPUT, _with(_PROJ_H, 1, 7), _with(_PROJ_C, 1, 7)),
    "input_size": (_with(_INPUT, 2, 7), _PROJ_H, _PROJ_C),
    "hidden_size": (_INPUT, _with(_PROJ_H, 2, 7), _with(_PROJ_C, 2, 7)),
    "hidden_layers": (_INPUT, _with(_PROJ_H, 0, 7), _with(_PROJ_C, 0, 7)),
    "h_is_hidden_size": (_INPUT, _with(_PROJ_H, 0, 5), _PROJ_C),
    "h_layers": (_INPUT, _with(_PROJ_H, 0, 7), _PROJ_C),
    "c_layers": (_INPUT, _PROJ_H, _with(_PROJ_C, 0, 7)),
}


@pytest.mark.parametrize("bad", list(_PROJ_CHECKS))
def test_projections_lstm_args_check(impl, bad):
    input_shape, h_shape, c_shape = _PROJ_CHECKS[bad]
    model = impl.LSTM(3, 5, 2, proj_size=2)
    with pytest.raises(RuntimeError):
        model(torch.randn(input_shape), (torch.randn(h_shape), torch.randn(c_shape)))


@pytest.mark.parametrize("kind, kwargs", _FORMAT_RNNS, ids=_FORMAT_IDS)
def test_forward_exception(impl, kind, kwargs):
    rnn = getattr(impl, kind)(10, 20, batch_first=True, **kwargs)
    hidden = torch.zeros(1, 2, 19)
    hidden = (hidden, hidden) if kind == "LSTM" else hidden
    check_error(impl, RuntimeError, "Expected hidden.*size.*got", [("hx", "hidden"), "19"],
                lambda: rnn(torch.randn(2, 3, 10), hidden))
    check_error(impl, RuntimeError, re.escape("input.size(-1) must be equal to input_size"),
                ["input", "10", "3"], lambda: rnn(torch.randn(2, 3, 3)))


@pytest.mark.parametrize("mode, kwargs", [("RNN", {}), ("GRU", {}), ("LSTM", {}),
                                          ("LSTM", {"proj_size": 2})],
                         ids=["rnn", "gru", "lstm", "lstm_proj"])
def test_rnn_check_device(impl, mode, kwargs):
    """Input, state and parameters on different devices: a RuntimeError naming both."""
    model = getattr(impl, mode)(3, 5, 2, **kwargs)
    x = torch.randn(6, 4, 3)
    h = torch.randn(2, 4, kwargs.get("proj_size") or 5)
    c = torch.randn(2, 4, 5)

    def state(device):
        return (h.to(device), c.to(device)) if mode == "LSTM" else h.to(device)

    check_error(impl, RuntimeError, "Input and parameter tensors are not at the same device",
                ["input", "meta", "cpu"], lambda: model(x.to("meta")))
    check_error(impl, RuntimeError, "Input and hidden tensors are not at the same device",
                [("hx", "hidden"), "meta", "cpu"], lambda: model(x, state("meta")))
    if mode == "LSTM":
        check_error(impl, RuntimeError, "Input and hidden tensors are not at the same device",
                    [("hx", "hidden"), "meta", "cpu"], lambda: model(x, (h, c.to("meta"))))


# -- initial states ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_rnn_initial_hidden_state(impl, mode):
    rnn = getattr(impl, mode)(30, 20, 2)
    x, hidden = torch.randn(10, 32, 30), torch.zeros(2, 32, 20)
    hidden = (hidden, hidden) if mode == "LSTM" else hidden
    assert_close(rnn(x, hidden), rnn(x))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_projections_lstm_initial_hidden_state(impl, bidirectional):
    rnn = impl.LSTM(30, 20, 2, bidirectional=bidirectional, proj_size=10)
    layers = 2 * (2 if bidirectional else 1)
    x = torch.randn(10, 32, 30)
    hidden = (torch.zeros(layers, 32, 10), torch.zeros(layers, 32, 20))
    assert_close(rnn(x, hidden), rnn(x))


# -- against torch.nn (the cuDNN / fused comparisons, on CPU) --------------------------------------

def _noncontiguous(t):
    """The same values, every other element of a wider tensor."""
    return torch.stack([torch.zeros_like(t), t], t.dim()).select(t.dim(), 1)


def _forward_backward(module, lstm, x, hx, grad_output, grad_state):
    """Run, backward with the given output and state gradients -> every result."""
    x_leaf = x.data.detach().clone().requires_grad_() if isinstance(x, rnn_utils.PackedSequence) \
        else x.detach().clone().requires_grad_()
    state = tuple(s.detach().clone().requires_grad_() for s in hx)
    given = rnn_utils.PackedSequence(x_leaf, x.batch_sizes) if isinstance(x, rnn_utils.PackedSequence) \
        else x_leaf
    output, final = module(given, state if lstm else state[0])
    final = final if lstm else (final,)
    output = output.data if isinstance(output, rnn_utils.PackedSequence) else output
    torch.autograd.backward([output, *final], [grad_output, *grad_state])
    return output, final, x_leaf.grad, [s.grad for s in state], _grads(module)


def _compare_grid(impl, kind, options, contig, lengths, proj_size=0):
    """One point of upstream's option grid: module vs torch.nn, outputs and gradients."""
    input_size, hidden_size, num_layers, seq_len, batch = 10, 6, 2, 7, 6
    directions = 2 if options.get("bidirectional") else 1
    batch_first = options.get("batch_first", False)
    lstm = kind == "LSTM"
    out_size = proj_size or hidden_size
    module, reference = pair(impl, kind, input_size, hidden_size, num_layers,
                             **options, **({"proj_size": proj_size} if proj_size else {}))
    time_batch = (batch, seq_len) if batch_first else (seq_len, batch)
    x = _randn(*time_batch, input_size)
    grad_output = _randn(*time_batch, out_size * directions)
    hx = [_randn(num_layers * directions, batch, out_size)]
    grad_state = [_randn(num_layers * directions, batch, out_size)]
    if lstm:
        hx.append(_randn(num_layers * directions, batch, hidden_size))
        grad_state.append(_randn(num_layers * directions, batch, hidden_size))
    if not contig:
        x, grad_output = _noncontiguous(x), _noncontiguous(grad_output)
        hx, grad_state = [_noncontiguous(t) for t in hx], [_noncontiguous(t) for t in grad_state]
    if lengths is not None:
        x = rnn_utils.pack_padded_sequence(x, lengths, batch_first=batch_first)
        grad_output = rnn_utils.pack_padded_sequence(grad_output, lengths, batch_first=batch_first).data
    assert_close(_forward_backward(module, lstm, x, hx, grad_output, grad_state),
                 _forward_backward(reference, lstm, x, hx, grad_output, grad_state))


_LENGTHS = [None, [7, 5, 5, 2, 1, 1], torch.tensor([7, 5, 5, 2, 1, 1])]
# (contiguous, lengths): upstream's contig x variable_len x lens_as_tensor grid, without the
# points that differ only in a way the module cannot see (lengths as list or tensor of the
# same contiguous or non-contiguous packing)
_GRID = [(True, None), (False, None), (False, _LENGTHS[1]), (True, _LENGTHS[2])]
# bias x bidirectional x batch_first: upstream's full product (8 points) cut to a
# two-level orthogonal array (4 points): every pair of options still takes all four
# combinations of values.
_OPTION_GRID = [pytest.param(bias, bidirectional, batch_first,
                             id=f"{'bias' if bias else 'nobias'}-{'bi' if bidirectional else 'uni'}"
                                f"-{'bf' if batch_first else 'tf'}")
                for bias, bidirectional, batch_first in [(True, True, True), (True, False, False),
                                                         (False, True, False), (False, False, True)]]


@pytest.mark.parametrize("kind, proj_size", [("RNN", 0), ("LSTM", 0), ("GRU", 0), ("LSTM", 3)],
                         ids=["rnn", "lstm", "gru", "lstm_proj"])
@pytest.mark.parametrize("bias, bidirectional, batch_first", _OPTION_GRID)
def test_matches_torch_nn(impl, kind, proj_size, bias, bidirectional, batch_first):
    """Upstream's CPU-vs-cuDNN grid, dropout 0: contiguous and non-contiguous tensors,
    dense input and packed input with lengths as a list or a tensor."""
    options = dict(bias=bias, bidirectional=bidirectional, batch_first=batch_first)
    for contig, lengths in _GRID:
        _compare_grid(impl, kind, options, contig, lengths, proj_size)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_torch_nn_nonlinearity(impl, nonlinearity):
    for bias in (True, False):
        _compare_grid(impl, "RNN", dict(bias=bias, nonlinearity=nonlinearity), True, None)


@pytest.mark.parametrize("kind, proj_size", [("RNN", 0), ("LSTM", 0), ("GRU", 0), ("LSTM", 3)],
                         ids=["rnn", "lstm", "gru", "lstm_proj"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_matches_torch_nn_dropout_one(impl, kind, proj_size, bidirectional):
    """dropout=1, training: every activation between layers is dropped, deterministic."""
    options = dict(dropout=1, bidirectional=bidirectional)
    for lengths in _LENGTHS[:2]:
        _compare_grid(impl, kind, options, True, lengths, proj_size)


_DOUBLE_BACKWARD_MODES = [case("RNN", id="RNN"), case("GRU", id="GRU"), case("LSTM", id="LSTM")]


@pytest.mark.parametrize("mode", _DOUBLE_BACKWARD_MODES)
def test_differentiable_backward(impl, mode):
    """d(output)/d(input) built with create_graph, then its own backward: as torch.nn."""
    module, reference = pair(impl, mode, 3, 3, 4, batch_first=True)
    x0 = torch.rand(10, 12, 3, dtype=D)
    results = []
    for m in (module, reference):
        x = x0.clone().requires_grad_()
        out, _ = m(x)
        d_out, = torch.autograd.grad(out, x, torch.ones_like(out), create_graph=True)
        d_out.sum().backward()
        results.append((d_out, x.grad, _grads(m)))
    assert_close(results[0], results[1])


# -- dropout between layers --------------------------------------------------------------------

@pytest.mark.parametrize("p", [0, 0.276, 0.731, case(1, id="1")])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_rnn_dropout(impl, p, train):
    """Dropout acts between the layers only: with all-ones weights the second layer sees
    10 * (a Bernoulli(1 - p) mask / (1 - p)) summed over 1000 units."""
    rnn = impl.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu").to(D)
    rnn.train(train)
    with torch.no_grad():
        for weight in rnn.parameters():
            weight.fill_(1)
    output, hy = rnn(torch.ones(1, 1, 10, dtype=D), torch.zeros(2, 1, 1000, dtype=D))
    assert output.min() == output.max()
    value = output[0, 0, 0].item()
    if p == 0 or not train:
        assert value == 10000
    elif p == 1:
        assert value == 0
    else:
        assert 8000 < value < 12000
        remainder = (value * (1 - p)) % 10
        assert min(remainder, 10 - remainder) < 1e-2
    assert hy[0].min() == hy[0].max() and hy[1].min() == hy[1].max()
    assert hy[0, 0, 0].item() == 10 and hy[1, 0, 0].item() == value


@pytest.mark.parametrize("p", [0, 0.1234])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_rnn_dropout_state(impl, p, train):
    """Two runs (and a pickled copy) agree unless dropout is active."""
    rnn = impl.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu")
    rnn.train(train)
    x, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
    first, second = rnn(x, hx), rnn(x, hx)
    buffer = io.BytesIO()
    torch.save(rnn, buffer)
    buffer.seek(0)
    copy_ = torch.load(buffer, weights_only=False)
    copy_.flatten_parameters()
    third = copy_(x, hx)
    for other in (second, third):
        for a, b in zip(first, other):
            assert torch.equal(a, b) == (p == 0 or not train)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_rnn_change_dropout(impl, train):
    """``rnn.dropout`` changed on a live module takes effect at the next forward."""
    rnn = impl.RNN(100, 100, 2, dropout=0, nonlinearity="relu").to(D)
    rnn.train(train)
    x = torch.rand(3, 2, 100, dtype=D)
    previous = None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        rnn.dropout = p
        (out1, hy1), (out2, hy2) = rnn(x), rnn(x)
        deterministic = p == 0 or p == 1 or not train
        assert torch.equal(out1, out2) == deterministic and torch.equal(hy1, hy2) == deterministic
        if previous is not None:
            assert torch.equal(out1, previous) == (not train)
            assert torch.equal(out2, previous) == (not train)
        previous = out1


# -- degenerate sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
def test_error_rnn_seq_len_zero(impl, mode, bidirectional):
    rnn = getattr(impl, mode)(5, 6, bidirectional=bidirectional)
    check_error(impl, RuntimeError, "Expected sequence length to be larger than 0 in RNN",
                [("sequence length", "seq_len", "time"), "0"], lambda: rnn(torch.ones(0, 10, 5)))


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_rnn_input_size_zero(impl, mode):
    """An empty batch: output (5, 0, 4), and backward does not fail."""
    rnn = getattr(impl, mode)(input_size=3, hidden_size=4)
    outputs = rnn(torch.zeros(5, 0, 3))
    assert outputs[0].shape == torch.Size([5, 0, 4])
    outputs[0].sum().backward()


# -- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_rnn_retain_variables(impl, mode):
    """Backward through a retained graph four more times gives the same gradients."""
    rnn = getattr(impl, mode)(10, 20, num_layers=2).to(D)
    x = _randn(5, 6, 10, requires_grad=True)
    output = rnn(x)
    output[0].sum().backward(retain_graph=True)
    expected = [x.grad.clone()] + [p.grad.clone() for p in rnn.parameters()]
    for _ in range(4):
        rnn.zero_grad()
        x.grad.zero_()
        output[0].sum().backward(retain_graph=True)
        assert_close([x.grad] + [p.grad for p in rnn.parameters()], expected)


@pytest.mark.parametrize("mode", [case("LSTM", id="LSTM"),
                                  case("GRU", id="GRU"), case("RNN", id="RNN")])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_grad_and_gradgrad(impl, mode, bias):
    """gradcheck and gradgradcheck of every output with respect to the input."""
    module = getattr(impl, mode)(4, 4, bias=bias).to(D)
    x = torch.rand(1, 3, 4, dtype=D, requires_grad=True)

    def flat(inp):
        output, state = module(inp)
        return (output, *state) if mode == "LSTM" else (output, state)

    assert gradcheck(flat, (x,), check_batched_grad=False)
    assert gradgradcheck(flat, (x,), check_batched_grad=False)


# -- variable-length sequences -------------------------------------------------------------------

def _pad_to(t, length):
    return torch.cat([t, t.new_zeros(length - t.size(0), *t.shape[1:])]) if t.size(0) < length else t


@pytest.mark.parametrize("enforce_sorted, lengths", [
    (True, [5]), (False, [5]), (True, [10, 10, 6, 2, 2, 1, 1]), (False, [10, 10, 6, 2, 2, 1, 1]),
    (False, [2, 1, 3, 2, 10, 5, 3])], ids=["one_sorted", "one", "sorted", "sorted_any", "unsorted"])
@pytest.mark.parametrize("default_hidden, proj_size", [(True, 0), (False, 2)], ids=["h0_none-noproj", "h0-proj"])
def test_variable_sequence(impl, enforce_sorted, lengths, default_hidden, proj_size):
    """A packed batch gives what each sequence gives on its own: outputs, final states,
    input and parameter gradients (2 layers, bidirectional LSTM). Upstream crosses the
    initial state (default or given) with proj_size (0 or 2); here they vary together."""
    input_size, hidden_size, layers = 3, 4, 2
    lstm = impl.LSTM(input_size, hidden_size, num_layers=layers, bidirectional=True,
                     proj_size=proj_size).to(D)
    alone = copy.deepcopy(lstm)
    longest = max(lengths)
    x = _randn(longest, len(lengths), input_size, requires_grad=True)
    hidden0 = None
    if not default_hidden:
        hidden0 = (_randn(2 * layers, len(lengths), proj_size or hidden_size),
                   _randn(2 * layers, len(lengths), hidden_size))

    outs, finals = [], []
    for i, length in enumerate(lengths):
        hidden_i = None if hidden0 is None else tuple(h[:, i:i + 1].contiguous() for h in hidden0)
        out, final = alone(x[:length, i:i + 1], hidden_i)
        outs.append(_pad_to(out, longest))
        finals.append(final)
    seq_out = torch.cat(outs, 1)
    seq_final = tuple(torch.cat(parts, 1) for parts in zip(*finals))

    packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    packed_out, packed_final = lstm(packed, hidden0)
    unpacked, unpacked_lengths = rnn_utils.pad_packed_sequence(packed_out)
    assert_close(packed_final, seq_final)
    assert_close(unpacked, seq_out)
    assert unpacked_lengths.tolist() == list(lengths)

    seq_out.sum().backward()
    grad_alone = x.grad.clone()
    x.grad.zero_()
    unpacked.sum().backward()
    assert_close(x.grad, grad_alone)
    assert_close([p.grad for p in lstm.parameters()], [p.grad for p in alone.parameters()])
