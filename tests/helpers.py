"""Helpers shared by several test modules (pytest puts tests/ on the import path)."""

import torch


def randomize_(module, seed=0, scale=1.0):
    """Every parameter (biases and peepholes included) drawn from U(-scale, scale) by a
    generator seeded ``seed``, in the parameter's dtype; returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.rand(p.shape, generator=g, dtype=p.dtype) * 2 - 1) * scale)
    return module


def assert_compiled_matches_eager(module, x, backend="aot_eager"):
    """torch.compile(module, fullgraph=True) gives the eager output (a layer's output of its
    (output, state) pair) and the same parameter gradients of its sum; with the native
    backend the ops' fake kernels must give the saved shapes for that."""
    def output(result):
        return result[0] if isinstance(result, tuple) else result

    eager = output(module(x))
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    out = output(torch.compile(module, backend=backend, fullgraph=True)(x))
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    for p, g in zip(module.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)
