"""The RNN, LSTM, GRU and cell entries of PyTorch's module database
(``torch/testing/_internal/common_modules.py``: module_inputs_torch_nn_RNN_GRU,
module_inputs_torch_nn_LSTM, module_inputs_torch_nn_RNN_GRU_Cell,
module_inputs_torch_nn_LSTMCell and the module_error_inputs_* of the same names), run the
way ``test/test_modules.py`` (``TestModule``) runs them, on torch.nn and on gatedrnn.

The samples are re-generated here, same options and shapes: no-batch-dim inputs, with and
without an initial state, over nonlinearity x bias x batch_first x bidirectional (x
proj_size for the LSTM), and the cells' unbatched steps.

TestModule test -> test here:

- test_forward (reference: the same input with a batch of one; then ``.float()`` /
  ``.double()``), test_factory_kwargs, test_repr, test_pickle, test_non_contiguous_tensors,
  test_grad, test_gradgrad, test_if_train_and_eval_modes_differ, test_device_ctx_init,
  test_memory_format (contiguous / preserve formats: these inputs are 1-D to 3-D),
  test_errors: ported one to one
- test_multiple_device_transfer (CUDA upstream) -> test_device_transfer: cpu -> meta ->
  cpu (``to_empty`` + the saved state) instead of cuda -> cpu -> cuda
- test_cpu_gpu_parity (CUDA upstream) -> test_parity_with_torch_nn: the module under test
  against torch.nn on CPU, same weights, float64, forward and repeated backward
- test_pickle with ``torch.load``'s default ``weights_only=True`` (torch >= 2.6) inside
  ``torch.serialization.safe_globals([<the layer class>])`` -> test_pickle_weights_only

Not ported: test_check_inplace (no RNN module has ``inplace``), the channels_last parts of
test_memory_format (4-D/5-D inputs only), the CUDA-only decorators of
rnn_gru_lstm_module_info_decorators (cuDNN expected failures), and the samples of
``with_packed_sequence=True`` (module_db does not use them; packed input is covered in
test_port_nn.py and test_port_packed_sequence.py). The gradient checks run in training
mode only: these samples have no dropout, so eval mode runs the same computation.

Cut for time (the whole port must stay under a minute): test_pickle runs in float64 only,
test_non_contiguous_tensors on the samples with an initial state, and the gradient checks
on two samples per kind (see test_grad).
"""

from __future__ import annotations

import io
import itertools
from copy import deepcopy
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional


import pytest
import torch
from torch.autograd.gradcheck import GradcheckError
from torch.testing import make_tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from port_utils import assert_close, case, check_error, pair, tensors

DTYPES = (torch.float32, torch.float64)


@dataclass
class Sample:
    """One module_db entry: constructor arguments and forward inputs."""

    kind: str
    kwargs: dict
    make_inputs: Callable[..., tuple]  # (dtype, requires_grad) -> forward args
    batch_dim: int  # where the no-batch-dim reference puts the batch of one
    id: str
    args: tuple = field(default=())

    @property
    def is_cell(self) -> bool:
        return self.kind.endswith("Cell")

    def build(self, impl, **extra):
        return getattr(impl, self.kind)(*self.args, **self.kwargs, **extra)


def _maker(dtype, requires_grad):
    return partial(make_tensor, device="cpu", dtype=dtype, requires_grad=requires_grad)


