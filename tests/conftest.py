"""Shared fixtures."""

import contextlib
import os

import pytest
import torch

from gatedrnn.backends import native

# Under pytest-xdist the workers share the cores: torch's default of a thread per core in
# each worker would run more threads than cores, which OpenMP pays for by spinning.
# Tests that need several threads ask for them (two_threads).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    torch.set_num_threads(max(1, torch.get_num_threads() // _workers))


@pytest.fixture(scope="session")
def native_backend():
    """The native backend; each cell's kernel is built on its first use (native.load(cell)
    for the ops themselves). Skips where the kernels cannot be built by design
    (GATEDRNN_NATIVE=0, no C++ compiler); where a compiler exists, a kernel that does not
    build is a test error, not a skip."""
    if not native.is_available():
        pytest.skip(f"native backend unavailable: {native.unavailable_reason()}")
    return native


@contextlib.contextmanager
def _threads(count):
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def two_threads():
    """torch on two threads for the test (the kernels' batch split), restored after."""
    with _threads(2):
        yield


@pytest.fixture
def one_thread():
    """torch on one thread for the test, restored after: the runs of a tiny model are fastest
    so, and a subprocess given OMP_NUM_THREADS=1 computes what this process does (the
    tests that compare their results bit for bit)."""
    with _threads(1):
        yield


@pytest.fixture(scope="session")
def torch_threads():
    """``with torch_threads(n):`` torch on n threads, restored after: for the module-scoped
    fixtures that train a tiny model (on one thread, the fastest), which cannot use one_thread."""
    return _threads
