"""ONNX interop: gatedrnn.convert.from_onnx_weights / from_onnx / to_onnx_weights against
single-node ONNX models run by onnx.reference.ReferenceEvaluator and onnxruntime, and
gatedrnn.export_onnx run in onnxruntime with other batch sizes and lengths than at export.

onnxruntime rejects layout=1 ("Batchwise recurrent operations are not supported") and the
reference evaluator knows no Relu activation: those cases check against the other one."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import gatedrnn as gr  # noqa: E402
from gatedrnn.convert import (ONNX_OP_TYPES, TimeReversed, from_onnx, from_onnx_weights,  # noqa: E402
                              to_onnx_weights)

I, H, B, T = 5, 4, 3, 6
ATOL = 1e-5


def onnx_node_model(op_type, arrays, attrs, initial_states):
    """A model with one recurrent node; W, R, B, P as initializers, X and initial states inputs."""
    names = ["X", "W", "R", "B" if "B" in arrays else "", "",
             "initial_h" if initial_states else "",
             "initial_c" if initial_states and op_type == "LSTM" else "",
             "P" if "P" in arrays else ""]
    while not names[-1]:
        names.pop()
    outputs = ["Y", "Y_h"] + (["Y_c"] if op_type == "LSTM" else [])
    node = helper.make_node(op_type, names, outputs, **attrs)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
              for n in ("X", "initial_h", "initial_c") if n in names]
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, k) for k, a in arrays.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_onnx(model, feeds):
    """-> {"reference": outputs, "onnxruntime": outputs} for the runtimes that take the model."""
    node = model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    results = {}
    if b"Relu" not in attrs.get("activations", []):
        results["reference"] = ReferenceEvaluator(model).run(None, feeds)
    if attrs.get("layout", 0) == 0:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        results["onnxruntime"] = session.run(None, feeds)
    if not results:  # Relu with layout 1: onnxruntime on the layout-0 twin, transposed
        twin = onnx.ModelProto()
        twin.CopyFrom(model)
        for a in twin.graph.node[0].attribute:
            if a.name == "layout":
                a.i = 0
        session = ort.InferenceSession(twin.SerializeToString(), providers=["CPUExecutionProvider"])
        y, *states = session.run(None, {k: v.swapaxes(0, 1) for k, v in feeds.items()})
        results["onnxruntime (layout 0)"] = [y.transpose(2, 0, 1, 3)] + [s.swapaxes(0, 1) for s in states]
    return results


def random_onnx(op_type, rng, d, bias=True, peepholes=False):
    g = ONNX_OP_TYPES[op_type]
    arrays = {"W": rng.uniform(-0.5, 0.5, (d, g * H, I)), "R": rng.uniform(-0.5, 0.5, (d, g * H, H))}
    if bias:
        arrays["B"] = rng.uniform(-0.5, 0.5, (d, 2 * g * H))
    if peepholes:
        arrays["P"] = rng.uniform(-0.5, 0.5, (d, 3 * H))
    return {k: a.astype(np.float32) for k, a in arrays.items()}


ONNX_CASES = [
    ("LSTM", {}, {}),
    ("LSTM", {"peepholes": True}, {}),
    ("LSTM", {"bias": False}, {}),
    ("GRU", {}, {"linear_before_reset": 0}),
    ("GRU", {}, {"linear_before_reset": 1}),
    ("RNN", {}, {}),
    ("RNN", {}, {"activations": ["Relu"]}),
]


def ids(case):
    op, kw, attrs = case
    return "-".join([op] + [k for k in kw] + [f"{k}{v}" if not isinstance(v, list) else v[0]
                                              for k, v in attrs.items()])


@pytest.mark.parametrize("case", ONNX_CASES, ids=[ids(c) for c in ONNX_CASES])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("initial_states", [False, True], ids=["zero-state", "initial-state"])
def test_from_onnx_matches_onnx_runtimes(case, direction, layout, initial_states):
    op_type, kw, attrs = case
    rng = np.random.default_rng(0)
    d = 2 if direction == "bidirectional" else 1
    arrays = random_onnx(op_type, rng, d, **kw)
    attrs = dict(attrs, hidden_size=H, direction=direction, layout=layout)
    if "activations" in attrs:
        attrs["activations"] = attrs["activations"] * d
    model = onnx_node_model(op_type, arrays, attrs, initial_states)
    x = rng.uniform(-1, 1, (B, T, I) if layout else (T, B, I)).astype(np.float32)
    feeds, hx = {"X": x}, None
    if initial_states:
        states = [rng.uniform(-1, 1, (B, d, H) if layout else (d, B, H)).astype(np.float32)
                  for _ in range(2 if op_type == "LSTM" else 1)]
        feeds.update(zip(["initial_h", "initial_c"], states))
        # ONNX layout 1 states are (B, D, H); gatedrnn's are (D, B, H).
        hx = [torch.from_numpy(s).transpose(0, 1) if layout else torch.from_numpy(s) for s in states]
        hx = tuple(hx) if op_type == "LSTM" else hx[0]

    for layer in (from_onnx_weights(op_type, **arrays, **attrs), from_onnx(model)):
        inner = layer.layer if direction == "reverse" else layer
        assert isinstance(layer, TimeReversed) == (direction == "reverse")
        assert inner.batch_first == bool(layout) and inner.bidirectional == (d == 2)
        with torch.no_grad():
            out, state = layer(torch.from_numpy(x), hx)
        states = list(state) if isinstance(state, tuple) else [state]
        if layout:
            y = out.view(B, T, d, H)                         # ONNX Y (B, T, D, H)
            states = [s.transpose(0, 1) for s in states]     # ONNX Y_h (B, D, H)
        else:
            y = out.view(T, B, d, H).transpose(1, 2)          # ONNX Y (T, D, B, H)
        for runtime, expected in run_onnx(model, feeds).items():
            assert len(expected) == 1 + len(states), runtime
            np.testing.assert_allclose(y.numpy(), expected[0], rtol=0, atol=ATOL, err_msg=runtime)
            for s, e in zip(states, expected[1:]):
                np.testing.assert_allclose(s.numpy(), e, rtol=0, atol=ATOL, err_msg=runtime)


def randomize_(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return module


@pytest.mark.parametrize("make", [
    lambda: gr.LSTM(I, H, peepholes=True, bidirectional=True),
    lambda: gr.LSTM(I, H, bias=False, batch_first=True),
    lambda: gr.GRU(I, H, reset_after=False),
    lambda: gr.GRU(I, H, bidirectional=True),
    lambda: gr.RNN(I, H, nonlinearity="relu"),
    lambda: TimeReversed(gr.GRU(I, H)),
], ids=["lstm-peep-bidir", "lstm-nobias-bf", "gru-before", "gru-after-bidir", "rnn-relu", "reverse"])
def test_onnx_round_trip_is_exact(make):
    layer = randomize_(make(), 0)
    back = from_onnx_weights(**to_onnx_weights(layer))
    assert type(back) is type(layer)
    sa, sb = layer.state_dict(), back.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    onnx_w = to_onnx_weights(layer)
    again = to_onnx_weights(from_onnx_weights(**onnx_w))
    for k in ("W", "R", "B", "P"):
        if k in onnx_w:
            assert np.array_equal(again[k], onnx_w[k]), k


def test_to_onnx_weights_folds_forget_bias_and_takes_any_layer_index():
    torch.manual_seed(0)
    layer = gr.LSTM(I, H, num_layers=2, forget_bias=1.0, bias=False)
    x = torch.randn(T, B, I)
    with torch.no_grad():
        first = from_onnx_weights(**to_onnx_weights(layer, 0))
        second = from_onnx_weights(**to_onnx_weights(layer, 1))
        expected, _ = layer(x)
        got, _ = second(first(x)[0])
    assert first.forget_bias == 0.0
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def E(msg):
    return re.escape(msg)


W4, R4 = np.zeros((1, 4 * H, I), np.float32), np.zeros((1, 4 * H, H), np.float32)


@pytest.mark.parametrize("args,kw,match", [
    (("Cell", W4, R4), {}, "op_type must be one of ['GRU', 'LSTM', 'RNN'], got 'Cell'"),
    (("LSTM", W4, R4), {"activations": ["Sigmoid", "Tanh", "Relu"]}, "activations must be ['Sigmoid', 'Tanh', 'Tanh'] for ONNX LSTM, got ['Sigmoid', 'Tanh', 'Relu']"),
    (("LSTM", W4, R4), {"clip": 3.0}, "clip (clipping of the gates' pre-activations) is not supported, got clip=3.0"),
    (("LSTM", W4, R4), {"input_forget": 1}, "input_forget (coupled input and forget gates) is not supported, got input_forget=1"),
    (("LSTM", W4, R4), {"activation_alpha": [0.1]}, "activation_alpha is not supported"),
    (("LSTM", W4, R4), {"linear_before_reset": 1}, "unknown attribute(s) ['linear_before_reset'] for ONNX LSTM"),
    (("LSTM", W4, R4), {"direction": "both"}, "direction must be one of ['forward', 'reverse', 'bidirectional'], got 'both'"),
    (("LSTM", W4, R4), {"layout": 2}, "layout must be 0 or 1, got 2"),
    (("LSTM", W4, R4), {"hidden_size": 5}, "hidden_size=5 does not match W of shape (1, 16, 5) (4 gates of 4)"),
    (("LSTM", W4, R4), {"direction": "bidirectional"}, "W must have shape (2, 4*hidden_size, input_size) for direction='bidirectional', got (1, 16, 5)"),
    (("LSTM", W4, R4[:, :, :3]), {}, "R must have shape (1, 16, 4), got (1, 16, 3)"),
    (("LSTM", W4, R4), {"B": np.zeros((1, 16))}, "B must have shape (1, 32), got (1, 16)"),
    (("LSTM", W4, R4), {"P": np.zeros((1, 4))}, "P must have shape (1, 12), got (1, 4)"),
    (("GRU", W4[:, :12], R4[:, :12]), {"P": np.zeros((1, 12))}, "P (peepholes) is an LSTM input, got P for ONNX GRU"),
])
def test_from_onnx_weights_errors(args, kw, match):
    with pytest.raises(ValueError, match=E(match)):
        from_onnx_weights(*args, **kw)


def test_to_onnx_weights_errors():
    with pytest.raises(ValueError, match=E("ONNX's recurrent operator has no cell_clip")):
        to_onnx_weights(gr.LSTM(I, H, cell_clip=1.0))
    with pytest.raises(ValueError, match=E("ONNX's recurrent operator has no proj_size")):
        to_onnx_weights(gr.LSTM(I, H, proj_size=2))
    with pytest.raises(ValueError, match=E("layer_index must be in [0, 1), got 1")):
        to_onnx_weights(gr.GRU(I, H), 1)
    with pytest.raises(TypeError, match="got JANET"):
        to_onnx_weights(gr.JANET(I, H))


def test_from_onnx_needs_one_recurrent_node_with_constant_weights():
    arrays = random_onnx("GRU", np.random.default_rng(0), 1)
    model = onnx_node_model("GRU", arrays, {"hidden_size": H}, False)
    assert model.graph.initializer.pop().name == "B"  # B becomes a computed value
    model.graph.input.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match=E("input B ('B') of the GRU node must be an initializer")):
        from_onnx(model)
    model.graph.node.append(helper.make_node("GRU", ["X", "W", "R"], ["Y2"], hidden_size=H))
    with pytest.raises(ValueError, match=E("exactly one LSTM, GRU or RNN node, got ['GRU', 'GRU']")):
        from_onnx(model)


# -- export_onnx --------------------------------------------------------------------

def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def torch_outputs(result):
    if isinstance(result, torch.Tensor):
        return [result]
    out, state = result
    return [out] + (list(state) if isinstance(state, tuple) else [state])


EXPORT_LAYERS = {
    "lstm": lambda **kw: gr.LSTM(I, H, **kw),
    "lstm-peepholes-forget-bias": lambda **kw: gr.LSTM(I, H, peepholes=True, forget_bias=1.0, **kw),
    "lstm-proj-clip (Scan)": lambda **kw: gr.LSTM(I, H, proj_size=3, cell_clip=0.7, proj_clip=0.5,
                                                  peepholes=True, **kw),
    "gru-reset-after": lambda **kw: gr.GRU(I, H, **kw),
    "gru-reset-before": lambda **kw: gr.GRU(I, H, reset_after=False, **kw),
    "rnn-tanh": lambda **kw: gr.RNN(I, H, **kw),
    "rnn-relu": lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw),
    "janet (Scan)": lambda **kw: gr.JANET(I, H, beta=1.5, **kw),
    "mgu (Scan)": lambda **kw: gr.MGU(I, H, **kw),
    "indrnn-clipped (Scan)": lambda **kw: gr.IndRNN(I, H, recurrent_max=0.6, **kw),
    "layernorm-lstm (Scan)": lambda **kw: gr.LayerNormLSTM(I, H, forget_bias=0.5, **kw),
    "mingru (Scan)": lambda **kw: gr.MinGRU(I, H, **kw),
    "minlstm (Scan)": lambda **kw: gr.MinLSTM(I, H, **kw),
}
SHAPES = [dict(num_layers=1), dict(num_layers=2), dict(num_layers=2, bidirectional=True),
          dict(num_layers=1, bidirectional=True, batch_first=True)]


def example(layer, t, b, with_states, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((b, t, I) if layer.batch_first else (t, b, I), generator=g)
    if not with_states:
        return x, None
    depth = layer.num_layers * layer.num_directions
    h = torch.randn(depth, b, layer.proj_size or layer.hidden_size, generator=g)
    if len(layer.spec.state_names) == 2:  # (h, c)
        return x, (h, torch.randn(depth, b, layer.hidden_size, generator=g))
    return x, h


def check_export(module, layer, with_states):
    module.eval()
    x, hx = example(layer, 4, 2, with_states, 0)
    model = gr.export_onnx(module, x if hx is None else (x, hx))
    sess = session(model)
    bare_layer = not isinstance(module, torch.nn.Sequential)
    for t, b in ((9, 5), (1, 1), (4, 2)):
        # the initial states are optional inputs of every layer's graph: fed or left out
        for feed_states in ((False, True) if bare_layer else (False,)):
            x, hx = example(layer, t, b, feed_states, t)
            feeds = {"input": x.numpy()}
            if hx is not None:
                states = list(hx) if isinstance(hx, tuple) else [hx]
                feeds.update({n: s.numpy() for n, s in zip(("h0", "c0"), states)})
            with torch.no_grad():
                expected = torch_outputs(module(x) if hx is None else module(x, hx))
            got = sess.run(None, feeds)
            assert len(got) == len(expected)
            for e, o in zip(expected, got):
                np.testing.assert_allclose(o, e.numpy(), rtol=0, atol=1e-4)
    return model


@pytest.mark.parametrize("name", list(EXPORT_LAYERS))
@pytest.mark.parametrize("shape", SHAPES, ids=["1layer", "2layers", "2layers-bidir", "bidir-batch-first"])
@pytest.mark.parametrize("with_states", [False, True], ids=["zero-state", "initial-state"])
def test_export_onnx_layers_in_onnxruntime(name, shape, with_states):
    torch.manual_seed(0)
    layer = randomize_(EXPORT_LAYERS[name](**shape), 1)
    model = check_export(layer, layer, with_states)
    ops = {n.op_type for n in model.graph.node}
    if "Scan" in name:
        assert "Scan" in ops
    else:
        assert {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}[type(layer).__name__] in ops
        assert "Scan" not in ops
    assert [i.name for i in model.graph.input] == ["input"] + [f"{n}0" for n in layer.spec.state_names]


@pytest.mark.parametrize("name", ["lstm", "janet (Scan)"])
def test_export_onnx_time_reversed(name):
    layer = randomize_(EXPORT_LAYERS[name](num_layers=2), 2)
    check_export(TimeReversed(layer), layer, with_states=True)


@pytest.mark.parametrize("name", ["lstm-peepholes-forget-bias", "gru-reset-before", "janet (Scan)",
                                  "mingru (Scan)"])  # minGRU: h0 = 0.5 inside the graph
@pytest.mark.parametrize("head", [gr.LastStep, gr.MeanPool, gr.MaxPool])
def test_export_onnx_sequential_models(name, head):
    layer = randomize_(EXPORT_LAYERS[name](batch_first=True, bidirectional=True), 3)
    model = nn.Sequential(layer, head(batch_first=True), nn.Linear(2 * H, 3), nn.Tanh(),
                          nn.Dropout(0.5), nn.Linear(3, 1))
    check_export(model, layer, with_states=False)


def test_export_onnx_writes_the_file(tmp_path):
    layer = gr.JANET(I, H)
    gr.export_onnx(layer, torch.randn(T, B, I), tmp_path / "janet.onnx")
    onnx.checker.check_model(str(tmp_path / "janet.onnx"))


def test_export_onnx_errors():
    with pytest.raises(TypeError, match="module must be a gatedrnn layer"):
        gr.export_onnx(nn.LSTM(I, H), torch.randn(T, B, I))
    with pytest.raises(TypeError, match="export_onnx cannot export Softmax"):
        gr.export_onnx(nn.Sequential(gr.GRU(I, H), gr.LastStep(), nn.Softmax(-1)), torch.randn(T, B, I))
    with pytest.raises(ValueError, match=E("LastStep(batch_first=False) must match the layer's batch_first=True")):
        gr.export_onnx(nn.Sequential(gr.GRU(I, H, batch_first=True), gr.LastStep()), torch.randn(B, T, I))
    with pytest.raises(ValueError, match=E("example_input must be a 3-D tensor (T, B, 5), got (6, 5)")):
        gr.export_onnx(gr.GRU(I, H), torch.randn(T, I))
    with pytest.raises(ValueError, match="initial states"):
        gr.export_onnx(nn.Sequential(gr.GRU(I, H), gr.LastStep()), (torch.randn(T, B, I), torch.zeros(1, B, H)))
