"""Per-cell native builds (gatedrnn/backends/native/build.py), in fresh processes: two
processes that need a kernel at once build it once; a second checkout of the same sources
builds nothing; no compiler means the fused backend with one warning, and a clear error
when the native backend is named; the cache key follows the sources' content and the
flags, not their path. Slow (real compiles): an AVX2 build runs and is right, and every
cell compiles for AVX2 and for no vector set."""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import gatedrnn
from gatedrnn.backends import native
from gatedrnn.backends.native import build

PACKAGE = Path(gatedrnn.__file__).resolve().parent

pytestmark = pytest.mark.skipif(build.compiler() is None or os.environ.get("GATEDRNN_NATIVE") == "0",
                                reason="no C++ compiler, or the native backend turned off")

# Runs an RNN layer on backend `auto` and `reference` and prints the backend used and the
# largest difference; the RNN's kernel is the quickest to compile.
SCRIPT = """
import torch, gatedrnn as gr
torch.manual_seed(0)
layer = gr.RNN(3, 5, backend="{backend}").double()
ref = gr.RNN(3, 5, backend="reference").double()
ref.load_state_dict(layer.state_dict())
x = torch.randn(6, 2, 3, dtype=torch.float64)
print(gr.backends.resolve("{backend}", layer, x), (layer(x)[0] - ref(x)[0]).abs().max().item())
"""


def run_python(code, cache, package_parent=PACKAGE.parent, backend="auto", **env):
    environment = {**os.environ, "PYTHONPATH": str(package_parent), "TORCH_EXTENSIONS_DIR": str(cache),
                   "OMP_NUM_THREADS": "1", **env}
    environment.pop("GATEDRNN_NATIVE", None)
    return subprocess.run([sys.executable, "-c", code.format(backend=backend)], capture_output=True,
                          text=True, env=environment, timeout=600)


def libraries(cache):
    return sorted(p.name for p in (Path(cache) / "gatedrnn").glob("*.so"))


