"""Argument checks shared by layers and cells.

Every check raises a ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind,
wrong value) whose message names the argument, what was expected and what was given,
so that bad input never surfaces as a stack trace from deep inside torch.
"""

from __future__ import annotations

from numbers import Real
from typing import Optional, Sequence, Tuple

from torch import Tensor


def check_int(name: str, value, minimum: int) -> int:
    """``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_sizes(input_size, hidden_size, proj_size) -> Tuple[int, int, int]:
    """The sizes of a recurrent layer or cell: ``0 <= proj_size < hidden_size``."""
    sizes = (check_int("input_size", input_size, 1), check_int("hidden_size", hidden_size, 1),
             check_int("proj_size", proj_size, 0))
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size: got proj_size={proj_size}, "
            f"hidden_size={hidden_size}"
        )
    return sizes


def check_dropout(dropout, name: str = "dropout") -> float:
    """A probability in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(dropout).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {dropout}")
    return float(dropout)


def check_optional_clip(name: str, value) -> Optional[float]:
    """A clipping threshold: None, or a positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be None or a positive number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be None or a positive number, got {value}")
    return float(value)


def check_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    return float(value)


def _shape(t: Tensor) -> Tuple[int, ...]:
    return tuple(t.shape)


def check_input(
    name: str,
    value,
    input_size: int,
    dims: Sequence[int],
    like: Tensor,
) -> Tensor:
    """A floating tensor with ``dims`` dimensions, last one ``input_size``, whose dtype
    and device are those of the parameter ``like``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    if value.dim() not in dims:
        expected = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(
            f"{name} must be {expected}, got {value.dim()}-D {name} of shape {_shape(value)}"
        )
    if value.size(-1) != input_size:
        raise ValueError(
            f"{name}.size(-1) must equal input_size: expected input size {input_size}, "
            f"got {value.size(-1)} ({name} of shape {_shape(value)})"
        )
    check_like(name, value, like)
    return value


def check_like(name: str, value: Tensor, like: Tensor) -> None:
    """``value`` has the dtype and device of the parameter ``like``."""
    if value.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but the parameters have dtype {like.dtype}; "
            f"convert one of them (e.g. module.to({value.dtype}))"
        )
    if value.device != like.device:
        raise ValueError(
            f"{name} is on device {value.device} but the parameters are on {like.device}"
        )


def check_state(name: str, value, expected_shape: Tuple[int, ...], like: Tensor) -> Tensor:
    """An initial state tensor of exactly ``expected_shape``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if _shape(value) != tuple(expected_shape):
        raise ValueError(
            f"{name} has the wrong shape: expected {tuple(expected_shape)}, got {_shape(value)}"
        )
    check_like(name, value, like)
    return value


def check_hx(hx, shapes: Sequence[Tuple[int, ...]], like: Tensor) -> Tuple[Tensor, ...]:
    """An initial state: one tensor when the cell has one state element (RNN, GRU,
    JANET), else a tuple ``(h, c)`` (LSTM); each of exactly the given shape."""
    if len(shapes) == 1:
        return (check_state("hx", hx, shapes[0], like),)
    if not isinstance(hx, (tuple, list)) or len(hx) != len(shapes):
        got = type(hx).__name__ + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else "")
        raise TypeError(f"hx must be a tuple (h, c) of {len(shapes)} tensors, got {got}")
    return tuple(check_state(f"hx[{i}]", h, shape, like)
                 for i, (h, shape) in enumerate(zip(hx, shapes)))
