"""torch.nn's contract, checked against torch.nn itself: the exception types (and
torch.nn's wording inside ours) for bad input, bool options, dropout=1, empty cells,
``mode``, ``_flat_weights`` kept in sync through weight norm and weight drop, and the
output dtypes under CPU autocast. Every case runs torch.nn first: a case where torch.nn
does not behave as written here is a broken test."""

import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr
from gatedrnn.validation import InputError, InputTypeError

F64 = torch.float64
LAYER_PAIRS = {"RNN": (nn.RNN, gr.RNN), "LSTM": (nn.LSTM, gr.LSTM), "GRU": (nn.GRU, gr.GRU)}
CELL_PAIRS = {"RNNCell": (nn.RNNCell, gr.RNNCell), "LSTMCell": (nn.LSTMCell, gr.LSTMCell),
              "GRUCell": (nn.GRUCell, gr.GRUCell)}
OTHER_LAYERS = [gr.JANET, gr.MGU, gr.IndRNN, gr.LayerNormLSTM, gr.MinGRU, gr.MinLSTM]
OTHER_CELLS = [gr.JANETCell, gr.MGUCell, gr.IndRNNCell, gr.LayerNormLSTMCell, gr.MinGRUCell, gr.MinLSTMCell]


def pair(classes, *args, **kwargs):
    """torch.nn's module and ours with the same parameters, float64."""
    theirs = classes[0](*args, **kwargs).double()
    ours = classes[1](*args, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def state(is_lstm, *shape, c_shape=None):
    h = torch.zeros(*shape, dtype=F64)
    return (h, torch.zeros(*(c_shape or shape), dtype=F64)) if is_lstm else h


def outputs(result):
    """A module's result as a flat list of tensors."""
    if isinstance(result, tuple):
        return [t for part in result for t in outputs(part)]
    return [result]


def raised(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - what torch.nn raises is the subject
        return error
    raise AssertionError("no exception")


# (case, module arguments, call on (module, is_lstm), torch.nn's message is quoted in ours)
LAYER_CASES = [
    ("feature size", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 4, dtype=F64)), True),
    ("4-D input", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 1, 5, dtype=F64)), False),
    ("empty sequence", (5, 4, 2), lambda m, lstm: m(torch.randn(0, 2, 5, dtype=F64)), True),
    ("hx layers", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 5, dtype=F64), state(lstm, 1, 2, 4)), True),
    ("hx batch", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 5, dtype=F64), state(lstm, 2, 3, 4)), True),
    ("hx size", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 5, dtype=F64), state(lstm, 2, 2, 3)), True),
    ("hx dims", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 5, dtype=F64), state(lstm, 2, 1, 4)), True),
    ("dtype", (5, 4, 2), lambda m, lstm: m(torch.randn(3, 2, 5, dtype=torch.float32)), False),
    ("packed feature size", (5, 4), lambda m, lstm: m(pack_padded_sequence(
        torch.randn(3, 2, 4, dtype=F64), torch.tensor([3, 2]))), False),
]


