"""What torch.compile needs to know about the backends' Python-side decisions."""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def constant_result(fn: F) -> F:
    """:func:`torch.compiler.assume_constant_result`: torch.compile calls ``fn`` when it
    traces a call and puts the answer into the graph as a constant, instead of tracing
    into it (building and loading kernels, warnings). Sets the decorator's mark itself:
    the decorator imports torch._dynamo, which would double ``import gatedrnn``'s time."""
    fn._dynamo_marked_constant = True
    return fn
