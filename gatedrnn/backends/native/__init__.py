"""The ``native`` backend: fused C++ CPU kernels, one per cell, as real torch ops.

Each cell has two operators in the ``gatedrnn`` library (``torch.ops.gatedrnn``), named
after the cell with ``-`` as ``_`` (:func:`op_name`: ``layernorm_lstm`` for
``"layernorm-lstm"``)::

    <cell>_forward(xw, state, weights, slots, lengths, options, save) -> (output, final_state, saved)
    <cell>_backward(grad_output, grad_final_state, xw, state, weights, slots, lengths, options,
                    output, saved) -> (grad_xw, grad_state, grad_weights)

with ``weights`` the layer's parameters that the kernel reads, ``slots`` their indices
in :data:`SLOT_NAMES`, ``options`` the cell's constants (:meth:`CellSpec.kernel_options`) and
``save`` whether to save what backward needs (not when no gradient is asked for). The
forward op's autograd formula calls the backward op, and fake (meta) kernels describe
their shapes, so the ops work under ``torch.compile``.

The minimal RNNs (``mingru``, ``minlstm``) have no recurrent weights; given ``weight_ih``
(and ``bias_ih``) their kernels take the layer's input x (T, B, I) as ``xw`` and form
``W_ih x + b_ih`` themselves, row by row (for narrow inputs, where the stored (T, B, G*H)
projection and its gradient would cost more than the recurrence); ``grad_xw`` is then the
gradient of x and ``grad_weights`` include those of ``weight_ih`` and ``bias_ih``.

The kernels run the time loop only: one GEMM against W_hh per step and one fused,
vectorised pointwise pass, the batch split across threads once for the whole
sequence; the weight gradients are one large GEMM after the loop.

Each cell's kernel is compiled on its first use, alone (:mod:`.build`: about 5 s; the
first cell's build also compiles the op registration library shared by all), for this
CPU's vector instruction set, and cached by content in ``$TORCH_EXTENSIONS_DIR/gatedrnn``;
cells never used are never compiled, and ``gatedrnn build`` compiles them ahead of time.
Without a C++ compiler the backend is unavailable: ``backend="auto"`` falls back to the
next backend with a single warning, and naming ``backend="native"`` raises an error that
says why. ``GATEDRNN_NATIVE=0`` turns the backend off.

Autograd: the backward op is the gradient. When autograd asks for a differentiable
gradient (``create_graph=True``: double backward, gradient penalties, ``gradgradcheck``),
the gradients are recomputed through the reference loop instead
(:func:`gatedrnn.backends.reference.recompute_grads`), so every higher derivative is
exact. Forward-mode AD (``torch.func.jvp``, ``torch.autograd.forward_ad``) is not
implemented by the ops: it raises an error.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...cells import CELL_SPECS, CellSpec, State
from ...parameters import RECURRENT_NAMES
from .. import reference
from ..tracing import constant_result
from . import build

#: Cells with a kernel, by op name.
CELLS = tuple(build.SOURCES)

#: The weights a kernel can read, by slot (csrc/common.h, ``Slot``): the recurrent ones,
#: then the input projection, which only the minimal RNNs' kernels take (narrow inputs).
SLOT_NAMES = RECURRENT_NAMES + ("weight_ih", "bias_ih")

# "reason": why the backend cannot run here ("" when it can; None: not yet asked);
# "cells": per cell (op name), None once loaded, else why its kernel could not be built;
# "warned": the cells whose failed build has been reported; "registrar": the op registration
# library, once loaded; "libraries": the kernel libraries loaded.
_state: Dict[str, object] = {"reason": None, "cells": {}, "warned": set(), "libraries": []}


class NativeUnavailable(RuntimeError):
    """The native kernels could not be built or loaded here."""


def unavailable_reason() -> str:
    """Why the backend cannot run here, or "" where it can (asked once per process)."""
    if _state["reason"] is None:
        if os.environ.get("GATEDRNN_NATIVE", "1") == "0":
            _state["reason"] = "turned off by GATEDRNN_NATIVE=0"
        elif build.compiler() is None and not any(build.cached(cell) for cell in CELLS):
            _state["reason"] = f"{build.no_compiler()} and no kernel built earlier"
        else:
            _state["reason"] = ""
    return _state["reason"]


@constant_result
def is_available() -> bool:
    """The backend can run here: not turned off, and a compiler (or a kernel built
    earlier) is found. Each cell's kernel is built on its first use."""
    return not unavailable_reason()


