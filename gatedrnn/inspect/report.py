r"""One self-contained HTML page about a trained run: what the cell computes, what its gates
and states did on test sequences, how far its gradients reach, and how training went.

:func:`inspect_run` reads a run directory written by ``gatedrnn train`` (its
``config.json``, ``checkpoints/best.safetensors``, ``metrics.jsonl`` and
``summary.json``), rebuilds the model (:func:`gatedrnn.train.runs.load_run`, as
``explore`` and ``generate`` do), records it on the first test sequences (for a
language model: stretches of the test text, as character ids) and
writes ``report.html`` with every figure embedded as a ``data:image/png`` URI (each
figure is also written as a PNG file beside it). :func:`inspect_fresh` trains a short
run first (``gatedrnn inspect --task T --cell C``).

Example::

    >>> from gatedrnn.inspect import inspect_run
    >>> inspect_run("runs/mnist1d-janet-seed0")  # doctest: +SKIP
    PosixPath('runs/mnist1d-janet-seed0/inspect/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from .. import tasks
from ..cells import CellSpec
from ..layers import RecurrentBase
from ..train import TrainConfig, read_metrics, train
from ..train.runs import build_model, load_run
from ..train.tbptt import stream_rows
from . import plots
from .gradflow import gradient_flow
from .record import record
from .summary import summary_table

__all__ = ["inspect_run", "inspect_fresh"]

PathLike = Union[str, "os.PathLike[str]"]

# -- reading a run ----------------------------------------------------------------------


@dataclass
class _Loaded:
    config: TrainConfig
    task: tasks.Task
    model: nn.Module
    x: Tensor  # the first test sequences, as the model takes them: (N, T, I), or ids (N, T)
    y: Tensor  # their targets: (N,), (N, 1) or (N, T)


def _test_inputs(task: tasks.Task, examples: int) -> Tuple[Tensor, Tensor]:
    """(x, y) of the first ``examples`` test sequences. A language model's test split is
    one stream: it is cut into ``examples`` rows as for evaluation
    (:func:`~gatedrnn.train.tbptt.stream_rows`), and each row's first ``seq_len``
    characters are a sequence, ids (N, T) with their next ids (N, T)."""
    test = task.load().test
    if len(test) == 0:
        raise ValueError(f"task {task.name} has no test sequences to inspect")
    if isinstance(task, tasks.LanguageModelTask):
        x, y = stream_rows(test, min(examples, len(test)))  # (N, L)
        return x[:, : task.seq_len], y[:, : task.seq_len]  # (N, T)
    return test.x[:examples], test.y[:examples]  # (N, T, I), (N, ...)


def _load(run_dir: Path, examples: int) -> _Loaded:
    run = load_run(run_dir)
    return _Loaded(run.config, run.task, run.model, *_test_inputs(run.task, examples))


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


# -- figures ----------------------------------------------------------------------------


@dataclass
class _Figure:
    kind: str  # a plots.figure_size kind, also the PNG's file stem
    path: Path
    caption: str
    num_gates: int = 1


def _figures(loaded: _Loaded, metrics: List[Dict[str, Any]], out: Path) -> Tuple[List[_Figure], Optional[str]]:
    """Write every figure of the report into ``out``; also return the summary table of
    the recurrent layer (None for the Transformer)."""
    config, task, model = loaded.config, loaded.task, loaded.model
    figures: List[_Figure] = []
    layer = getattr(model, "recurrent", None)
    table = None
    n = loaded.x.shape[0]
    if isinstance(layer, RecurrentBase):
        table = summary_table(layer)
        trace = record(model, loaded.x)[0]  # layer 0, forward direction; tensors (T, N, H)
        cell = trace.spec.name
        if trace.gates:
            path = plots.gate_heatmaps(trace, out / "gate_heatmaps.png")
            figures.append(_Figure("gate_heatmaps", Path(path), (
                "Every gate of layer 0 on test sequence 0, time on x and unit on y: look for units "
                "whose forget gate (GRU: update gate z) stays near 1 (long memory) and for gates "
                "pinned at 0 or 1 (saturated)."), num_gates=len(trace.gates)))
        if trace.spec.forget_gate is not None:
            gate = trace.spec.forget_gate
            what = "forget gate f" if gate == "f" else "update gate z (the share of h kept)"
            path = plots.forget_histogram(trace, out / "forget_histogram.png")
            figures.append(_Figure("forget_histogram", Path(path), (
                f"The {what} over all steps, units and the {n} test sequences: mass near 1 means "
                f"the state is kept over many steps, mass near 0 that it is overwritten at once.")))
        path = plots.cell_vs_output(trace, out / "cell_vs_output.png")
        caption = ("Cell state c_t (solid) against output h_t (dashed) of the first units on test "
                   "sequence 0: c integrates over time and may leave [-1, 1], h = o tanh(c) is "
                   "squashed and gated." if trace.cell is not None else
                   f"The state h_t of the first units on test sequence 0 (the {cell.upper()} keeps no "
                   "separate cell state): look for units that hold a value over many steps "
                   "(memory) against ones that follow the input.")
        figures.append(_Figure("cell_vs_output", Path(path), caption))

        def loss(output: Union[Tensor, Tuple[Tensor, Any]]) -> Tensor:
            if isinstance(task, tasks.LanguageModelTask):
                output = output[0]  # (logits (N, T, V), state)
            return task.loss(output, loaded.y)

        flows = {"trained": gradient_flow(model, loaded.x, loss),  # (T,)
                 f"initialised (seed {config.seed})": gradient_flow(build_model(config, task), loaded.x, loss)}
        path = plots.gradient_flow_comparison(flows, out / "gradient_flow_comparison.png")
        figures.append(_Figure("gradient_flow_comparison", Path(path), (
            "The norm of d loss / d h_t, h_t the recurrent layer's output (the top of the stack), "
            "against steps back from the last step (log scale), on the test sequences, trained "
            "weights against the same model before training: a line that falls steeply means "
            "the loss barely reaches the early steps (vanishing gradients).")))
    if metrics:
        path = plots.learning_curves({config.cell: metrics}, task.metric, out / "learning_curves.png")
        figures.append(_Figure("learning_curves", Path(path), (
            f"Training loss (left, log scale) and validation {task.metric} (right) per epoch: a loss "
            "still falling at the last epoch means more epochs would help; a validation "
            f"{task.metric} that has stopped improving, that they would not.")))
    return figures, table


# -- the page ---------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; max-width: 1700px; margin: 1em 2em; color: #222; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #eee; }
td.name, th.name { text-align: left; }
figure { margin: 1.5em 0; }
figcaption { max-width: 60em; margin-top: 0.3em; }
img { max-width: 100%; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    """Floats to 4 significant digits (the metric values the report quotes), else str."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], name_column: bool = False) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        attribute = ' class="name"' if name_column and i == 0 else ""
        return f"<{tag}{attribute}>{_e(_number(value))}</{tag}>"

    lines = ["<table>", "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"]
    lines += ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows]
    lines.append("</table>")
    return "\n".join(lines)


