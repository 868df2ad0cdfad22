r"""``gatedrnn explore RUN_DIR``: one self-contained, interactive HTML page about a trained run.

:func:`explore` rebuilds the run's best model, records it with
:func:`gatedrnn.inspect.record` on held-out data (the first ``steps`` characters of the
test text for a language model; test sequences laid end to end, the state starting
afresh at each, for the other tasks) and writes a page that needs no network: its
script and style are inlined (``explore.js``, ``explore.css`` beside this module) and
the recording is embedded as base64 of uint8 arrays. On the page:

* the sequence, each step coloured by one unit's h, c or gate value (Karpathy, Johnson &
  Fei-Fei 2015); numeric inputs are drawn as curves above the steps;
* hovering a step: every gate's and state's value of that unit there, and the cell's
  diagram (:func:`cell_diagram`, built from the cell's spec: its gates, their
  activations and the equations of its state updates) annotated with those values;
* selecting a span (drag over the steps): the units ranked by how much higher their
  value is inside the span than elsewhere, and the other spans where the same units
  switch on (LSTMVis' select and match views, Strobelt et al. 2017);
* the units ranked by their correlation with built-in features of the input
  (:func:`text_features`: inside a string or comment, indentation, bracket depth,
  start of line, column; for numeric tasks the input channels and the position in the
  sequence);
* the forget gate of the selected units over all steps ("here it forgets").

Data layout: every recorded quantity q of a layer (its states, then its gates, in the
spec's order) is an (H, N) array, unit-major, quantised per unit to 256 levels between
the unit's minimum ``lo`` and maximum ``hi``: ``value = lo + code * (hi - lo) / 255``
(at most ``(hi - lo) / 510`` from the recorded float). 20 000 steps x 256 units of an
LSTM (h, c, i, f, g, o) are 31 MB of codes, 41 MB of base64.

Example::

    >>> from gatedrnn.inspect.explore import explore
    >>> explore("runs/pysource-lstm-seed0", steps=4000)  # doctest: +SKIP
    PosixPath('runs/pysource-lstm-seed0/explore.html')
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..cells import CellSpec
from ..layers import RecurrentBase
from ..tasks import LanguageModelTask
from ..train.runs import LoadedRun, load_run
from .record import record

__all__ = ["DEFAULT_STEPS", "Recording", "LayerRecording", "explore", "record_run", "text_features",
           "sequence_features", "cell_diagram", "quantise", "render_page"]

PathLike = Union[str, "os.PathLike[str]"]

#: steps recorded when ``steps`` is not given
DEFAULT_STEPS = 4000
_TEMPLATES = Path(__file__).parent
#: model guesses shown per step of a text
TOP_GUESSES = 3


# -- what is recorded -------------------------------------------------------------------


@dataclass
class LayerRecording:
    """One recurrent layer over the N recorded steps.

    ``quantities`` maps the states (``h``, and ``c`` where the cell has one), then every
    gate (:func:`quantity_name`), to an (N, H) float array; ``initial`` is the state
    value before the first step of each sequence (0, or 0.5 for the minimal RNNs).
    """

    name: str
    spec: CellSpec
    quantities: Dict[str, np.ndarray]
    states: Tuple[str, ...]
    initial: float = 0.0


@dataclass
class Recording:
    """What the page shows: N steps, their input, the layers, the features.

    ``kind`` is ``"text"`` (``text`` holds the N characters; ``guesses`` the model's top
    guesses for the next one: ids (N, 3), probabilities (N, 3), and ``next_probability``
    (N,) of the character that came) or ``"sequence"`` (``inputs`` (N, I), sequences of
    ``segment`` steps laid end to end, ``targets`` one string per sequence).
    """

    kind: str
    title: str
    layers: List[LayerRecording]
    features: Dict[str, np.ndarray]
    text: str = ""
    inputs: Optional[np.ndarray] = None
    segment: int = 0
    targets: List[str] = field(default_factory=list)
    vocabulary: str = ""
    guesses: Optional[Tuple[np.ndarray, np.ndarray]] = None
    next_probability: Optional[np.ndarray] = None

    @property
    def steps(self) -> int:
        return len(self.text) if self.kind == "text" else int(self.inputs.shape[0])


# -- features of the input --------------------------------------------------------------

#: what each text feature is (shown on the page)
TEXT_FEATURES = {
    "in string": "1 inside a string literal (quotes included), else 0 (Python's tokenize)",
    "in comment": "1 inside a # comment, else 0",
    "indentation": "leading spaces of the character's line",
    "bracket depth": "open (, [ and { around the character outside strings and comments",
    "start of line": "1 for the first character of a line, else 0",
    "column": "characters since the start of the line",
}


def text_features(text: str) -> Dict[str, np.ndarray]:
    """Per-character features of Python source ``text``, each (len(text),) float64 (see
    :data:`TEXT_FEATURES`). Strings, comments and brackets come from :mod:`tokenize`; a
    text that stops mid-statement (a window cut from a file) is read up to where the
    tokenizer gives up, and the characters after that count as outside any string,
    comment or bracket."""
    n = len(text)
    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())

    def offset(position: Tuple[int, int]) -> int:
        row, column = position
        return min(line_starts[row - 1] + column, n) if row - 1 < len(line_starts) else n

    in_string, in_comment, depth = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    fstrings: List[int] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            start, end = offset(token.start), offset(token.end)
            name = tokenize.tok_name[token.type]
            if name == "STRING":
                in_string[start] += 1
                in_string[end] -= 1
            elif name == "FSTRING_START":  # Python >= 3.12 splits f-strings into tokens
                fstrings.append(start)
            elif name == "FSTRING_END" and fstrings:
                in_string[fstrings.pop()] += 1
                in_string[end] -= 1
            elif name == "COMMENT":
                in_comment[start] += 1
                in_comment[end] -= 1
            elif name == "OP" and token.string in "([{":
                depth[end] += 1  # the bracket itself stays outside
            elif name == "OP" and token.string in ")]}":
                depth[start] -= 1
    except (tokenize.TokenError, SyntaxError):
        pass  # the window ends inside a statement or string: keep what was read
    column = np.zeros(n)
    indentation = np.zeros(n)
    start_of_line = np.zeros(n)
    for index, begin in enumerate(line_starts):
        end = line_starts[index + 1] if index + 1 < len(line_starts) else n
        if begin >= n:
            break
        line = text[begin:end]
        column[begin:end] = np.arange(end - begin)
        indentation[begin:end] = len(line) - len(line.lstrip(" \t"))
        start_of_line[begin] = 1.0
    return {"in string": (np.cumsum(in_string)[:n] > 0).astype(np.float64),
            "in comment": (np.cumsum(in_comment)[:n] > 0).astype(np.float64),
            "indentation": indentation,
            "bracket depth": np.maximum(np.cumsum(depth)[:n], 0.0),
            "start of line": start_of_line,
            "column": column}


#: input channels that get a feature of their own on numeric tasks
MAX_INPUT_FEATURES = 8


def sequence_features(inputs: np.ndarray, segment: int) -> Dict[str, np.ndarray]:
    """Features of sequences laid end to end: ``inputs`` (N, I), ``segment`` steps each:
    the first :data:`MAX_INPUT_FEATURES` input channels and the step within the sequence."""
    features = {f"input {i}": inputs[:, i].astype(np.float64)
                for i in range(min(inputs.shape[1], MAX_INPUT_FEATURES))}
    features["step in sequence"] = (np.arange(len(inputs)) % segment).astype(np.float64)
    return features


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit's values (N, H) with ``feature`` (N,): (H,), 0
    where either is constant."""
    v = values - values.mean(0)
    f = feature - feature.mean()
    scale = np.sqrt((v * v).sum(0) * (f * f).sum())
    return np.divide(f @ v, scale, out=np.zeros(values.shape[1]), where=scale > 0)


