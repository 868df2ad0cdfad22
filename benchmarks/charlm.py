"""Character-level language models on the Python standard library (task pysource): the
findings of issue 14. Every training process runs on one thread (OMP_NUM_THREADS=1).

    python benchmarks/charlm.py epoch-seconds   # one full epoch per cell, seconds per epoch
    python benchmarks/charlm.py train --epochs E [--jobs J]   # LSTM, GRU, JANET x 3 seeds
    python benchmarks/charlm.py lr-sweep --level word|char   # plain SGD + clip 0.25, lr 20 .. 1
    python benchmarks/charlm.py explorer   # the explore page at 20 000 steps x 256 units in Chromium
    python benchmarks/charlm.py screenshots --text-run RUN [--sequence-run RUN]   # docs/images
    python benchmarks/charlm.py units --runs DIR   # per cell: the units that track the text's structure

Each writes a Markdown table and a JSON file under benchmarks/results/charlm/ (``--results``)
with the machine it ran on; ``--smoke`` shrinks every size to check the script in a minute.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gatedrnn import tasks  # noqa: E402
from gatedrnn.models import RECURRENT  # noqa: E402
from gatedrnn.train.compare import results_table  # noqa: E402

CELLS = ("lstm", "gru", "janet")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at start, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def write(results: Path, name: str, markdown: str, payload: Any) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.md").write_text(markdown)
    (results / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(markdown)


def train_run(out: Path, cell: str, seed: int, options: Dict[str, Any]) -> Dict[str, Any]:
    """One ``gatedrnn train`` process on one thread; its summary.json."""
    if not (out / "summary.json").exists():
        command = [sys.executable, "-m", "gatedrnn", "train", "--task", "pysource", "--cell", cell,
                   "--seed", str(seed), "--out", str(out), "--resume", "--quiet"]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        subprocess.run(command, check=True, env={**ONE_THREAD, "PYTHONPATH": str(ROOT)})
    return json.loads((out / "summary.json").read_text())


# -- seconds per epoch ----------------------------------------------------------------------


def epoch_seconds(args) -> None:
    options = {"hidden": args.hidden, "seq_len": args.seq_len, "batch_size": args.batch_size, "epochs": 1}
    if args.smoke:
        options.update(hidden=32, limit=20000)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for cell in CELLS:
            started = time.perf_counter()
            summary = train_run(Path(directory) / cell, cell, 0, options)
            rows.append({"cell": cell, "seconds_per_epoch": summary["seconds_per_epoch"],
                         "wall_seconds": round(time.perf_counter() - started, 1),
                         "backend": summary["backend"], "parameters": summary["parameters"],
                         "train_characters": summary["train_examples"], "test_bpc_after_1_epoch": summary["test_bpc"]})
    lines = ["# pysource: seconds per epoch, one thread per process", "",
             f"hidden {options['hidden']}, seq_len (truncation) {args.seq_len}, batch {args.batch_size} rows, "
             f"{rows[0]['train_characters']:,} training characters per epoch; the epoch's seconds include "
             f"its validation pass.", "", f"Machine: {machine()}.", "",
             "| cell | seconds / epoch | backend | parameters | test bpc after 1 epoch |", "|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['seconds_per_epoch']:.1f} | {r['backend']} | {r['parameters']:,} "
              f"| {r['test_bpc_after_1_epoch']:.3f} |" for r in rows]
    write(args.results, "epoch_seconds" + ("_smoke" if args.smoke else ""), "\n".join(lines) + "\n",
          {"options": options, "machine": machine(), "rows": rows})


# -- the comparison -------------------------------------------------------------------------


def train_cells(args) -> None:
    options = {"hidden": args.hidden, "seq_len": args.seq_len, "batch_size": args.batch_size, "epochs": args.epochs}
    if args.smoke:
        options.update(hidden=16, limit=5000, epochs=1)
    runs = Path(args.runs)
    jobs = [(cell, seed) for cell in CELLS for seed in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        summaries = list(pool.map(lambda job: {**train_run(runs / f"{job[0]}-seed{job[1]}", *job, options),
                                               "seed": job[1]}, jobs))
    command = " ".join(["python benchmarks/charlm.py train", *sys.argv[2:]])
    torch.set_num_threads(1)  # the table's machine line names this process's threads: the runs' one
    table = results_table("pysource", summaries, command)
    write(args.results, "findings" + ("_smoke" if args.smoke else ""), table,
          {"options": options, "machine": machine(), "runs": summaries})


# -- the learning rate at which each cell trains ----------------------------------------------


def word_streams(smoke: bool):
    """The pysource files as words: whitespace-separated, one <eos> per line (as PyTorch's
    word_language_model reads its corpus); the 10 000 most frequent training words, the
    rest <unk>."""
    texts = tasks.get("pysource").texts()
    words = {split: [w for line in text.splitlines() for w in line.split() + ["<eos>"]]
             for split, text in texts.items()}
    counts = collections.Counter(words["train"])
    vocabulary = ["<unk>"] + [w for w, _ in counts.most_common(9999 if not smoke else 999)]
    index = {w: i for i, w in enumerate(vocabulary)}
    return {split: torch.tensor([index.get(w, 0) for w in ws]) for split, ws in words.items()}, len(vocabulary)


class WordModel(nn.Module):
    """PyTorch's word_language_model RNNModel with a gatedrnn layer: embedding 200,
    2 layers of 200, dropout 0.2, a linear decoder."""

    def __init__(self, cell: str, vocabulary: int, size: int = 200, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.encoder = nn.Embedding(vocabulary, size)
        options = {"t_max": 35} if cell == "janet" else {}
        layer = RECURRENT[cell](size, size, num_layers=layers, dropout=dropout)
        if cell == "janet":
            from gatedrnn.init import chrono_

            chrono_(layer, options["t_max"])
        self.rnn = layer
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(size, vocabulary)

    def forward(self, ids, state=None):
        output, state = self.rnn(self.drop(self.encoder(ids)), state)  # (T, B, H)
        return self.decoder(self.drop(output)), state


def sweep_run(cell: str, lr: float, level: str, batches: int, seed: int = 0) -> Dict[str, Any]:
    """One cell at one learning rate: plain SGD, gradient-norm clip 0.25, bptt 35,
    batch 20, the state carried and detached between chunks."""
    from gatedrnn.models import build_language_model
    from gatedrnn.train.tbptt import detach_state

    torch.manual_seed(seed)
    if level == "word":
        streams, vocabulary = _WORDS
        model = WordModel(cell, vocabulary)
        stream = streams["train"]
        time_major = True
    else:
        task = tasks.get("pysource", seq_len=35)
        stream = tasks.get("pysource").load().train.x
        vocabulary = task.output_size
        model = build_language_model(cell, vocabulary, hidden=200, layers=2, dropout=0.2, t_max=35)
        time_major = False
    rows = 20
    length = len(stream) // rows
    data = stream[: rows * length].view(rows, length)  # (B, N)
    model.train()
    state, losses, peak = None, [], 0.0
    for k in range(batches):
        start = k * 35
        if start + 36 > length:
            break
        x, y = data[:, start: start + 35], data[:, start + 1: start + 36]
        if time_major:
            x, y = x.t(), y.t()
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        model.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
        state = detach_state(state)
        h = state[0] if isinstance(state, tuple) else state
        peak = max(peak, float(h[-1].abs().max()))
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
    tail = losses[-50:]
    final = statistics.fmean(tail) if all(math.isfinite(v) for v in tail) else float("nan")
    return {"cell": cell, "lr": lr, "batches": len(losses), "first_loss": losses[0], "final_loss": final,
            "max_loss": max(losses), "peak_abs_h": peak,
            "trains": math.isfinite(final) and final < losses[0] - 0.5 and max(losses[len(losses) // 2:]) < 16}


def lr_sweep(args) -> None:
    global _WORDS
    torch.set_num_threads(1)
    if args.level == "word":
        _WORDS = word_streams(args.smoke)
    lrs = [float(v) for v in args.lrs.split(",")]
    batches = 20 if args.smoke else args.batches
    rows = []
    for cell in CELLS:
        for lr in lrs:
            started = time.perf_counter()
            row = sweep_run(cell, lr, args.level, batches)
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    corpus = ("words of the pysource files (whitespace-split, <eos> per line, 10 000 most frequent "
              "training words, the rest <unk>; no Wikitext-2 on this machine)" if args.level == "word"
              else "characters of the pysource files (one-hot input, 98 symbols)")
    lines = [f"# The learning rate at which each cell trains: {args.level} level", "",
             "PyTorch's word_language_model recipe with a gatedrnn layer: plain SGD, gradient-norm clip "
             f"0.25, bptt 35, batch 20, 2 layers of 200, dropout 0.2 (JANET chrono-initialised with t_max 35); "
             f"{batches} batches each, seed 0. Corpus: {corpus}. 'trains': the mean loss of the last 50 "
             "batches is 0.5 nats below the first batch's and no loss in the second half exceeds 16.", "",
             f"Machine: {machine()}; one thread.", "",
             "| cell | lr | trains | first loss | final loss (last 50) | max loss | max abs h (top layer) | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['lr']:g} | {'yes' if r['trains'] else 'no'} | {r['first_loss']:.2f} "
              f"| {r['final_loss']:.2f} | {r['max_loss']:.2f} | {r['peak_abs_h']:.2f} | {r['seconds']} |" for r in rows]
    write(args.results, f"lr_sweep_{args.level}" + ("_smoke" if args.smoke else ""), "\n".join(lines) + "\n",
          {"level": args.level, "batches": batches, "machine": machine(), "rows": rows})


# -- the explorer in a browser ----------------------------------------------------------------


def explorer(args) -> None:
    from gatedrnn.inspect.explore import record_run, render_page
    from gatedrnn.train import TrainConfig
    from gatedrnn.train.runs import LoadedRun, build_model, load_run

    steps, hidden = (2000, 64) if args.smoke else (args.steps, args.hidden)
    if args.run:
        run = load_run(args.run)
    else:  # an untrained LSTM: the page's speed depends on the sizes, not on the weights
        task = tasks.get("pysource")
        config = TrainConfig(task="pysource", cell="lstm", hidden=hidden).resolved(task.defaults)
        run = LoadedRun(Path("untrained"), config, task, build_model(config, task))
    started = time.perf_counter()
    recording = record_run(run, steps=steps)
    recorded = time.perf_counter() - started
    page_text = render_page(recording)
    written = time.perf_counter() - started - recorded
    directory = Path(tempfile.mkdtemp(prefix="gatedrnn-explorer-"))
    page = directory / "explore.html"
    page.write_text(page_text, encoding="utf-8")
    driver = _browser(directory / "profile")
    driver.set_script_timeout(120)
    repeat = 7
    try:
        loads = []
        for _ in range(3):
            driver.get(page.as_uri())
            while not driver.execute_script("return !!window.explorer"):
                time.sleep(0.02)
            loads.append(driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return {ready: window.explorer.loadMs, dom_content_loaded: n.domContentLoadedEventEnd, "
                "load_event: n.loadEventEnd}"))

        def timed(action: str) -> List[float]:
            # the action, then two animation frames: the new picture has been painted
            script = ("const done = arguments[arguments.length - 1]; const e = window.explorer;"
                      "const t0 = performance.now();" + action +
                      "requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));")
            return [driver.execute_async_script(script.replace("K", str(k))) for k in range(repeat)]

        n = recording.steps
        interactions = {
            "change unit (recolour every step)": timed(f"e.setView(0, 'h', (K * 37) % {hidden});"),
            "change quantity (c <-> f)": timed("e.setView(0, K % 2 ? 'f' : 'c', 3);"),
            "hover a step (values + diagram)": timed(f"e.showHover((K * 2711) % {n});"),
            "select a 20-step span (rank + match + forget strip)": timed(f"e.select((K * 1999) % {n - 30}, (K * 1999) % {n - 30} + 19);"),
            "search units by a feature": timed("e.search(['in string', 'indentation', 'bracket depth', 'column'][K % 4]);"),
        }
    finally:
        driver.quit()
        shutil.rmtree(directory, ignore_errors=True)
    def row(what: str, values: List[float]) -> str:
        return f"| {what} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |"

    lines = [f"# The explorer page at {n:,} steps x {hidden} units (LSTM: h, c, i, f, g, o)", "",
             f"Page: {len(page_text) / 1e6:.1f} MB (recording {recorded:.1f} s and writing {written:.1f} s in "
             f"Python). Headless Chromium ({_chromium_version()}), --disable-gpu, window 1500 x 1100.", "",
             f"Machine: {machine()}.", "",
             "| what | median ms | all runs (ms) |", "|---|---|---|",
             row("load: ready to use (navigation start to the first colouring)", [l["ready"] for l in loads]),
             row("load: DOMContentLoaded", [l["dom_content_loaded"] for l in loads])]
    lines += [row(what, values) for what, values in interactions.items()]
    lines += ["", "Interaction times run from the call to the second animation frame after it (the "
              "new picture painted)."]
    write(args.results, "explorer" + ("_smoke" if args.smoke else ""), "\n".join(lines) + "\n",
          {"steps": n, "hidden": hidden, "page_bytes": len(page_text), "record_seconds": recorded,
           "loads": loads, "interactions_ms": interactions, "machine": machine()})


# -- the units that track structure ------------------------------------------------------------


def units(args) -> None:
    """For every trained run ``<cell>-seed<k>`` under ``--runs``: record its model on the
    first ``--steps`` test characters (what ``gatedrnn explore`` shows) and find, for each
    of the explorer's text features, the unit whose h, c or gate correlates most with it
    (Pearson's r, the explorer's search). The table: per cell and feature, the largest
    |r| of the h and c units (mean ± std over the seeds) and the best unit of seed 0."""
    from gatedrnn.inspect.explore import correlations, record_run
    from gatedrnn.train.runs import load_run

    found: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for run_dir in sorted(Path(args.runs).glob("*-seed*")):
        if not (run_dir / "summary.json").exists():
            continue
        cell, seed = run_dir.name.rsplit("-seed", 1)
        recording = record_run(load_run(run_dir), steps=args.steps)
        layer = recording.layers[0]
        best = {}
        for feature, values in recording.features.items():
            scores = {quantity: correlations(layer.quantities[quantity], values)
                      for quantity in layer.quantities}
            quantity, unit = max(((q, int(abs(r).argmax())) for q, r in scores.items() if q in layer.states),
                                 key=lambda qu: abs(scores[qu[0]][qu[1]]))
            gate, gate_unit = max(((q, int(abs(r).argmax())) for q, r in scores.items() if q not in layer.states),
                                  key=lambda qu: abs(scores[qu[0]][qu[1]]))
            best[feature] = {"state": quantity, "unit": unit, "r": float(scores[quantity][unit]),
                             "gate": gate, "gate_unit": gate_unit, "gate_r": float(scores[gate][gate_unit])}
        found[cell].append({"seed": int(seed), "run": str(run_dir), "best": best})
    features = list(next(iter(found.values()))[0]["best"])
    lines = [f"# pysource: the units that track the text's structure, {args.steps:,} test characters", "",
             f"Runs: `{args.runs}`. Per cell and feature: the largest absolute Pearson r between a unit's h or c "
             "and the feature (mean ± std over the seeds), then seed 0's best state unit and its r, and "
             "its best gate unit (the explorer's search, `gatedrnn explore RUN`).", "",
             f"Machine: {machine()}.", "",
             "| cell | feature | largest abs(r) of an h or c unit (mean ± std) | seed 0: unit, r | seed 0: best gate unit, r |",
             "|---|---|---|---|---|"]
    for cell, runs in found.items():
        runs.sort(key=lambda r: r["seed"])
        for feature in features:
            values = [abs(r["best"][feature]["r"]) for r in runs]
            spread = f"{statistics.stdev(values):.2f}" if len(values) > 1 else "n/a"
            first = runs[0]["best"][feature]
            lines.append(f"| {cell} | {feature} | {statistics.fmean(values):.2f} ± {spread} "
                         f"| {first['state']}[{first['unit']}], {first['r']:+.2f} "
                         f"| {first['gate']}[{first['gate_unit']}], {first['gate_r']:+.2f} |")
    write(args.results, "units", "\n".join(lines) + "\n",
          {"runs": args.runs, "steps": args.steps, "machine": machine(), "cells": found})


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                     "--window-size=1500,1100"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def screenshots(args) -> None:
    """The pictures of docs/explorer.md: a text run coloured by the unit that tracks
    ``--feature`` best (the explorer's search; default: inside a string), hovered inside
    a string and with a string selected; a numeric run. ``--prefix`` names the files."""
    from selenium.webdriver.common.by import By

    from gatedrnn.inspect.explore import explore as write_page

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="gatedrnn-shots-"))
    text_page = write_page(args.text_run, out=directory / "text.html", steps=args.steps)
    driver = _browser(directory / "profile")
    try:
        def open_page(page: Path) -> None:
            driver.get(page.as_uri())
            while not driver.execute_script("return !!window.explorer"):
                time.sleep(0.05)

        open_page(text_page)
        text = driver.execute_script("return window.explorer.meta.text")
        opening = text.index(args.string_at) if args.string_at in text else text.index('"')
        closing = text.index(text[opening], opening + 1)
        driver.execute_script("const e = window.explorer; const best = e.search(arguments[0])[0];"
                              "e.setView(0, best.quantity, best.unit); e.scrollTo(arguments[1]);",
                              args.feature, opening + 2)
        driver.save_screenshot(str(out / f"{args.prefix}-overview.png"))
        driver.find_element(By.ID, "hover-panel").screenshot(str(out / f"{args.prefix}-hover.png"))
        driver.execute_script("window.explorer.select(arguments[0], arguments[1]);"
                              "document.getElementById('select-panel').scrollIntoView();", opening, closing)
        driver.save_screenshot(str(out / f"{args.prefix}-select.png"))
        if args.sequence_run:
            open_page(write_page(args.sequence_run, out=directory / "sequence.html", steps=400))
            driver.execute_script("window.explorer.setView(0, 'z', 0); window.explorer.select(12, 20);"
                                  "window.explorer.showHover(15);")
            driver.save_screenshot(str(out / f"{args.prefix}-sequence.png"))
    finally:
        driver.quit()
        shutil.rmtree(directory, ignore_errors=True)
    print("\n".join(str(p) for p in sorted(out.glob(f"{args.prefix}-*.png"))))


def _chromium_version() -> str:
    output = subprocess.run([shutil.which("chromium"), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"[\d.]+", output)
    return f"Chromium {match.group(0)}" if match else "Chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/charlm")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("epoch-seconds", "train"):
        sub = commands.add_parser(name)
        sub.add_argument("--hidden", type=int, default=256)
        sub.add_argument("--seq-len", type=int, default=100)
        sub.add_argument("--batch-size", type=int, default=32)
    train = commands.choices["train"]
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--seeds", type=int, default=3)
    train.add_argument("--jobs", type=int, default=1, help="processes at a time (one thread each)")
    train.add_argument("--runs", default="runs/charlm", help="run directories (reused and resumed)")
    sweep = commands.add_parser("lr-sweep")
    sweep.add_argument("--level", choices=("word", "char"), default="word")
    sweep.add_argument("--lrs", default="20,10,5,2,1")
    sweep.add_argument("--batches", type=int, default=300)
    view = commands.add_parser("explorer")
    view.add_argument("--steps", type=int, default=20000)
    view.add_argument("--hidden", type=int, default=256)
    view.add_argument("--run", help="a pysource run directory (default: an untrained LSTM)")
    shots = commands.add_parser("screenshots")
    shots.add_argument("--text-run", required=True, help="a pysource run directory")
    shots.add_argument("--sequence-run", help="a run of a numeric task (its first gate 'z': a GRU)")
    shots.add_argument("--steps", type=int, default=3000)
    shots.add_argument("--string-at", default='"', help="text where the string to show starts")
    shots.add_argument("--out", default=str(ROOT / "docs/images"))
    shots.add_argument("--feature", default="in string", help="the text feature whose best unit colours the text")
    shots.add_argument("--prefix", default="explorer", help="the pictures' file names: PREFIX-overview.png, ...")
    found = commands.add_parser("units")
    found.add_argument("--runs", default="runs/charlm", help="the run directories of train")
    found.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    {"epoch-seconds": epoch_seconds, "train": train_cells, "lr-sweep": lr_sweep, "explorer": explorer,
     "screenshots": screenshots, "units": units}[args.command](args)


if __name__ == "__main__":
    main()