def _layer_samples(kind):
    """module_inputs_torch_nn_RNN_GRU / _LSTM, re-generated."""
    nonlinearities = ["relu", "tanh"] if kind == "RNN" else [None]
    proj_sizes = [0, 2] if kind == "LSTM" else [0]
    for nl, bias, batch_first, bidirectional, proj_size in itertools.product(
            nonlinearities, [False, True], [False, True], [False, True], proj_sizes):
        layers = 2 * (2 if bidirectional else 1)
        base = dict(input_size=2, num_layers=2, batch_first=batch_first, bias=bias,
                    bidirectional=bidirectional)
        if nl:
            base["nonlinearity"] = nl
        if proj_size:
            base["proj_size"] = proj_size
        name = "-".join(filter(None, [nl, "bias" if bias else "nobias", "bf" if batch_first else "tf",
                                      "bi" if bidirectional else "uni", f"proj{proj_size}" if proj_size else ""]))
        batch_dim = 0 if batch_first else 1
        if kind == "LSTM":
            h_out = proj_size or 3
            yield Sample(kind, dict(base, hidden_size=3),
                         lambda dt, rg: (_maker(dt, rg)((2, 2)),), batch_dim, name)
            yield Sample(kind, dict(base, hidden_size=3),
                         lambda dt, rg, n=layers, h=h_out: (
                             _maker(dt, rg)((3, 2)), (_maker(dt, rg)((n, h)), _maker(dt, rg)((n, 3)))),
                         batch_dim, name + "-hx")
        else:
            yield Sample(kind, dict(base, hidden_size=2),
                         lambda dt, rg: (_maker(dt, rg)((3, 2)),), batch_dim, name)
            yield Sample(kind, dict(base, hidden_size=3),
                         lambda dt, rg, n=layers: (_maker(dt, rg)((3, 2)), _maker(dt, rg)((n, 3))),
                         batch_dim, name + "-hx")


def _cell_samples(kind):
    """module_inputs_torch_nn_RNN_GRU_Cell / _LSTMCell, re-generated."""
    options = [("default", {}), ("bias", {"bias": True})]
    if kind == "RNNCell":
        options.append(("bias-relu", {"bias": True, "nonlinearity": "relu"}))
    for name, kwargs in options:
        if kind == "LSTMCell":
            def make(dt, rg):
                m = _maker(dt, rg)
                return m(5), (m(10), m(10))
        else:
            def make(dt, rg):
                m = _maker(dt, rg)
                return m(5), m(10)
        yield Sample(kind, kwargs, make, 0, name, args=(5, 10))


SAMPLES = [s for kind in ("RNN", "GRU", "LSTM") for s in _layer_samples(kind)] + \
          [s for kind in ("RNNCell", "GRUCell", "LSTMCell") for s in _cell_samples(kind)]


KINDS = ("RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell")
SAMPLES_BY_KIND = {kind: [s for s in SAMPLES if s.kind == kind] for kind in KINDS}


def _kinds(**differs):
    """pytest params of the module kinds; ``differs[kind] = (cause, raises)`` makes that
    kind's [gatedrnn] run a strict xfail."""
    return [case(kind, id=kind, differs=differs.get(kind, (None, None))[0],
                 raises=differs.get(kind, (None, None))[1]) for kind in KINDS]


@contextmanager
def _about(sample):
    """Name the sample in any failure inside (the exception keeps its type)."""
    try:
        yield
    except BaseException as error:
        error.add_note(f"module_db sample: {sample.kind}-{sample.id} {sample.kwargs or sample.args}")
        raise


def _each(kind):
    """The samples of ``kind``, each inside :func:`_about`."""
    for sample in SAMPLES_BY_KIND[kind]:
        with _about(sample):
            yield sample


def _covering(kind):
    """The first and the last sample of ``kind``: between them every option takes both
    values (the last has bias, batch_first, bidirectional, an initial state, and tanh /
    proj_size=2 where they apply)."""
    samples = SAMPLES_BY_KIND[kind]
    for sample in (samples[0], samples[-1]):
        with _about(sample):
            yield sample


def _batched(sample, inputs):
    """The no-batch-dim reference's input: a batch of one, where the module wants it."""
    x, *state = inputs
    x = x.unsqueeze(sample.batch_dim)
    state = [tree_map(lambda t: t.unsqueeze(0 if sample.is_cell else 1), s) for s in state]
    return (x, *state)


def _unbatched(sample, outputs):
    if sample.is_cell:
        return tree_map(lambda t: t.squeeze(0), outputs)
    output, state = outputs
    return output.squeeze(sample.batch_dim), tree_map(lambda t: t.squeeze(1), state)


def _check_placement(module, dtype, device="cpu"):
    for name, p in itertools.chain(module.named_parameters(), module.named_buffers()):
        assert p.device == torch.device(device), f"{name} on {p.device}"
        if p.dtype.is_floating_point:
            assert p.dtype == dtype, f"{name} is {p.dtype}"


