"""Backends: the time recurrence of every cell, behind one interface.

A backend is a module (or object) with a ``run(spec, xw, state, weights, lengths)``
function, see :func:`gatedrnn.backends.reference.run`: the layer computes the input
projection for all steps as one GEMM and a backend runs only the time loop, forward in
time (the layer reverses sequences for the backward direction).

``backend="auto"`` picks the fastest available backend; naming one that is unknown or
unavailable raises a ``ValueError`` that lists the available ones.
"""

from __future__ import annotations

from types import ModuleType
from typing import Dict, List

from . import reference

# In order of preference for "auto": the fastest available first.
_BACKENDS: Dict[str, ModuleType] = {"reference": reference}


def available() -> List[str]:
    """Names of the backends that can run here, fastest first."""
    return list(_BACKENDS)


def get(name: str) -> ModuleType:
    """The backend called ``name`` (``"auto"``: the fastest available)."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name == "auto":
        return next(iter(_BACKENDS.values()))
    if name not in _BACKENDS:
        raise ValueError(
            f"backend {name!r} is not available; available backends: "
            f"{', '.join(['auto'] + available())}"
        )
    return _BACKENDS[name]