def _image(figure: _Figure) -> str:
    encoded = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    name = figure.path.name
    return (f'<figure>\n<img src="data:image/png;base64,{encoded}" alt="{_e(figure.kind)}" '
            f'data-kind="{_e(figure.kind)}" data-num-gates="{figure.num_gates}" data-file="{_e(name)}">\n'
            f'<figcaption>{_e(figure.caption)} (<a href="{_e(name)}">{_e(name)}</a>)</figcaption>\n'
            f"</figure>")


def _cell_section(spec: CellSpec) -> List[str]:
    parts = ["<h2>The cell</h2>", "<pre>" + _e("\n".join(spec.equations())) + "</pre>"]
    notes = spec.gate_notes
    if notes:
        parts.append("<ul>" + "".join(f"<li><b>{_e(gate)}</b>: {_e(note)}</li>"
                                      for gate, note in notes.items()) + "</ul>")
    else:
        parts.append(f"<p>The {spec.name} cell has no gates: every step overwrites the whole state, so "
                     "there are no gate heatmaps or forget-gate histogram below.</p>")
    return parts


def _metrics_section(config: TrainConfig, task: tasks.Task, summary: Optional[Dict[str, Any]],
                     metrics: List[Dict[str, Any]]) -> List[str]:
    parts = ["<h2>Training</h2>"]
    metric = task.metric
    if summary is None:
        parts.append("<p>No summary.json: the run has not finished, so there is no test score yet.</p>")
    else:
        facts = [(f"test {metric}", summary.get(f"test_{metric}")),
                 ("best epoch", summary.get("best_epoch")),
                 (f"best validation {metric}", summary.get(f"best_validation_{metric}")),
                 ("epochs", summary.get("epochs")),
                 ("seconds (training)", summary.get("seconds")),
                 ("parameters", summary.get("parameters")),
                 ("train examples", summary.get("train_examples")),
                 ("device", summary.get("device")),
                 ("backend", summary.get("backend"))]
        parts.append(_table(("", "value"), [f for f in facts if f[1] is not None], name_column=True))
    settings = ", ".join(f"{key} {value}" for key, value in config.to_dict().items() if value is not None)
    parts.append(f"<p>Configuration: {_e(settings)}</p>")
    if metrics:
        header = list(metrics[0])
        parts.append("<h3>Per epoch (metrics.jsonl)</h3>")
        parts.append(_table(header, [[row.get(key, "") for key in header] for row in metrics]))
    else:
        parts.append("<p>No metrics.jsonl rows.</p>")
    return parts


def _inputs_described(loaded: _Loaded) -> str:
    count, steps = loaded.x.shape[:2]
    if isinstance(loaded.task, tasks.LanguageModelTask):
        return (f"{count} stretches of {steps} characters of the test text (the starts of the "
                f"{count} rows it is cut into, the state starting from zero)")
    return f"the first {count} test sequences"


