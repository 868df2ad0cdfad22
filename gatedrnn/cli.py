"""The ``gatedrnn`` command (also ``python -m gatedrnn``)."""

from __future__ import annotations

import argparse
from typing import List, Optional

from . import __version__, backends, bench


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(f"JANET({2}, {args.hidden}) -> MeanPool -> Linear({args.hidden}, 1) on the adding "
          f"problem, T = {args.seq_len}, {args.steps} steps")
    losses = run_demo(steps=args.steps, seq_len=args.seq_len, hidden=args.hidden, seed=args.seed)
    tail = losses[-25:]
    print(f"final mse {sum(tail) / len(tail):.4f} (first step {losses[0]:.4f})")
    return 0


def _backends(args: argparse.Namespace) -> int:
    for name in backends.available():
        print(name)
    return 0


def _bench(args: argparse.Namespace) -> int:
    return bench.run(args)


def _summary(args: argparse.Namespace) -> int:
    from . import layers
    from .inspect.summary import summary_table

    cls = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU, "janet": layers.JANET}[args.cell]
    kwargs = dict(num_layers=args.layers, bidirectional=args.bidirectional)
    if args.proj_size:
        if args.cell != "lstm":
            raise SystemExit(f"gatedrnn summary: --proj-size needs --cell lstm, got --cell {args.cell}")
        kwargs["proj_size"] = args.proj_size
    print(summary_table(cls(args.input_size, args.hidden, **kwargs)))
    return 0


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

    listing = commands.add_parser("backends", help="list the backends available here, fastest first")
    listing.set_defaults(handler=_backends)

    timing = commands.add_parser(
        "bench", help="time the layers against torch.nn (Markdown table on stdout, JSON file)",
        description="Time gatedrnn layers against their torch.nn baselines; see gatedrnn/bench.py.")
    bench.add_arguments(timing)
    timing.set_defaults(handler=_bench)

    summary = commands.add_parser(
        "summary", help="print a Keras-style table of a layer's shapes and parameter counts")
    summary.add_argument("--cell", choices=["rnn", "lstm", "gru", "janet"], required=True)
    summary.add_argument("--input-size", type=int, required=True)
    summary.add_argument("--hidden", type=int, required=True)
    summary.add_argument("--layers", type=int, default=1)
    summary.add_argument("--bidirectional", action="store_true")
    summary.add_argument("--proj-size", type=int, default=0, help="LSTM only")
    summary.set_defaults(handler=_summary)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
