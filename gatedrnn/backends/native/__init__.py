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

The sources in ``csrc/`` are compiled on first use with ``torch.utils.cpp_extension``
(ninja, a C++ compiler) for this CPU's vector instruction set (AVX-512, AVX2 or
default, as ATen's own dispatch) and cached in torch's extension directory. Without a
compiler the backend is unavailable: ``backend="auto"`` falls back to the next backend
with a single warning. ``GATEDRNN_NATIVE=0`` turns the backend off.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...cells import CellSpec, State
from ...parameters import RECURRENT_NAMES

_CSRC = os.path.join(os.path.dirname(__file__), "csrc")

#: Cells whose kernels the operator library defines (csrc/library.cpp), by op name.
CELLS = ("rnn", "lstm", "gru", "janet", "mgu", "indrnn", "layernorm_lstm", "mingru", "minlstm")

#: The weights a kernel can read, by slot (csrc/common.h, ``Slot``): the recurrent ones,
#: then the input projection, which only the minimal RNNs' kernels take (narrow inputs).
SLOT_NAMES = RECURRENT_NAMES + ("weight_ih", "bias_ih")

# Vector instruction sets, as torch reports them, with the flags of ATen's own builds.
_CAPABILITY_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw",
               "-mavx512vl", "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma"],
}

_state = {"loaded": None, "error": None, "cells": ()}


class NativeUnavailable(RuntimeError):
    """The native kernels could not be built or loaded here."""


def _compile() -> None:
    from torch.utils import cpp_extension

    capability = torch.backends.cpu.get_cpu_capability()
    flags = _CAPABILITY_FLAGS.get(capability, ["-DCPU_CAPABILITY=DEFAULT", "-DCPU_CAPABILITY_DEFAULT"])
    name = f"gatedrnn_native_{capability.lower()}"
    if not glob.glob(os.path.join(cpp_extension._get_build_directory(name, False), "*.so")):
        print("gatedrnn: building the native kernels for this CPU (first use only, about a minute)",
              file=sys.stderr, flush=True)
    cpp_extension.load(
        name=name,
        sources=sorted(glob.glob(os.path.join(_CSRC, "*.cpp"))),
        extra_include_paths=[_CSRC],
        extra_cflags=["-O3", *flags],
        is_python_module=False,
        verbose=False,
    )


