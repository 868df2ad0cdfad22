r"""Export gatedrnn layers and small models to ONNX, writing the graph with ``onnx.helper``.

What each part becomes (opset 17, float32, inference behaviour: no dropout):

==============================================  =======================================
module                                          ONNX
==============================================  =======================================
``gr.RNN`` (tanh / relu), ``gr.GRU``            one native ``RNN`` / ``GRU`` node per
(``reset_after`` -> ``linear_before_reset``),   layer (``direction="bidirectional"``
``gr.LSTM`` (peepholes, ``forget_bias``         for bidirectional layers, ``"reverse"``
folded into ``B``)                              for :class:`~gatedrnn.convert.
                                                TimeReversed`), weights from
                                                :func:`gatedrnn.convert.to_onnx_weights`
every other cell (``gr.JANET``, ``gr.MGU``,     one ``Scan`` per layer and direction:
``gr.IndRNN``, ``gr.LayerNormLSTM``,            the input projection of all steps as one
``gr.MinGRU``, ``gr.MinLSTM``, ``gr.LSTM`` with  ``MatMul`` outside; the body is the
``proj_size``, ``cell_clip`` or ``proj_clip``)  cell's own step function
                                                (:meth:`~gatedrnn.cells.CellSpec.step`)
                                                traced by ``torch.onnx``; backward
                                                directions with
                                                ``scan_input_directions=[1]``
``gr.LastStep`` / ``gr.MeanPool`` /             ``Gather(-1)`` / ``ReduceMean`` /
``gr.MaxPool``                                  ``ReduceMax`` over time
``nn.Linear``, ``nn.ReLU``, ``nn.Tanh``,        ``Gemm``, ``Relu``, ``Tanh``,
``nn.Sigmoid``, ``nn.Dropout``, ``nn.Identity``  ``Sigmoid``, (nothing), (nothing)
==============================================  =======================================

Stacked layers are successive nodes: each native node's ``Y`` (T, D, B, H) is
transposed and reshaped to (T, B, D*H) for the next layer. The graph is time-major
inside; a ``batch_first`` layer's input and output are transposed at the graph's edges
(onnxruntime rejects the recurrent operators' ``layout=1``).

Graph inputs and outputs (batch and time are dynamic axes, named ``batch``, ``time``):

* a layer (or ``TimeReversed(layer)``): input ``input`` (T, B, I) ((B, T, I) with
  ``batch_first``) and the optional inputs ``h0`` (L*D, B, H_out) and, for the LSTM,
  ``c0`` (L*D, B, H), which default to zeros when not fed (each is also an initializer
  of zeros with batch 1, expanded to the input's batch); outputs ``output`` (T, B, D*H_out) (or
  batch-first), ``h_n`` and, for the LSTM, ``c_n``, as the layer returns them.
* ``nn.Sequential(layer, head, ...)``: input ``input``, output ``output`` (B, F).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from . import convert
from .heads import LastStep, MaxPool, MeanPool, SequenceHead
from .layers import GRU, LSTM, RNN, RecurrentBase
from .parameters import state_sizes, strip_suffix

__all__ = ["export_onnx", "OPSET"]

#: The ONNX opset the graphs are written for.
OPSET = 17

_FLOAT = 1  # onnx.TensorProto.FLOAT, without importing onnx at module import


class _Graph:
    """Nodes and initializers under construction, with unique value names.

    A subgraph (a ``Scan`` body) shares its parent's name counter and puts its
    constants into the root graph's initializers, which a body may read by name.
    """

    def __init__(self, parent: Optional["_Graph"] = None) -> None:
        self.root = parent.root if parent is not None else self
        self.nodes: list = []
        if parent is None:
            self.initializers: list = []
            self._count = 0

    def name(self, base: str) -> str:
        self.root._count += 1
        return f"{base}_{self.root._count}"

    def const(self, base: str, array) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.root.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], num_outputs: int = 1, **attrs):
        from onnx import helper

        inputs = list(inputs)
        while inputs and not inputs[-1]:  # trailing missing optional inputs
            inputs.pop()
        outputs = [self.name(op_type.lower()) for _ in range(num_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs[0] if num_outputs == 1 else outputs


def _f32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _is_native(layer: RecurrentBase) -> bool:
    """True when ONNX has an operator with exactly this cell's equations."""
    if isinstance(layer, LSTM):
        return not (layer.proj_size or layer.cell_clip is not None or layer.proj_clip is not None)
    return isinstance(layer, (RNN, GRU))


