"""The ``gatedrnn`` command (also ``python -m gatedrnn``)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

from . import __version__, backends, bench
from .models import CELLS, HEADS, WEIGHT_INITS

BACKEND_CHOICES = ("auto", "torch", "native", "fused", "reference")
#: what ``gatedrnn compare`` runs with no arguments (the Quickstart's main job)
COMPARE_DEFAULTS = {"task": "mnist1d", "cells": "lstm,gru,janet", "seeds": 1}
#: epochs of the short run ``gatedrnn inspect --task T --cell C`` trains (MNIST-1D JANET: ~94%)
INSPECT_EPOCHS = 10


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(f"JANET({2}, {args.hidden}) -> MeanPool -> Linear({args.hidden}, 1) on the adding "
          f"problem, T = {args.seq_len}, {args.steps} steps")
    losses = run_demo(steps=args.steps, seq_len=args.seq_len, hidden=args.hidden, seed=args.seed)
    tail = losses[-25:]
    print(f"final mse {sum(tail) / len(tail):.4f} (first step {losses[0]:.4f})")
    return 0


def _backends(args: argparse.Namespace) -> int:
    from .backends.native import build

    for name in backends.available():
        print(name)
    reason = backends.native.unavailable_reason()
    compiler = build.compiler()
    try:
        described = f"{build.compiler_identity(compiler)} ({compiler})" if compiler else build.no_compiler()
        built = [cell for cell in build.SOURCES if build.cached(cell)]
    except build.BuildError as error:  # a compiler that does not run
        described, built = str(error), []
    print(f"\nnative kernels: {build.cache_dir()}")
    print(f"  compiler: {described}; CPU capability: {build.capability()}"
          + (f"; unavailable: {reason}" if reason else ""))
    print(f"  built: {', '.join(built) or 'none'}")
    rest = [cell for cell in build.SOURCES if cell not in built]
    if rest:
        print(f"  not built: {', '.join(rest)} (built on first use, or now by gatedrnn build)")
    return 0


def _build(args: argparse.Namespace) -> int:
    """Compile the native kernels of the cells asked for (all by default) into the cache."""
    from concurrent.futures import ThreadPoolExecutor

    from .backends.native import build

    cells = [backends.native.op_name(cell) for cell in (args.cells.split(",") if args.cells else build.SOURCES)]
    unknown = [cell for cell in cells if cell not in build.SOURCES]
    if unknown:
        return _fail("build", ValueError(f"no native kernel for {', '.join(unknown)}; cells: "
                                         f"{', '.join(build.SOURCES)}"), 2)

    def build_one(cell):
        was_cached, start = build.cached(cell) is not None, time.perf_counter()
        try:
            path = build.library(cell, quiet=True)
        except build.BuildError as error:
            return cell, f"failed: {error}", False
        done = "cached" if was_cached else f"built in {time.perf_counter() - start:.0f} s"
        return cell, f"{done} ({path})", True

    print(f"gatedrnn build: {len(cells)} native kernel(s) for {build.capability()} into {build.cache_dir()}, "
          f"{args.jobs} at a time", flush=True)
    ok = True
    with ThreadPoolExecutor(args.jobs) as pool:  # each build is a compiler process
        for cell, outcome, success in pool.map(build_one, cells):
            print(f"  {cell}: {outcome}", flush=True)
            ok &= success
    if ok:  # compiled beside the first kernel that needed it
        print(f"  and the op registration library every cell's kernel needs: {build.registrar()}")
    return 0 if ok else 1


def _bench(args: argparse.Namespace) -> int:
    return bench.run(args)


def _summary(args: argparse.Namespace) -> int:
    from .inspect.summary import summary_table
    from .models import RECURRENT

    cls = RECURRENT[args.cell]
    kwargs = dict(num_layers=args.layers, bidirectional=args.bidirectional)
    if args.proj_size:
        if args.cell != "lstm":
            raise SystemExit(f"gatedrnn summary: --proj-size needs --cell lstm, got --cell {args.cell}")
        kwargs["proj_size"] = args.proj_size
    print(summary_table(cls(args.input_size, args.hidden, **kwargs)))
    return 0


def _fail(command: str, error: Exception, status: int) -> int:
    print(f"gatedrnn {command}: error: {error}", file=sys.stderr)
    return status


def _run_training(command: str, job) -> int:
    """Run ``job`` and turn the errors users can cause into a message and an exit status
    (2 for a bad option, 1 for a run that cannot start or go on), never a traceback."""
    from .tasks import DataUnavailable
    from .train import TrainingError

    try:
        job()
    except (ValueError, TypeError) as error:
        return _fail(command, error, 2)
    except (DataUnavailable, TrainingError) as error:
        return _fail(command, error, 1)
    return 0


def _run_on_run_dir(command: str, job) -> int:
    """:func:`_run_training` for a command that reads a run directory: a missing directory
    or file of it (config.json, the weights) is exit status 1 with its message."""
    try:
        return _run_training(command, job)
    except FileNotFoundError as error:
        return _fail(command, error, 1)


def _config_options(args: argparse.Namespace) -> dict:
    names = ("hidden", "layers", "head", "dropout", "chrono", "zoneout", "recurrent_dropout",
             "output_dropout", "weight_init", "forget_bias_init", "chrono_t_max",
             "batch_size", "lr", "optimizer",
             "schedule", "clip", "weight_decay", "l2", "best_by", "protocol",
             "data_dir", "seq_len", "delay", "limit",
             "device", "backend")
    return {name: getattr(args, name) for name in names}


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(task=args.task, cell=args.cell, epochs=args.epochs, seed=args.seed,
                         **_config_options(args))
    out = args.out or f"runs/{args.task}-{args.cell}-seed{args.seed}"

    def job() -> None:
        summary = train(config, out, resume=args.resume, tensorboard=args.tensorboard,
                        progress=not args.quiet)
        if os.environ.get("RANK", "0") != "0":
            return  # under torchrun, rank 0 reports
        metric = summary["metric"]
        baselines = "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in summary["baselines"].items())
        print(f"test {metric} {summary[f'test_{metric}']:.4f} (best validation epoch "
              f"{summary['best_epoch']}{baselines}); {summary['seconds']:.1f} s; run in {out}")

    return _run_training("train", job)


def _compare(args: argparse.Namespace) -> int:
    from .train.compare import compare

    cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = [cell for cell in cells if cell not in CELLS]
    if unknown or not cells:
        return _fail("compare", ValueError(
            f"--cells takes a comma-separated list of {', '.join(CELLS)}; got {args.cells!r}"), 2)
    out = args.out or f"runs/compare-{args.task}"
    command = " ".join(["gatedrnn", *map(shlex.quote, args.argv)])

    def job() -> None:
        compare(args.task, cells, args.seeds, out, epochs=args.epochs, command=command,
                jobs=os.cpu_count() or 1 if args.jobs is None else args.jobs, **_config_options(args))
        print((Path(out) / "results.md").read_text())
        print(f"written: {out}/results.md, results.csv, curves.png")

    return _run_training("compare", job)


def _inspect(args: argparse.Namespace) -> int:
    """``gatedrnn inspect RUN_DIR`` or ``gatedrnn inspect --task T --cell C``: report.html."""
    fresh = args.task is not None or args.cell is not None
    if args.run_dir is not None and fresh:
        return _fail("inspect", ValueError("give either RUN_DIR or --task and --cell, not both"), 2)
    if args.run_dir is None and not fresh:
        return _fail("inspect", ValueError("give RUN_DIR (a gatedrnn train directory) or --task "
                                           "and --cell"), 2)
    if fresh and (args.task is None or args.cell is None):
        return _fail("inspect", ValueError("--task and --cell go together: give both"), 2)
    if not fresh and args.epochs is not None:
        return _fail("inspect", ValueError("--epochs trains a fresh run: it needs --task and --cell, "
                                           "not RUN_DIR"), 2)
    if args.examples < 1:
        return _fail("inspect", ValueError(f"--examples must be >= 1, got {args.examples}"), 2)
    from .inspect.report import inspect_fresh, inspect_run

    def job() -> None:
        if fresh:
            out = args.out or f"runs/inspect-{args.task}-{args.cell}"
            epochs = INSPECT_EPOCHS if args.epochs is None else args.epochs
            print(f"training {args.cell} on {args.task} for {epochs} epochs in {Path(out) / 'run'}")
            report = inspect_fresh(args.task, args.cell, out, epochs=epochs, examples=args.examples)
        else:
            report = inspect_run(args.run_dir, out=args.out, examples=args.examples)
        print(f"written: {report}")

    return _run_on_run_dir("inspect", job)


def _generate(args: argparse.Namespace) -> int:
    """``gatedrnn generate RUN_DIR --prompt P``: the prompt and what the model writes after it."""
    from .generate import generate

    def job() -> None:
        text = generate(args.run_dir, prompt=args.prompt, length=args.length,
                        temperature=args.temperature, seed=args.seed)
        print(args.prompt + text)

    return _run_on_run_dir("generate", job)


def _explore(args: argparse.Namespace) -> int:
    """``gatedrnn explore RUN_DIR``: the interactive page's path."""
    from .inspect.explore import explore

    def job() -> None:
        print(explore(args.run_dir, out=args.out, steps=args.steps))

    return _run_on_run_dir("explore", job)


