r"""ONNX's recurrent operators: :func:`from_onnx_weights`, :func:`to_onnx_weights` and
:func:`from_onnx` convert between one ONNX ``LSTM`` / ``GRU`` / ``RNN`` node and one
layer of a gatedrnn ``LSTM`` / ``GRU`` / ``RNN``, in any direction (``"reverse"``
through :class:`TimeReversed`). Writing a whole model is
:func:`gatedrnn.export_onnx`'s.

Layout: ONNX stores ``W`` (D, G*H, I), ``R`` (D, G*H, H) and ``B`` (D, 2*G*H) per
direction D and applies them as PyTorch does (``x @ W[d].T``), so ``W[d]`` is
gatedrnn's ``weight_ih`` with its gate blocks reordered (:mod:`gatedrnn.convert.gates`):

==========================  =================  ===================================
framework                   LSTM blocks        GRU blocks
==========================  =================  ===================================
PyTorch / gatedrnn          i, f, g, o         r, z, n
ONNX ``LSTM``, ``GRU``      i, o, f, c         z, r, h (``linear_before_reset``)
==========================  =================  ===================================

Biases: ``B`` holds both of gatedrnn's biases, ``[Wb, Rb]``; an LSTM's ``forget_bias``
is folded into ``Rb`` (exact). The peepholes ``P`` are ``[P_i, P_o, P_f]``. Options
and attributes the other side lacks raise ``ValueError``.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from ..layers import GRU, RNN, RecurrentBase
from ._common import (add_forget_bias, cell_kind, check_choice, check_lstm_options,
                      check_shape, float_dtype_of, has_forget_bias, new_layer,
                      read_direction, shape_of, suffix, to_numpy, to_tensor, write_direction)

__all__ = ["from_onnx_weights", "to_onnx_weights", "from_onnx", "TimeReversed", "ONNX_OP_TYPES"]

#: ONNX recurrent operators, with their number of gates.
ONNX_OP_TYPES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_ONNX_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                             "RNN": ("Tanh",)}
_ONNX_DIRECTIONS = ("forward", "reverse", "bidirectional")
# ONNX's peephole vectors in P, named by the gatedrnn LSTM parameter each one is.
_PEEPHOLES = ("weight_ci", "weight_co", "weight_cf")


class TimeReversed(nn.Module):
    r"""A layer run over the sequence from its last step to its first: ONNX's
    ``direction="reverse"``.

    ``output, state = TimeReversed(layer)(input, hx)`` is ``layer`` applied to the input
    flipped in time, with its output flipped back, so ``output[t]`` is the state after
    reading steps ``T-1, ..., t`` (aligned with the input, as ONNX's ``Y``) and the
    final state is the one after step 0. ``hx`` and the state are the layer's.
    Tensors only (a ``PackedSequence`` would need reversal within each length: use a
    bidirectional layer for that).

    Example::

        >>> import torch, gatedrnn as gr
        >>> rev = gr.convert.TimeReversed(gr.GRU(4, 3))
        >>> output, h_n = rev(torch.randn(6, 2, 4))
        >>> output.shape, h_n.shape
        (torch.Size([6, 2, 3]), torch.Size([1, 2, 3]))
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, RecurrentBase):
            raise TypeError(f"layer must be a gatedrnn layer, got {type(layer).__name__}")
        if layer.bidirectional:
            raise ValueError("TimeReversed needs a unidirectional layer, got bidirectional=True")
        self.layer = layer

    def forward(self, input: Tensor, hx=None):
        if not isinstance(input, Tensor):
            raise TypeError(f"TimeReversed takes a Tensor input, got {type(input).__name__}")
        time_dim = 1 if self.layer.batch_first and input.dim() == 3 else 0
        output, state = self.layer(input.flip(time_dim), hx)
        return output.flip(time_dim), state


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def from_onnx_weights(op_type: str, W, R, B=None, P=None, **attributes) -> nn.Module:
    r"""A gatedrnn layer equal to one ONNX ``LSTM`` / ``GRU`` / ``RNN`` node.

    Inputs as the ONNX operator (D = 2 for ``direction="bidirectional"``, else 1):

    ========  ===============  ====================================================
    input     shape            blocks
    ========  ===============  ====================================================
    ``W``     (D, G*H, I)      LSTM i, o, f, c; GRU z, r, h; RNN one block
    ``R``     (D, G*H, H)      as W
    ``B``     (D, 2*G*H)       ``[Wb, Rb]`` (optional: zeros, gives ``bias=False``)
    ``P``     (D, 3*H)         LSTM peepholes ``[P_i, P_o, P_f]`` (optional)
    ========  ===============  ====================================================

    ONNX's equations are gatedrnn's: ``P_i``, ``P_f`` act on c_{t-1}, ``P_o`` on c_t
    (-> ``weight_ci``, ``weight_cf``, ``weight_co`` of ``gr.LSTM(peepholes=True)``);
    GRU ``linear_before_reset=0`` is ``gr.GRU(reset_after=False)``, ``1`` is
    ``reset_after=True``.

    Attributes: ``hidden_size`` (checked against R), ``direction`` (``"forward"``,
    ``"bidirectional"`` -> ``bidirectional=True``, ``"reverse"`` -> the layer wrapped in
    :class:`TimeReversed`), ``layout`` (0: time-major, 1: ``batch_first=True``),
    ``linear_before_reset`` (GRU), ``activations`` (the defaults, or ``["Relu"]`` per
    direction for an RNN -> ``nonlinearity="relu"``). Other activations,
    ``activation_alpha``/``activation_beta``, ``clip`` and ``input_forget=1`` have no
    gatedrnn equivalent and raise ValueError.

    Outputs: with layout 0 the layer returns ``output`` (T, B, D*H) and ``h_n`` (D, B, H)
    (LSTM ``(h_n, c_n)``); ONNX's ``Y`` (T, D, B, H) is
    ``output.view(T, B, D, H).transpose(1, 2)``, ``Y_h``/``Y_c`` are ``h_n``/``c_n``.
    With layout 1, ``output`` is (B, T, D*H) and ``Y`` (B, T, D, H) is
    ``output.view(B, T, D, H)``, ``Y_h`` (B, D, H) is ``h_n.transpose(0, 1)``; ONNX's
    ``initial_h`` / ``initial_c`` map to ``hx`` the same way. ``sequence_lens`` is not
    read here.

    Raises ValueError for an unknown ``op_type`` or attribute, an unsupported attribute
    value, or inconsistent shapes (naming the input, the expected and the received
    shape).

    Example::

        >>> import numpy as np, gatedrnn as gr
        >>> W, R = np.zeros((2, 9, 5), np.float32), np.zeros((2, 9, 3), np.float32)
        >>> gru = gr.convert.from_onnx_weights("GRU", W, R, direction="bidirectional",
        ...                                    linear_before_reset=1)
        >>> gru.hidden_size, gru.bidirectional, gru.reset_after, gru.bias
        (3, True, True, False)
    """
    check_choice("op_type", op_type, sorted(ONNX_OP_TYPES))
    known = {"hidden_size", "direction", "layout", "activations", "activation_alpha",
             "activation_beta", "clip"}
    known |= {"LSTM": {"input_forget"}, "GRU": {"linear_before_reset"}, "RNN": set()}[op_type]
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown} for ONNX {op_type}; "
                         f"expected a subset of {sorted(known)}")
    direction = _as_str(attributes.get("direction", "forward"))
    check_choice("direction", direction, _ONNX_DIRECTIONS)
    num_directions = 2 if direction == "bidirectional" else 1
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"layout must be 0 or 1, got {layout!r}")
    for name in ("activation_alpha", "activation_beta"):
        if attributes.get(name):
            raise ValueError(f"{name} is not supported (no gatedrnn activation takes "
                             f"parameters), got {name}={attributes[name]!r}")
    if attributes.get("clip") is not None:
        raise ValueError(f"clip (clipping of the gates' pre-activations) is not supported, "
                         f"got clip={attributes['clip']!r}")
    if attributes.get("input_forget", 0):
        raise ValueError(f"input_forget (coupled input and forget gates) is not supported, "
                         f"got input_forget={attributes['input_forget']!r}")
    default = _ONNX_DEFAULT_ACTIVATIONS[op_type] * num_directions
    activations = tuple(_as_str(a) for a in attributes.get("activations", default))
    options = {}
    if op_type == "RNN" and activations == ("Relu",) * num_directions:
        options["nonlinearity"] = "relu"
    elif activations != default:
        raise ValueError(f"activations must be {list(default)} for ONNX {op_type}"
                         + (" (or Relu per direction)" if op_type == "RNN" else "")
                         + f", got {list(activations)}")
    if op_type == "GRU":
        lbr = attributes.get("linear_before_reset", 0)
        if lbr not in (0, 1):
            raise ValueError(f"linear_before_reset must be 0 or 1, got {lbr!r}")
        options["reset_after"] = bool(lbr)
    if P is not None and op_type != "LSTM":
        raise ValueError(f"P (peepholes) is an LSTM input, got P for ONNX {op_type}")

    gates = ONNX_OP_TYPES[op_type]
    w_shape = shape_of(W)
    if len(w_shape) != 3 or w_shape[0] != num_directions or w_shape[1] % gates or not w_shape[1]:
        raise ValueError(f"W must have shape ({num_directions}, {gates}*hidden_size, "
                         f"input_size) for direction={direction!r}, got {w_shape}")
    hidden, input_size = w_shape[1] // gates, w_shape[2]
    if attributes.get("hidden_size", hidden) != hidden:
        raise ValueError(f"hidden_size={attributes['hidden_size']} does not match W of shape "
                         f"{w_shape} ({gates} gates of {hidden})")
    gh = gates * hidden
    check_shape("R", R, (num_directions, gh, hidden))
    if B is not None:
        check_shape("B", B, (num_directions, 2 * gh))
    if P is not None:
        check_shape("P", P, (num_directions, 3 * hidden))

    dtype = float_dtype_of(W)
    extra = {"peepholes": True} if P is not None else {}
    layer = new_layer(op_type.lower(), input_size, hidden, bias=B is not None,
                      batch_first=layout == 1, bidirectional=num_directions == 2,
                      dtype=dtype, **options, **extra)
    w, r = to_tensor(W, dtype), to_tensor(R, dtype)  # (D, G*H, I), (D, G*H, H)
    b = to_tensor(B, dtype) if B is not None else None  # (D, 2*G*H)
    p = to_tensor(P, dtype) if P is not None else None  # (D, 3H)
    for d in range(num_directions):
        biases = b[d].chunk(2) if b is not None else ()  # Wb, Rb (G*H,)
        write_direction(layer, 0, d, "onnx", w[d], r[d], *biases)
        if p is not None:
            with torch.no_grad():
                for name, peephole in zip(_PEEPHOLES, p[d].chunk(3)):  # (H,) each
                    getattr(layer, name + suffix(0, d)).copy_(peephole)
    return TimeReversed(layer) if direction == "reverse" else layer


