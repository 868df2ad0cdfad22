"""Speed benchmarks: gatedrnn layers against their torch.nn baselines.

Every gatedrnn cell (``janet``, ``lstm``, ``gru``, ``rnn``, ``mgu``) runs with one or
more backends beside its torch.nn baseline at the same sizes: ``torch.nn.LSTM`` for
JANET, the MGU and the LSTM (the forget-gate-only cells against what they replace), ``torch.nn.GRU`` for the GRU, ``torch.nn.RNN`` for the RNN. All are
float32, ``batch_first=False``, one layer, one direction, on the CPU, with torch's
default initialisation and the same input tensor.

Example::

    gatedrnn bench --grid training --backend reference --repeats 3
    gatedrnn bench --grid inference --backend auto,reference --cells janet,lstm
    gatedrnn bench --grid all --points 0,T50-B1-I128-H128 --markdown /tmp/bench.md
    gatedrnn bench --list
    python benchmarks/run.py --grid smoke --repeats 2 --json /tmp/smoke.json

What is measured
----------------

- **Grid points** (T, B, I, H): ``training`` points and the tiny ``smoke`` grid (for
  tests) run in both modes, ``inference`` (batch 1) points in ``forward`` mode only.
- **Modes**: ``forward`` is ``layer(x)`` under ``torch.no_grad()``;
  ``forward+backward`` is ``layer(x)[0].sum().backward()`` with ``x.requires_grad``,
  so gradients flow to the input and every parameter. Gradients are set to ``None``
  before each run, outside the timed region.
- **Timing**: the contenders of one (point, cell, mode) — each requested gatedrnn
  backend and the torch baseline — are timed interleaved in one process: ``warmup``
  untimed rounds, then ``repeats`` rounds, each round running every contender once,
  in a fixed order, timed with ``time.perf_counter`` with Python's garbage collector
  paused. Reported times are medians over the rounds; ``ratio`` is
  median(gatedrnn) / median(torch) (below 1: gatedrnn is faster); ``us/step`` is the
  median divided by T.
- **GFLOP/s**: the matrix-multiply FLOPs of the cell's equations, not of what a backend
  happens to execute: ``2 * g * H * (I + H) * B * T`` per forward, with g gate blocks
  (janet 2, lstm 4, gru 3, rnn 1, mgu 2); forward+backward counts 3 times the forward. The
  torch baseline's GFLOP/s (JSON only) use its own g, so JANET's baseline is an LSTM
  with g = 4.
- **Peak MiB**: one extra run of the row's mode per contender, after the timed rounds,
  under ``torch.profiler.profile(profile_memory=True)``. Every allocation and free
  that torch's CPU allocator reports during that run is replayed in time order and the
  peak is the largest running total: the most memory held at once by tensors created
  during the run, above what was already live (parameters, the input). For
  ``forward+backward`` rows this is one training step and counts the outputs,
  everything saved for backward, temporaries, oneDNN workspaces allocated as tensors,
  and the gradients of the input and of the parameters; for ``forward`` rows it is
  one inference forward. It does not count memory allocated outside torch's allocator
  (oneDNN's internal scratchpads, OpenMP thread stacks, Python objects), nor the
  allocator's caching or fragmentation, so it is a lower bound on the rise in the
  process's resident memory.

Output: a Markdown table on stdout (``--markdown PATH`` also writes it to a file), a
JSON file (``--json PATH``, default ``benchmarks/results/latest.json`` relative to the
working directory) with one record per (point, cell, backend, mode) including the raw
times of every round, and the machine: CPU model, torch version, threads, date.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, TextIO

import torch
from torch import nn

from . import __version__, backends
from .layers import GRU, JANET, LSTM, MGU, RNN

FORWARD = "forward"
TRAIN = "forward+backward"
MODES = (FORWARD, TRAIN)
DEFAULT_JSON = os.path.join("benchmarks", "results", "latest.json")


# -- what is benchmarked ----------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    """One benchmark size: T steps, batch B, input size I, hidden size H."""

    grid: str
    T: int
    B: int
    I: int
    H: int

    @property
    def name(self) -> str:
        return f"T{self.T}-B{self.B}-I{self.I}-H{self.H}"

    @property
    def modes(self) -> tuple:
        """Inference points run forward only; the others (training, smoke) both modes."""
        return (FORWARD,) if self.grid == "inference" else MODES


def _grid(name: str, *sizes) -> List[GridPoint]:
    return [GridPoint(name, *size) for size in sizes]


GRIDS: Dict[str, List[GridPoint]] = {
    "training": _grid("training", (100, 64, 128, 256), (784, 100, 1, 128), (100, 32, 64, 64),
                      (50, 64, 512, 512), (100, 64, 512, 512)),
    "inference": _grid("inference", (50, 1, 128, 128), (200, 1, 64, 256)),
    "smoke": _grid("smoke", (10, 4, 8, 16)),
}
GRIDS["all"] = GRIDS["training"] + GRIDS["inference"]


@dataclass(frozen=True)
class Cell:
    """A gatedrnn layer, its torch.nn baseline, and the gate blocks of each."""

    layer: type
    baseline: type
    gates: int
    baseline_gates: int


CELLS: Dict[str, Cell] = {
    "janet": Cell(JANET, nn.LSTM, 2, 4),
    "lstm": Cell(LSTM, nn.LSTM, 4, 4),
    "gru": Cell(GRU, nn.GRU, 3, 3),
    "rnn": Cell(RNN, nn.RNN, 1, 1),
    "mgu": Cell(MGU, nn.LSTM, 2, 4),
}


def forward_flops(gates: int, point: GridPoint) -> int:
    """Matrix-multiply FLOPs of one forward: ``2 * g * H * (I + H) * B * T``."""
    return 2 * gates * point.H * (point.I + point.H) * point.B * point.T


def mode_flops(gates: int, point: GridPoint, mode: str) -> int:
    """FLOPs of one run of ``mode``: forward+backward counts 3x the forward."""
    return forward_flops(gates, point) * (3 if mode == TRAIN else 1)


def select_points(grid: str, points: Optional[str] = None) -> List[GridPoint]:
    """The points of ``grid``, or those named in ``points``: comma-separated indices
    into the grid (0-based) or names such as ``T100-B64-I128-H256``."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; grids: {', '.join(GRIDS)}")
    candidates = GRIDS[grid]
    if not points:
        return list(candidates)
    by_name = {p.name: p for p in candidates}
    chosen = []
    for item in (s.strip() for s in points.split(",")):
        if item.isdigit() and int(item) < len(candidates):
            point = candidates[int(item)]
        elif item in by_name:
            point = by_name[item]
        else:
            raise ValueError(
                f"no point {item!r} in grid {grid!r}; use an index 0..{len(candidates) - 1} "
                f"or a name: {', '.join(by_name)}")
        if point not in chosen:
            chosen.append(point)
    return chosen


