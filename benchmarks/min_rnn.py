"""Forward+backward speed of gr.MinGRU against torch.nn.GRU (prints Markdown and JSON).

One training step, ``layer(x)[0].sum().backward()`` with ``x.requires_grad``, float32 on
the CPU, at T = 784, B = 100, I = 1, H = 128 (pixel-by-pixel MNIST) by default. The
contenders (MinGRU ``mode="fused"`` (the default on CPU), ``"scan"``, ``"sequential"``,
torch.nn.GRU) are
timed interleaved in one process with :func:`gatedrnn.bench.time_interleaved`: warm-up
rounds, then ``--repeats`` rounds; the table shows medians and torch.nn.GRU's median
divided by each contender's (the speed-up; above 1: faster than torch.nn.GRU).

Example::

    python benchmarks/min_rnn.py --repeats 5 --threads 1
"""

import argparse
import json
import os
import sys

import torch

try:
    import gatedrnn as gr
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import gatedrnn as gr
from gatedrnn.bench import Contender, machine_info, median, time_interleaved


def contenders(T: int, B: int, I: int, H: int):
    """-> (the Contenders, the modules), all seeing the same input."""
    torch.manual_seed(0)
    x = torch.randn(T, B, I, requires_grad=True)  # (T, B, I)
    modules = {"MinGRU (fused)": gr.MinGRU(I, H, mode="fused"),
               "MinGRU (scan)": gr.MinGRU(I, H, mode="scan"),
               "MinGRU (sequential)": gr.MinGRU(I, H, mode="sequential"),
               "torch.nn.GRU": torch.nn.GRU(I, H)}

    def step(module):
        def run():
            module(x)[0].sum().backward()

        def reset():  # gradients start from None every run, outside the timed region
            x.grad = None
            module.zero_grad(set_to_none=True)
        return run, reset

    return [Contender(name, *step(module)) for name, module in modules.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=784)
    parser.add_argument("--B", type=int, default=100)
    parser.add_argument("--I", type=int, default=1)
    parser.add_argument("--H", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    machine = machine_info()
    times = time_interleaved(contenders(args.T, args.B, args.I, args.H), args.repeats, args.warmup)
    baseline = median(times["torch.nn.GRU"])
    rows = [{"contender": name, "median_ms": 1e3 * median(ts), "speedup_vs_torch_gru": baseline / median(ts),
             "times_ms": [1e3 * t for t in ts]} for name, ts in times.items()]

    print(f"forward+backward, T={args.T} B={args.B} I={args.I} H={args.H}, float32, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats} after {args.warmup} warm-up\n")
    print("| contender | median ms | speed-up vs torch.nn.GRU |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['contender']} | {row['median_ms']:.1f} | {row['speedup_vs_torch_gru']:.2f}x |")
    machine["loadavg_end"] = list(os.getloadavg())
    print()
    print(json.dumps({"size": {k: getattr(args, k) for k in "TBIH"}, "repeats": args.repeats,
                      "warmup": args.warmup, "machine": machine, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