# -- TestModule, re-written ---------------------------------------------------------------------
# One test per TestModule test and module kind, looping over that kind's samples as
# TestModule does.

@pytest.mark.parametrize("kind", _kinds())
def test_forward(impl, kind):
    """Unbatched input equals the batch-of-one result, in training and evaluation mode;
    .float() / .double() convert."""
    for sample in _each(kind):
        for dtype in DTYPES:
            module = sample.build(impl).to(dtype)
            inputs = sample.make_inputs(dtype, False)
            for training in (True, False):
                module.train(training)
                outputs = module(*inputs)
                assert_close(outputs, _unbatched(sample, module(*_batched(sample, inputs))))
            (module.float() if dtype == torch.float32 else module.double())(*inputs)
            _check_placement(module, dtype)


@pytest.mark.parametrize("kind", _kinds())
def test_factory_kwargs(impl, kind):
    for sample in _each(kind):
        for dtype in DTYPES:
            _check_placement(sample.build(impl, device="cpu", dtype=dtype), dtype)


@pytest.mark.parametrize("kind", _kinds())
def test_device_transfer(impl, kind):
    """cpu -> meta -> cpu: the parameters follow, and with the state loaded back the
    module gives its first output again."""
    for sample in _each(kind):
        module = sample.build(impl).double()
        inputs = sample.make_inputs(torch.float64, False)
        expected = module(*inputs)
        state = deepcopy(module.state_dict())
        module.to("meta")
        _check_placement(module, torch.float64, "meta")
        module.to_empty(device="cpu")
        module.load_state_dict(state)
        _check_placement(module, torch.float64)
        assert_close(module(*inputs), expected)


@pytest.mark.parametrize("kind", _kinds())
def test_repr(impl, kind):
    """repr and str work, and name the class and its sizes."""
    for sample in _each(kind):
        module = sample.build(impl)
        sizes = (f"{sample.args[0]}, {sample.args[1]}" if sample.args
                 else f"{sample.kwargs['input_size']}, {sample.kwargs['hidden_size']}")
        for text in (repr(module), str(module)):
            assert text.startswith(f"{sample.kind}({sizes}"), text


@pytest.mark.parametrize("kind", _kinds())
def test_pickle(impl, kind):
    """A whole module through torch.save / torch.load gives the same outputs (float64
    only: upstream's float32 run pickles the same objects)."""
    for sample in _each(kind):
        module = sample.build(impl).double()
        inputs = sample.make_inputs(torch.float64, False)
        buffer = io.BytesIO()
        torch.save(module, buffer)
        buffer.seek(0)
        copy = torch.load(buffer, weights_only=False)
        assert_close(copy(*inputs), module(*inputs))


@pytest.mark.parametrize("kind", _kinds())
def test_pickle_weights_only(impl, kind):
    """torch.load's default (weights_only=True) with only the module's class allowed."""
    for sample in _each(kind):
        module = sample.build(impl)
        inputs = sample.make_inputs(torch.float32, False)
        buffer = io.BytesIO()
        torch.save(module, buffer)
        buffer.seek(0)
        with torch.serialization.safe_globals([type(module)]):
            copy = torch.load(buffer)
        assert_close(copy(*inputs), module(*inputs))


def _non_contiguous(t):
    out = torch.repeat_interleave(t, 2, dim=-1)[..., ::2].detach()
    return out.requires_grad_(t.requires_grad)


def _backward_all(outputs, grad_outputs):
    for o, g in zip(tensors(outputs), grad_outputs):
        if o.requires_grad:
            o.backward(g, retain_graph=True)