# -- measuring ---------------------------------------------------------------------


@dataclass
class Contender:
    """Something to time: ``run`` is timed; ``reset`` (if any) runs untimed before it."""

    name: str
    run: Callable[[], object]
    reset: Optional[Callable[[], None]] = None


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count)."""
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def time_interleaved(contenders: Sequence[Contender], repeats: int, warmup: int = 2,
                     timer: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Time ``contenders`` interleaved: ``warmup`` untimed rounds, then ``repeats``
    timed rounds; each round runs every contender once, in the given order.

    Returns {name: [seconds of each timed round]}. Python's garbage collector is paused
    while a run is timed, as :mod:`timeit` does.
    """
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be unique, got {names}")
    times: Dict[str, List[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        for contender in contenders:
            if contender.reset is not None:
                contender.reset()
            gc_enabled = gc.isenabled()
            gc.disable()
            try:
                start = timer()
                contender.run()
                elapsed = timer() - start
            finally:
                if gc_enabled:
                    gc.enable()
            if round_ >= warmup:
                times[contender.name].append(elapsed)
    return times


_CPU_MEMORY_DEVICES = {"CPU", "MKLDNN", "IDEEP"}


def peak_memory_bytes(contender: Contender) -> Optional[int]:
    """Peak bytes held at once by tensors allocated during one run of ``contender``.

    Runs it once under ``torch.profiler.profile(profile_memory=True)`` and replays the
    CPU allocator's allocation (+bytes) and free (-bytes) events in time order; the peak
    is the largest running total, above what was live before the run. Returns None if
    this torch's profiler does not expose its memory events.
    """
    if contender.reset is not None:
        contender.reset()
    gc_enabled = gc.isenabled()
    gc.disable()  # a collection would free older tensors mid-run
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    profile_memory=True) as prof:
            contender.run()
    finally:
        if gc_enabled:
            gc.enable()
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:
        return None
    deltas = sorted((e.start_ns(), e.nbytes()) for e in events
                    if e.name() == "[memory]" and e.device_type().name in _CPU_MEMORY_DEVICES)
    total = peak = 0
    for _, nbytes in deltas:
        total += nbytes
        peak = max(peak, total)
    return peak


def layer_contender(name: str, layer: nn.Module, x: torch.Tensor, mode: str) -> Contender:
    """A run of ``layer`` on ``x`` in ``mode`` (``x`` must require grad for TRAIN)."""
    if mode == FORWARD:
        def run():
            with torch.no_grad():
                return layer(x)
        return Contender(name, run)

    params = list(layer.parameters())

    def reset():
        x.grad = None
        for p in params:
            p.grad = None

    def run():
        output, _ = layer(x)
        output.sum().backward()

    return Contender(name, run, reset)


@dataclass
class Record:
    """One row: a gatedrnn backend against the torch baseline at one point and mode."""

    grid: str
    point: str
    T: int
    B: int
    I: int
    H: int
    cell: str
    backend: str
    backend_resolved: str
    baseline: str
    mode: str
    gatedrnn_ms: float
    torch_ms: float
    ratio: float
    gatedrnn_us_per_step: float
    torch_us_per_step: float
    flops: int
    gatedrnn_gflops: float
    torch_gflops: float
    gatedrnn_peak_mib: Optional[float]
    torch_peak_mib: Optional[float]
    gatedrnn_times_ms: List[float] = field(default_factory=list)
    torch_times_ms: List[float] = field(default_factory=list)


def bench_group(point: GridPoint, cell_name: str, mode: str, backend_names: Sequence[str],
                repeats: int, warmup: int, memory: bool = True) -> List[Record]:
    """Time every backend of one cell against its torch baseline, interleaved, at one
    point and mode; one :class:`Record` per backend."""
    cell = CELLS[cell_name]
    torch.manual_seed(0)
    x = torch.randn(point.T, point.B, point.I)
    if mode == TRAIN:
        x.requires_grad_(True)
    layers = {b: cell.layer(point.I, point.H, backend=b) for b in backend_names}
    contenders = [layer_contender(f"gatedrnn:{b}", layers[b], x, mode) for b in backend_names]
    contenders.append(layer_contender("torch", cell.baseline(point.I, point.H), x, mode))

    times = time_interleaved(contenders, repeats, warmup)
    peaks = {c.name: peak_memory_bytes(c) if memory else None for c in contenders}

    def mib(name):
        return None if peaks[name] is None else peaks[name] / 2**20

    torch_s = median(times["torch"])
    flops = mode_flops(cell.gates, point, mode)
    records = []
    for b in backend_names:
        ours = f"gatedrnn:{b}"
        gat_s = median(times[ours])
        records.append(Record(
            grid=point.grid, point=point.name, T=point.T, B=point.B, I=point.I, H=point.H,
            cell=cell_name, backend=b, backend_resolved=backends.resolve(b, layers[b], x),
            baseline=f"torch.nn.{cell.baseline.__name__}", mode=mode,
            gatedrnn_ms=gat_s * 1e3, torch_ms=torch_s * 1e3, ratio=gat_s / torch_s,
            gatedrnn_us_per_step=gat_s * 1e6 / point.T, torch_us_per_step=torch_s * 1e6 / point.T,
            flops=flops, gatedrnn_gflops=flops / gat_s / 1e9,
            torch_gflops=mode_flops(cell.baseline_gates, point, mode) / torch_s / 1e9,
            gatedrnn_peak_mib=mib(ours), torch_peak_mib=mib("torch"),
            gatedrnn_times_ms=[t * 1e3 for t in times[ours]],
            torch_times_ms=[t * 1e3 for t in times["torch"]],
        ))
    return records


def run_benchmarks(points: Sequence[GridPoint], cells: Sequence[str] = tuple(CELLS),
                   backend_names: Sequence[str] = ("auto",), modes: Optional[Sequence[str]] = None,
                   repeats: int = 7, warmup: int = 2, memory: bool = True,
                   log: Optional[TextIO] = sys.stderr) -> List[Record]:
    """Every (point, cell, mode) group in turn; ``modes`` filters each point's modes."""
    groups = [(p, c, m) for p in points for c in cells for m in p.modes
              if modes is None or m in modes]
    records: List[Record] = []
    for k, (point, cell, mode) in enumerate(groups, 1):
        start = time.perf_counter()
        group = bench_group(point, cell, mode, backend_names, repeats, warmup, memory)
        records += group
        if log is not None:
            summary = ", ".join(f"{r.backend} {r.gatedrnn_ms:.3g} ms (x{r.ratio:.2f})" for r in group)
            print(f"[{k}/{len(groups)}] {point.grid} {point.name} {cell} {mode}: torch "
                  f"{group[0].torch_ms:.3g} ms, {summary} [{time.perf_counter() - start:.1f} s]",
                  file=log, flush=True)
    return records


# -- reporting ---------------------------------------------------------------------


def machine_info() -> dict:
    """CPU model, torch version, threads, date, load average (1, 5, 15 min: other work
    on the machine makes timings noisy) and the like, for the JSON."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "gatedrnn": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _num(x: Optional[float]) -> str:
    """Three significant digits, no exponent."""
    if x is None:
        return "-"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f}"


COLUMNS = ("grid point", "cell", "backend", "mode", "gatedrnn ms", "torch ms", "ratio",
           "us/step", "GFLOP/s", "peak MiB gatedrnn / torch")


def format_markdown(records: Sequence[Record]) -> str:
    """The records as a Markdown table; us/step and GFLOP/s are gatedrnn's."""
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(COLUMNS))) + "|"]
    for r in records:
        backend = r.backend if r.backend == r.backend_resolved else f"{r.backend} ({r.backend_resolved})"
        cells = [r.point, r.cell, backend, r.mode, _num(r.gatedrnn_ms), _num(r.torch_ms),
                 f"{r.ratio:.2f}", _num(r.gatedrnn_us_per_step), _num(r.gatedrnn_gflops),
                 f"{_num(r.gatedrnn_peak_mib)} / {_num(r.torch_peak_mib)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- command line ------------------------------------------------------------------


def _names(kind: str, choices: Sequence[str]) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        names = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
        unknown = [n for n in names if n not in choices]
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(unknown) or repr(text)}; choose from {', '.join(choices)}")
        return names
    return parse