# -- the cell's diagram -----------------------------------------------------------------

_ACTIVATIONS = (("sigmoid", "σ"), ("tanh", "tanh"), ("relu", "relu"))


def _activation(spec: CellSpec, gate: str) -> str:
    """The activation of ``gate`` as its note or its equation names it ("σ", "tanh", ...)."""
    note = spec.gate_notes.get(gate, "")
    for word, symbol in _ACTIVATIONS:
        if word in note:
            return symbol
    for line in spec.equations():
        match = re.search(rf"(?<![\w~]){re.escape(gate)}~?_t\s*=\s*(\w+)\(", line)
        if match:
            return dict(_ACTIVATIONS).get(match.group(1), match.group(1))
    return gate


def quantity_name(spec: CellSpec, gate: str) -> str:
    """The page's name of a gate: the gate's own, with ``~`` appended where a state has
    that name (the MGU's and the minimal RNNs' candidate ``h`` becomes ``h~``)."""
    return gate + "~" if gate in spec.state_names else gate


def _split_top(expression: str, operator: str) -> List[str]:
    """``expression`` split at ``operator`` outside parentheses and braces."""
    parts, depth, current = [], 0, ""
    for character in expression:
        depth += (character in "({") - (character in ")}")
        if character == operator and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += character
    return parts + [current.strip()]