def to_onnx_weights(layer: nn.Module, layer_index: int = 0) -> Dict[str, object]:
    r"""The inputs and attributes of the ONNX node equal to layer ``layer_index`` of
    ``layer``; the inverse of :func:`from_onnx_weights`:
    ``from_onnx_weights(**to_onnx_weights(layer))`` rebuilds a one-layer layer exactly.

    Returns a dict with ``op_type``, the arrays ``W``, ``R``, ``B`` (absent for
    ``bias=False`` and no ``forget_bias``) and ``P`` (LSTM with peepholes), numpy,
    laid out as in :func:`from_onnx_weights`, and the attributes ``hidden_size``,
    ``direction`` (``"bidirectional"``, ``"forward"``, or ``"reverse"`` for a
    :class:`TimeReversed` layer), ``layout`` (1 for ``batch_first``), GRU
    ``linear_before_reset`` and, for a relu RNN, ``activations``.

    An LSTM's ``forget_bias`` is folded into the forget block of ``Rb`` (exact).

    Raises ValueError for a ``layer_index`` out of range or what ONNX's operators lack
    (``cell_clip``: ONNX's ``clip`` clips the gates, not the cell; ``proj_size``,
    ``proj_clip``); TypeError for anything but RNN / LSTM / GRU (JANET has no ONNX
    operator: :func:`gatedrnn.export_onnx` writes it as a ``Scan``).

    Example::

        >>> import gatedrnn as gr
        >>> o = gr.convert.to_onnx_weights(gr.LSTM(5, 3, peepholes=True, bidirectional=True))
        >>> o["op_type"], o["W"].shape, o["B"].shape, o["P"].shape, o["direction"]
        ('LSTM', (2, 12, 5), (2, 24), (2, 9), 'bidirectional')
    """
    direction = "bidirectional"
    if isinstance(layer, TimeReversed):
        layer, direction = layer.layer, "reverse"
    kind = cell_kind(layer)
    check_lstm_options(layer, ("cell_clip", "proj_clip", "proj_size"), "ONNX's recurrent operator")
    if not isinstance(layer_index, int) or not 0 <= layer_index < layer.num_layers:
        raise ValueError(f"layer_index must be in [0, {layer.num_layers}), got {layer_index!r}")
    if not layer.bidirectional and direction != "reverse":
        direction = "forward"
    with_bias = layer.bias or has_forget_bias(layer)
    ws, rs, bs, ps = [], [], [], []
    for d in range(layer.num_directions):
        # (G*H, I_l), (G*H, H), (G*H,), (G*H,)
        w_ih, w_hh, b_ih, b_hh = read_direction(layer, layer_index, d, "onnx")
        ws.append(w_ih)
        rs.append(w_hh)
        if with_bias:
            bs.append(torch.cat([b_ih, add_forget_bias(b_hh, layer, "onnx")]))  # (2*G*H,)
        if getattr(layer, "peepholes", False):
            ps.append(torch.cat([getattr(layer, name + suffix(layer_index, d)).detach()
                                 for name in _PEEPHOLES]))  # (3H,)
    out: Dict[str, object] = {"op_type": kind.upper(), "W": to_numpy(torch.stack(ws)),
                              "R": to_numpy(torch.stack(rs))}
    if with_bias:
        out["B"] = to_numpy(torch.stack(bs))
    if ps:
        out["P"] = to_numpy(torch.stack(ps))
    out.update(hidden_size=layer.hidden_size, direction=direction, layout=int(layer.batch_first))
    if isinstance(layer, GRU):
        out["linear_before_reset"] = int(layer.reset_after)
    if isinstance(layer, RNN) and layer.nonlinearity == "relu":
        out["activations"] = ["Relu"] * layer.num_directions
    return out


