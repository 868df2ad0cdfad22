"""Backends: the time recurrence of every cell, behind one interface.

A backend is a module with ``run(spec, xw, state, weights, lengths)`` (see
:func:`gatedrnn.backends.reference.run`), ``is_available()`` and ``supports(spec)``.
The layer computes the input projection for all steps as one GEMM and a backend runs
only the time loop, forward in time (the layer reverses sequences for the backward
direction).

=============  ==============================================================
``native``     fused C++ CPU kernels (compiled on first use), CPU tensors
``fused``      pure PyTorch with a hand-written backward, any device
``reference``  a plain autograd loop over the step function: the oracle
=============  ==============================================================

``backend="auto"`` picks, for each call, the first of these that is available and
supports the cell and the tensors' device; if the native kernels cannot be built, it
warns once and goes on with the next. Naming a backend that is unknown, unavailable or
that cannot run the cell raises a ``ValueError`` listing the available ones.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Dict, List

from torch import Tensor

from ..cells import CellSpec
from . import fused, native, reference

# In order of preference for "auto": the fastest first.
_BACKENDS: Dict[str, ModuleType] = {"native": native, "fused": fused, "reference": reference}
_warned = set()


def names() -> List[str]:
    """Every backend name, available here or not (plus ``"auto"``)."""
    return ["auto", *_BACKENDS]


def available() -> List[str]:
    """Names of the backends that can run here, fastest first."""
    return [name for name, backend in _BACKENDS.items() if backend.is_available()]


def check_name(name) -> str:
    """``name`` is ``"auto"`` or a known backend; return it."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name != "auto" and name not in _BACKENDS:
        raise ValueError(f"backend {name!r} is unknown; available backends: "
                         f"{', '.join(['auto'] + available())}")
    return name


def get(name: str) -> ModuleType:
    """The backend called ``name``; ``"auto"``: the fastest available."""
    if check_name(name) == "auto":
        return _BACKENDS[available()[0]]
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
