"""The JANET paper's MNIST experiment at the authors' protocol (docs/janet-paper.md):
JANET, the LSTM and the GRU at ``--protocol janet-paper``.

    python benchmarks/janet_paper.py run --epochs 20                # the real-digit tasks, 3 seeds
    python benchmarks/janet_paper.py run --epochs 20 --pfmnist-epochs 10 --jobs 2
    python benchmarks/janet_paper.py run --epochs 1 --limit 200 --runs /tmp/smoke --results /tmp/smoke-results
    python benchmarks/janet_paper.py time                          # seconds per epoch, extrapolated
    python benchmarks/janet_paper.py profile                       # where a training step's time goes

``run`` calls ``gatedrnn compare`` once per task (``smnist5k`` and ``pmnist5k``, seeds
0..2; ``pfmnist``, one seed, when the Fashion-MNIST files are in ``--fashion-dir``), each
process on one thread (``OMP_NUM_THREADS=1``), ``--jobs`` of them at a time, each training
``--runs-per-task`` runs side by side (``compare --jobs``; default 1). The runs go
to ``--runs/<task>``: run the same command again after an interruption and the finished
runs are reused, the others resume from their last epoch; run it again with a larger
``--epochs`` and every run goes on from where it stopped (the preset's learning rate is
constant, so a run extended from 10 to 20 epochs is the run of 20). Each task's
``results.md``, ``results.csv``, ``curves.png`` and every run's ``config.json``,
``metrics.jsonl`` and ``summary.json`` are copied to ``--results/<task>/``, and the
combined table to ``--results/results.md`` and ``results.json``.

``time`` and ``profile`` measure in this process on one thread (set
``OMP_NUM_THREADS=1`` before starting Python: torch reads it once).
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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent
REAL_DIGIT_TASKS = ["smnist5k", "pmnist5k"]
CELLS = ["janet", "lstm", "gru"]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]
#: the test accuracies the paper reports (full MNIST, 55000 training digits, 100 epochs)
PAPER = {"smnist5k": {"janet": 0.990, "lstm": 0.985}, "pmnist5k": {"janet": 0.925, "lstm": 0.910}}


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.backends.cpu.get_cpu_capability()}, Python {platform.python_version()}")


def _fashion_available(directory: str) -> bool:
    return all(any((Path(directory) / (name + suffix)).is_file() for suffix in ("", ".gz"))
               for name in FASHION_FILES)


# -- run --------------------------------------------------------------------------------


def _compare(task: str, seeds: int, epochs: int, args: argparse.Namespace) -> Path:
    out = Path(args.runs) / task
    command = [sys.executable, "-m", "gatedrnn", "compare", "--protocol", "janet-paper", "--task", task,
               "--cells", args.cells, "--seeds", str(seeds), "--epochs", str(epochs), "--out", str(out),
               "--jobs", str(args.runs_per_task)]
    if task == "pfmnist":
        command += ["--data-dir", args.fashion_dir]
    if args.limit:
        command += ["--limit", str(args.limit)]
    print("$", " ".join(command[2:]), flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(Path(args.runs) / f"{task}.log", "a") as log:
        subprocess.run(command, check=True, env=environment, stdout=log, stderr=subprocess.STDOUT)
    destination = Path(args.results) / task
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("results.md", "results.csv", "curves.png"):
        shutil.copy(out / name, destination / name)
    for run in sorted(path for path in out.iterdir() if (path / "summary.json").is_file()):
        (destination / run.name).mkdir(exist_ok=True)
        for name in ("config.json", "metrics.jsonl", "summary.json"):
            shutil.copy(run / name, destination / run.name / name)
    return destination


def _table(results: Path, tasks: List[str], cells: List[str]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{task: {cell: {mean, std, seeds, epochs, seconds_per_epoch}}} from the copied results.csv."""
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    for task in tasks:
        with open(results / task / "results.csv") as handle:
            rows = list(csv.DictReader(handle))
        for cell in cells:
            runs = [row for row in rows if row["cell"] == cell]
            accuracies = [float(row["test_accuracy"]) for row in runs]
            table.setdefault(task, {})[cell] = {
                "mean": statistics.fmean(accuracies),
                "std": statistics.stdev(accuracies) if len(accuracies) > 1 else float("nan"),
                "seeds": len(runs), "epochs": int(runs[0]["epochs"]),
                "best_epoch": statistics.fmean(float(row["best_epoch"]) for row in runs),
                "seconds_per_epoch": statistics.fmean(float(row["seconds_per_epoch"]) for row in runs)}
    return table