@pytest.mark.parametrize("kind", _kinds())
def test_non_contiguous_tensors(impl, kind):
    """Non-contiguous inputs and output gradients give the same outputs and gradients
    (the samples with an initial state: there both the input and the state are
    non-contiguous; the others differ from them only in the missing state)."""
    for sample in _each(kind):
        if len(sample.make_inputs(torch.float64, False)) < 2:
            continue
        module = sample.build(impl).double()
        inputs = sample.make_inputs(torch.float64, True)
        leaves = tensors(inputs)
        outputs = module(*inputs)
        grad_outputs = [torch.randn_like(o) for o in tensors(outputs)]
        _backward_all(outputs, grad_outputs)
        expected_input_grads = [t.grad.clone() for t in leaves]
        expected_param_grads = [p.grad.clone() for p in module.parameters()]
        nc_inputs = tree_map(_non_contiguous, inputs)
        nc_grads = [_non_contiguous(g) for g in grad_outputs]
        # upstream's product of {contiguous, not} inputs and output gradients, without
        # the all-contiguous point already run above
        for given, grads in [(inputs, nc_grads), (nc_inputs, grad_outputs), (nc_inputs, nc_grads)]:
            module.zero_grad()
            for t in tensors(given):
                t.grad = None
            out = module(*given)
            _backward_all(out, grads)
            assert_close(out, outputs)
            assert_close([t.grad for t in tensors(given)], expected_input_grads, atol=1e-4, rtol=0)
            assert_close([p.grad for p in module.parameters()], expected_param_grads)


def _gradients_check(impl, sample, check, partials=False, batched=False):
    """gradcheck-style ``check`` (fast mode, as PyTorch's test wrappers) of the total
    derivative in the inputs and parameters, then, if ``partials``, of each parameter
    alone, as TestModule._test_gradients_helper."""
    module = sample.build(impl).double()
    inputs = sample.make_inputs(torch.float64, True)
    params = tuple(module.parameters())
    flat, spec = tree_flatten(inputs + params)

    def fn(*flat_args):
        args = tree_unflatten(list(flat_args), spec)[:len(inputs)]
        return tuple(tree_flatten(module(*args))[0])

    assert check(fn, flat, check_batched_grad=batched, fast_mode=True)
    if not partials:
        return
    for t in tensors(inputs) + list(params):
        t.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
        assert check(fn, flat, check_batched_grad=batched, fast_mode=True)
        p.requires_grad_(False)


# TestModule checks every sample, with PyTorch's wrappers' check_batched_grad=True. Here:
# the covering pair of each kind (the smallest sample with the partial derivatives, the
# largest one), as the whole grid costs minutes (every sample's first derivatives are
# compared with torch.nn's in test_parity_with_torch_nn), and the batched-gradient (vmap)
# part as a test of its own, so that its failures do not hide the plain gradient checks.

@pytest.mark.parametrize("kind", _kinds())
def test_grad(impl, kind):
    for sample, partials in zip(_covering(kind), (True, False)):
        _gradients_check(impl, sample, torch.autograd.gradcheck, partials)


@pytest.mark.parametrize("kind", _kinds())
def test_grad_batched(impl, kind):
    """check_batched_grad: the backward under vmap (what jacrev and
    autograd.functional.jacobian(vectorize=True) run)."""
    for sample in _covering(kind):
        _gradients_check(impl, sample, torch.autograd.gradcheck, batched=True)


@pytest.mark.parametrize("kind", _kinds())
def test_gradgrad(impl, kind):
    for sample in _covering(kind):
        _gradients_check(impl, sample, torch.autograd.gradgradcheck)


@pytest.mark.parametrize("kind", _kinds())
def test_if_train_and_eval_modes_differ(impl, kind):
    """Only the layers (module_db's train_and_eval_differ=True) may read ``training`` in
    forward; the cells must run without it."""
    for sample in _each(kind):
        module = sample.build(impl)
        delattr(module, "training")
        try:
            module(*sample.make_inputs(torch.float32, False))
        except AttributeError as error:
            assert "'training'" in str(error) and not sample.is_cell, error


@pytest.mark.parametrize("kind", _kinds())
def test_device_ctx_init(impl, kind):
    """Built under ``torch.device('meta')``: meta parameters with the CPU module's metadata."""
    for sample in _each(kind):
        cpu = sample.build(impl)
        with torch.device("meta"):
            meta = sample.build(impl)
        pairs = list(zip(meta.parameters(), cpu.parameters())) + list(zip(meta.buffers(), cpu.buffers()))
        assert len(pairs) == len(list(cpu.parameters())) + len(list(cpu.buffers()))
        for m, c in pairs:
            assert m.is_meta
            assert (m.shape, m.dtype, m.stride(), m.requires_grad) == \
                (c.shape, c.dtype, c.stride(), c.requires_grad)