def _unwrap(text: str) -> str:
    """``text`` without parentheses that enclose all of it."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for index, character in enumerate(text):
            depth += (character == "(") - (character == ")")
            if depth == 0 and index < len(text) - 1:
                return text  # "(a) * (b)": the first parenthesis closes early
        text = text[1:-1].strip()
    return text


def _factor(text: str, gates: Dict[str, str], aliases: Dict[str, str]) -> Dict[str, str]:
    """One factor of a product: ``gates`` maps gate names to their quantity names,
    ``aliases`` the names of the states in the equation to the spec's state names."""
    text = _unwrap(text.strip())
    for gate, key in gates.items():
        if re.fullmatch(rf"{re.escape(gate)}~?_t", text):
            return {"kind": "gate", "name": key}
        if re.fullmatch(rf"1\s*-\s*{re.escape(gate)}~?_t", text):
            return {"kind": "complement", "name": key}
    for alias, state in aliases.items():
        if re.fullmatch(rf"{re.escape(alias)}_\{{t-1\}}", text):
            return {"kind": "previous", "name": state}
    reads = [state for alias, state in aliases.items() if re.search(rf"\b{re.escape(alias)}_t\b", text)]
    return {"kind": "function", "text": text, "reads": reads[0] if reads else ""}


def cell_diagram(spec: CellSpec, gate_names: Sequence[str]) -> Dict[str, Any]:
    """The dataflow of one step of ``spec``'s cell, for the page to draw.

    Built from the spec alone: ``gates`` lists each recorded gate with its activation
    (from :attr:`~gatedrnn.cells.CellSpec.gate_notes` or the equations) and its note;
    ``updates`` has one entry per state update among
    :meth:`~gatedrnn.cells.CellSpec.equations` (a line whose left side is a state:
    ``c_t = f_t * c_{t-1} + i_t * g_t``), its right side cut into ``terms`` (a sum) of
    factors (a product): ``gate``, ``complement`` (1 - gate), ``previous`` (the state at
    t - 1) or ``function`` (anything else, e.g. ``tanh(c_t)``, whose value the page
    recovers from the recorded state). An update the sum-of-products form cannot read
    (a quotient) has ``terms`` None and is drawn as one box.
    """
    states = list(spec.state_names)
    keys = {gate: quantity_name(spec, gate) for gate in gate_names}
    updates = []
    for line in spec.equations():
        equation = re.sub(r"\s{2,}\(.*\)\s*$", "", line).strip()  # drop "   (beta = 1)"
        sides = [part.strip() for part in equation.split(" = ")]
        left, right = sides[:-1], sides[-1]
        targets = [name[:-2] for name in left if name.endswith("_t")]
        state = next((name for name in targets if name in states), None)
        if state is None:
            continue
        aliases = {name: name for name in states}
        aliases.update({name: state for name in targets})
        terms: Optional[List[List[Dict[str, str]]]]
        if len(_split_top(right, "/")) > 1 or len(_split_top(right, "-")) > 1:
            terms = None
        else:
            terms = [[_factor(f, keys, aliases) for f in _split_top(term, "*")]
                     for term in _split_top(right, "+")]
        updates.append({"state": state, "equation": equation, "terms": terms})
    return {"cell": spec.name, "states": states,
            "gates": [{"name": keys[g], "activation": _activation(spec, g), "note": spec.gate_notes.get(g, "")}
                      for g in gate_names],
            "updates": updates, "equations": spec.equations(),
            "forget": keys.get(spec.forget_gate)}


