"""The native backend as a torch op: torch.compile, the inference path, and the
fallback when the kernels cannot be built."""

import warnings

import pytest
import torch
from torch import nn

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import native
from gatedrnn.backends.native import build
from helpers import assert_compiled_matches_eager

@pytest.mark.usefixtures("native_backend")
def test_ops_are_registered_torch_ops():
    for cell in ("rnn", "janet"):
        native.load(cell)
        assert isinstance(getattr(torch.ops.gatedrnn, f"{cell}_forward"), torch._ops.OpOverloadPacket)


@pytest.mark.usefixtures("native_backend")
def test_registering_a_cell_twice_is_an_error_not_a_crash():
    """The op registration library turns the dispatcher's C++ exception into a message
    (no exception may cross the C function ctypes calls): loading a kernel library whose
    ops exist already raises NativeUnavailable, and the ops keep working."""
    native.load("rnn")
    with pytest.raises(native.NativeUnavailable, match="registering the ops of rnn-.*gatedrnn::rnn_forward"):
        native._register_kernels(build.library("rnn"))
    layer = gr.RNN(3, 4, backend="native")
    reference = gr.RNN(3, 4, backend="reference")
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(layer(x)[0], reference(x)[0])


@pytest.mark.usefixtures("native_backend")
@pytest.mark.parametrize("compile_backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_model_using_native_ops_runs_under_torch_compile(compile_backend):
    torch.manual_seed(0)
    model = nn.Sequential(gr.JANET(3, 8, backend="native", batch_first=True),
                          gr.MeanPool(batch_first=True), nn.Linear(8, 1))
    assert_compiled_matches_eager(model, torch.randn(4, 6, 3), compile_backend)


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
def no_compiler(monkeypatch):
    """The native backend as on a machine without a C++ compiler and without kernels built."""
    monkeypatch.delenv("GATEDRNN_NATIVE", raising=False)
    monkeypatch.setattr(build, "compiler", lambda: None)
    monkeypatch.setattr(build, "cached", lambda cell: None)
    monkeypatch.setattr(native, "_state", {"reason": None, "cells": {}, "warned": set()})
    monkeypatch.setattr(backends, "_warned", set())


def test_no_compiler_falls_back_with_one_warning(no_compiler):
    layer = gr.JANET(3, 5)  # backend="auto"
    x = torch.randn(4, 2, 3)
    with pytest.warns(RuntimeWarning, match=r"the native backend is unavailable \(no C\+\+ compiler found .*\); using a slower one"):
        expected = layer(x)[0]
    assert "native" not in backends.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call does not warn again
        torch.testing.assert_close(layer(x)[0], expected)
    reference = gr.JANET(3, 5, backend="reference")
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(reference(x)[0], expected)


def test_naming_an_unavailable_native_backend_is_an_error(no_compiler):
    layer = gr.JANET(3, 5, backend="native")
    with pytest.raises(ValueError, match=r"backend 'native' is not available here \(no C\+\+ compiler found .*\); available backends: auto, torch, fused, reference"):
        layer(torch.randn(4, 2, 3))


def test_a_kernel_that_fails_to_build_falls_back_with_one_warning(monkeypatch):
    """A compiler that fails on one cell: that cell runs on the next backend, with the reason."""
    def failing(cell, **kwargs):
        raise build.BuildError(f"compiling the {cell} kernel failed: c++: internal compiler error")

    monkeypatch.setattr(build, "library", failing)
    monkeypatch.setattr(native, "_state", {"reason": "", "cells": {}, "warned": set()})
    layer = gr.MGU(3, 5)
    x = torch.randn(4, 2, 3)
    with pytest.warns(RuntimeWarning, match=r"the native mgu kernel could not be built: BuildError: .*internal compiler error; using a slower backend"):
        out = layer(x)[0]
    assert backends.resolve("auto", layer, x) == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(layer(x)[0], out)


def test_environment_variable_turns_native_off(no_compiler, monkeypatch):
    monkeypatch.setenv("GATEDRNN_NATIVE", "0")
    assert not native.is_available()
    assert "GATEDRNN_NATIVE=0" in native.unavailable_reason()