def load(cell: str) -> None:
    """Build (first use only) and load the kernel of ``cell`` (a cell or op name), and
    register its autograd formula and fake kernels; raise :class:`NativeUnavailable` with
    the reason if that is impossible. The outcome is remembered."""
    cell = op_name(cell)
    if cell not in CELLS:
        raise NativeUnavailable(f"no native kernel for cell {cell!r}; cells: {', '.join(CELLS)}")
    cells = _state["cells"]
    if cell not in cells:
        try:
            if unavailable_reason():
                raise NativeUnavailable(unavailable_reason())
            _register_kernels(build.library(cell))
            _register_autograd(cell)
            cells[cell] = None
        except Exception as error:  # a failing compiler, a missing BLAS symbol, ...
            lines = str(error).strip().splitlines()
            cells[cell] = f"{type(error).__name__}: {lines[0] if lines else ''}"
    if cells[cell] is not None:
        raise NativeUnavailable(f"the native {cell} kernel could not be built: {cells[cell]}")


def _register_kernels(path) -> None:
    """Load a cell's kernel library and have the op registration library (loaded once)
    define and register its two ops. Both are plain shared libraries: ctypes loads them,
    and the registrar is handed the kernel library's ``gatedrnn_cell_kernels``."""
    if "registrar" not in _state:
        registrar = ctypes.CDLL(str(build.registrar()))
        registrar.gatedrnn_register_cell.argtypes = [ctypes.c_void_p]
        registrar.gatedrnn_register_cell.restype = ctypes.c_char_p
        _state["registrar"] = registrar
    kernels = ctypes.CDLL(str(path))
    error = _state["registrar"].gatedrnn_register_cell(ctypes.cast(kernels.gatedrnn_cell_kernels, ctypes.c_void_p))
    if error is not None:
        raise NativeUnavailable(f"registering the ops of {path.name} failed: {error.decode()}")
    _state["libraries"].append(kernels)  # loaded for good: the dispatcher holds its functions


@constant_result
def _ready(cell: str) -> bool:
    """Whether ``cell``'s kernel is loaded, building it on first use; a kernel that cannot
    be built warns once (auto then takes the next backend). Not traced by torch.compile:
    its answer is a constant of the graph."""
    try:
        load(cell)
    except NativeUnavailable as error:
        if cell not in _state["warned"]:
            _state["warned"].add(cell)
            warnings.warn(f"gatedrnn: {error}; using a slower backend", RuntimeWarning, stacklevel=3)
        return False
    return True


def op_name(cell: str) -> str:
    """A cell's name as its ops spell it: an identifier, ``-`` as ``_``."""
    return cell.replace("-", "_")


def supports(spec: CellSpec, xw: Tensor) -> bool:
    """CPU tensors of float32/float64 and a cell with a kernel, which builds here (on its
    first use)."""
    cell = op_name(spec.name)
    return (xw.device.type == "cpu" and xw.dtype in (torch.float32, torch.float64)
            and cell in CELLS and _ready(cell))