def _backend_names(text: str) -> List[str]:
    return _names("backend", ["auto"] + backends.available())(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options, shared by ``gatedrnn bench`` and benchmarks/run.py."""
    parser.add_argument("--grid", choices=list(GRIDS), default="training",
                        help="training (both modes), inference (batch 1, forward only), smoke "
                             "(tiny, both modes, for tests), all (training + inference); "
                             "default training")
    parser.add_argument("--points", default=None,
                        help="comma-separated indices into the grid or names such as "
                             "T100-B64-I128-H256 (see --list); default all")
    parser.add_argument("--cells", type=_names("cell", list(CELLS)), default=list(CELLS),
                        help=f"comma-separated, default {','.join(CELLS)}")
    parser.add_argument("--backend", type=_backend_names, default=["auto"],
                        help="gatedrnn backend(s), comma-separated, e.g. auto,reference; default auto")
    parser.add_argument("--modes", type=_names("mode", list(MODES)), default=None,
                        help="restrict to forward and/or forward+backward (default: each "
                             "point's modes)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", default=DEFAULT_JSON, metavar="PATH",
                        help=f"write the results here (default {DEFAULT_JSON})")
    parser.add_argument("--markdown", default=None, metavar="PATH",
                        help="also write the table here")
    parser.add_argument("--list", action="store_true", help="list the grid's points and exit")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed :func:`add_arguments` options."""
    try:
        points = select_points(args.grid, args.points)
    except ValueError as error:
        print(f"gatedrnn bench: {error}", file=sys.stderr)
        return 2
    if args.list:
        for k, p in enumerate(points):
            print(f"{k}\t{p.name}\t{p.grid}\t{', '.join(p.modes)}")
        return 0
    if args.repeats < 1 or args.warmup < 0:
        print("gatedrnn bench: --repeats must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    machine = machine_info()  # the date and load average at the start
    records = run_benchmarks(points, args.cells, args.backend, args.modes,
                             args.repeats, args.warmup, memory=not args.no_memory)
    machine["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    table = format_markdown(records)
    print(table, end="")
    if args.markdown:
        _write(args.markdown, table)
    settings = {key: getattr(args, key) for key in
                ("grid", "points", "cells", "backend", "modes", "repeats", "warmup")}
    settings["memory"] = not args.no_memory
    result = {"machine": machine, "settings": settings,
              "records": [asdict(r) for r in records]}
    _write(args.json, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of benchmarks/run.py (the same options as ``gatedrnn bench``)."""
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