@pytest.mark.parametrize("kind", _kinds())
def test_memory_format(impl, kind):
    """``module.to(memory_format=...)`` with the formats a 1-3-D input allows: outputs and
    gradients unchanged, outputs contiguous."""
    for sample in _each(kind):
        module = sample.build(impl).double()
        inputs = sample.make_inputs(torch.float64, True)
        expected = module(*inputs)
        grad_outputs = [torch.rand_like(o) for o in tensors(expected)]
        diff_inputs = tensors(inputs) + list(module.parameters())
        expected_grads = torch.autograd.grad(tensors(expected), diff_inputs, grad_outputs)
        for memory_format in (torch.preserve_format, torch.contiguous_format):
            module.to(memory_format=memory_format)
            outputs = module(*inputs)
            assert_close(outputs, expected)
            assert all(o.is_contiguous() for o in tensors(outputs))
            assert_close(torch.autograd.grad(tensors(outputs), diff_inputs, grad_outputs), expected_grads)


@pytest.mark.parametrize("kind", _kinds())
def test_parity_with_torch_nn(impl, kind):
    """Same weights, float64: the outputs and, over two backward passes, every gradient
    equal torch.nn's."""
    for sample in _each(kind):
        module, reference = pair(impl, sample.kind, *sample.args, **sample.kwargs)
        inputs = sample.make_inputs(torch.float64, True)
        reference_inputs = tree_map(lambda t: t.detach().clone().requires_grad_(), inputs)
        outputs, expected = module(*inputs), reference(*reference_inputs)
        assert_close(outputs, expected)
        for _ in range(2):
            grad_outputs = [torch.randn_like(o) for o in tensors(expected)]
            _backward_all(outputs, grad_outputs)
            _backward_all(expected, grad_outputs)
            assert_close([t.grad for t in tensors(inputs)], [t.grad for t in tensors(reference_inputs)])
            assert_close({n: p.grad for n, p in module.named_parameters()},
                         {n: p.grad for n, p in reference.named_parameters()})


# -- test_errors -----------------------------------------------------------------------------

@dataclass
class ErrorCase:
    """One ErrorModuleInput: where it fails, the type, PyTorch's regex, and what a
    gatedrnn message must name instead (argument, expected, got)."""

    id: str
    args: tuple
    kwargs: dict
    error_type: type
    regex: str
    names: list
    forward: Optional[Callable[[torch.dtype], tuple]] = None  # None: a construction error
    differs: Optional[str] = None
    raises: Optional[type] = None


_GREATER = ("greater than zero", ">= 1", "> 0", "positive")


def _layer_errors(dtype):
    """module_error_inputs_torch_nn_RNN_GRU (used for RNN, GRU and LSTM)."""
    other = torch.float32 if dtype == torch.float64 else torch.float64
    cases = [
        ErrorCase("hidden_size_zero", (10, 0, 1), {}, ValueError, "hidden_size must be greater than zero",
                  ["hidden_size", _GREATER, "0"]),
        ErrorCase("num_layers_zero", (10, 10, 0), {}, ValueError, "num_layers must be greater than zero",
                  ["num_layers", _GREATER, "0"]),
        ErrorCase("dtype_mismatch", (3, 5), {"dtype": dtype}, ValueError,
                  r"RNN input dtype .* does not match weight dtype .* "
                  r"Convert input: input\.to\(.*\), or convert model: model\.to\(.*\)",
                  ["input", str(other), str(dtype)],
                  forward=lambda: (make_tensor((2, 4, 3), device="cpu", dtype=other),)),
    ]
    for name, value in (("bias", 0), ("bias", 1), ("bias", "True"),
                        ("batch_first", 0), ("batch_first", 1), ("batch_first", "False")):
        cases.append(ErrorCase(f"{name}_{value!r}", (3, 5), {name: value}, TypeError,
                               f"{name} should be of type bool, got: {type(value).__name__}",
                               [name, "bool", type(value).__name__]))
    cases += [
        ErrorCase("input_size_float", (3.0, 5), {}, TypeError, "input_size should be of type int, got: float",
                  ["input_size", "int", "float"]),
        ErrorCase("input_size_str", ("10", 5), {}, TypeError, "input_size should be of type int, got: str",
                  ["input_size", "int", "str"]),
        ErrorCase("input_size_zero", (0, 5), {}, ValueError, "input_size must be greater than zero",
                  ["input_size", _GREATER, "0"]),
        ErrorCase("input_size_negative", (-1, 5), {}, ValueError, "input_size must be greater than zero",
                  ["input_size", _GREATER, "-1"]),
        ErrorCase("hidden_size_float", (3, 5.0), {}, TypeError, "hidden_size should be of type int, got: float",
                  ["hidden_size", "int", "float"]),
    ]
    return cases