def _state_slice(g: _Graph, state: str, start: int, stop: int) -> str:
    """state[start:stop] along the (L*D) axis."""
    return g.op("Slice", [state, g.const("start", _i64([start])), g.const("stop", _i64([stop])),
                          g.const("axis", _i64([0]))])


def _native_layer(g: _Graph, module: nn.Module, layer: RecurrentBase, k: int, x: str,
                  states0: Optional[List[str]]) -> Tuple[str, List[str]]:
    """Layer k as one ONNX LSTM/GRU/RNN node -> (y (T, B, D*H), [h_n_k, c_n_k] (D, B, ·))."""
    w = convert.to_onnx_weights(module, k)
    op_type, d = w.pop("op_type"), layer.num_directions
    arrays = {key: g.const(key, w.pop(key)) for key in ("W", "R", "B", "P") if key in w}
    w["layout"] = 0  # time-major inside the graph
    init = [""] * 2
    if states0 is not None:
        init = [_state_slice(g, s, k * d, (k + 1) * d) for s in states0] + [""]
    inputs = [x, arrays["W"], arrays["R"], arrays.get("B", ""), "", init[0],
              init[1] if op_type == "LSTM" else "", arrays.get("P", "")]
    outs = g.op(op_type, inputs, num_outputs=3 if op_type == "LSTM" else 2, **w)
    y = g.op("Transpose", [outs[0]], perm=[0, 2, 1, 3])  # (T, D, B, H) -> (T, B, D, H)
    y = g.op("Reshape", [y, g.const("shape", _i64([0, 0, -1]))])  # (T, B, D*H)
    return y, list(outs[1:])


class _Stage(nn.Module):
    """One stage of a layer's cell with the parameters of one layer and direction as
    constants: the input stage (:meth:`~gatedrnn.cells.CellSpec.project_input`, x (T, B, I)
    -> xw (T, B, G*H)) or one step (``(state..., xw_t) -> (state'..., y_t)``, the Scan body)."""

    def __init__(self, layer: RecurrentBase, index: int, input_stage: bool) -> None:
        super().__init__()
        self.spec, self.input_stage = layer.spec, input_stage
        params = {strip_suffix(name): getattr(layer, name) for name in layer._all_weights[index]}
        self.names = [name for name in params if (name in layer.spec.input_parameters) == input_stage]
        for name in self.names:
            self.register_buffer(name, params[name].detach().float().clone())

    def forward(self, *args: Tensor) -> Tuple[Tensor, ...]:
        weights = {name: getattr(self, name) for name in self.names}
        if self.input_stage:
            return self.spec.project_input(args[0], weights)
        *state, xw = args
        new = self.spec.step(xw, tuple(state), weights)
        return (*new, new[0])