def _page(loaded: _Loaded, run_dir: Path, figures: List[_Figure], table: Optional[str],
          summary: Optional[Dict[str, Any]], metrics: List[Dict[str, Any]]) -> str:
    config, task, model = loaded.config, loaded.task, loaded.model
    title = f"gatedrnn inspect: {config.cell} on {task.name}"
    parameters = sum(p.numel() for p in model.parameters())
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{_e(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{_e(title)}</h1>",
             f"<p>Run directory: <code>{_e(run_dir)}</code>. Task: {_e(task.description)}. "
             f"Figures use {_e(_inputs_described(loaded))} and the best-validation weights.</p>",
             "<h2>Model</h2>"]
    if table is None:
        parts.append(f"<p>The {_e(config.cell)} model has no recurrent layer, so there are no "
                     "gates, states or gradients through a recurrence to show: this report holds "
                     "the model summary, the metrics and the learning curves only.</p>")
        parts.append("<pre>" + _e(repr(model)) + "</pre>")
    else:
        parts.append("<pre>" + _e(table) + "</pre>")
        readout = f"Linear({model.readout.in_features}, {model.readout.out_features})"
        layout = (f"then {readout} at every step" if model.head is None
                  else f"then {type(model.head).__name__} (head {config.head}), then {readout}")
        inputs = (f"One-hot ids of the {task.output_size} characters into the recurrent layer"
                  if isinstance(task, tasks.LanguageModelTask) else "The recurrent layer")
        parts.append(f"<p>{_e(inputs)}, {_e(layout)}.</p>")
    parts.append(f"<p>Parameters in all: {parameters}.</p>")
    if table is not None:
        parts += _cell_section(model.recurrent.spec)
    parts += _metrics_section(config, task, summary, metrics)
    parts.append("<h2>Figures</h2>")
    parts += [_image(figure) for figure in figures]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# -- entry points -----------------------------------------------------------------------


def inspect_run(run_dir: PathLike, out: Optional[PathLike] = None, examples: int = 8) -> Path:
    """Write ``report.html`` (and its figures as PNG files) about a finished training run.

    Args:
        run_dir: a directory written by ``gatedrnn train`` / :func:`gatedrnn.train.train`
            (``config.json``, ``checkpoints/best.safetensors``; ``metrics.jsonl`` and
            ``summary.json`` when present).
        out: where to write (default ``run_dir/inspect``), created if missing.
        examples: how many test sequences (the first ones, x (N, T, I)) to record; the
            heatmaps and state plots show the first of them. For a language model (task
            ``pysource``) the test text is cut into ``examples`` rows and the first
            ``seq_len`` characters of each are recorded, ids (N, T).

    Returns:
        The path of ``report.html``. Beside it: ``gate_heatmaps.png`` (layer 0,
        not for the RNN), ``forget_histogram.png`` (LSTM, GRU, JANET),
        ``cell_vs_output.png``, ``gradient_flow_comparison.png`` (the trained model
        against the same seed's initial weights) and ``learning_curves.png``. A
        Transformer run gets the summary, metrics and learning curves only.

    Raises:
        FileNotFoundError: no such directory, no ``config.json`` or no best weights.
        ValueError: ``examples`` < 1 or an unreadable ``config.json``.

    Example::

        >>> from gatedrnn.train import TrainConfig, train
        >>> train(TrainConfig(task="mnist1d", cell="janet", epochs=2, limit=200), "runs/tiny",
        ...       progress=False)  # doctest: +SKIP
        >>> inspect_run("runs/tiny")  # doctest: +SKIP
        PosixPath('runs/tiny/inspect/report.html')
    """
    if isinstance(examples, bool) or not isinstance(examples, int):
        raise TypeError(f"examples must be an int, got {type(examples).__name__}")
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    run_dir = Path(run_dir)
    loaded = _load(run_dir, examples)
    out = run_dir / "inspect" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(run_dir)
    summary = _read_json(run_dir / "summary.json")
    figures, table = _figures(loaded, metrics, out)
    report = out / "report.html"
    report.write_text(_page(loaded, run_dir, figures, table, summary, metrics), encoding="utf-8")
    return report


def inspect_fresh(task: str, cell: str, out: PathLike, epochs: int = 10, examples: int = 8,
                  **train_options: Any) -> Path:
    """Train a short run into ``out/run`` (resumed if it is there), then write its report
    into ``out`` with :func:`inspect_run`.

    Args:
        task, cell: as for ``gatedrnn train``.
        out: the report's directory; the run goes to ``out/run``.
        epochs: training epochs (3 train MNIST-1D JANET in a few seconds on a CPU).
        examples: test sequences to record (see :func:`inspect_run`).
        train_options: further :class:`~gatedrnn.train.TrainConfig` fields (``hidden``,
            ``limit``, ``seed``, ...); unset ones take the task's defaults.

    Returns:
        The path of ``report.html``.

    Example::

        >>> inspect_fresh("mnist1d", "janet", "runs/inspect-mnist1d-janet")  # doctest: +SKIP
        PosixPath('runs/inspect-mnist1d-janet/report.html')
    """
    out = Path(out)
    config = TrainConfig(task=task, cell=cell, epochs=epochs, **train_options)
    train(config, out / "run", resume=True, progress=False)
    return inspect_run(out / "run", out=out, examples=examples)