# -- recording a run --------------------------------------------------------------------


def _flat(values: Tensor) -> np.ndarray:
    """(T, B, H) -> (B T, H): the sequences one after another."""
    return values.transpose(0, 1).reshape(-1, values.shape[-1]).double().numpy()


def _layer_recordings(model: torch.nn.Module, trace) -> List[LayerRecording]:
    """The trace's layers as (N, H) arrays."""
    recurrent = next(m for m in model.modules() if isinstance(m, RecurrentBase))
    initial = float(recurrent.spec.initial_state)  # the minimal RNNs' h_0 = 0.5
    layers = []
    for layer in trace.layers:
        quantities = {"h": _flat(layer.hidden)}
        if layer.cell is not None:
            quantities["c"] = _flat(layer.cell)
        states = tuple(quantities)
        quantities.update({quantity_name(layer.spec, name): _flat(values) for name, values in layer.gates.items()})
        layers.append(LayerRecording(layer.name, layer.spec, quantities, states, initial))
    return layers


def _check_recurrent(run: LoadedRun) -> None:
    if not any(isinstance(m, RecurrentBase) for m in run.model.modules()):
        raise ValueError(f"the {run.config.cell} model of {run.run_dir} has no recurrent layer: there "
                         "are no gates or states to explore")


def record_run(run: LoadedRun, steps: int = DEFAULT_STEPS) -> Recording:
    """Record ``run``'s model on its task's test data: :class:`Recording` of ``steps`` steps
    (fewer where the test data are shorter)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    _check_recurrent(run)
    task, model = run.task, run.model
    title = f"{run.config.cell} on {task.name} ({run.run_dir})"
    test = task.load().test
    if isinstance(task, LanguageModelTask):
        count = min(steps, len(test))
        ids = test.x[:count].unsqueeze(0)  # (1, N)
        trace = record(model, ids)
        logits, _ = trace.output  # (1, N, V)
        probabilities = torch.softmax(logits[0].double(), dim=-1)  # (N, V)
        top = probabilities.topk(TOP_GUESSES, dim=-1)
        text = task.decode(ids[0])
        return Recording(
            "text", title, _layer_recordings(model, trace), text_features(text),
            text=text, vocabulary=task.vocabulary,
            guesses=(top.indices.numpy(), top.values.numpy()),
            next_probability=probabilities.gather(1, test.y[:count, None])[:, 0].numpy())
    segment = test.x.shape[1]
    count = max(1, min(len(test), steps // segment))
    x = test.x[:count]  # (B, T, I)
    trace = record(model, x)
    inputs = x.reshape(-1, x.shape[-1]).double().numpy()  # (N, I)
    y = test.y[:count]
    targets = [" ".join(f"{v:g}" for v in row.flatten().tolist()) for row in y]
    return Recording("sequence", title, _layer_recordings(model, trace),
                     sequence_features(inputs, segment), inputs=inputs, segment=segment, targets=targets)


# -- the page ---------------------------------------------------------------------------


def quantise(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (H, N) uint8, lo (H,), hi (H,)) of ``values`` (N, H): per column,
    ``value ~ lo + code * (hi - lo) / 255``."""
    lo, hi = values.min(0), values.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    codes = np.rint((values - lo) / span * 255.0).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(codes.T), lo, hi


class _Blob:
    """Byte arrays laid end to end; ``add`` returns an array's offset."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.size = 0

    def add(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
        offset = self.size
        self.parts.append(data)
        self.size += len(data)
        return offset


def _floats(values: np.ndarray) -> List[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=np.float64)]


def _gate_names(layer: LayerRecording) -> List[str]:
    """The spec's names of the recorded gates."""
    return [gate for gate in layer.spec.gates if quantity_name(layer.spec, gate) in layer.quantities
            and quantity_name(layer.spec, gate) not in layer.states]