def _tasks(args: argparse.Namespace) -> int:
    from . import tasks

    print(f"{'task':<16} {'steps':>5} {'inputs':>6} {'outputs':>7} {'metric':<9} description")
    for name in tasks.names():
        task = tasks.get(name)
        print(f"{name:<16} {task.seq_len:>5} {task.input_size:>6} {task.output_size:>7} "
              f"{task.metric:<9} {task.description}")
    return 0


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``compare``: unset ones take the protocol's settings,
    then the task's defaults."""
    from .train import BEST_BY, OPTIMIZERS, SCHEDULES
    from .train.protocols import PROTOCOLS, pixel_task_names

    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="a published experiment's settings for every option left unset "
                             f"(janet-paper: the JANET paper's MNIST runs, tasks {', '.join(pixel_task_names())}; "
                             "docs/janet-paper.md)")
    model = parser.add_argument_group("model (unset: the protocol's, else the task's default)")
    model.add_argument("--hidden", type=int, help="hidden units (Transformer: model width)")
    model.add_argument("--layers", type=int, help="stacked layers")
    model.add_argument("--head", choices=HEADS, help="last step or mean over time")
    model.add_argument("--dropout", type=float, help="between layers and before the read-out")
    model.add_argument("--chrono", action="store_true",
                       help="chrono-initialise the LSTM (JANET always is), t_max = sequence length")
    model.add_argument("--zoneout", type=float, default=0.0,
                       help="zoneout rate on the recurrent state (lstm, gru, janet, mgu, layernorm-lstm)")
    model.add_argument("--recurrent-dropout", type=float, default=0.0,
                       help="variational dropout on h in the recurrent products (same cells)")
    model.add_argument("--output-dropout", type=float,
                       help="dropout before the read-out only (unset: --dropout's rate)")
    model.add_argument("--weight-init", choices=WEIGHT_INITS,
                       help="torch: each module's own; glorot: Glorot-uniform weights, zero biases (TF's)")
    model.add_argument("--forget-bias-init", type=float,
                       help="initial forget-gate bias of the lstm (without --chrono)")
    model.add_argument("--chrono-t-max", type=float,
                       help="t_max of chrono initialisation, b_f ~ log U(1, t_max - 1) (unset: the sequence length)")
    fit = parser.add_argument_group("optimisation (unset: the protocol's, else the task's default)")
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--batch-size", type=int, help="global batch (split over torchrun processes)")
    fit.add_argument("--lr", type=float, help="peak learning rate")
    fit.add_argument("--optimizer", choices=OPTIMIZERS)
    fit.add_argument("--schedule", choices=SCHEDULES, help="per-step cosine decay to 0, or constant")
    fit.add_argument("--clip", type=float, help="gradient-norm clipping (0: off)")
    fit.add_argument("--weight-decay", type=float, help="the optimiser's weight decay, on every parameter")
    fit.add_argument("--l2", type=float,
                     help="add l2/2 * sum(w^2) over the non-bias weights to the loss (as TF's l2_loss)")
    fit.add_argument("--best-by", choices=BEST_BY,
                     help="keep the weights of the best validation metric or of the lowest validation loss")
    data = parser.add_argument_group("data and machine")
    data.add_argument("--data-dir", help="IDX directory of the (Fashion-)MNIST tasks")
    data.add_argument("--seq-len", type=int, help="T of the adding problem (default 200); the "
                                                  "truncated-BPTT length of pysource (default 100)")
    data.add_argument("--delay", type=int, help="delay of the copy task (default 100)")
    data.add_argument("--limit", type=int, help="use only the first N examples of each split")
    data.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    data.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                      help="recurrent backend (auto: the fastest available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatedrnn", description="Gated recurrent networks for PyTorch.")
    parser.add_argument("--version", action="version", version=f"gatedrnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train JANET on the adding problem and print the loss")
    demo.add_argument("--steps", type=int, default=400)
    demo.add_argument("--seq-len", type=int, default=50)
    demo.add_argument("--hidden", type=int, default=32)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)

    listing = commands.add_parser("backends", help="list the backends available here, fastest first, "
                                                   "and the native kernels built")
    listing.set_defaults(handler=_backends)

    building = commands.add_parser(
        "build", help="compile the native kernels ahead of their first use (Docker images, CI)",
        description="Compile the native C++ kernels of the given cells (default: all) for this CPU "
                    "into the cache ($TORCH_EXTENSIONS_DIR/gatedrnn); see docs/native.md.")
    building.add_argument("--cells", help="comma-separated cells (default: all), e.g. janet,lstm")
    building.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                          help="compilers run at once (default: the CPU count)")
    building.set_defaults(handler=_build)

    timing = commands.add_parser(
        "bench", help="time the layers against torch.nn (Markdown table on stdout, JSON file)",
        description="Time gatedrnn layers against their torch.nn baselines; see gatedrnn/bench.py.")
    bench.add_arguments(timing)
    timing.set_defaults(handler=_bench)

    summary = commands.add_parser(
        "summary", help="print a Keras-style table of a layer's shapes and parameter counts")
    summary.add_argument("--cell", choices=["rnn", "lstm", "gru", "janet", "mgu", "indrnn", "layernorm-lstm",
                                            "mingru", "minlstm"],
                         required=True)
    summary.add_argument("--input-size", type=int, required=True)
    summary.add_argument("--hidden", type=int, required=True)
    summary.add_argument("--layers", type=int, default=1)
    summary.add_argument("--bidirectional", action="store_true")
    summary.add_argument("--proj-size", type=int, default=0, help="LSTM only")
    summary.set_defaults(handler=_summary)

    from . import tasks

    training = commands.add_parser(
        "train", help="train one model on one task (run directory with metrics and checkpoints)",
        description="Train a model on a task; see gatedrnn/train/trainer.py for the run directory. "
                    "Under torchrun it trains with DistributedDataParallel.")
    training.add_argument("--task", choices=tasks.names(), required=True)
    training.add_argument("--cell", choices=CELLS, required=True)
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--out", help="run directory (default runs/TASK-CELL-seedN); refused if it "
                                        "exists, unless --resume")
    training.add_argument("--resume", action="store_true", help="continue the run in --out")
    training.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars")
    training.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    _add_training_options(training)
    training.set_defaults(handler=_train)

    comparing = commands.add_parser(
        "compare", help="train several cells with several seeds; results.md, results.csv, curves.png",
        description="Compare cells on one task: mean +- std over seeds of the test metric. With no "
                    "arguments: MNIST-1D, lstm, gru and janet, one seed.")
    comparing.add_argument("--task", choices=tasks.names(), default=COMPARE_DEFAULTS["task"])
    comparing.add_argument("--cells", default=COMPARE_DEFAULTS["cells"],
                           help=f"comma-separated, from {', '.join(CELLS)}")
    comparing.add_argument("--seeds", type=int, default=COMPARE_DEFAULTS["seeds"],
                           help="seeds 0..N-1 per cell")
    comparing.add_argument("--out", help="directory of the runs and reports (default runs/compare-TASK); "
                                         "finished runs in it are reused")
    comparing.add_argument("--jobs", type=int,
                           help="runs that train at a time, each in its own process with its share of "
                                "the cores (default: one per CPU; 1 runs them one after the other)")
    _add_training_options(comparing)
    comparing.set_defaults(handler=_compare)

    inspecting = commands.add_parser(
        "inspect", help="an HTML report of a run: gates, states, gradient flow, metrics",
        description="Write report.html (figures embedded, also as PNG files beside it) about the "
                    "run in RUN_DIR, or about a short run trained now with --task and --cell.")
    inspecting.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                            help="a directory written by gatedrnn train")
    inspecting.add_argument("--task", choices=tasks.names(), help="train a short run on this task")
    inspecting.add_argument("--cell", choices=CELLS, help="... with this cell")
    inspecting.add_argument("--epochs", type=int, help=f"epochs of that short run (default {INSPECT_EPOCHS})")
    inspecting.add_argument("--out", help="report directory (default RUN_DIR/inspect, or "
                                          "runs/inspect-TASK-CELL with --task)")
    inspecting.add_argument("--examples", type=int, default=8, help="test sequences to record")
    inspecting.set_defaults(handler=_inspect)

    generating = commands.add_parser(
        "generate", help="sample text from a trained character-level language model",
        description="Feed --prompt to the best weights of the language-model run in RUN_DIR, then "
                    "sample --length characters; see gatedrnn/generate.py.")
    generating.add_argument("run_dir", metavar="RUN_DIR", help="a gatedrnn train directory (task pysource)")
    generating.add_argument("--prompt", default="", help="text to start from (default: a new line)")
    generating.add_argument("--length", type=int, default=400, help="characters to write")
    generating.add_argument("--temperature", type=float, default=1.0,
                            help="softmax temperature (0: always the most likely character)")
    generating.add_argument("--seed", type=int, help="seed of the draws (the same text every time)")
    generating.set_defaults(handler=_generate)

    exploring = commands.add_parser(
        "explore", help="an interactive HTML page: units, gates and states on held-out data",
        description="Record the best weights of the run in RUN_DIR on held-out data and write one "
                    "self-contained HTML page to explore it (see gatedrnn/inspect/explore.py); "
                    "prints the page's path.")
    exploring.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by gatedrnn train")
    exploring.add_argument("--out", help="the page to write (default RUN_DIR/explore.html)")
    exploring.add_argument("--steps", type=int,
                           help="steps to record: characters of the test text, or test sequences "
                                "laid end to end (default 4000)")
    exploring.set_defaults(handler=_explore)

    listing_tasks = commands.add_parser("tasks", help="list the tasks")
    listing_tasks.set_defaults(handler=_tasks)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given, for the reports that quote it
    return args.handler(args)
