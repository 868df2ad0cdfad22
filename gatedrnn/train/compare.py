"""Several cells and seeds on one task: the runs, a results table and learning curves.

``gatedrnn compare`` is a thin wrapper around :func:`compare`. Each (cell, seed) run
lives in ``out/<cell>-seed<k>/`` (a normal run directory); a finished run is reused and
an interrupted one resumed, so a comparison can be stopped and restarted at will.
The runs are independent: with ``jobs`` > 1 they train side by side, each in a process
of its own with its share of the cores (small recurrent models keep one core busy with
Python and small GEMMs, not two), the most expensive cells first. Written next to the
runs:

* ``results.csv``: one row per run;
* ``results.md``: mean +- sample standard deviation over the seeds of the test metric,
  seconds per epoch and parameter count, one row per cell, with the command and the
  machine;
* ``curves.png``: training loss and validation metric against epoch, each cell's
  curve averaged over its seeds.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .. import tasks
from ..cells import CELL_SPECS
from .config import TrainConfig
from .trainer import read_metrics, train

__all__ = ["compare", "results_table"]


def _mean_std(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    spread = f"{statistics.stdev(values):.4f}" if len(values) > 1 else "n/a"
    return f"{mean:.4f} ± {spread}"


def _machine(jobs: int = 1) -> str:
    threads = (f"{jobs} runs at a time, {max(1, (os.cpu_count() or 1) // jobs)} thread(s) each" if jobs > 1
               else f"{torch.get_num_threads()} threads")
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({threads}), Python {platform.python_version()}")


def results_table(task_name: str, summaries: List[Dict[str, Any]], command: str = "", jobs: int = 1) -> str:
    """The Markdown report of a comparison (one row per cell, seeds aggregated); ``jobs``:
    how many runs trained at a time."""
    metric = summaries[0]["metric"]
    lines = [f"# {task_name}: test {metric} by cell", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {_machine(jobs)}.", "",
              f"| cell | test {metric} (mean ± std) | seeds | best epoch | seconds / epoch | parameters |",
              "|---|---|---|---|---|---|"]
    for cell in dict.fromkeys(s["cell"] for s in summaries):
        runs = [s for s in summaries if s["cell"] == cell]
        lines.append(
            f"| {cell} | {_mean_std([r[f'test_{metric}'] for r in runs])} | {len(runs)} "
            f"| {statistics.fmean(r['best_epoch'] for r in runs):.1f} "
            f"| {statistics.fmean(r['seconds_per_epoch'] for r in runs):.2f} | {runs[0]['parameters']:,} |")
    baselines = summaries[0].get("baselines") or {}
    anchors = tasks.REGISTRY[task_name].anchors
    if baselines or anchors:
        lines.append("")
    for name, value in baselines.items():
        lines.append(f"Baseline {name.replace('_', ' ')}: {value:.4f}.")
    if anchors:
        lines.append("Published anchors: " + ", ".join(f"{k} {v:.0%}" for k, v in anchors.items()) + ".")
    return "\n".join(lines) + "\n"


def _mean_curve(runs: List[List[Dict[str, Any]]]) -> List[Dict[str, float]]:
    """The rows of several runs averaged epoch by epoch (over the epochs all of them have)."""
    epochs = min(len(rows) for rows in runs)
    return [{key: statistics.fmean(rows[k][key] for rows in runs) for key in runs[0][k]}
            for k in range(epochs)]


def _cost(cell: str) -> int:
    """A cell's relative cost per step at equal hidden size: its gate blocks (the
    Transformer, no recurrent cell, counts as 4), to start the longest runs first when
    they train side by side."""
    spec = CELL_SPECS.get(cell)
    return 4 if spec is None else len(spec.gates)


def _train_run(config: TrainConfig, out: Path, threads: Optional[int]) -> Dict[str, Any]:
    """One run of a comparison, in this process or in a worker with ``threads`` threads."""
    if threads is not None:
        torch.set_num_threads(threads)
    return {**train(config, out, resume=True, progress=False), "seed": config.seed}


def compare(task: str, cells: Sequence[str], seeds: int, out, epochs: Optional[int] = None,
            command: str = "", progress: bool = True, jobs: int = 1, **options: Any) -> List[Dict[str, Any]]:
    """Train every cell with seeds 0 .. ``seeds``-1 on ``task``; write the reports to ``out``.

    ``options`` are further :class:`TrainConfig` fields (``hidden``, ``lr``, ``limit``, ...).
    ``jobs`` runs train at a time, each in a process of its own with
    ``max(1, cpu_count // jobs)`` threads (``1``: one after the other, in this process).
    Returns the runs' summaries (each with its ``seed``) in the order cell by cell.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not cells:
        raise ValueError("cells is empty")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    out = Path(out)
    configs = [TrainConfig(task=task, cell=cell, seed=seed, epochs=epochs, **options)
               for cell in cells for seed in range(seeds)]

    def report(summary: Dict[str, Any]) -> None:
        if progress:
            metric = summary["metric"]
            print(f"{summary['cell']:>12} seed {summary['seed']}: test {metric} {summary[f'test_{metric}']:.4f}  "
                  f"({summary['seconds']:.1f} s, {summary['parameters']:,} parameters)", flush=True)

    jobs = min(jobs, len(configs))
    if jobs == 1:
        summaries = []
        for config in configs:
            summaries.append(_train_run(config, out / f"{config.cell}-seed{config.seed}", None))
            report(summaries[-1])
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # spawn, not fork: a forked child of a process whose OpenMP pool ran can hang
        context = multiprocessing.get_context("spawn")
        by_cost = sorted(configs, key=lambda c: -_cost(c.cell))
        found: Dict[Any, Dict[str, Any]] = {}
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_train_run, config, out / f"{config.cell}-seed{config.seed}", threads):
                       (config.cell, config.seed) for config in by_cost}
            for future in as_completed(futures):
                found[futures[future]] = future.result()
                report(found[futures[future]])
        summaries = [found[(config.cell, config.seed)] for config in configs]
    metric = summaries[0]["metric"]
    with open(out / "results.csv", "w", newline="") as handle:
        columns = ["cell", "seed", f"test_{metric}", "best_epoch", f"best_validation_{metric}",
                   "epochs", "seconds", "seconds_per_epoch", "parameters", "backend"]
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summaries)
    (out / "results.md").write_text(results_table(task, summaries, command, jobs))
    from ..inspect.plots import learning_curves

    curves = {cell: _mean_curve([read_metrics(out / f"{cell}-seed{seed}") for seed in range(seeds)])
              for cell in cells}
    learning_curves(curves, metric, out / "curves.png")
    return summaries