def run(spec: CellSpec, xw: Tensor, state: State, weights: Mapping[str, Tensor],
        lengths: Optional[Tensor] = None) -> Tuple[Tensor, State]:
    """See :func:`gatedrnn.backends.reference.run`; with ``weight_ih`` (and ``bias_ih``)
    among ``weights`` (the minimal RNNs only), ``xw`` is the input x (T, B, I) and the
    kernel applies the input projection itself."""
    cell = op_name(spec.name)
    if not _ready(cell):
        load(cell)  # raises, with the reason
    unknown = set(weights) - set(SLOT_NAMES)
    if unknown:
        raise ValueError(f"native.run: unknown weights {sorted(unknown)}; expected some of {SLOT_NAMES}")
    forward = getattr(torch.ops.gatedrnn, f"{cell}_forward")
    slots = [i for i, name in enumerate(SLOT_NAMES) if name in weights]
    ordered = [weights[SLOT_NAMES[i]] for i in slots]
    if any(torch.autograd.forward_ad.unpack_dual(t).tangent is not None for t in (xw, *state, *ordered)):
        # the ops have no forward-mode formula: torch would return zero tangents
        raise NotImplementedError(
            f"the native {cell} kernel has no forward-mode AD (torch.func.jvp, torch.autograd.forward_ad); "
            f"run the layer with backend='reference' for forward-mode derivatives")
    # a trace must not depend on the grad mode (torch.jit.trace's checker re-runs it under
    # no_grad): it saves, and a backward of an untraced call saved only when needed
    save = torch.jit.is_tracing() or (torch.is_grad_enabled()
                                      and any(t.requires_grad for t in (xw, *state, *ordered)))
    output, final, _ = forward(xw, list(state), ordered, slots, lengths, spec.kernel_options(), save)
    return output, tuple(final)


def _register_autograd(cell: str) -> None:
    forward_name = f"gatedrnn::{cell}_forward"
    torch.library.register_autograd(forward_name, _make_backward(cell), setup_context=_setup_context)
    torch.library.register_fake(forward_name, _fake_forward(cell))
    torch.library.register_fake(f"gatedrnn::{cell}_backward", _fake_backward)


def _setup_context(ctx, inputs, output) -> None:
    xw, state, weights, slots, lengths, options, save = inputs
    out, _, saved = output
    ctx.layout = (len(state), len(weights), lengths is not None)
    ctx.slots, ctx.options, ctx.saved_for_backward = slots, options, save
    # Unused outputs get None, not zeros: backward never reads the saved tensors' gradient
    # (a (T, B, G*H) fill per call otherwise) and fills the others only when needed.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(xw, *state, *weights, *([lengths] if lengths is not None else []), out, *saved)


def _make_backward(cell: str):
    forward_op = getattr(torch.ops.gatedrnn, f"{cell}_forward")
    backward_op = getattr(torch.ops.gatedrnn, f"{cell}_backward")

    def backward(ctx, grad_output, grad_final, grad_saved):
        num_state, num_weights, has_lengths = ctx.layout
        xw, *tensors = ctx.saved_tensors
        state = tensors[:num_state]
        weights = tensors[num_state:num_state + num_weights]
        rest = tensors[num_state + num_weights:]
        lengths = rest.pop(0) if has_lengths else None
        out, saved = rest[0], rest[1:]
        if reference.backward_must_recompute(grad_output, *grad_final):  # create_graph=True, or vmap over the backward
            grad_xw, grad_state, grad_weights = _differentiable_grads(
                cell, ctx, xw, state, weights, lengths, grad_output, grad_final)
        else:
            if not ctx.saved_for_backward:  # a forward called with save=False: run it again, saving
                _, _, saved = forward_op(xw, state, weights, ctx.slots, lengths, ctx.options, True)
            grad_output = torch.zeros_like(out) if grad_output is None else grad_output
            grad_final = [torch.zeros_like(s) if g is None else g for g, s in zip(grad_final, state)]
            grad_xw, grad_state, grad_weights = backward_op(
                grad_output, grad_final, xw, state, weights, ctx.slots, lengths, ctx.options, out, saved)
        # torch's wrapper reads an empty list (a cell without options, weights or slots) as
        # a list of tensors: its gradient must be an empty list too, not None
        grad_slots, grad_options = (None if ctx.slots else []), (None if ctx.options else [])
        return grad_xw, list(grad_state), list(grad_weights), grad_slots, None, grad_options, None

    return backward


def _spec(cell: str, options: Sequence[float]) -> CellSpec:
    """The cell's spec from the op's name and options (a spec of every cell that runs here
    is registered: its module made the call)."""
    spec_class = next(cls for name, cls in CELL_SPECS.items() if op_name(name) == cell)
    return spec_class.from_kernel_options(options)


