"""Pictures of a recorded cell: gate heatmaps, forget-gate histogram, cell vs output,
gradient flow over time, learning curves (matplotlib, a dependency of gatedrnn).

Every function writes one PNG of a fixed size (``figure_size(...)`` inches at
:data:`DPI`; no tight bounding box, so the pixel size is known in advance), closes
its figure and returns ``path``.

Example::

    >>> import torch, gatedrnn as gr
    >>> trace = gr.inspect.record(gr.LSTM(1, 8), torch.randn(30, 2, 1))
    >>> gr.inspect.gate_heatmaps(trace["l0"], "gates.png")  # doctest: +SKIP
    'gates.png'
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence, Tuple, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .record import LayerTrace  # noqa: E402

__all__ = [
    "DPI", "figure_size",
    "gate_heatmaps", "forget_histogram", "cell_vs_output", "gradient_flow_comparison",
    "learning_curves",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Resolution of every figure written here (pixels per inch).
DPI = 100

_PANEL = (4.0, 3.0)   # one heatmap, inches
_SINGLE = (6.0, 4.0)  # every other figure, inches


def figure_size(kind: str, num_gates: int = 1) -> Tuple[float, float]:
    """Figure size in inches of ``kind`` (``"gate_heatmaps"`` uses ``num_gates`` panels
    side by side); the PNG is ``round(w * DPI) x round(h * DPI)`` pixels."""
    if kind == "gate_heatmaps":
        return (_PANEL[0] * num_gates, _PANEL[1])
    if kind in ("forget_histogram", "cell_vs_output", "gradient_flow_comparison"):
        return _SINGLE
    if kind == "learning_curves":
        return (2 * _SINGLE[0], _SINGLE[1])
    raise ValueError(f"unknown figure kind {kind!r}")


def _save(fig, path: PathLike) -> PathLike:
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path


def _check_batch(trace: LayerTrace, batch_index: int) -> None:
    batch = trace.hidden.shape[1]
    if not -batch <= batch_index < batch:
        raise IndexError(f"batch_index {batch_index} out of range for batch size {batch}")


def gate_heatmaps(layer_trace: LayerTrace, path: PathLike, batch_index: int = 0) -> PathLike:
    """One heatmap per gate of one sequence: time on x, unit on y, colour = gate value.

    Raises ValueError for a cell without gates (the Elman RNN)."""
    gates = layer_trace.gates
    if not gates:
        raise ValueError(f"layer {layer_trace.name!r} ({layer_trace.spec.name}) has no gates to plot")
    _check_batch(layer_trace, batch_index)
    fig, axes = plt.subplots(1, len(gates), figsize=figure_size("gate_heatmaps", len(gates)),
                             dpi=DPI, squeeze=False)
    for ax, (name, values) in zip(axes[0], gates.items()):
        image = values[:, batch_index, :].detach().float().cpu().T.numpy()  # (H, T)
        low = -1.0 if image.min() < 0 else 0.0  # tanh blocks span [-1, 1], sigmoids [0, 1]
        im = ax.imshow(image, aspect="auto", origin="lower", interpolation="nearest",
                       vmin=low, vmax=1.0, cmap="viridis")
        ax.set_title(f"{name}")
        ax.set_xlabel("time step")
        ax.set_ylabel("unit")
        fig.colorbar(im, ax=ax)
    fig.suptitle(f"{layer_trace.name} ({layer_trace.spec.name}) gates, sequence {batch_index}")
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # below the title, axis labels inside the figure
    return _save(fig, path)


def forget_histogram(layer_trace: LayerTrace, path: PathLike, bins: int = 50) -> PathLike:
    """Histogram of the forget-gate values over all steps, sequences and units
    (LSTM and JANET: ``f``; GRU: the update gate ``z``, the share of h_{t-1} kept).

    Raises ValueError for a cell without a forget gate (the Elman RNN)."""
    cell = layer_trace.spec.name
    gate = layer_trace.spec.forget_gate
    if gate is None or gate not in layer_trace.gates:
        raise ValueError(f"layer {layer_trace.name!r}: a {cell} cell has no forget gate")
    values = layer_trace.gates[gate].detach().float().cpu().reshape(-1).numpy()
    fig, ax = plt.subplots(figsize=figure_size("forget_histogram"), dpi=DPI)
    ax.hist(values, bins=bins, range=(0.0, 1.0), color="tab:blue")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(f"{gate} (forget gate)" if gate == "f" else f"{gate} (update gate: share of h kept)")
    ax.set_ylabel("count")
    ax.set_title(f"{layer_trace.name} ({cell}): {gate}, mean {values.mean():.3f}")
    return _save(fig, path)


def cell_vs_output(layer_trace: LayerTrace, path: PathLike, units: int = 4,
                   batch_index: int = 0) -> PathLike:
    """Cell state c_t (solid) against output h_t (dashed) of the first ``units`` units of
    one sequence over time. Cells without a separate cell state (RNN, GRU, JANET, where
    h = c) plot the hidden state only, and the title says so."""
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}")
    _check_batch(layer_trace, batch_index)
    hidden = layer_trace.hidden[:, batch_index, :].detach().float().cpu()  # (T, H_out)
    cell = layer_trace.cell
    fig, ax = plt.subplots(figsize=figure_size("cell_vs_output"), dpi=DPI)
    steps = range(hidden.shape[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if cell is not None:
        cell = cell[:, batch_index, :].detach().float().cpu()  # (T, H)
        # with a projection h is (T, P): unit u of h is not unit u of c, but both are shown
        for u in range(min(units, cell.shape[1], hidden.shape[1])):
            colour = colours[u % len(colours)]
            ax.plot(steps, cell[:, u].numpy(), color=colour, label=f"c[{u}]")
            ax.plot(steps, hidden[:, u].numpy(), color=colour, linestyle="--", label=f"h[{u}]")
        ax.set_title(f"{layer_trace.name} ({layer_trace.spec.name}): cell state vs output")
    else:
        for u in range(min(units, hidden.shape[1])):
            ax.plot(steps, hidden[:, u].numpy(), color=colours[u % len(colours)], label=f"h[{u}]")
        ax.set_title(f"{layer_trace.name} ({layer_trace.spec.name}): hidden state only "
                     f"(no separate cell state)")
    ax.set_xlabel("time step")
    ax.set_ylabel("value")
    ax.legend(loc="best", fontsize="small", ncol=2)
    return _save(fig, path)


def gradient_flow_comparison(flows: Mapping[str, Tensor], path: PathLike) -> PathLike:
    """Gradient norm ||d loss / d h_t|| against steps back from the last step (0 = last),
    log y scale, one line per entry of ``flows`` (name -> (T,) tensor, as returned by
    :func:`gatedrnn.inspect.gradient_flow`). Zeros (and underflow) are clipped to the
    smallest positive float so that the log scale can show them."""
    if not flows:
        raise ValueError("flows is empty")
    tiny = torch.finfo(torch.float64).tiny
    fig, ax = plt.subplots(figsize=figure_size("gradient_flow_comparison"), dpi=DPI)
    try:
        for name, flow in flows.items():
            flow = torch.as_tensor(flow).detach().to(torch.float64).cpu()
            if flow.dim() != 1:
                raise ValueError(f"flow {name!r} must be (T,), got shape {tuple(flow.shape)}")
            back = flow.flip(0).abs().clamp_min(tiny)  # index k = k steps back from the end
            ax.plot(range(back.shape[0]), back.numpy(), label=str(name))
    except Exception:
        plt.close(fig)
        raise
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the last step")
    ax.set_ylabel("||d loss / d h_t||")
    ax.set_title("gradient flow over time")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def learning_curves(runs: Mapping[str, Sequence[Mapping[str, float]]], metric: str,
                    path: PathLike) -> PathLike:
    """Training loss (left, log scale) and validation ``metric`` (right) against epoch.

    ``runs`` maps a label (a cell name, say) to its ``metrics.jsonl`` rows: dicts with
    ``epoch``, ``train_loss`` and ``validation_<metric>``. One line per label.
    """
    if not runs:
        raise ValueError("runs is empty")
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=figure_size("learning_curves"), dpi=DPI)
    try:
        for label, rows in runs.items():
            epochs = [row["epoch"] for row in rows]
            loss_ax.plot(epochs, [row["train_loss"] for row in rows], label=str(label))
            metric_ax.plot(epochs, [row[f"validation_{metric}"] for row in rows], label=str(label))
    except KeyError as error:
        plt.close(fig)
        raise ValueError(f"a metrics row has no {error.args[0]!r}") from error
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(f"validation {metric}")
    if metric == "mse":
        metric_ax.set_yscale("log")
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    return _save(fig, path)