# A stand-in compiler: says who it is, takes 3 s, logs each compile and writes its -o file.
FAKE_COMPILER = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "fake-c++ 1.0"; exit 0; fi
sleep 3
echo compile >> "{log}"
while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then echo library > "$2"; fi; shift; done
"""

BUILD = "from gatedrnn.backends.native import build; print(build.library('rnn'))"


def test_concurrent_first_uses_build_once(tmp_path):
    """Two processes ask for the same kernel at once on an empty cache: one compiles it and
    the op registration library (each under a temporary name, renamed into place), the
    other waits for them; both get the library."""
    log, compiler = tmp_path / "compiles.log", tmp_path / "c++"
    compiler.write_text(FAKE_COMPILER.format(log=log))
    compiler.chmod(0o755)
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_python(BUILD, cache, CXX=str(compiler)), range(2)))
    for result in results:
        assert result.returncode == 0, result.stderr
    paths = {result.stdout.strip() for result in results}
    assert len(paths) == 1 and Path(paths.pop()).read_text() == "library\n"
    assert log.read_text().splitlines() == ["compile", "compile"]  # the kernel and the registrar
    messages = "".join(result.stderr for result in results)
    assert messages.count("compiling the native rnn kernel for this CPU") == 1
    assert messages.count("compiling the native op registration library once for every cell") == 1
    assert sorted(p.name for p in (cache / "gatedrnn").iterdir() if not p.name.endswith(".lock")) == libraries(cache)


@pytest.mark.usefixtures("native_backend")
def test_a_second_checkout_of_the_same_sources_builds_nothing(tmp_path):
    """A copy of the package elsewhere finds the library this checkout built (the cache
    key is the sources' content, not their path)."""
    native.load("rnn")
    checkout = tmp_path / "checkout"
    shutil.copytree(PACKAGE, checkout / "gatedrnn", ignore=shutil.ignore_patterns("__pycache__"))
    before = libraries(build.cache_dir().parent)
    result = run_python(SCRIPT, build.cache_dir().parent, package_parent=checkout)
    assert result.returncode == 0, result.stderr
    backend, error = result.stdout.split()
    assert backend == "native" and float(error) < 1e-12
    assert "compiling" not in result.stderr
    assert libraries(build.cache_dir().parent) == before


@pytest.mark.slow
def test_an_avx2_build_runs_and_matches_the_reference(tmp_path):
    """The CI machines' vector set, compiled and run here (AVX2 code runs on AVX-512)."""
    result = run_python(SCRIPT, tmp_path, ATEN_CPU_CAPABILITY="avx2")
    assert result.returncode == 0, result.stderr
    backend, error = result.stdout.split()
    assert backend == "native" and float(error) < 1e-12
    assert "compiling the native rnn kernel for this CPU (AVX2)" in result.stderr
    registrar, kernel = libraries(tmp_path)  # sorted by name
    assert registrar.startswith("register_ops-") and kernel.startswith("rnn-avx2-")  # this cell only


def test_without_a_compiler_auto_falls_back_and_native_is_an_error(tmp_path):
    result = run_python(SCRIPT, tmp_path, CXX=str(tmp_path / "no-such-compiler"))
    assert result.returncode == 0, result.stderr
    backend, error = result.stdout.split()
    assert backend == "fused" and float(error) < 1e-12
    assert result.stderr.count("RuntimeWarning") == 1
    assert "the native backend is unavailable (no C++ compiler found" in result.stderr
    named = run_python(SCRIPT, tmp_path, backend="native", CXX=str(tmp_path / "no-such-compiler"))
    assert named.returncode != 0
    assert "ValueError: backend 'native' is not available here (no C++ compiler found" in named.stderr
    assert libraries(tmp_path) == []


def test_without_a_compiler_the_kernels_built_earlier_run(tmp_path):
    """A Docker image that ran ``gatedrnn build`` and dropped its toolchain: the kernel and
    the op registration library built by one compiler are found and loaded without any."""
    built = run_python(BUILD, tmp_path)
    assert built.returncode == 0, built.stderr
    result = run_python(SCRIPT, tmp_path, backend="native", CXX=str(tmp_path / "no-such-compiler"))
    assert result.returncode == 0, result.stderr
    backend, error = result.stdout.split()
    assert backend == "native" and float(error) < 1e-12
    assert "compiling" not in result.stderr and "RuntimeWarning" not in result.stderr


FAILING_COMPILER = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "broken-c++ 1.0"; exit 0; fi
echo "rnn.cpp:1:1: error: this compiler is broken" >&2
exit 1
"""


def test_a_compiler_that_fails_means_the_next_backend_and_its_message(tmp_path):
    compiler = tmp_path / "c++"
    compiler.write_text(FAILING_COMPILER)
    compiler.chmod(0o755)
    result = run_python(SCRIPT, tmp_path / "cache", CXX=str(compiler))
    assert result.returncode == 0, result.stderr
    backend, error = result.stdout.split()
    assert backend == "fused" and float(error) < 1e-12
    assert ("the native rnn kernel could not be built: BuildError: compiling the rnn kernel failed: "
            "rnn.cpp:1:1: error: this compiler is broken; using a slower backend") in result.stderr
    assert libraries(tmp_path / "cache") == []  # nothing half-written left behind
    assert [p.name for p in (tmp_path / "cache" / "gatedrnn").iterdir() if p.suffix == ".tmp"] == []


def test_the_cache_key_follows_the_sources_content_not_their_path(tmp_path, monkeypatch):
    original = build._stem("janet", "AVX2")
    copy = tmp_path / "csrc"
    shutil.copytree(build.CSRC, copy)
    monkeypatch.setattr(build, "CSRC", copy)
    build._key.cache_clear()
    assert build._stem("janet", "AVX2") == original  # same content elsewhere: same library
    (copy / "common.h").write_text((copy / "common.h").read_text() + "\n// changed\n")
    build._key.cache_clear()
    changed = build._stem("janet", "AVX2")
    assert changed != original and changed.startswith("janet-avx2-")
    assert build._stem("janet", "DEFAULT") != changed  # and the flags
    monkeypatch.undo()
    build._key.cache_clear()


def test_sources_are_the_cell_file_and_its_headers():
    assert [p.name for p in build.sources("mingru")] == ["mingru.cpp", "min_rnn.h", "common.h", "op_signatures.h"]
    assert [p.name for p in build.sources("janet")] == ["janet.cpp", "common.h", "op_signatures.h"]
    assert [p.name for p in build.sources(build.REGISTRAR)] == ["register_ops.cpp", "op_signatures.h"]
    with pytest.raises(ValueError, match="no native kernel for cell 'zoneout'"):
        build.sources("zoneout")


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT"])
@pytest.mark.parametrize("cell", list(build.SOURCES))
def test_every_cell_compiles_for_every_capability(cell, capability, tmp_path, monkeypatch):
    """Compile only (AVX2 and DEFAULT libraries are not loaded next to this CPU's)."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    path = build.library(cell, capability_name=capability, quiet=True)
    assert path.exists() and path.name.startswith(f"{cell}-{capability.lower()}-")


@pytest.mark.usefixtures("native_backend")
def test_build_and_backends_commands(capsys):
    from gatedrnn.cli import main

    native.load("rnn")
    assert main(["build", "--cells", "rnn,layernorm-lstm"]) == 0
    out = capsys.readouterr().out
    assert f"for {build.capability()} into {build.cache_dir()}" in out
    assert f"  rnn: cached ({build.cached('rnn')})" in out
    assert "  layernorm_lstm: " in out and build.cached("layernorm_lstm") is not None
    assert f"  and the op registration library every cell's kernel needs: {build.registrar()}" in out
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert f"native kernels: {build.cache_dir()}" in out
    assert f"CPU capability: {build.capability()}" in out
    built = next(line for line in out.splitlines() if line.startswith("  built: "))
    assert "rnn" in built.split(": ")[1].split(", ") and "layernorm_lstm" in built
    assert main(["build", "--cells", "zoneout"]) == 2
    assert "no native kernel for zoneout" in capsys.readouterr().err


def test_without_torch_extensions_dir_the_cache_is_torchs_default(tmp_path):
    """A fresh interpreter (nothing has imported torch.utils.cpp_extension) with no
    TORCH_EXTENSIONS_DIR: the cache is torch's default extension directory, under HOME."""
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE.parent), "HOME": str(tmp_path)}
    for name in ("TORCH_EXTENSIONS_DIR", "XDG_CACHE_HOME"):
        environment.pop(name, None)
    code = "from gatedrnn.backends.native import build; print(build.cache_dir())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / ".cache" / "torch_extensions" / "gatedrnn")
