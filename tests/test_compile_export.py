"""Whole models with a gatedrnn layer under torch.compile (fullgraph, forward and
backward), torch.export (dynamic batch and time) and TorchScript: equal to eager for
every cell, on the backend ``auto`` picks.

``aot_eager`` compiles most cases (dynamo and AOTAutograd, the parts that break on
graph breaks and fake kernels, without inductor's code generation); one case runs
through inductor.
"""

import pytest
import torch
from torch import nn
from torch.export import Dim, export

import gatedrnn as gr

I, H = 3, 4

CELLS = {
    "rnn-tanh": lambda **kw: gr.RNN(I, H, **kw),
    "rnn-relu": lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: gr.LSTM(I, H, **kw),
    "lstm-peepholes": lambda **kw: gr.LSTM(I, H, peepholes=True, forget_bias=1.0, **kw),
    "lstm-projection": lambda **kw: gr.LSTM(I, H, proj_size=2, **kw),
    "lstm-clips": lambda **kw: gr.LSTM(I, H, proj_size=2, cell_clip=0.5, proj_clip=0.3, **kw),
    "gru": lambda **kw: gr.GRU(I, H, **kw),
    "gru-reset-before": lambda **kw: gr.GRU(I, H, reset_after=False, **kw),
    "janet": lambda **kw: gr.JANET(I, H, **kw),
    "mgu": lambda **kw: gr.MGU(I, H, **kw),
    "indrnn": lambda **kw: gr.IndRNN(I, H, **kw),
    "layernorm-lstm": lambda **kw: gr.LayerNormLSTM(I, H, **kw),
    "mingru": lambda **kw: gr.MinGRU(I, H, **kw),
    "minlstm": lambda **kw: gr.MinLSTM(I, H, **kw),
}


def model(name, **kw):
    """nn.Sequential(Linear, layer, head, Linear), batch-first."""
    torch.manual_seed(0)
    layer = CELLS[name](batch_first=True, **kw)
    return nn.Sequential(nn.Linear(2, I), layer, gr.MeanPool(batch_first=True), nn.Linear(layer.output_size, 1))


class EveryCell(nn.Module):
    """One ``model(name)`` per cell side by side, their outputs summed: one fullgraph
    compile covers every cell (a graph break anywhere fails it) at a fraction of the
    cost of one compile per cell."""

    def __init__(self, names):
        super().__init__()
        self.models = nn.ModuleList(model(name, bidirectional=name in ("gru", "mingru")) for name in names)

    def forward(self, x):
        return torch.cat([m(x) for m in self.models], dim=-1)  # (B, cells)


def assert_compiles_as_eager(eager, backend):
    compiled = torch.compile(eager, fullgraph=True, backend=backend)
    x = torch.randn(2, 5, 2, requires_grad=True)
    results = []
    for module in (compiled, eager):
        out = module(x)
        results.append((out, torch.autograd.grad(out.square().sum(), [x, *eager.parameters()])))
    (out, grads), (expected, expected_grads) = results
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_fullgraph_equals_eager_for_every_cell():
    assert_compiles_as_eager(EveryCell(CELLS), "aot_eager")


def test_compile_with_inductor_equals_eager():
    assert_compiles_as_eager(model("janet"), "inductor")


def test_export_with_dynamic_batch_and_time_equals_eager_for_every_cell():
    """Time is dynamic where the recurrence is one op (the native kernels, the scan);
    without the native kernels the reference loop is traced, one sequence length's."""
    eager = EveryCell(CELLS)
    dynamic_time = gr.backends.native.is_available()
    dims = {0: Dim("batch"), 1: Dim("time")} if dynamic_time else {0: Dim("batch")}
    program = export(eager, (torch.randn(3, 5, 2),), dynamic_shapes=(dims,))
    for shape in ((4, 9, 2), (2, 3, 2)) if dynamic_time else ((4, 5, 2), (2, 5, 2)):
        x = torch.randn(*shape)
        torch.testing.assert_close(program.module()(x), eager(x))


@pytest.mark.parametrize("make", [lambda: model("gru"), lambda: nn.Sequential(gr.LSTMCell(3, 4)),
                                  lambda: gr.MinGRU(3, 4)], ids=["sequential-gru", "lstm-cell", "mingru"])
def test_torchscript_refuses_at_once_with_what_to_use(make):
    with pytest.raises(RuntimeError, match=r"torch.jit.script cannot compile gatedrnn's \w+.*"
                                           r"torch.export.export.*torch.jit.trace.*gr.export_onnx"):
        torch.jit.script(make())


NATIVE_TRACE = pytest.mark.skipif(not gr.backends.native.is_available(),
                                  reason="without the native kernels the fused backend's Python time loop "
                                         "is traced: the trace is one sequence length's")


@pytest.mark.parametrize("name", ["lstm", pytest.param("gru", marks=NATIVE_TRACE), "mingru",
                                  pytest.param("layernorm-lstm", marks=NATIVE_TRACE)])
def test_jit_trace_equals_eager(name):
    eager = model(name)
    traced = torch.jit.trace(eager, torch.randn(2, 5, 2))  # with torch's own check of the trace
    for shape in ((2, 5, 2), (3, 8, 2)):  # the kernels are one op: other sizes trace the same
        x = torch.randn(*shape)
        torch.testing.assert_close(traced(x), eager(x))