def from_onnx(model) -> nn.Module:
    r"""The gatedrnn layer equal to the single ``LSTM`` / ``GRU`` / ``RNN`` node of an
    ONNX model; see :func:`from_onnx_weights` for the mapping.

    ``model`` is a path or an ``onnx.ModelProto``. ``W``, ``R`` and (where the node
    names them) ``B`` and ``P`` must be initializers or ``Constant`` outputs; the node's
    attributes are passed on. Needs the ``onnx`` package.

    Raises ValueError when the graph has no or several recurrent nodes, or a weight
    input is not a constant.

    Example::

        >>> import gatedrnn as gr
        >>> layer = gr.convert.from_onnx("lstm.onnx")            # doctest: +SKIP
    """
    import onnx
    from onnx import numpy_helper

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in ONNX_OP_TYPES and n.domain in ("", "ai.onnx")]
    if len(nodes) != 1:
        raise ValueError(f"the model must have exactly one LSTM, GRU or RNN node, got "
                         f"{[n.op_type for n in nodes]}")
    node = nodes[0]
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    # ONNX input positions: X, W, R, B, sequence_lens, initial_h, initial_c, P.
    names = dict(zip(("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
                     node.input))
    arrays = {}
    for key in ("W", "R", "B", "P"):
        name = names.get(key, "")
        if not name:
            continue
        if name not in constants:
            raise ValueError(f"input {key} ({name!r}) of the {node.op_type} node must be an "
                             f"initializer or a Constant, got a computed value")
        arrays[key] = constants[name]
    if "W" not in arrays or "R" not in arrays:
        raise ValueError(f"the {node.op_type} node must have inputs W and R, got {list(node.input)}")
    attributes = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, list):
            value = [_as_str(v) for v in value]
        attributes[a.name] = _as_str(value)
    return from_onnx_weights(node.op_type, **arrays, **attributes)
