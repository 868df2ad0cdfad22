"""A Keras-style summary of a recurrent layer: one row per stacked layer and direction.

Example::

    >>> import gatedrnn as gr
    >>> print(gr.inspect.summary_table(gr.JANET(1, 64, num_layers=2)))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

from ..layers import RecurrentBase
from ..layers import RecurrentBase

__all__ = ["LayerRow", "layer_rows", "summary_table"]


@dataclass(frozen=True)
class LayerRow:
    """One stacked layer in one direction.

    ``input_shape``/``output_shape`` are written symbolically, time-major
    (``"(T, B, 128)"``); ``states`` maps each state name (h, and c for the LSTM) to its
    per-row shape ``"(B, n)"``; ``params`` is the number of that row's parameters."""

    name: str
    input_shape: str
    output_shape: str
    states: Dict[str, str]
    params: int


def _row_parameters(layer: RecurrentBase, names: List[str]) -> int:
    return sum(getattr(layer, name).numel() for name in names)


def layer_rows(layer: RecurrentBase) -> List[LayerRow]:
    """The rows of :func:`summary_table`, in parameter registration order."""
    if not isinstance(layer, RecurrentBase):
        raise TypeError(f"expected a gatedrnn recurrent layer, got {type(layer).__name__}")
    directions = layer.num_directions
    h_out = layer.real_hidden_size
    state_sizes = {"h": h_out, "c": layer.hidden_size}
    rows = []
    for index, names in enumerate(layer._all_weights):
        k, direction = divmod(index, directions)
        layer_input = layer.input_size if k == 0 else layer.output_size
        rows.append(LayerRow(
            name=f"l{k}" + ("_reverse" if direction == 1 else ""),
            input_shape=f"(T, B, {layer_input})",
            output_shape=f"(T, B, {h_out})",
            states={s: f"(B, {state_sizes[s]})" for s in layer.spec.state_names},
            params=_row_parameters(layer, names),
        ))
    return rows


def summary_table(layer: RecurrentBase) -> str:
    """A text table: one row per stacked layer and direction (input, output and state
    shapes, parameters), then the layer's output shape and the total parameter count.

    Raises RuntimeError if the rows' parameters do not add up to
    ``sum(p.numel() for p in layer.parameters())`` (an invariant, never expected)."""
    rows = layer_rows(layer)
    total = sum(row.params for row in rows)
    expected = sum(p.numel() for p in layer.parameters())
    if total != expected:
        raise RuntimeError(f"summary rows count {total} parameters, the layer has {expected}")

    header = ("Layer (direction)", "Input shape", "Output shape", "State shapes", "Param #")
    body = [(row.name, row.input_shape, row.output_shape,
             ", ".join(f"{s}: {shape}" for s, shape in row.states.items()), str(row.params))
            for row in rows]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def fmt(line) -> str:
        cells = [text.ljust(width) if i < len(line) - 1 else text.rjust(width)
                 for i, (text, width) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    rule_width = sum(widths) + 2 * (len(widths) - 1)
    title = f'{type(layer).__name__}({layer.extra_repr()})'
    lines = [title, "=" * rule_width, fmt(header), "=" * rule_width]
    lines += [fmt(line) for line in body]
    lines.append("=" * rule_width)
    lines.append(f"Output: (T, B, {layer.output_size})")
    lines.append(f"Total params: {total}")
    lines.append("_" * rule_width)
    return "\n".join(lines)