def _cell_errors(kind):
    """module_error_inputs_torch_nn_RNN_GRU_Cell / _LSTMCell."""
    lstm = kind == "LSTMCell"

    def state(*shape):
        return (torch.randn(*shape), torch.randn(*shape)) if lstm else torch.randn(*shape)

    hidden0 = "hx\\[0\\]" if lstm else "hidden"
    cases = [
        ErrorCase("input_size", (10, 20), {}, RuntimeError, "input has inconsistent input_size: got 11 expected 10",
                  ["input", "10", "11"], forward=lambda: (torch.randn(3, 11), state(3, 20))),
        ErrorCase("hidden_size", (10, 20), {}, RuntimeError,
                  "hidden0 has inconsistent hidden_size: got 21, expected 20",
                  ["hx", "20", "21"], forward=lambda: (torch.randn(3, 10), state(3, 21))),
        ErrorCase("batch_size", (10, 20), {}, RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 5",
                  [("input", "Input", "hx"), "(3, 20)", "(5, 20)"], forward=lambda: (torch.randn(3, 10), state(5, 20))),
        ErrorCase("hidden_4d", (10, 20), {}, ValueError, f"Expected {hidden0} to be 1D or 2D, got 4D instead",
                  ["hx", ("1D or 2D", "(3, 20)"), ("4D", "(3, 1, 1, 20)")],
                  forward=lambda: (torch.randn(3, 10), state(3, 1, 1, 20))),
    ]
    if kind != "LSTMCell":
        for nonlinearity in (("relu", "tanh") if kind == "RNNCell" else ()):
            cases.append(ErrorCase(f"hidden_size_{nonlinearity}", (10, 20, nonlinearity) if kind == "RNNCell" else (),
                                   {}, RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20",
                                   ["hx", "20", "21"], forward=lambda: (torch.randn(3, 10), state(3, 21)),
                                   differs="cell-bias-not-bool", raises=TypeError))
    return cases


def _error_params():
    out = []
    for kind in ("RNN", "GRU", "LSTM"):
        for dtype in DTYPES:
            for err in _layer_errors(dtype):
                if err.id != "dtype_mismatch" and dtype == torch.float64:
                    continue  # only the dtype case depends on the dtype
                suffix = f"-{str(dtype)[6:]}" if err.id == "dtype_mismatch" else ""
                out.append(case(kind, err, id=f"{kind}-{err.id}{suffix}", differs=err.differs, raises=err.raises))
    for kind in ("RNNCell", "GRUCell", "LSTMCell"):
        for err in _cell_errors(kind):
            out.append(case(kind, err, id=f"{kind}-{err.id}", differs=err.differs, raises=err.raises))
    return out


@pytest.mark.parametrize("kind, err", _error_params())
def test_errors(impl, kind, err):
    cls = getattr(impl, kind)
    if err.forward is None:
        check_error(impl, err.error_type, err.regex, err.names, lambda: cls(*err.args, **err.kwargs))
    else:
        module = cls(*err.args, **err.kwargs)
        inputs = err.forward()
        check_error(impl, err.error_type, err.regex, err.names, lambda: module(*inputs))
