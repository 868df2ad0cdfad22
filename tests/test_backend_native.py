"""The native backend as a torch op: torch.compile, the inference path, and the
fallback when the kernels cannot be built."""

import warnings

import pytest
import torch
from torch import nn

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import native

@pytest.mark.usefixtures("native_backend")
def test_ops_are_registered_torch_ops():
    for cell in ("rnn", "janet"):
        assert isinstance(getattr(torch.ops.gatedrnn, f"{cell}_forward"), torch._ops.OpOverloadPacket)


@pytest.mark.usefixtures("native_backend")
@pytest.mark.parametrize("compile_backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_model_using_native_ops_runs_under_torch_compile(compile_backend):
    torch.manual_seed(0)
    model = nn.Sequential(gr.JANET(3, 8, backend="native", batch_first=True),
                          gr.MeanPool(batch_first=True), nn.Linear(8, 1))
    x = torch.randn(4, 6, 3)
    eager = model(x)
    eager.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, backend=compile_backend, fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.usefixtures("native_backend")
def test_inference_path_saves_nothing_and_matches_training_path():
    torch.manual_seed(0)
    layer = gr.JANET(3, 5, backend="native")
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        inference, h_inf = layer(x)
    training, h_train = layer(x)
    assert training.requires_grad and not inference.requires_grad
    torch.testing.assert_close(inference, training.detach(), rtol=0, atol=0)
    torch.testing.assert_close(h_inf, h_train.detach(), rtol=0, atol=0)


@pytest.fixture
def failed_build(monkeypatch):
    """The native backend as on a machine whose compiler fails."""
    def broken_compile():
        raise RuntimeError("Error building extension 'gatedrnn_native': c++: not found")

    monkeypatch.delenv("GATEDRNN_NATIVE", raising=False)
    monkeypatch.setattr(native, "_compile", broken_compile)
    monkeypatch.setattr(native, "_state", {"loaded": None, "error": None, "cells": ()})
    monkeypatch.setattr(backends, "_warned", set())


def test_failed_build_falls_back_with_one_warning(failed_build):
    layer = gr.JANET(3, 5)  # backend="auto"
    x = torch.randn(4, 2, 3)
    with pytest.warns(RuntimeWarning, match=r"the native backend is unavailable \(RuntimeError: .*c\+\+: not found\); using a slower one"):
        expected = layer(x)[0]
    assert "native" not in backends.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call does not warn again
        torch.testing.assert_close(layer(x)[0], expected)
    reference = gr.JANET(3, 5, backend="reference")
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(reference(x)[0], expected)


def test_naming_an_unavailable_native_backend_is_an_error(failed_build):
    layer = gr.JANET(3, 5, backend="native")
    with pytest.raises(ValueError, match=r"backend 'native' is not available here \(RuntimeError: .*\); available backends: auto, torch, fused, reference"):
        layer(torch.randn(4, 2, 3))


def test_environment_variable_turns_native_off(failed_build, monkeypatch):
    monkeypatch.setenv("GATEDRNN_NATIVE", "0")
    assert not native.is_available()
    assert "GATEDRNN_NATIVE=0" in native.unavailable_reason()
