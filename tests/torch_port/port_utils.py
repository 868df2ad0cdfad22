"""Shared pieces of the ported PyTorch RNN tests: the two implementations, the known
differences of gatedrnn, reference pairs and the error-message rule."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Callable, Sequence, Tuple, Union

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils._pytree import tree_flatten

import gatedrnn

IMPLEMENTATIONS = ("torch", "gatedrnn")
MODULE_NAMES = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
_PACKAGES = {"torch": nn, "gatedrnn": gatedrnn}


def namespace(name: str) -> SimpleNamespace:
    """``name``'s six recurrent classes, plus ``name`` and ``is_torch``."""
    package = _PACKAGES[name]
    return SimpleNamespace(name=name, is_torch=name == "torch",
                           **{cls: getattr(package, cls) for cls in MODULE_NAMES})


# -- known differences ----------------------------------------------------------------
# Each cause: (classification, what differs). "bug": gatedrnn must change (issue 12 asks
# for torch.nn's behaviour); "allowed": a difference issue 12 accepts.
CAUSES = {
    "cell-bias-not-bool": (
        "allowed", "PyTorch's error sample passes the nonlinearity as RNNCell's third "
                   "positional argument, bias; torch.nn's cells take any truthy bias, gatedrnn "
                   "requires a bool (issue 12: every bool option must be a real bool), so it "
                   "raises TypeError 'bias should be of type bool, got: str' at construction"),
}


def gatedrnn_differs(cause: str, raises=None):
    """Mark a test or a case: its [gatedrnn] run is a strict xfail for ``cause``."""
    kind, text = CAUSES[cause]
    return pytest.mark.gatedrnn_xfail(reason=f"{cause} ({kind}): {text}", raises=raises)


def case(*values, id: str, differs: Union[str, None] = None, raises=None):
    """A ``pytest.param`` whose [gatedrnn] run is a strict xfail when ``differs`` names a cause."""
    marks = [gatedrnn_differs(differs, raises)] if differs else []
    return pytest.param(*values, id=id, marks=marks)


# -- reference pairs ------------------------------------------------------------------

def pair(impl, kind: str, *args, dtype=torch.float64, **kwargs):
    """(module under test, torch.nn reference) of class ``kind``, same weights, ``dtype``."""
    reference = getattr(nn, kind)(*args, **kwargs).to(dtype)
    module = getattr(impl, kind)(*args, **kwargs).to(dtype)
    module.load_state_dict(reference.state_dict())
    return module, reference


def tensors(obj) -> list:
    """Every tensor in a nested output (PackedSequence: its data)."""
    leaves, _ = tree_flatten(obj)
    out = []
    for leaf in leaves:
        if isinstance(leaf, PackedSequence):
            out.append(leaf.data)
        elif isinstance(leaf, torch.Tensor):
            out.append(leaf)
    return out


def assert_close(actual, expected, **tolerances) -> None:
    """Nested outputs are equal tensor by tensor (torch.testing's dtype tolerances)."""
    actual, expected = tensors(actual), tensors(expected)
    assert len(actual) == len(expected), f"{len(actual)} tensors, expected {len(expected)}"
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **tolerances)


# -- errors ---------------------------------------------------------------------------
Names = Sequence[Union[str, Tuple[str, ...]]]


def message_names(message: str, names: Names) -> bool:
    """Whether ``message`` contains every item of ``names`` (a tuple: any one of them)."""
    return all(any(option in message for option in ((n,) if isinstance(n, str) else n))
               for n in names)


def check_error(impl, error_type, regex: str, names: Names, fn: Callable[[], object]) -> None:
    """``fn()`` raises ``error_type``. On torch.nn its message matches PyTorch's ``regex``;
    gatedrnn may word it its own way as long as the message names the argument, what was
    expected and what was given (``names``, see :func:`message_names`)."""
    with pytest.raises(error_type) as info:
        fn()
    message = str(info.value)
    if impl.is_torch:
        assert re.search(regex, message), f"{message!r} does not match {regex!r}"
    else:
        assert re.search(regex, message) or message_names(message, names), (
            f"{message!r} neither matches {regex!r} nor names all of {list(names)}")