def page_data(recording: Recording) -> Tuple[Dict[str, Any], bytes]:
    """The page's metadata (JSON) and its binary blob (see the module docstring)."""
    blob = _Blob()
    layers = []
    for layer in recording.layers:
        quantities = []
        for name, values in layer.quantities.items():
            codes, lo, hi = quantise(values)
            kind = "state" if name in layer.states else "gate"
            quantities.append({"name": name, "kind": kind, "offset": blob.add(codes),
                               "lo": _floats(lo), "hi": _floats(hi)})
        correlation = {feature: {name: _floats(np.round(correlations(values, feature_values), 4))
                                 for name, values in layer.quantities.items()}
                       for feature, feature_values in recording.features.items()}
        layers.append({"name": layer.name, "cell": layer.spec.name, "hidden": layer.quantities["h"].shape[1],
                       "initial": layer.initial, "quantities": quantities, "correlations": correlation,
                       "diagram": cell_diagram(layer.spec, _gate_names(layer))})
    features = []
    for name, values in recording.features.items():
        codes, lo, hi = quantise(values[:, None])
        integer = bool(np.all(values == np.rint(values)))
        features.append({"name": name, "offset": blob.add(codes), "lo": float(lo[0]), "hi": float(hi[0]),
                         "integer": integer, "description": TEXT_FEATURES.get(name, "")})
    meta: Dict[str, Any] = {"title": recording.title, "kind": recording.kind, "steps": recording.steps,
                            "layers": layers, "features": features}
    if recording.kind == "text":
        ids, probabilities = recording.guesses
        meta.update(text=recording.text, vocabulary=recording.vocabulary,
                    guesses={"count": ids.shape[1], "ids": blob.add(ids.T),
                             "probabilities": blob.add(np.rint(probabilities.T * 255)),
                             "next": blob.add(np.rint(recording.next_probability * 255))})
    else:
        codes, lo, hi = quantise(recording.inputs)
        meta.update(segment=recording.segment, targets=recording.targets,
                    inputs={"channels": recording.inputs.shape[1], "offset": blob.add(codes),
                            "lo": _floats(lo), "hi": _floats(hi)})
    return meta, b"".join(blob.parts)


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def render_page(recording: Recording) -> str:
    """The HTML page of ``recording``: template, style, script and data in one string."""
    meta, blob = page_data(recording)
    template = (_TEMPLATES / "explore.html").read_text(encoding="utf-8")
    replacements = {"{{title}}": json.dumps(recording.title)[1:-1].replace("<", "&lt;"),
                    "{{style}}": (_TEMPLATES / "explore.css").read_text(encoding="utf-8"),
                    "{{script}}": (_TEMPLATES / "explore.js").read_text(encoding="utf-8"),
                    "{{meta}}": _script_json(meta),
                    "{{blob}}": base64.b64encode(blob).decode("ascii")}
    return re.sub("|".join(re.escape(key) for key in replacements), lambda m: replacements[m.group(0)],
                  template)


def explore(run_dir: PathLike, out: Optional[PathLike] = None, steps: Optional[int] = None) -> Path:
    """Record the run in ``run_dir`` and write its explorer page; return the page's path.

    Args:
        run_dir: a directory written by ``gatedrnn train``.
        out: the page to write (default ``run_dir/explore.html``).
        steps: steps to record (default :data:`DEFAULT_STEPS`): characters of the test
            text, or as many whole test sequences as fit (at least one).

    Raises:
        FileNotFoundError: no such run, configuration or weights.
        ValueError: a model with no recurrent layer (the Transformer), or bad ``steps``.
    """
    run = load_run(run_dir)
    recording = record_run(run, DEFAULT_STEPS if steps is None else steps)
    page = Path(run_dir) / "explore.html" if out is None else Path(out)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_page(recording), encoding="utf-8")
    return page
