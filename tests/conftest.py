"""Shared fixtures."""

import os
import shutil

import pytest
import torch

from gatedrnn.backends import native


@pytest.fixture(scope="session")
def native_backend():
    """The native kernels, built on first use. Skips where they cannot be built by
    design (GATEDRNN_NATIVE=0, no C++ toolchain); where a toolchain exists, a kernel
    that does not build is a test error, not a skip."""
    if os.environ.get("GATEDRNN_NATIVE", "1") == "0":
        pytest.skip("native backend turned off by GATEDRNN_NATIVE=0")
    if shutil.which("ninja") is None or shutil.which("c++") is None:
        pytest.skip("no C++ toolchain: the native backend cannot be built")
    native.load()
    return native


@pytest.fixture
def two_threads():
    """torch on two threads for the test (the kernels' batch split), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
