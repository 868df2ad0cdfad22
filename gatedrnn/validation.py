"""Argument checks shared by layers and cells.

Every check raises an exception whose message names the argument, what was expected and
what was given, so that bad input never surfaces as a stack trace from deep inside torch.

Constructor arguments raise ``TypeError`` (wrong kind of thing) or ``ValueError`` (right
kind, wrong value), as torch.nn does. Forward arguments (input and state) raise
:class:`InputError` (wrong shape, size, batch, device, an empty sequence) or
:class:`InputTypeError` (not a tensor, wrong dtype): both derive from ``ValueError`` and
``RuntimeError``, so code written for torch.nn, which raises ``RuntimeError`` for most of
these and ``ValueError`` for the rest, catches them as it did, and so does code that
caught gatedrnn's ``ValueError``. Where torch.nn's own wording differs from ours, the
message carries it too (in parentheses), so a check written against torch.nn's message
still matches.
"""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Optional, Sequence, Tuple

from torch import Tensor


class InputError(ValueError, RuntimeError):
    """A forward argument of the wrong shape, size, batch or device, or an empty sequence.

    Caught by ``except RuntimeError`` (torch.nn's type for these) and by
    ``except ValueError`` (gatedrnn's before).
    """


class ArgumentTypeError(TypeError, ValueError):
    """A constructor argument of the wrong kind where torch.nn raises ``ValueError``
    (``dropout=True``): both ``except TypeError`` and ``except ValueError`` catch it."""


class InputTypeError(TypeError, ValueError, RuntimeError):
    """A forward argument that is not a tensor, or of the wrong dtype.

    Caught by ``except TypeError`` (gatedrnn's type for these), ``except ValueError``
    (torch.nn's for a dtype mismatch in a layer) and ``except RuntimeError`` (torch.nn's
    in a cell).
    """


def check_int(name: str, value, minimum: int) -> int:
    """``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` is a bool, as torch.nn checks ``bias`` and ``batch_first``: a string such
    as ``"False"`` from a config file would otherwise silently be true."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__} ({value!r})")
    return value


def check_sizes(input_size, hidden_size, proj_size, minimum: int = 1) -> Tuple[int, int, int]:
    """The sizes of a recurrent layer or cell: ``0 <= proj_size < hidden_size``, input and
    hidden sizes at least ``minimum`` (0 for torch.nn's cells, which accept empty ones)."""
    sizes = (check_int("input_size", input_size, minimum), check_int("hidden_size", hidden_size, minimum),
             check_int("proj_size", proj_size, 0))
    if proj_size and proj_size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size: got proj_size={proj_size}, "
            f"hidden_size={hidden_size}"
        )
    return sizes


def check_no_projection(proj_size) -> None:
    """torch.nn's RNN and GRU take ``proj_size`` only to refuse it (any value)."""
    if proj_size is not None:
        raise ValueError(f"proj_size argument is only supported for LSTM, not RNN or GRU "
                         f"(got proj_size={proj_size!r})")


def check_dropout(dropout, name: str = "dropout", *, closed: bool = False,
                  num_layers: Optional[int] = None) -> float:
    """A probability in [0, 1) or, with ``closed``, [0, 1] (torch.nn's range for the
    dropout between layers). With ``num_layers`` = 1 a non-zero value warns as torch.nn
    does: dropout applies between layers only."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(dropout, bool) or not isinstance(dropout, Real):
        raise ArgumentTypeError(f"{name} must be a number in {interval}, got {type(dropout).__name__} "
                                f"({dropout!r})")
    if not (0.0 <= dropout <= 1.0 if closed else 0.0 <= dropout < 1.0):
        raise ValueError(f"{name} must be in {interval}, got {dropout}")
    if num_layers == 1 and dropout > 0:
        warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so non-zero "
                      f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                      f"num_layers={num_layers}", stacklevel=3)
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
    *,
    cell: bool = False,
) -> Tensor:
    """A floating tensor with ``dims`` dimensions, last one ``input_size``, whose dtype
    and device are those of the parameter ``like``. ``cell``: quote torch.nn's cells'
    wording rather than its layers'."""
    if not isinstance(value, Tensor):
        raise InputTypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise InputTypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    if value.dim() not in dims:
        expected = " or ".join(f"{d}-D" for d in dims)
        torch_says = f"Expected {name} to be {' or '.join(f'{d}D' for d in dims)}, got {value.dim()}D instead"
        raise InputError(
            f"{name} must be {expected}, got {value.dim()}-D {name} of shape {_shape(value)} ({torch_says})"
        )
    if value.size(-1) != input_size:
        torch_says = (f"input has inconsistent input_size: got {value.size(-1)} expected {input_size}" if cell
                      else f"input.size(-1) must be equal to input_size. Expected {input_size}, "
                           f"got {value.size(-1)}")
        raise InputError(
            f"{name}.size(-1) must equal input_size: expected input size {input_size}, "
            f"got {value.size(-1)} ({name} of shape {_shape(value)}; {torch_says})"
        )
    check_like(name, value, like)
    return value