def load() -> None:
    """Build (first time only) and load the kernels; raise :class:`NativeUnavailable`
    with the reason if that is impossible. The outcome is remembered."""
    if _state["loaded"] is None:
        try:
            if os.environ.get("GATEDRNN_NATIVE", "1") == "0":
                raise NativeUnavailable("turned off by GATEDRNN_NATIVE=0")
            _compile()
            _state["cells"] = _implemented()
            _register_autograd()
            _state["loaded"] = True
        except Exception as error:  # a missing compiler, ninja, BLAS symbol, ...
            _state["loaded"] = False
            _state["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    if not _state["loaded"]:
        raise NativeUnavailable(f"the native backend could not be built: {_state['error']}")


def is_available() -> bool:
    try:
        load()
    except NativeUnavailable:
        return False
    return True


def unavailable_reason() -> str:
    return _state["error"] or ""


def op_name(cell: str) -> str:
    """A cell's name as its ops spell it: an identifier, ``-`` as ``_``."""
    return cell.replace("-", "_")


def supports(spec: CellSpec, xw: Tensor) -> bool:
    """CPU tensors of float32/float64 and a cell whose kernel is compiled in."""
    return (xw.device.type == "cpu" and xw.dtype in (torch.float32, torch.float64)
            and op_name(spec.name) in _state["cells"])


def _implemented() -> Tuple[str, ...]:
    """Cells (op names) whose forward op has a CPU kernel in the loaded library."""
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
    return tuple(cell for cell in CELLS if has_kernel(f"gatedrnn::{cell}_forward", "CPU"))


def run(spec: CellSpec, xw: Tensor, state: State, weights: Mapping[str, Tensor],
        lengths: Optional[Tensor] = None) -> Tuple[Tensor, State]:
    """See :func:`gatedrnn.backends.reference.run`; with ``weight_ih`` (and ``bias_ih``)
    among ``weights`` (the minimal RNNs only), ``xw`` is the input x (T, B, I) and the
    kernel applies the input projection itself."""
    load()
    unknown = set(weights) - set(SLOT_NAMES)
    if unknown:
        raise ValueError(f"native.run: unknown weights {sorted(unknown)}; expected some of {SLOT_NAMES}")
    forward = getattr(torch.ops.gatedrnn, f"{op_name(spec.name)}_forward")
    slots = [i for i, name in enumerate(SLOT_NAMES) if name in weights]
    ordered = [weights[SLOT_NAMES[i]] for i in slots]
    save = torch.is_grad_enabled() and any(t.requires_grad for t in (xw, *state, *ordered))
    output, final, _ = forward(xw, list(state), ordered, slots, lengths, spec.kernel_options(), save)
    return output, tuple(final)


def _register_autograd() -> None:
    for cell in _state["cells"]:
        forward_name = f"gatedrnn::{cell}_forward"
        backward_op = getattr(torch.ops.gatedrnn, f"{cell}_backward")
        torch.library.register_autograd(
            forward_name, _make_backward(backward_op), setup_context=_setup_context)
        torch.library.register_fake(forward_name, _fake_forward(cell))
        torch.library.register_fake(f"gatedrnn::{cell}_backward", _fake_backward)


def _setup_context(ctx, inputs, output) -> None:
    xw, state, weights, slots, lengths, options, _ = inputs
    out, _, saved = output
    ctx.layout = (len(state), len(weights), lengths is not None)
    ctx.slots, ctx.options = slots, options
    # Unused outputs get None, not zeros: backward never reads the saved tensors' gradient
    # (a (T, B, G*H) fill per call otherwise) and fills the others only when needed.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(xw, *state, *weights, *([lengths] if lengths is not None else []), out, *saved)


def _make_backward(backward_op):
    def backward(ctx, grad_output, grad_final, grad_saved):
        num_state, num_weights, has_lengths = ctx.layout
        xw, *tensors = ctx.saved_tensors
        state = tensors[:num_state]
        weights = tensors[num_state:num_state + num_weights]
        rest = tensors[num_state + num_weights:]
        lengths = rest.pop(0) if has_lengths else None
        out, saved = rest[0], rest[1:]
        grad_output = torch.zeros_like(out) if grad_output is None else grad_output
        grad_final = [torch.zeros_like(s) if g is None else g for g, s in zip(grad_final, state)]
        grad_xw, grad_state, grad_weights = backward_op(
            grad_output, grad_final, xw, state, weights, ctx.slots, lengths, ctx.options, out, saved)
        # torch's wrapper reads an empty list (a cell without options, weights or slots) as
        # a list of tensors: its gradient must be an empty list too, not None
        grad_slots, grad_options = (None if ctx.slots else []), (None if ctx.options else [])
        return grad_xw, list(grad_state), list(grad_weights), grad_slots, None, grad_options, None

    return backward


def _fake_forward(cell: str):
    def fake(xw, state, weights, slots, lengths, options, save):
        hidden = state[-1].shape[-1]  # c for the LSTM (h may be projected), else h
        output = xw.new_empty((xw.shape[0], xw.shape[1], state[0].shape[-1]))
        saved = _fake_saved(cell, xw, weights, hidden) if save else []
        return output, [s.new_empty(s.shape) for s in state], saved

    return fake


def _fake_saved(cell: str, xw: Tensor, weights: Sequence[Tensor], hidden: int) -> List[Tensor]:
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
    cell states (T, B, H). ``cell`` is the op name or the cell's name.
    """
    cell = op_name(cell)
    steps, batch = xw.shape[0], xw.shape[1]
    if cell == "lstm":  # only an LSTM's weight_hh tells a projection (IndRNN's is a vector)
        per_step = [4 * hidden, hidden] + ([hidden] if len(weights) and _has_projection(weights, hidden) else [])
    else:
        per_step = {"rnn": [], "indrnn": [], "mingru": [], "minlstm": [],
                    "janet": [2 * hidden], "mgu": [2 * hidden],
                    "gru": [3 * hidden, hidden],
                    "layernorm_lstm": [4 * hidden, 4 * hidden, 4, hidden, 1, hidden]}[cell]
    return [xw.new_empty((steps, batch, size)) for size in per_step]


def _has_projection(weights: Sequence[Tensor], hidden: int) -> bool:
    """An LSTM's weight_hh is (4H, P) with P < H when projected."""
    return weights[0].shape[1] != hidden


def _fake_backward(grad_output, grad_state, xw, state, weights, slots, lengths, options, output, saved):
    return xw.new_empty(xw.shape), [s.new_empty(s.shape) for s in state], [w.new_empty(w.shape) for w in weights]
