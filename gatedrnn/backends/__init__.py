"""Backends: the time recurrence of every cell, behind one interface.

A backend is a module with ``run(spec, xw, state, weights, lengths)`` (see
:func:`gatedrnn.backends.reference.run`), ``is_available()`` and ``supports(spec, xw)``.
The layer computes the input projection for all steps as one GEMM and a backend runs
only the time loop, forward in time (the layer reverses sequences for the backward
direction).

=============  ==============================================================
``torch``      torch's own LSTM kernel (oneDNN / cuDNN), for LSTMs that are
               exactly torch's (no peepholes or clipping) on dense input
``native``     fused C++ CPU kernels (compiled on first use), CPU tensors
``fused``      pure PyTorch with a hand-written backward, any device
``scan``       a log-space parallel scan, for cells whose step is linear in the
               state (the minimal RNNs), any device
``reference``  a plain autograd loop over the step function: the oracle
=============  ==============================================================

``backend="auto"`` picks, for each call, the first of these that is available and
supports the cell, its options, the input and the tensors' device: ``torch`` for a plain
LSTM on dense input (faster than the native LSTM kernel in the benchmark) in eager mode,
else ``native`` on CPU, else ``fused``, else ``scan``. If the native kernels cannot be
built, it warns once and goes on with the next. Naming a backend that is unknown,
unavailable or that cannot run the cell raises a ``ValueError`` listing the available
ones.

Transforms: a call under a ``torch.func`` transform (``vmap``, ``grad``, ``jvp``,
``jacrev``, ``jacfwd``, ...) or with forward-mode tangents (``torch.autograd.forward_ad``
dual tensors) runs on the reference backend, whatever the layer's backend option: its
plain torch ops carry every transform exactly, where the fast backends' hand-written
derivatives are reverse mode only. Under ``torch.compile`` and ``torch.export``, ``auto``
leaves torch's own LSTM kernel out (inductor cannot lower it) and the fused backend
(dynamo cannot trace its autograd.Function): the native kernels are torch ops with fake
kernels and compile into the graph; without them the reference loop (or the scan) is
traced.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Dict, List, Optional

import torch
from torch import Tensor
from torch.autograd import forward_ad

from ..cells import CellSpec
from . import fused, native, reference, scan, torch_kernel
from .tracing import constant_result

# The backends that run every cell, in order of preference for "auto": the fastest first.
_BACKENDS: Dict[str, ModuleType] = {"native": native, "fused": fused, "reference": reference}
# Every time-loop backend in auto's order: the general ones and those for some cells only.
_ALL: Dict[str, ModuleType] = {"native": native, "fused": fused, "scan": scan, "reference": reference}
_warned = set()
# What auto leaves out under torch.compile and torch.export: dynamo cannot trace the fused
# backend's autograd.Function (its in-place out= buffers).
_UNTRACEABLE = {"fused"}


@constant_result
def _is_available(name: str, warn: bool = False) -> bool:
    """Whether the backend ``name`` can run here, with one warning (``warn``) the first
    time it cannot; under torch.compile decided once, outside the graph (building and
    loading the native kernels is no graph op, nor is a warning)."""
    backend = _ALL[name]
    if backend.is_available():
        return True
    if warn and name not in _warned and hasattr(backend, "unavailable_reason"):
        _warned.add(name)
        warnings.warn(f"gatedrnn: the {name} backend is unavailable ({backend.unavailable_reason()}); "
                      f"using a slower one", RuntimeWarning, stacklevel=2)
    return False


def transformed(*tensors: Tensor) -> bool:
    """Whether a call on ``tensors`` needs derivatives beyond reverse mode: it runs
    under a ``torch.func`` transform, or one of them carries a forward-mode tangent."""
    return not torch.compiler.is_compiling() and _transforms_active(tensors)


def _transforms_active(tensors) -> bool:
    if torch._C._are_functorch_transforms_active():
        return True
    return forward_ad._current_level >= 0 and any(
        forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def available() -> List[str]:
    """Names of the backends that can run here, in auto's order of preference."""
    return ["torch"] + [name for name, backend in _BACKENDS.items() if backend.is_available()]


def check_name(name) -> str:
    """``name`` is ``"auto"`` or a known backend; return it."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name not in ("auto", "torch") and name not in _ALL:
        raise ValueError(f"backend {name!r} is unknown; available backends: "
                         f"{', '.join(['auto'] + available())}")
    return name


def uses_torch_kernel(name: str, layer, lengths: Optional[Tensor], *tensors: Tensor) -> bool:
    """Whether the layer option ``name`` runs ``layer`` through torch's own kernel on
    ``tensors`` (the input and the initial state)."""
    if name == "torch" and not torch_kernel.supports(layer, lengths):
        raise ValueError("backend 'torch' runs only LSTMs without peepholes or clipping on "
                         "dense (not packed) input; use backend='auto' or 'native'")
    if name != "torch" and not (name == "auto" and torch_kernel.supports(layer, lengths)):
        return False
    if torch.compiler.is_compiling():
        return name == "torch"
    weights = layer._flat_weights if forward_ad._current_level >= 0 else ()  # tangents only there
    return not _transforms_active((*tensors, *weights))


def get(name: str) -> ModuleType:
    """The time-loop backend called ``name``; ``"auto"``: the fastest available."""
    if check_name(name) == "auto":
        return next(b for key, b in _BACKENDS.items() if _is_available(key))
    if name == "torch":
        raise ValueError("backend 'torch' runs whole LSTM layers, not a time loop")
    if not _is_available(name):
        raise ValueError(f"backend {name!r} is not available here "
                         f"({_ALL[name].unavailable_reason()}); available backends: "
                         f"{', '.join(['auto'] + available())}")
    return _ALL[name]


def select(name: str, spec: CellSpec, xw: Tensor, *tensors: Tensor) -> ModuleType:
    """The backend that runs ``spec`` on ``xw``'s device for the layer option ``name``.

    ``tensors`` are the run's other inputs (state, weights): a run under a functorch
    transform or with forward-mode tangents on any of them goes to the reference
    backend (see the module docstring).
    """
    if transformed(xw, *tensors):
        return reference
    if name != "auto":
        backend = _ALL.get(name)
        if backend is None or not _is_available(name):
            backend = get(name)  # raises, naming the backends there are
        if not backend.supports(spec, xw):
            raise ValueError(f"backend {name!r} cannot run a {spec.name} cell on "
                             f"{xw.device.type} {xw.dtype} tensors")
        return backend
    compiling = torch.compiler.is_compiling()
    for candidate, backend in _ALL.items():
        if compiling and candidate in _UNTRACEABLE:
            continue
        if _is_available(candidate, warn=True) and backend.supports(spec, xw):
            return backend
    return reference


def resolve(name: str, layer, x: Tensor, lengths: Optional[Tensor] = None) -> str:
    """The name of the backend that ``layer`` (with backend option ``name``) runs on
    input ``x`` (T, B, I) with: ``torch`` or the time-loop backend."""
    if uses_torch_kernel(name, layer, lengths, x):
        return "torch"
    module = select(name, layer.spec, x)
    return next(key for key, backend in _ALL.items() if backend is module)