def _markdown(table: Dict[str, Dict[str, Dict[str, float]]], command: str) -> str:
    lines = ["# JANET vs LSTM vs GRU at the JANET paper's protocol", "",
             f"Command: `{command}`", "", f"Machine: {_machine()}; one thread per run.", "",
             "| task | cell | test accuracy (mean ± std) | seeds | epochs (paper: 100) | best epoch "
             "| seconds / epoch | paper (full MNIST) |", "|---|---|---|---|---|---|---|---|"]
    for task, cells in table.items():
        for cell, row in cells.items():
            paper = PAPER.get(task, {}).get(cell)
            spread = "n/a" if row["std"] != row["std"] else f"{row['std']:.4f}"
            lines.append(f"| {task} | {cell} | {row['mean']:.4f} ± {spread} | {row['seeds']} | {row['epochs']} "
                         f"| {row['best_epoch']:.1f} | {row['seconds_per_epoch']:.1f} "
                         f"| {'' if paper is None else f'{paper:.3f}'} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    jobs = [(task, args.seeds, args.epochs) for task in args.tasks.split(",")]
    if args.pfmnist_epochs:
        if _fashion_available(args.fashion_dir):
            jobs.append(("pfmnist", 1, args.pfmnist_epochs))
        else:
            print(f"pfmnist skipped: the Fashion-MNIST IDX files are not in {args.fashion_dir} "
                  f"(apt-get install dataset-fashion-mnist, or --fashion-dir DIR)", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # threads only wait on the processes
        for destination in pool.map(lambda job: _compare(*job, args), jobs):
            print(f"written: {destination}", flush=True)
    results = Path(args.results)
    table = _table(results, [task for task, _, _ in jobs], args.cells.split(","))
    command = " ".join(["python benchmarks/janet_paper.py", *sys.argv[1:]])
    (results / "results.md").write_text(_markdown(table, command))
    (results / "results.json").write_text(json.dumps({"command": command, "machine": _machine(),
                                                      "table": table}, indent=1) + "\n")
    print((results / "results.md").read_text())
    return 0


# -- time and profile ---------------------------------------------------------------------


def _preset_model(task_name: str, cell: str, backend: str = "auto"):
    """The preset's model for ``cell`` on ``task_name``, its resolved config and the task."""
    from gatedrnn import tasks
    from gatedrnn.train import TrainConfig
    from gatedrnn.train.runs import new_model

    task = tasks.get(task_name)
    config = TrainConfig(task=task_name, cell=cell, protocol="janet-paper", backend=backend).for_task(task)
    torch.manual_seed(0)
    return new_model(config, task), config, task


def _training_step(model, optimizer, config, x, y) -> None:
    """One step exactly as the trainer takes it at the preset: loss + L2, clip, Adam."""
    from gatedrnn.train import l2_penalty

    model.train()
    loss = F.cross_entropy(model(x), y) + l2_penalty(model, config.l2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
    optimizer.step()


def time_epochs(args: argparse.Namespace) -> int:
    """Seconds per epoch at the preset: ``--steps`` timed training steps (after one
    untimed warm-up step) and one timed pass over the validation split, extrapolated
    to the epoch the trainer runs (train size / batch steps, then validation). Both the
    wall time and the process's CPU time (user + sys): on a shared machine the wall time
    is the CPU time stretched by the other processes' load."""
    from gatedrnn import tasks
    from gatedrnn.train.trainer import reuse_freed_memory

    torch.set_flush_denormal(True)  # as the trainer does on CPU
    reuse_freed_memory()
    splits = tasks.get(args.task).load()
    rows = []
    for cell in args.cells.split(","):
        model, config, task = _preset_model(args.task, cell)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        batch = config.batch_size
        _training_step(model, optimizer, config, splits.train.x[:batch], splits.train.y[:batch])  # warm-up
        wall, cpu = [], []
        for step in range(args.steps):
            chunk = slice((step + 1) * batch, (step + 2) * batch)
            started, started_cpu = time.perf_counter(), time.process_time()
            _training_step(model, optimizer, config, splits.train.x[chunk], splits.train.y[chunk])
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        model.eval()
        started, started_cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for start in range(0, len(splits.validation), batch):
                model(splits.validation.x[start: start + batch])
        validation = (time.perf_counter() - started, time.process_time() - started_cpu)
        steps_per_epoch = -(-len(splits.train) // batch)
        epoch_wall = statistics.median(wall) * steps_per_epoch + validation[0]
        epoch_cpu = statistics.median(cpu) * steps_per_epoch + validation[1]
        rows.append({"cell": cell, "layers": config.layers, "steps_wall_s": wall, "steps_cpu_s": cpu,
                     "validation_wall_s": validation[0], "validation_cpu_s": validation[1],
                     "steps_per_epoch": steps_per_epoch, "epoch_wall_s": epoch_wall, "epoch_cpu_s": epoch_cpu})
        print(f"{args.task} {cell:>6} ({config.layers} layers): step wall {statistics.median(wall):.2f} s / "
              f"cpu {statistics.median(cpu):.2f} s (median of {args.steps}), validation wall {validation[0]:.1f} s / "
              f"cpu {validation[1]:.1f} s -> per epoch ({steps_per_epoch} steps + validation) wall {epoch_wall:.0f} s, "
              f"cpu {epoch_cpu:.0f} s; 100 epochs: cpu {epoch_cpu * 100 / 3600:.1f} h", flush=True)
    record = {"task": args.task, "threads": torch.get_num_threads(), "machine": _machine(),
              "load_average": os.getloadavg(), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


def profile(args: argparse.Namespace) -> int:
    """Where a 784-step training step's time goes, against ``torch.nn.LSTM`` at the same
    sizes (two layers, dropout 0.1 between them, the same read-out) in the same process:
    first ``--rounds`` interleaved rounds of one training step per model (the median
    wall and CPU time per step), then torch.profiler's table of ``--steps`` steps per
    model. ``--cells`` are gatedrnn cells at the preset, ``cell:backend`` to choose the
    backend (``lstm:native``)."""
    from torch import nn
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from gatedrnn.models import RecurrentModel
    from gatedrnn.train.trainer import reuse_freed_memory

    torch.set_flush_denormal(True)  # as the trainer does on CPU
    if args.malloc == "reuse":
        reuse_freed_memory()
    x, y = torch.rand(args.batch, 784, 1), torch.randint(0, 10, (args.batch,))
    candidates = {}
    for name in args.cells.split(","):
        cell, _, backend = name.partition(":")
        model, config, _ = _preset_model("smnist5k", cell, backend or "auto")
        candidates[f"gatedrnn {name}"] = (model, config)
    _, config, _ = _preset_model("smnist5k", "lstm")
    reference = nn.LSTM(1, config.hidden, num_layers=config.layers, batch_first=True, dropout=config.dropout)
    reference.output_size = config.hidden  # what RecurrentModel reads off a layer
    candidates["torch.nn.LSTM"] = (RecurrentModel(reference, 10, head="last", dropout=0.0), config)
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=config.lr)
                  for name, (model, config) in candidates.items()}
    timings: Dict[str, List[tuple]] = {name: [] for name in candidates}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, (model, config) in candidates.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            _training_step(model, optimizers[name], config, x, y)
            if round_:
                timings[name].append((time.perf_counter() - started, time.process_time() - started_cpu))
    baseline = statistics.median(cpu for _, cpu in timings["torch.nn.LSTM"])
    print(f"# one training step, T 784, B {args.batch}, H 128, 2 layers, {torch.get_num_threads()} thread(s), "
          f"malloc {args.malloc}, load average {os.getloadavg()[0]:.1f}; {_machine()}")
    print("| model | wall s / step | CPU s / step | CPU vs torch.nn.LSTM |\n|---|---|---|---|")
    for name, rows in timings.items():
        cpu = statistics.median(c for _, c in rows)
        print(f"| {name} | {statistics.median(w for w, _ in rows):.2f} | {cpu:.2f} | {cpu / baseline:.2f} |")
    for name, (model, config) in candidates.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as recorded:
            for _ in range(args.steps):
                _training_step(model, optimizers[name], config, x, y)
        print(f"\n## {name}: {args.steps} profiled steps", flush=True)
        print(recorded.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run", help="the comparison, via gatedrnn compare")
    running.add_argument("--epochs", type=int, required=True, help="epochs of the real-digit runs (paper: 100)")
    running.add_argument("--pfmnist-epochs", type=int, default=0, help="epochs of the pfmnist runs (0: none)")
    running.add_argument("--tasks", default=",".join(REAL_DIGIT_TASKS))
    running.add_argument("--cells", default=",".join(CELLS))
    running.add_argument("--seeds", type=int, default=3)
    running.add_argument("--jobs", type=int, default=1, help="compare processes at a time (one per task)")
    running.add_argument("--runs-per-task", type=int, default=1,
                         help="runs each compare process trains at a time (its --jobs), one thread each")
    running.add_argument("--limit", type=int, help="only the first N examples of each split (smoke runs)")
    running.add_argument("--fashion-dir", default=FASHION_DIR, help="the Fashion-MNIST IDX files, for pfmnist")
    running.add_argument("--runs", default="runs/janet-paper", help="where the run directories go")
    running.add_argument("--results", default=str(ROOT / "results" / "janet-paper"),
                         help="where the reports are copied")
    running.set_defaults(handler=run)
    timing = commands.add_parser("time", help="seconds per epoch at the preset, extrapolated")
    timing.add_argument("--task", default="smnist5k")
    timing.add_argument("--cells", default=",".join(CELLS))
    timing.add_argument("--steps", type=int, default=3, help="timed training steps per cell")
    timing.add_argument("--json", help="also write the numbers to this file")
    timing.set_defaults(handler=time_epochs)
    profiling = commands.add_parser("profile", help="torch.profiler tables of a training step")
    profiling.add_argument("--cells", default="janet,lstm,gru,lstm:native")
    profiling.add_argument("--batch", type=int, default=200)
    profiling.add_argument("--steps", type=int, default=2, help="profiled steps per model")
    profiling.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    profiling.add_argument("--rows", type=int, default=25)
    profiling.add_argument("--malloc", choices=("reuse", "default"), default="reuse",
                           help="reuse: as the trainer (gatedrnn.train.trainer.reuse_freed_memory)")
    profiling.set_defaults(handler=profile)
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
