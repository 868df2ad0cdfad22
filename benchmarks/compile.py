"""What torch.compile buys a whole small model with a gatedrnn layer (prints Markdown and JSON).

The model is ``nn.Sequential(nn.Embedding(V, E), layer, gr.MeanPool, nn.Linear(H, C))``,
one per cell, batch-first, float32 on the CPU. Each is timed eager and compiled
(``torch.compile(model, fullgraph=True)``, inductor unless ``--backend``), for inference
(forward under ``no_grad``) and for a training step (forward, loss, backward), interleaved
in one process with :func:`gatedrnn.bench.time_interleaved`. The compile itself
(the first call) is timed apart. The table gives medians and eager / compiled (above 1:
compiling is faster). ``auto``'s backend is the eager one; compiled, a plain LSTM runs on
the native kernel instead of torch's own (which inductor cannot lower), every other cell
on the same backend.

Example::

    python benchmarks/compile.py --cells gru janet --T 64 --B 32 --repeats 10 --threads 1
"""

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

try:
    import gatedrnn as gr
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import gatedrnn as gr
from gatedrnn.bench import Contender, machine_info, median, time_interleaved

LAYERS = {"lstm": gr.LSTM, "gru": gr.GRU, "janet": gr.JANET, "mgu": gr.MGU, "indrnn": gr.IndRNN,
          "layernorm-lstm": gr.LayerNormLSTM, "mingru": gr.MinGRU, "minlstm": gr.MinLSTM,
          "lstm-peepholes": lambda i, h, **kw: gr.LSTM(i, h, peepholes=True, **kw)}


def model(cell: str, vocab: int, embed: int, hidden: int, classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(vocab, embed), LAYERS[cell](embed, hidden, batch_first=True),
                         gr.MeanPool(batch_first=True), nn.Linear(hidden, classes))


def contenders(cells, args):
    """-> (Contenders, compile seconds per name): eager and compiled, inference and
    training, per cell, on the same tokens."""
    tokens = torch.randint(0, args.vocab, (args.B, args.T))
    targets = torch.randint(0, args.classes, (args.B,))
    result, compile_seconds = [], {}
    for cell in cells:
        eager = model(cell, args.vocab, args.E, args.H, args.classes)
        compiled = torch.compile(eager, fullgraph=True, backend=args.backend)
        for mode, module in (("eager", eager), ("compiled", compiled)):
            def infer(module=module):
                with torch.no_grad():
                    module(tokens)

            def train(module=module):
                nn.functional.cross_entropy(module(tokens), targets).backward()

            def reset(module=eager):
                module.zero_grad(set_to_none=True)

            if mode == "compiled":  # the first calls compile: timed apart, not in the rounds
                for kind, run in (("inference", infer), ("training", train)):
                    start = time.perf_counter()
                    run()
                    compile_seconds[f"{cell} {kind}"] = time.perf_counter() - start
            result += [Contender(f"{cell} inference {mode}", infer),
                       Contender(f"{cell} training {mode}", train, reset)]
    return result, compile_seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "janet", "mingru"], choices=sorted(LAYERS))
    parser.add_argument("--T", type=int, default=64)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--E", type=int, default=32)
    parser.add_argument("--H", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    # Every model's forward is nn.Sequential.forward: one code object, whose compiled
    # graphs (per model and grad mode) would pass dynamo's default limit of 8 and fall back.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(args.cells))
    machine = machine_info()
    runs, compile_seconds = contenders(args.cells, args)
    times = time_interleaved(runs, args.repeats, args.warmup)
    rows = []
    for cell in args.cells:
        for kind in ("inference", "training"):
            eager, compiled = (median(times[f"{cell} {kind} {mode}"]) for mode in ("eager", "compiled"))
            rows.append({"cell": cell, "kind": kind, "eager_ms": 1e3 * eager, "compiled_ms": 1e3 * compiled,
                         "speedup": eager / compiled, "compile_s": compile_seconds[f"{cell} {kind}"],
                         "backend": gr.backends.resolve("auto", model(cell, 2, args.E, args.H, 2)[1],
                                                        torch.randn(args.T, args.B, args.E))})

    print(f"Embedding({args.vocab}, {args.E}) -> layer(H={args.H}) -> MeanPool -> Linear({args.classes}), "
          f"B={args.B} T={args.T}, float32, {torch.get_num_threads()} thread(s), torch.compile "
          f"backend={args.backend}, median of {args.repeats} after {args.warmup} warm-up\n")
    print("| cell | auto's backend | step | eager ms | compiled ms | eager / compiled | compile s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['cell']} | {row['backend']} | {row['kind']} | {row['eager_ms']:.2f} | "
              f"{row['compiled_ms']:.2f} | {row['speedup']:.2f}x | {row['compile_s']:.1f} |")
    machine["loadavg_end"] = list(os.getloadavg())
    print()
    print(json.dumps({"size": {k: getattr(args, k) for k in ("T", "B", "E", "H", "vocab", "classes")},
                      "backend": args.backend, "repeats": args.repeats, "warmup": args.warmup,
                      "machine": machine, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
