"""The README's results table: ``gatedrnn compare`` with 3 seeds for every cell on the
small tasks, then one table (cells x tasks) as Markdown and JSON.

    python benchmarks/train_table.py                      # everything (about 30 min, 2 cores)
    python benchmarks/train_table.py --tasks mnist1d --seeds 1
    python benchmarks/train_table.py --name cells --tasks mnist1d,pdigits,adding \
        --cells janet,mgu,mingru,minlstm,indrnn,layernorm-lstm,lstm,gru   # the cell comparison

Runs go to ``runs/bench/<task>`` (reused when the script is run again); each task's
``results.md``, ``results.csv`` and ``curves.png`` are copied to
``benchmarks/results/<name>/<task>/``, the combined table to
``benchmarks/results/<name>.md`` and ``<name>.json`` (``--name``, default ``train``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
TASKS = ["mnist1d", "mnist1d-shuffle", "digits", "pdigits", "adding"]
CELLS = ["rnn", "lstm", "gru", "janet", "transformer"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", default="runs/bench", help="where the run directories go")
    parser.add_argument("--name", default="train", help="name of the results table and folder")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    table = {}
    for task in tasks:
        out = Path(args.runs) / task
        command = [sys.executable, "-m", "gatedrnn", "compare", "--task", task, "--cells", args.cells,
                   "--seeds", str(args.seeds), "--out", str(out)]
        print("$", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
        destination = ROOT / "results" / args.name / task
        destination.mkdir(parents=True, exist_ok=True)
        for name in ("results.md", "results.csv", "curves.png"):
            shutil.copy(out / name, destination / name)
        with open(out / "results.csv") as handle:
            rows = list(csv.DictReader(handle))
        metric = next(key for key in rows[0] if key.startswith("test_"))
        for cell in args.cells.split(","):
            values = [float(row[metric]) for row in rows if row["cell"] == cell]
            seconds = [float(row["seconds_per_epoch"]) for row in rows if row["cell"] == cell]
            table.setdefault(cell, {})[task] = {
                "metric": metric, "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "seeds": len(values), "seconds_per_epoch": statistics.fmean(seconds),
                "parameters": int(next(row["parameters"] for row in rows if row["cell"] == cell)),
            }
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"Python {platform.python_version()}")
    (ROOT / "results" / f"{args.name}.json").write_text(json.dumps({"machine": machine, "table": table}, indent=1) + "\n")
    header = "| cell | " + " | ".join(tasks) + " |"
    lines = [f"Test metric, mean ± std over {args.seeds} seeds (accuracy; adding: MSE, lower is better); "
             f"seconds per epoch in brackets. Machine: {machine}.", "", header,
             "|---" * (len(tasks) + 1) + "|"]
    for cell, by_task in table.items():
        cells = []
        for task in tasks:
            entry = by_task[task]
            spread = f" ± {entry['std']:.4f}" if entry["std"] is not None else ""
            cells.append(f"{entry['mean']:.4f}{spread} ({entry['seconds_per_epoch']:.2f} s)")
        lines.append(f"| {cell} | " + " | ".join(cells) + " |")
    (ROOT / "results" / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
