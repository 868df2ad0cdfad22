"""Per-cell builds of the native kernels: one shared library per cell, compiled on first use
and cached by content, and one op registration library shared by every cell.

Each cell's kernel is one C++ file in ``csrc/`` (``janet.cpp``, ...) with the headers it
includes (``common.h``, ...). :func:`library` compiles it with the C++ compiler (``$CXX``,
else ``c++``) straight into a shared library that exports the cell's two kernels, for this
CPU's vector instruction set (AVX-512, AVX2 or none, as torch reports it: the flags of
ATen's own per-capability builds). The ops themselves are defined and registered with
torch's dispatcher by a second library, ``register_ops.cpp``, compiled once for all cells
(at the first cell's build, beside it): the one source that includes ``torch/library.h``,
so that each kernel compiles in about 4 s instead of 8 s. Both are cached under

    $TORCH_EXTENSIONS_DIR/gatedrnn/   (default ~/.cache/torch_extensions/gatedrnn/)

as ``<cell>-<capability>-<key>-<compiler>.so`` and ``register_ops-<key>-<compiler>.so``.
``key`` hashes the sources' contents, the compiler flags, the capability and torch's
version (the ABI the library is compiled against), not the checkout's path: two checkouts
or virtual environments with the same sources and torch share one build, and a changed
source builds anew. ``compiler`` hashes the compiler's identity (``$CXX --version``); where
no compiler is found, a library built earlier for the same key by any compiler is used (a
Docker image built with ``gatedrnn build`` and stripped of its toolchain).

Concurrent first uses (two ``torchrun`` ranks, two test processes) are safe: a file lock
per library lets one process build while the others wait, and the library is written
under a temporary name and renamed into place, so no process ever loads half a file.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import torch
from filelock import FileLock, Timeout

CSRC = Path(__file__).resolve().parent / "csrc"

#: Every cell with a kernel, by op name (the ``<cell>`` of ``<cell>_forward``), and its source.
SOURCES: Dict[str, str] = {cell: f"{cell}.cpp" for cell in (
    "rnn", "lstm", "gru", "janet", "mgu", "indrnn", "layernorm_lstm", "mingru", "minlstm")}

#: The library that defines and registers every cell's ops (csrc/register_ops.cpp).
REGISTRAR = "register_ops"

#: Vector instruction sets, as torch reports them, with the flags of ATen's own builds.
CAPABILITY_FLAGS: Dict[str, List[str]] = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw",
               "-mavx512vl", "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma"],
    "DEFAULT": ["-DCPU_CAPABILITY=DEFAULT", "-DCPU_CAPABILITY_DEFAULT"],
}

#: Seconds a first build took on this project's 2-core machines (docs/native.md): a cell's
#: kernel, and the op registration library (compiled beside the first cell's kernel).
EXPECTED_SECONDS = {"kernel": 5, REGISTRAR: 8}


class BuildError(RuntimeError):
    """A kernel could not be compiled here (no compiler, or the compiler failed)."""


def capability() -> str:
    """The vector instruction set the kernels are built for: torch's own choice
    (``ATEN_CPU_CAPABILITY`` overrides it), ``DEFAULT`` for any set without flags here."""
    found = torch.backends.cpu.get_cpu_capability()
    return found if found in CAPABILITY_FLAGS else "DEFAULT"


def cache_dir() -> Path:
    """Where the libraries are kept: ``$TORCH_EXTENSIONS_DIR/gatedrnn``, else torch's
    default extension directory's ``gatedrnn`` folder."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not root:
        from torch import _appdirs  # what torch.utils.cpp_extension uses; not imported by torch itself

        root = _appdirs.user_cache_dir(appname="torch_extensions")
    return Path(root) / "gatedrnn"


def compiler() -> Optional[str]:
    """The C++ compiler's path (``$CXX``, else ``c++``), or None where there is none."""
    return shutil.which(os.environ.get("CXX") or "c++")


def no_compiler() -> str:
    """Why :func:`compiler` found none."""
    cxx = os.environ.get("CXX")
    return f"no C++ compiler found ({f'CXX={cxx} is not a program' if cxx else 'no c++ on PATH'})"


@lru_cache(maxsize=None)
def _version(path: str) -> str:
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise BuildError(f"the C++ compiler {path} does not run: {error}") from error
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"the C++ compiler {path} does not run: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def compiler_identity(path: str) -> str:
    """The compiler's first ``--version`` line, e.g. ``c++ (Debian 12.2.0-14) 12.2.0``."""
    return _version(path).splitlines()[0]


def flags(capability_name: Optional[str]) -> List[str]:
    """The compiler flags, paths and OpenMP (:func:`openmp_flags`) aside; without a
    capability (the op registration library, which has no loops) no vector flags."""
    return ["-O3", "-std=c++20", "-fPIC", "-shared",
            f"-D_GLIBCXX_USE_CXX11_ABI={int(torch.compiled_with_cxx11_abi())}",
            *(CAPABILITY_FLAGS[capability_name] if capability_name else [])]


def openmp_flags(path: str) -> List[str]:
    """OpenMP makes ``at::parallel_for`` split the batch over torch's threads (without it
    the loop runs on one thread). Only with GCC on Linux, whose runtime (libgomp) torch
    ships and uses itself: another compiler would bring a second OpenMP runtime into the
    process, so its kernels run each batch on one thread."""
    gcc = platform.system() == "Linux" and "Free Software Foundation" in _version(path)
    return ["-fopenmp"] if gcc else []