def check_like(name: str, value: Tensor, like: Tensor) -> None:
    """``value`` has the dtype and device of the parameter ``like``."""
    if value.dtype != like.dtype:
        raise InputTypeError(
            f"{name} has dtype {value.dtype} but the parameters have dtype {like.dtype}; "
            f"convert one of them (e.g. module.to({value.dtype}))"
        )
    if value.device != like.device:
        raise InputError(
            f"{name} is on device {value.device} but the parameters are on {like.device} "
            f"(Input and parameter tensors are not at the same device, found input tensor at "
            f"{value.device} and parameter tensor at {like.device})"
        )


def check_state(name: str, value, expected_shape: Tuple[int, ...], like: Tensor,
                torch_says: str = "") -> Tensor:
    """An initial state tensor of exactly ``expected_shape``; ``torch_says`` is what
    torch.nn would say instead, added in parentheses."""
    if not isinstance(value, Tensor):
        raise InputTypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if _shape(value) != tuple(expected_shape):
        raise InputError(
            f"{name} has the wrong shape: expected {tuple(expected_shape)}, got {_shape(value)}"
            + (f" ({torch_says})" if torch_says else "")
        )
    check_like(name, value, like)
    return value


def _torch_state_message(hx, index: int, value, expected: Tuple[int, ...], batched: bool, cell: bool,
                         many: bool) -> str:
    """torch.nn's message for the state element ``index`` of ``hx``, ``value``, of the
    wrong shape."""
    if not isinstance(value, Tensor):
        return ""
    got = _shape(value)
    if cell:
        if value.dim() not in (1, 2):
            which = f"hx[{index}]" if many else "hidden"
            return f"Expected {which} to be 1D or 2D, got {value.dim()}D instead"
        if batched and value.dim() == 2 and got[0] != expected[0]:
            return f"Input batch size {expected[0]} doesn't match hidden{index} batch size {got[0]}"
        # torch.nn unsqueezes an unbatched cell's hx: a 2-D one shows its first size there
        size = got[0] if not batched and value.dim() == 2 else got[-1]
        return f"hidden{index} has inconsistent hidden_size: got {size}, expected {expected[-1]}"
    if len(got) != len(expected):
        kind = "batched 3-D" if batched else "unbatched 2-D"
        if many:
            dims = ", ".join(f"{h.dim()}-D" if isinstance(h, Tensor) else "?" for h in hx)
            return f"For {kind} input, hx and cx should also be {len(expected)}-D but got ({dims}) tensors"
        return f"For {kind} input, hx should also be {len(expected)}-D but got {value.dim()}-D tensor"
    which = f"hidden[{index}]" if many else "hidden"
    text = f"Expected {which} size {tuple(expected)}, got {list(got)}"
    if batched and got[1] != expected[1]:
        text = f"the input's batch size is {expected[1]}, hx's {got[1]}; {text}"
    return text


def check_hx(hx, shapes: Sequence[Tuple[int, ...]], like: Tensor, *, batched: bool = True,
             cell: bool = False) -> Tuple[Tensor, ...]:
    """An initial state: one tensor when the cell has one state element (RNN, GRU,
    JANET), else a tuple ``(h, c)`` (LSTM); each of exactly the given shape.

    ``batched``: the input is batched (the shapes' batch size is the input's);
    ``cell``: a single-step cell's state (torch.nn's cells word their messages apart).
    """
    many = len(shapes) > 1
    if not many:
        return (check_state("hx", hx, shapes[0], like,
                            _torch_state_message(hx, 0, hx, shapes[0], batched, cell, False)),)
    if not isinstance(hx, (tuple, list)) or len(hx) != len(shapes):
        got = type(hx).__name__ + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else "")
        raise InputTypeError(f"hx must be a tuple (h, c) of {len(shapes)} tensors, got {got}")
    return tuple(check_state(f"hx[{i}]", h, shape, like, _torch_state_message(hx, i, h, shape, batched, cell, True))
                 for i, (h, shape) in enumerate(zip(hx, shapes)))