@pytest.mark.parametrize("case, args, call, quoted", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
@pytest.mark.parametrize("kind", LAYER_PAIRS)
def test_layer_errors_have_torch_nn_types(kind, case, args, call, quoted):
    theirs, ours = pair(LAYER_PAIRS[kind], *args)
    lstm = kind == "LSTM"
    expected, got = raised(lambda: call(theirs, lstm)), raised(lambda: call(ours, lstm))
    assert isinstance(got, type(expected)), f"torch.nn raises {type(expected).__name__}, we {type(got)}"
    assert isinstance(got, (InputError, InputTypeError)) and isinstance(got, (ValueError, RuntimeError))
    if quoted:
        assert re.search(re.escape(str(expected)), str(got)), (str(expected), str(got))


CELL_CASES = [
    ("feature size", lambda m, lstm: m(torch.randn(3, 11, dtype=F64)), True),
    ("hidden size", lambda m, lstm: m(torch.randn(3, 10, dtype=F64), state(lstm, 3, 21)), True),
    ("input batch", lambda m, lstm: m(torch.randn(3, 10, dtype=F64), state(lstm, 5, 20)), True),
    ("hx dims", lambda m, lstm: m(torch.randn(3, 10, dtype=F64), state(lstm, 3, 1, 1, 20)), True),
    ("3-D input", lambda m, lstm: m(torch.randn(1, 3, 10, dtype=F64)), False),
    ("unbatched, 2-D hx", lambda m, lstm: m(torch.randn(10, dtype=F64), state(lstm, 1, 20)), True),
]


@pytest.mark.parametrize("case, call, quoted", CELL_CASES, ids=[c[0] for c in CELL_CASES])
@pytest.mark.parametrize("kind", CELL_PAIRS)
def test_cell_errors_have_torch_nn_types(kind, case, call, quoted):
    theirs, ours = pair(CELL_PAIRS[kind], 10, 20)
    lstm = kind == "LSTMCell"
    expected, got = raised(lambda: call(theirs, lstm)), raised(lambda: call(ours, lstm))
    assert isinstance(got, type(expected)), f"torch.nn raises {type(expected).__name__}, we {type(got)}"
    if quoted:
        assert re.search(re.escape(str(expected).split(": ", 1)[-1]), str(got)), (str(expected), str(got))


def test_errors_keep_naming_argument_expected_and_got():
    layer = gr.GRU(5, 4, num_layers=2)
    with pytest.raises(RuntimeError, match=r"hx has the wrong shape: expected \(2, 2, 4\), got \(2, 3, 4\) "
                                           r"\(the input's batch size is 2, hx's 3"):
        layer(torch.randn(3, 2, 5), torch.zeros(2, 3, 4))
    with pytest.raises(RuntimeError, match=r"hx has the wrong shape: expected \(2, 4\), got \(3, 4\) "
                                           r"\(Input batch size 2 doesn't match hidden0 batch size 3\)"):
        gr.GRUCell(5, 4)(torch.randn(2, 5), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="expected input size 5, got 4"):  # gatedrnn's old type too
        layer(torch.randn(3, 2, 4))
    with pytest.raises(TypeError, match="input has dtype torch.float64"):
        layer(torch.randn(3, 2, 5, dtype=F64))


BOOLS = [(cls, name) for cls in [gr.RNN, gr.LSTM, gr.GRU, *OTHER_LAYERS]
         for name in ("bias", "batch_first", "bidirectional")]
BOOLS += [(gr.LSTM, "peepholes"), (gr.GRU, "reset_after"), (gr.GRUCell, "reset_after"),
          (gr.LSTMCell, "peepholes")]
BOOLS += [(cls, "bias") for cls in [gr.RNNCell, gr.LSTMCell, gr.GRUCell, *OTHER_CELLS]]


@pytest.mark.parametrize("cls, name", BOOLS, ids=[f"{c.__name__}-{n}" for c, n in BOOLS])
def test_bool_options_must_be_bools(cls, name):
    """A config string "False" would be true: TypeError, worded as torch.nn's."""
    if name in ("bias", "batch_first") and cls in (gr.RNN, gr.LSTM, gr.GRU):
        with pytest.raises(TypeError, match=f"{name} should be of type bool, got: str"):
            getattr(nn, cls.__name__)(3, 4, **{name: "False"})
    with pytest.raises(TypeError, match=f"{name} should be of type bool, got: str"):
        cls(3, 4, **{name: "False"})


@pytest.mark.parametrize("kind", LAYER_PAIRS)
def test_dropout_one_as_torch_nn(kind):
    """dropout=1 zeroes every layer's output but the last's in training: torch.nn accepts
    it (and warns for one layer), and so the outputs agree exactly."""
    theirs, ours = pair(LAYER_PAIRS[kind], 3, 4, num_layers=2, dropout=1.0)
    x = torch.randn(5, 2, 3, dtype=F64)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])  # training mode: no randomness left
    for cls in LAYER_PAIRS[kind]:
        with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
            cls(3, 4, dropout=1.0)
        with pytest.raises(ValueError):
            cls(3, 4, dropout=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LAYER_PAIRS[kind][1](3, 4, num_layers=2, dropout=0.5)  # no warning with layers to drop between


@pytest.mark.parametrize("kind", CELL_PAIRS)
def test_empty_cells_and_batches_as_torch_nn(kind):
    theirs, ours = pair(CELL_PAIRS[kind], 5, 0)
    x = torch.randn(2, 5, dtype=F64)
    for expected, got in zip(outputs(theirs(x)), outputs(ours(x))):
        assert got.shape == expected.shape == (2, 0)
    theirs, ours = pair(CELL_PAIRS[kind], 5, 4)
    x = torch.randn(0, 5, dtype=F64)
    assert outputs(ours(x))[0].shape == outputs(theirs(x))[0].shape == (0, 4)


@pytest.mark.parametrize("kind", LAYER_PAIRS)
def test_layers_of_hidden_size_zero_are_rejected_as_torch_nn(kind):
    for cls in LAYER_PAIRS[kind]:
        with pytest.raises(ValueError, match="hidden_size"):
            cls(3, 0)
    theirs, ours = pair(LAYER_PAIRS[kind], 3, 4)
    x = torch.randn(5, 0, 3, dtype=F64)
    assert ours(x)[0].shape == theirs(x)[0].shape == (5, 0, 4)


@pytest.mark.parametrize("kwargs", [dict(), dict(nonlinearity="relu"), dict(bidirectional=True, num_layers=2),
                                    dict(bias=False)], ids=["tanh", "relu", "bi-2", "nobias"])
def test_mode_and_flat_weights_names_as_torch_nn(kwargs):
    for kind, classes in LAYER_PAIRS.items():
        options = dict(kwargs)
        if kind != "RNN":
            options.pop("nonlinearity", None)
        theirs, ours = pair(classes, 3, 4, **options)
        assert ours.mode == theirs.mode
        assert ours._flat_weights_names == theirs._flat_weights_names
        assert all(a is getattr(ours, name) for a, name in zip(ours._flat_weights, ours._flat_weights_names))
    theirs, ours = pair(LAYER_PAIRS["LSTM"], 3, 4, proj_size=2, **{k: v for k, v in kwargs.items()
                                                                    if k != "nonlinearity"})
    assert ours._flat_weights_names == theirs._flat_weights_names


def test_mode_of_the_other_cells():
    """The others are named by their cell; the minimal RNNs keep their execution mode."""
    assert [cls(3, 4).mode for cls in (gr.JANET, gr.MGU, gr.IndRNN, gr.LayerNormLSTM)] == [
        "JANET", "MGU", "INDRNN", "LAYERNORM_LSTM"]
    assert gr.MinGRU(3, 4).mode == "auto" and gr.MinLSTM(3, 4, mode="scan").mode == "scan"


def _weight_norm_new(module):
    from torch.nn.utils.parametrizations import weight_norm

    weight_norm(module, "weight_hh_l0")
    with torch.no_grad():
        module.parametrizations.weight_hh_l0.original0.mul_(2.0)  # the norm differs from 1


def _weight_norm_old(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(module, "weight_ih_l0")
    with torch.no_grad():
        module.weight_ih_l0_g.mul_(3.0)


class WeightDrop(nn.Module):
    """AWD-LSTM's weight drop, made deterministic: the parameter is deleted and a masked
    plain tensor set in its place before every forward."""

    def __init__(self, module, name):
        super().__init__()
        self.module, self.name = module, name
        weight = getattr(module, name)
        del module._parameters[name]
        module.register_parameter(name + "_raw", nn.Parameter(weight.data))

    def forward(self, *args):
        raw = getattr(self.module, self.name + "_raw")
        mask = (torch.arange(raw.numel()).reshape(raw.shape) % 3 != 0).to(raw.dtype)
        setattr(self.module, self.name, raw * mask)
        return self.module(*args)


@pytest.mark.parametrize("rewrap", [_weight_norm_new, _weight_norm_old, "weight_drop"],
                         ids=["parametrizations.weight_norm", "utils.weight_norm", "weight_drop"])
@pytest.mark.parametrize("kind", LAYER_PAIRS)
def test_replaced_weights_reach_the_forward(kind, rewrap):
    theirs, ours = pair(LAYER_PAIRS[kind], 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=F64)
    plain = ours(x)[0].detach()
    if rewrap == "weight_drop":
        theirs, ours = WeightDrop(theirs, "weight_hh_l0"), WeightDrop(ours, "weight_hh_l0")
    else:
        rewrap(theirs)
        rewrap(ours)
    out = ours(x)[0]
    torch.testing.assert_close(out, theirs(x)[0])
    assert not torch.allclose(out, plain)
    layer = ours.module if rewrap == "weight_drop" else ours
    assert layer._flat_weights_names == theirs_names(kind)
    index = layer._flat_weights_names.index("weight_hh_l0")
    torch.testing.assert_close(layer._flat_weights[index], getattr(layer, "weight_hh_l0"))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def theirs_names(kind):
    return LAYER_PAIRS[kind][0](3, 4, num_layers=2)._flat_weights_names


AUTOCAST_MODULES = [*((c, True) for c in LAYER_PAIRS.values()), *((c, False) for c in CELL_PAIRS.values())]


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["f32-input", "bf16-input"])
@pytest.mark.parametrize("classes, is_layer", AUTOCAST_MODULES,
                         ids=[c[0].__name__ for c, _ in AUTOCAST_MODULES])
def test_cpu_autocast_output_dtypes_as_torch_nn(classes, is_layer, input_dtype):
    theirs, ours = classes[0](5, 4).float(), classes[1](5, 4)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 2, 5) if is_layer else torch.randn(2, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = theirs(x.to(input_dtype)), ours(x.to(input_dtype))
    assert [t.dtype for t in outputs(got)] == [t.dtype for t in outputs(expected)]
    torch.testing.assert_close(outputs(got)[0].float(), outputs(expected)[0].float(), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("cls", OTHER_LAYERS + OTHER_CELLS, ids=lambda c: c.__name__)
def test_cpu_autocast_keeps_the_input_dtype_for_the_other_cells(cls):
    """Documented: the recurrence runs in the parameters' dtype, the output comes back in
    the input's (as torch.nn's GRU): float32 in, float32 out, exactly the plain forward."""
    module = cls(5, 4)
    x = torch.randn(3, 2, 5) if cls in OTHER_LAYERS else torch.randn(2, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = module(x)
    got, expected = outputs(got)[0], outputs(module(x))[0]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