def _source(name: str) -> str:
    if name == REGISTRAR:
        return f"{REGISTRAR}.cpp"
    if name not in SOURCES:
        raise ValueError(f"no native kernel for cell {name!r}; cells: {', '.join(SOURCES)}")
    return SOURCES[name]


def sources(name: str) -> List[Path]:
    """The source file of a cell (or of :data:`REGISTRAR`) and the local headers it
    includes, recursively."""
    found: List[Path] = []
    pending = [CSRC / _source(name)]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.append(path)
        pending += [CSRC / name for name in re.findall(r'^#include "([^"]+)"', path.read_text(), re.M)]
    return found


@lru_cache(maxsize=None)
def _key(name: str, capability_name: Optional[str]) -> str:
    digest = hashlib.sha256()
    for part in (torch.__version__, torch.version.git_version or "", capability_name or "", *flags(capability_name)):
        digest.update(part.encode() + b"\0")
    for path in sorted(sources(name)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _stem(name: str, capability_name: Optional[str] = None) -> str:
    """``<cell>-<capability>-<key>`` for a cell's kernel, ``register_ops-<key>`` for the
    op registration library (built without vector flags)."""
    if name == REGISTRAR:
        return f"{REGISTRAR}-{_key(REGISTRAR, None)}"
    found = capability_name or capability()
    return f"{name}-{found.lower()}-{_key(name, found)}"


def _cached_file(name: str) -> Optional[Path]:
    stem = _stem(name)
    path = compiler()
    if path is not None:
        candidate = cache_dir() / f"{stem}-{_compiler_hash(path)}.so"
        return candidate if candidate.exists() else None
    found = sorted(cache_dir().glob(f"{stem}-*.so"))
    return found[0] if found else None


def cached(cell: str) -> Optional[Path]:
    """The cell's library if it is built for these sources, flags and torch (by this
    compiler, or by any when no compiler is found), and so is the op registration
    library; else None."""
    kernel = _cached_file(cell)
    return kernel if kernel is not None and _cached_file(REGISTRAR) is not None else None


def registrar() -> Path:
    """The path of the op registration library, built first if it is not cached (where no
    compiler is found, one built earlier by any compiler)."""
    return _cached_file(REGISTRAR) or _built(REGISTRAR, None, quiet=False)


def _compiler_hash(path: str) -> str:
    return hashlib.sha256(compiler_identity(path).encode()).hexdigest()[:8]


def _say(message: str) -> None:
    print(f"gatedrnn: {message}", file=sys.stderr, flush=True)


def library(cell: str, capability_name: Optional[str] = None, quiet: bool = False) -> Path:
    """The path of the cell's library, built first if it is not cached (one process builds,
    concurrent ones wait for it), with the op registration library beside it where that
    is not built yet (two compiler processes at once). ``capability_name`` builds for
    another instruction set than this CPU's (a build test; such a library may not load
    here). Raises :class:`BuildError` with the reason where either cannot be built."""
    _source(cell)
    if capability_name is None:
        found = cached(cell)
        if found is not None:
            return found
    with ThreadPoolExecutor(2) as pool:
        registration = pool.submit(_built, REGISTRAR, None, quiet)
        kernel = pool.submit(_built, cell, capability_name or capability(), quiet)
        path = kernel.result()  # the cell's error first, where both fail
        registration.result()
    return path


def _built(name: str, capability_name: Optional[str], quiet: bool) -> Path:
    """One library's path, compiled under a file lock where it is not in the cache."""
    cxx = compiler()
    if cxx is None:
        raise BuildError(f"{no_compiler()} to build the {_described(name)}")
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{_stem(name, capability_name)}-{_compiler_hash(cxx)}.so"
    if target.exists():
        return target
    lock = FileLock(f"{target}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not quiet:
            _say(f"waiting for another process to finish building the {_described(name)}")
        lock.acquire()
    try:
        if not target.exists():  # else another process built it while this one waited
            _compile(name, capability_name, cxx, target, quiet)
    finally:
        lock.release()
    return target


def _described(name: str) -> str:
    return "native op registration library" if name == REGISTRAR else f"native {name} kernel"


def _compile(name: str, capability_name: Optional[str], cxx: str, target: Path, quiet: bool) -> None:
    if not quiet:
        what = ("once for every cell" if name == REGISTRAR else f"for this CPU ({capability_name})")
        seconds = EXPECTED_SECONDS[REGISTRAR if name == REGISTRAR else "kernel"]
        _say(f"compiling the {_described(name)} {what}; first use only, about {seconds} s")
    torch_dir = Path(torch.__file__).resolve().parent
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    command = [cxx, *flags(capability_name), *openmp_flags(cxx), f"-I{CSRC}", "-isystem", str(torch_dir / "include"),
               str(CSRC / _source(name)), "-o", str(partial),
               f"-L{torch_dir / 'lib'}", "-lc10", "-ltorch_cpu"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        errors = [line for line in result.stderr.splitlines() if "error" in line] or result.stderr.splitlines() or [""]
        raise BuildError(f"compiling the {_described(name).removeprefix('native ')} failed: {errors[0].strip()}\n"
                         f"command: {' '.join(command)}\n{result.stderr[-4000:]}")
    os.replace(partial, target)  # atomic: other processes see no file or the whole file
    if not quiet:
        _say(f"{_described(name)} built in {time.perf_counter() - start:.0f} s ({target})")
