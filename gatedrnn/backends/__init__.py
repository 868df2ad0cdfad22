"""Backends: the time recurrence of every cell, behind one interface.

A backend is a module with ``run(spec, xw, state, weights, lengths)`` (see
:func:`gatedrnn.backends.reference.run`), ``is_available()`` and ``supports(spec)``.
The layer computes the input projection for all steps as one GEMM and a backend runs
only the time loop, forward in time (the layer reverses sequences for the backward
direction).

=============  ==============================================================
``torch``      torch's own LSTM kernel (oneDNN / cuDNN), for LSTMs that are
               exactly torch's (no peepholes or clipping) on dense input
``native``     fused C++ CPU kernels (compiled on first use), CPU tensors
``fused``      pure PyTorch with a hand-written backward, any device
``reference``  a plain autograd loop over the step function: the oracle
=============  ==============================================================

``backend="auto"`` picks, for each call, the first of these that is available and
supports the cell, its options, the input and the tensors' device: ``torch`` for a plain
LSTM on dense input (faster than the native LSTM kernel in the benchmark), else
``native`` on CPU, else ``fused``. If the native kernels cannot be built, it warns once
and goes on with the next. Naming a backend that is unknown, unavailable or
that cannot run the cell raises a ``ValueError`` listing the available ones.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Dict, List, Optional

from torch import Tensor

from ..cells import CellSpec
from . import fused, native, reference, torch_kernel

# In order of preference for "auto": the fastest first.
_BACKENDS: Dict[str, ModuleType] = {"native": native, "fused": fused, "reference": reference}
_warned = set()


def available() -> List[str]:
    """Names of the backends that can run here, in auto's order of preference."""
    return ["torch"] + [name for name, backend in _BACKENDS.items() if backend.is_available()]


def check_name(name) -> str:
    """``name`` is ``"auto"`` or a known backend; return it."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name not in ("auto", "torch") and name not in _BACKENDS:
        raise ValueError(f"backend {name!r} is unknown; available backends: "
                         f"{', '.join(['auto'] + available())}")
    return name


def uses_torch_kernel(name: str, layer, lengths: Optional[Tensor]) -> bool:
    """Whether the layer option ``name`` runs ``layer`` through torch's own kernel."""
    if name == "torch" and not torch_kernel.supports(layer, lengths):
        raise ValueError("backend 'torch' runs only LSTMs without peepholes or clipping on "
                         "dense (not packed) input; use backend='auto' or 'native'")
    return name == "torch" or (name == "auto" and torch_kernel.supports(layer, lengths))


def get(name: str) -> ModuleType:
    """The time-loop backend called ``name``; ``"auto"``: the fastest available."""
    if check_name(name) == "auto":
        return next(b for b in _BACKENDS.values() if b.is_available())
    if name == "torch":
        raise ValueError("backend 'torch' runs whole LSTM layers, not a time loop")
    if not _BACKENDS[name].is_available():
        raise ValueError(f"backend {name!r} is not available here "
                         f"({_BACKENDS[name].unavailable_reason()}); available backends: "
                         f"{', '.join(['auto'] + available())}")
    return _BACKENDS[name]


def select(name: str, spec: CellSpec, xw: Tensor) -> ModuleType:
    """The backend that runs ``spec`` on ``xw``'s device for the layer option ``name``."""
    if name != "auto":
        backend = get(name)
        if not backend.supports(spec, xw):
            raise ValueError(f"backend {name!r} cannot run a {spec.name} cell on "
                             f"{xw.device.type} {xw.dtype} tensors")
        return backend
    for candidate, backend in _BACKENDS.items():
        if not backend.is_available():
            if candidate not in _warned and hasattr(backend, "unavailable_reason"):
                _warned.add(candidate)
                warnings.warn(f"gatedrnn: the {candidate} backend is unavailable "
                              f"({backend.unavailable_reason()}); using a slower one",
                              RuntimeWarning, stacklevel=3)
            continue
        if backend.supports(spec, xw):
            return backend
    return reference


def resolve(name: str, layer, x: Tensor, lengths: Optional[Tensor] = None) -> str:
    """The name of the backend that ``layer`` (with backend option ``name``) runs on
    input ``x`` (T, B, I) with: ``torch`` or the time-loop backend."""
    if uses_torch_kernel(name, layer, lengths):
        return "torch"
    module = select(name, layer.spec, x)
    return next(key for key, backend in _BACKENDS.items() if backend is module)
