"""Several cells and seeds on one task: the runs, a results table and learning curves.

``gatedrnn compare`` is a thin wrapper around :func:`compare`. Each (cell, seed) run
lives in ``out/<cell>-seed<k>/`` (a normal run directory); a finished run is reused and
an interrupted one resumed, so a comparison can be stopped and restarted at will.
Written next to the runs:

* ``results.csv``: one row per run;
* ``results.md``: mean +- sample standard deviation over the seeds of the test metric,
  seconds per epoch and parameter count, one row per cell, with the command and the
  machine;
* ``curves.png``: training loss and validation metric against epoch, each cell's
  curve averaged over its seeds.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .. import tasks
from .config import TrainConfig
from .trainer import read_metrics, train

__all__ = ["compare", "results_table"]


def _mean_std(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    spread = f"{statistics.stdev(values):.4f}" if len(values) > 1 else "n/a"
    return f"{mean:.4f} ± {spread}"


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def results_table(task_name: str, summaries: List[Dict[str, Any]], command: str = "") -> str:
    """The Markdown report of a comparison (one row per cell, seeds aggregated)."""
    metric = summaries[0]["metric"]
    lines = [f"# {task_name}: test {metric} by cell", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {_machine()}.", "",
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


def compare(task: str, cells: Sequence[str], seeds: int, out, epochs: Optional[int] = None,
            command: str = "", progress: bool = True, **options: Any) -> List[Dict[str, Any]]:
    """Train every cell with seeds 0 .. ``seeds``-1 on ``task``; write the reports to ``out``.

    ``options`` are further :class:`TrainConfig` fields (``hidden``, ``lr``, ``limit``, ...).
    Returns the runs' summaries, each with its ``seed``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if not cells:
        raise ValueError("cells is empty")
    out = Path(out)
    summaries: List[Dict[str, Any]] = []
    for cell in cells:
        for seed in range(seeds):
            config = TrainConfig(task=task, cell=cell, seed=seed, epochs=epochs, **options)
            summary = train(config, out / f"{cell}-seed{seed}", resume=True, progress=False)
            summaries.append({**summary, "seed": seed})
            if progress:
                metric = summary["metric"]
                print(f"{cell:>12} seed {seed}: test {metric} {summary[f'test_{metric}']:.4f}  "
                      f"({summary['seconds']:.1f} s, {summary['parameters']:,} parameters)", flush=True)
    metric = summaries[0]["metric"]
    with open(out / "results.csv", "w", newline="") as handle:
        columns = ["cell", "seed", f"test_{metric}", "best_epoch", f"best_validation_{metric}",
                   "epochs", "seconds", "seconds_per_epoch", "parameters", "backend"]
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summaries)
    (out / "results.md").write_text(results_table(task, summaries, command))
    from ..inspect.plots import learning_curves

    curves = {cell: _mean_curve([read_metrics(out / f"{cell}-seed{seed}") for seed in range(seeds)])
              for cell in cells}
    learning_curves(curves, metric, out / "curves.png")
    return summaries