def _traced(g: _Graph, module: nn.Module, example: List[Tensor], inputs: List[str],
            outputs: List[str], dynamic: Tuple[int, ...],
            bind: Optional[List[str]] = None) -> Tuple[List[str], List[str]]:
    """``module`` traced by ``torch.onnx`` into ``g``'s nodes: its constants become the root
    graph's initializers and every value name is made unique in the model. ``dynamic``:
    the axes of every input and output that are not fixed; ``bind``: values of ``g`` to
    feed as the inputs (default: new names, e.g. a Scan body's inputs).
    -> (input names, output names)."""
    import io
    import warnings

    import onnx
    from onnx import numpy_helper

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(example), buffer, dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {axis: f"d{axis}" for axis in dynamic}
                                        for name in inputs + outputs})
    traced = onnx.load_from_string(buffer.getvalue()).graph
    rename = dict(zip(inputs, bind or [g.name(name) for name in inputs]))
    for init in traced.initializer:
        rename[init.name] = g.const("weight", numpy_helper.to_array(init))
    for node in traced.node:
        for out in node.output:
            rename[out] = g.name(out.strip("/").replace("/", "_") or "value")
        node.input[:] = [rename.get(name, name) for name in node.input]
        node.output[:] = [rename[name] for name in node.output]
        node.name = ""
        g.nodes.append(node)
    # an output that is an input, or one value returned twice, gets its own name
    return [rename[name] for name in inputs], [g.op("Identity", [rename.get(name, name)]) for name in outputs]


def _step_body(layer: RecurrentBase, g: _Graph, index: int) -> Tuple[list, list]:
    """The Scan body of one step of ``layer``: the cell's own step function
    (:meth:`gatedrnn.cells.CellSpec.step`) traced, so every cell exports without ONNX code
    of its own. -> (body inputs [states..., xw_t], body outputs [states'..., y_t])."""
    sizes = state_sizes(len(layer.spec.state_names), layer.hidden_size, layer.proj_size)
    width = layer.all_weights[index][0].shape[0]  # weight_ih: G*H
    example = [torch.zeros(2, size) for size in sizes] + [torch.zeros(2, width)]
    return _traced(g, _Stage(layer, index, input_stage=False), example,
                   [f"s{i}" for i in range(len(sizes))] + ["xw"],
                   [f"s{i}_new" for i in range(len(sizes))] + ["y"], dynamic=(0,))


def _default_state(g: _Graph, x: str, size: int, value: float) -> str:
    """The layer's state for ``hx=None``: ``value`` in (B, size), B read from x (T, B, F)
    at run time."""
    from onnx import helper

    batch = g.op("Shape", [x], start=1, end=2)
    shape = g.op("Concat", [batch, g.const("size", _i64([size]))], axis=0)
    return g.op("ConstantOfShape", [shape], value=helper.make_tensor("h0", _FLOAT, [1], [value]))