def _differentiable_grads(cell, ctx, xw, state, weights, lengths, grad_output, grad_final):
    """The op's gradients as a graph autograd can differentiate again: the run recomputed
    through the reference loop (:func:`~gatedrnn.backends.reference.recompute_grads`),
    from W_ih x + b_ih where the kernel projected its input itself."""
    spec = _spec(cell, ctx.options)
    named = dict(zip((SLOT_NAMES[slot] for slot in ctx.slots), weights))
    projection = {name: named.pop(name) for name in ("weight_ih", "bias_ih") if name in named}
    if not projection:
        grad_xw, grad_state, grads = reference.recompute_grads(
            spec, xw, state, named, lengths, grad_output, grad_final)
        return grad_xw, grad_state, [grads[name] for name in named]
    with torch.enable_grad():
        projected = spec.project_input(xw, projection)  # (T, B, G*H)
    grad_projected, grad_state, _ = reference.recompute_grads(
        spec, projected, state, {}, lengths, grad_output, grad_final)
    leaves = [xw, *projection.values()]
    wanted = [leaf for leaf in leaves if leaf.requires_grad]
    found = dict(zip(map(id, wanted), torch.autograd.grad(projected, wanted, grad_projected, create_graph=True)
                     if wanted and grad_projected is not None else ()))
    grad_x, *grad_projection = [found.get(id(leaf)) for leaf in leaves]
    return grad_x, grad_state, grad_projection


def _fake_forward(cell: str):
    def fake(xw, state, weights, slots, lengths, options, save):
        hidden = state[-1].shape[-1]  # c for the LSTM (h may be projected), else h
        output = xw.new_empty((xw.shape[0], xw.shape[1], state[0].shape[-1]))
        saved = _fake_saved(cell, xw, slots, hidden) if save else []
        return output, [s.new_empty(s.shape) for s in state], saved

    return fake


def _fake_saved(cell: str, xw: Tensor, slots: Sequence[int], hidden: int) -> List[Tensor]:
    """What each kernel saves for backward (the kernels' own layout):

    rnn, indrnn, mingru, minlstm: nothing (the output gives the derivative, the minimal
    RNNs recompute their gates from xw); janet: the pre-activations
    (T, B, 2H); mgu: the activations f, n (T, B, 2H) (f * h, the input of W_h, is
    recomputed); gru: the gate activations r, z, n (T, B, 3H) and (T, B, H) of
    W_hn h + b_hn (reset_after) or r * h (reset before);
    lstm: the gate activations i, f, g, o (T, B, 4H), the cell states (T, B, H) and,
    with a projection, o * tanh(c) before it (T, B, H); layernorm_lstm: the gate
    activations i, f, g, o (T, B, 4H), the normalised W_hh h (T, B, 4H) and its 1/std per
    gate block (T, B, 4), the normalised cell state (T, B, H) and its 1/std (T, B, 1), the
    cell states (T, B, H). ``cell`` is the op name or the cell's name, ``slots`` the op's.
    """
    cell = op_name(cell)
    steps, batch = xw.shape[0], xw.shape[1]
    if cell == "lstm":
        per_step = [4 * hidden, hidden] + ([hidden] if SLOT_NAMES.index("weight_hr") in slots else [])
    else:
        per_step = {"rnn": [], "indrnn": [], "mingru": [], "minlstm": [],
                    "janet": [2 * hidden], "mgu": [2 * hidden],
                    "gru": [3 * hidden, hidden],
                    "layernorm_lstm": [4 * hidden, 4 * hidden, 4, hidden, 1, hidden]}[cell]
    return [xw.new_empty((steps, batch, size)) for size in per_step]


def _fake_backward(grad_output, grad_state, xw, state, weights, slots, lengths, options, output, saved):
    return xw.new_empty(xw.shape), [s.new_empty(s.shape) for s in state], [w.new_empty(w.shape) for w in weights]