def _scan_direction(g: _Graph, layer: RecurrentBase, k: int, direction: int, reverse: bool,
                    x: str, states0: Optional[List[str]]) -> Tuple[str, List[str]]:
    """One layer and direction as a Scan -> (y (T, B, H_out), final states (B, ·))."""
    from onnx import helper

    index = k * layer.num_directions + direction
    # the input stage of all steps at once, traced from the cell like the step
    example = torch.zeros(3, 2, layer.all_weights[index][0].shape[1])  # (T, B, I)
    _, (xw,) = _traced(g, _Stage(layer, index, input_stage=True), [example], ["x"], ["xw"],
                       dynamic=(0, 1), bind=[x])  # (T, B, G*H)
    sizes = state_sizes(len(layer.spec.state_names), layer.hidden_size, layer.proj_size)
    if states0 is None:
        init = [_default_state(g, x, size, layer.spec.initial_state) for size in sizes]
    else:
        init = [g.op("Gather", [s, g.const("index", _i64(index))], axis=0) for s in states0]

    body = _Graph(g)
    inputs, outputs = _step_body(layer, body, index)
    graph = helper.make_graph(body.nodes, g.name("step"),
                              [helper.make_tensor_value_info(n, _FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info(n, _FLOAT, None) for n in outputs])
    flip = [1 if reverse else 0]
    outs = g.op("Scan", init + [xw], num_outputs=len(outputs), body=graph, num_scan_inputs=1,
                scan_input_directions=flip, scan_output_directions=flip)
    return outs[-1], list(outs[:-1])


def _recurrent(g: _Graph, module: nn.Module, x: str,
               states0: Optional[List[str]]) -> Tuple[str, List[str]]:
    """The stack of ``module`` (a layer or TimeReversed) on x (T, B, I)
    -> (output (T, B, D*H_out), final states (L*D, B, ·) per state element)."""
    reverse = isinstance(module, convert.TimeReversed)
    layer = module.layer if reverse else module
    finals: List[List[str]] = []
    for k in range(layer.num_layers):
        if _is_native(layer):
            x, final = _native_layer(g, module, layer, k, x, states0)
            finals.append(final)
            continue
        ys = []
        for direction in range(layer.num_directions):
            y, final = _scan_direction(g, layer, k, direction, reverse or direction == 1, x, states0)
            ys.append(y)
            finals.append([g.op("Unsqueeze", [s, g.const("axes", _i64([0]))]) for s in final])
        x = g.op("Concat", ys, axis=-1) if len(ys) > 1 else ys[0]
    return x, [g.op("Concat", list(parts), axis=0) if len(parts) > 1 else parts[0]
               for parts in zip(*finals)]


def _tail(g: _Graph, module: nn.Module, x: str, batch_first: bool) -> str:
    """A module after the recurrent layer, on x ((T, B, F) before the head, else (B, F))."""
    if isinstance(module, SequenceHead):
        if module.batch_first != batch_first:
            raise ValueError(f"{type(module).__name__}(batch_first={module.batch_first}) must "
                             f"match the layer's batch_first={batch_first}")
        if isinstance(module, LastStep):
            return g.op("Gather", [x, g.const("last", _i64(-1))], axis=0)
        if isinstance(module, MeanPool):
            return g.op("ReduceMean", [x], axes=[0], keepdims=0)
        if isinstance(module, MaxPool):
            return g.op("ReduceMax", [x], axes=[0], keepdims=0)
    if isinstance(module, nn.Linear):
        inputs = [x, g.const("linear_w", _f32(module.weight))]
        if module.bias is not None:
            inputs.append(g.const("linear_b", _f32(module.bias)))
        return g.op("Gemm", inputs, transB=1)
    simple = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid"}
    if type(module) in simple:
        return g.op(simple[type(module)], [x])
    if isinstance(module, (nn.Dropout, nn.Identity)):
        return x
    raise TypeError(
        f"export_onnx cannot export {type(module).__name__}: after the recurrent layer it "
        f"takes LastStep, MeanPool, MaxPool, Linear, ReLU, Tanh, Sigmoid, Dropout, Identity")


def export_onnx(module: nn.Module, example_input, path=None):
    r"""Write ``module`` as an ONNX model (see the module docstring for what each part
    becomes) and return the ``onnx.ModelProto``.

    Args:
        module: a gatedrnn layer (``RNN``, ``LSTM``, ``GRU``, ``JANET``, ``MGU``,
            ``IndRNN``, ``LayerNormLSTM``, any ``num_layers``, bidirectional), a :class:`gatedrnn.convert.TimeReversed`
            layer, or ``nn.Sequential(layer, head, ...)`` with a head (``LastStep``,
            ``MeanPool``, ``MaxPool``) followed by ``Linear`` / activations.
        example_input: a 3-D float tensor as the module takes it ((T, B, I), or
            (B, T, I) with ``batch_first``), or ``(x, hx)`` for a layer. Its batch and
            time sizes are not fixed in the graph. The module is run on it once to
            check it. A bare layer's graph always has the initial states as optional
            inputs ``h0`` (and ``c0``): feed them, or leave them out for zeros.
        path: where to save the model (a path or file object), or None.

    The export is for inference: dropout is left out; parameters are written as
    float32.

    Needs the ``onnx`` package. Raises TypeError for a module or part it cannot
    export, ValueError for an example input that is not 3-D or does not fit.

    Example::

        >>> import torch, torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.JANET(3, 8, batch_first=True),
        ...                       gr.MeanPool(batch_first=True), nn.Linear(8, 1))
        >>> onnx_model = gr.export_onnx(model, torch.randn(2, 5, 3))
        >>> [o.name for o in onnx_model.graph.output]
        ['output']
    """
    import onnx
    from onnx import helper

    if isinstance(module, nn.Sequential) and len(module) > 0:
        recurrent, tail = module[0], list(module)[1:]
    else:
        recurrent, tail = module, []
    layer = recurrent.layer if isinstance(recurrent, convert.TimeReversed) else recurrent
    if not isinstance(layer, RecurrentBase):
        raise TypeError(f"module must be a gatedrnn layer, TimeReversed(layer) or "
                        f"nn.Sequential starting with one, got {type(module).__name__}")
    x_example, hx = (example_input if isinstance(example_input, (tuple, list)) else (example_input, None))
    if hx is not None and isinstance(module, nn.Sequential):
        raise ValueError("initial states (example_input=(x, hx)) are only for a bare layer, "
                         "an nn.Sequential takes one input")
    if not isinstance(x_example, Tensor) or x_example.dim() != 3:
        raise ValueError(f"example_input must be a 3-D tensor ({'B, T' if layer.batch_first else 'T, B'}, "
                         f"{layer.input_size}), got "
                         f"{tuple(x_example.shape) if isinstance(x_example, Tensor) else type(x_example).__name__}")
    with torch.no_grad():  # fails early, with the layer's own messages, on a bad input
        module(x_example) if hx is None else module(x_example, hx)

    g = _Graph()
    batch_first = layer.batch_first
    io_dims = ["batch", "time"] if batch_first else ["time", "batch"]
    inputs = [helper.make_tensor_value_info("input", _FLOAT, io_dims + [layer.input_size])]
    x = g.op("Transpose", ["input"], perm=[1, 0, 2]) if batch_first else "input"
    state_names = list(layer.spec.state_names)
    depth = layer.num_layers * layer.num_directions
    sizes = state_sizes(len(layer.spec.state_names), layer.hidden_size, layer.proj_size)
    states0 = None
    if not tail:
        # Optional initial states: a graph input with an initializer of the same name may
        # be left out (the initializer, zeros of batch 1, is then used) or fed (L*D, B, .);
        # Expand broadcasts either to the input's batch.
        from onnx import numpy_helper

        shape_of_x = g.op("Shape", [x])
        batch = g.op("Slice", [shape_of_x, g.const("one", _i64([1])), g.const("two", _i64([2]))])
        states0 = []
        for n, size in zip(state_names, sizes):
            name = f"{n}0"
            inputs.append(helper.make_tensor_value_info(name, _FLOAT, [depth, "state_batch", size]))
            h0 = np.full((depth, 1, size), layer.spec.initial_state, np.float32)
            g.root.initializers.append(numpy_helper.from_array(h0, name))
            target = g.op("Concat", [g.const("depth", _i64([depth])), batch, g.const("size", _i64([size]))], axis=0)
            states0.append(g.op("Expand", [name, target]))

    y, finals = _recurrent(g, recurrent, x, states0)
    if tail:
        for part in tail:
            y = _tail(g, part, y, batch_first)
        g.nodes.append(helper.make_node("Identity", [y], ["output"]))
        outputs = [helper.make_tensor_value_info("output", _FLOAT, ["batch", None])]
    else:
        if batch_first:
            y = g.op("Transpose", [y], perm=[1, 0, 2])
        g.nodes.append(helper.make_node("Identity", [y], ["output"]))
        outputs = [helper.make_tensor_value_info("output", _FLOAT, io_dims + [layer.output_size])]
        for n, final, size in zip(state_names, finals, sizes):
            g.nodes.append(helper.make_node("Identity", [final], [f"{n}_n"]))
            outputs.append(helper.make_tensor_value_info(f"{n}_n", _FLOAT, [depth, "batch", size]))

    graph = helper.make_graph(g.nodes, type(layer).__name__.lower(), inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gatedrnn")
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, path)
    return model
