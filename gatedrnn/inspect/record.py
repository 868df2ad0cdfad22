r"""Record what a recurrent layer computes: gate values, hidden and cell states.

:func:`record` runs a module forward once, captures the input of every recurrent layer
inside it (forward pre-hooks), then *replays* each layer's recurrence with the reference
step math (:meth:`gatedrnn.cells.CellSpec.step`, under ``no_grad``), from the same input
projections ``W_ih x_t + b_ih``. Whatever backend the layer itself used (native, fused,
torch's kernel), the recorded ``hidden`` reproduces its output.

How the gates are obtained (no second copy of the cell equations): the new state of
every step comes from the cell's own step function, exactly as the reference backend
computes it; only the gate values, which the step functions do not return, are derived
alongside by :func:`gate_values` from the same pre-activations, with the minimal
formulas of :mod:`gatedrnn.cells` (activations of the pre-activation blocks, plus the
LSTM peepholes and ``forget_bias``). The tests check those gates against the states
produced by the step functions (``c_t = f c_{t-1} + i g``, ``h_t = o tanh c_t``, ...).

Example::

    >>> import torch, gatedrnn as gr
    >>> lstm = gr.LSTM(3, 8, num_layers=2, bidirectional=True)
    >>> trace = gr.inspect.record(lstm, torch.randn(20, 4, 3))
    >>> [layer.name for layer in trace.layers]
    ['l0', 'l0_reverse', 'l1', 'l1_reverse']
    >>> trace["l1"].gates["f"].shape, trace["l1"].cell.shape
    (torch.Size([20, 4, 8]), torch.Size([20, 4, 8]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..cells import CellSpec, State
from ..layers import RecurrentBase

__all__ = ["LayerTrace", "Trace", "gate_values", "record"]

# -- gate values ------------------------------------------------------------------------


def gate_values(spec: CellSpec, xw: Tensor, state: State, weights: Mapping[str, Tensor],
                new_state: State) -> Dict[str, Tensor]:
    """Post-activation gate values of one step, each (B, H), keyed by gate name.

    ``xw`` (B, G H), ``state`` the previous state, ``weights`` as for
    :meth:`CellSpec.step`, ``new_state`` the state that step returned (the LSTM's
    output-gate peephole reads the new cell state). LSTM: i, f, g, o (peepholes and
    ``forget_bias`` included); GRU: r, z, n; JANET: f = sigmoid(s), g = tanh(c~);
    MGU: f, h~; RNN and IndRNN: no gates (an empty dict). Each cell defines its own in
    :meth:`~gatedrnn.cells.CellSpec.gate_values`.
    """
    return spec.gate_values(xw, state, weights, new_state)


# -- traces ---------------------------------------------------------------------------


@dataclass
class LayerTrace:
    """One stacked layer in one direction of a recurrent layer, all tensors detached.

    Attributes:
        name: ``"<module name>.l{k}"`` or ``"<module name>.l{k}_reverse"`` (``"l{k}"``
            when the recorded module is the recurrent layer itself); a layer called
            more than once gets ``"@{n}"`` appended for its n-th call (n >= 1).
        spec: the layer's :class:`~gatedrnn.cells.CellSpec`.
        gates: gate name -> (T, B, H) post-activation values (empty for the RNN).
        hidden: (T, B, H_out), the output ``h_t`` (H_out = proj_size or H).
        cell: (T, B, H) cell state ``c_t`` for the LSTM, else None.

    All are time-major and in real time order (also for the reverse direction);
    unbatched input gives B = 1.
    """

    name: str
    spec: CellSpec
    gates: Dict[str, Tensor]
    hidden: Tensor
    cell: Optional[Tensor] = None


@dataclass
class Trace:
    """What :func:`record` returns: the module's ``output`` (detached) and ``layers``,
    a list of :class:`LayerTrace`. ``trace[i]`` or ``trace["name"]`` picks one."""

    output: Any
    layers: List[LayerTrace] = field(default_factory=list)

    def names(self) -> List[str]:
        return [layer.name for layer in self.layers]

    def __getitem__(self, key: Union[int, str]) -> LayerTrace:
        if isinstance(key, str):
            for layer in self.layers:
                if layer.name == key:
                    return layer
            raise KeyError(f"no layer {key!r}; recorded: {self.names()}")
        return self.layers[key]

    def __len__(self) -> int:
        return len(self.layers)


# -- replaying a layer ----------------------------------------------------------------


@dataclass
class _Run:
    layer: int
    direction: int
    hidden: Tensor  # (T, B, H_out), real time order
    cell: Optional[Tensor]
    gates: Dict[str, Tensor]
    perturbations: List[Tensor]  # per real time step, (B, H_out) zeros (perturb only)


def _dense(input) -> None:
    if isinstance(input, PackedSequence):
        raise ValueError("record takes a dense tensor, got a PackedSequence: "
                         "pad it (torch.nn.utils.rnn.pad_packed_sequence) first")


def _replay(layer: RecurrentBase, input: Tensor, hx, *, with_gates: bool = False,
            perturb: bool = False) -> Tuple[Tensor, Tuple[Tensor, ...], bool, List[_Run]]:
    """Re-run every layer and direction of ``layer`` with the reference step math.

    ``perturb`` adds a zero tensor requiring grad to the output ``h`` of every step of
    the top layer, inside the recurrence: its gradient is then the total derivative
    d loss / d h_t. Returns ``(x (T, B, D*H_out), final states (L*D, B, ·) each,
    batched, runs)``.
    """
    _dense(input)
    if layer.training and layer.dropout > 0 and layer.num_layers > 1:
        raise ValueError("cannot replay dropout between layers: call module.eval() first")
    x, _, batched = layer._prepare_input(input)  # (T, B, I)
    state0 = layer._prepare_state(hx, x.size(1), batched, x)
    spec, runs, finals = layer.spec, [], []
    for k in range(layer.num_layers):
        outputs = []
        for d in range(layer.num_directions):
            xw, weights = layer._direction_inputs(x, k, d)  # (T, B, G*H)
            if d == 1:
                xw = xw.flip(0)  # dense input: every sequence has T steps
            state = tuple(s[k * layer.num_directions + d] for s in state0)
            steps: List[State] = []
            gates: List[Dict[str, Tensor]] = []
            eps: List[Tensor] = []
            for xw_t in xw.unbind(0):  # (B, G*H)
                new = spec.step(xw_t, state, weights)
                if with_gates:
                    gates.append(gate_values(spec, xw_t, state, weights, new))
                if perturb and k == layer.num_layers - 1:
                    eps.append(torch.zeros_like(new[0], requires_grad=True))
                    new = (new[0] + eps[-1],) + tuple(new[1:])
                state = new
                steps.append(state)
            hidden = torch.stack([s[0] for s in steps])  # (T, B, H_out)
            cell = torch.stack([s[1] for s in steps]) if len(state) > 1 else None
            gate_seqs = {name: torch.stack([g[name] for g in gates])
                         for name in (gates[0] if gates else {})}
            if d == 1:  # back to real time order
                hidden = hidden.flip(0)
                cell = None if cell is None else cell.flip(0)
                gate_seqs = {name: g.flip(0) for name, g in gate_seqs.items()}
                eps = eps[::-1]
            runs.append(_Run(k, d, hidden, cell, gate_seqs, eps))
            outputs.append(hidden)
            finals.append(state)
        x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
    return x, tuple(torch.stack(parts) for parts in zip(*finals)), batched, runs


def _recurrent_layers(module: nn.Module) -> List[Tuple[str, RecurrentBase]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, RecurrentBase)]


def _call(module: nn.Module, input, hx):
    return module(input) if hx is None else module(input, hx)


def _layer_args(args, kwargs) -> Tuple[Any, Any]:
    """(input, hx) of a recurrent layer's forward call."""
    input = args[0] if args else kwargs["input"]
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    return input, hx


def _detach(value):
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)) and not isinstance(value, PackedSequence):
        return type(value)(_detach(v) for v in value)
    return value


def record(module: nn.Module, input: Tensor, hx=None) -> Trace:
    """Record gate values, hidden and cell states of every recurrent layer in ``module``.

    Runs ``module(input)`` (``module(input, hx)`` when ``hx`` is given) once, capturing
    the input and initial state of each :class:`~gatedrnn.layers.RecurrentBase`
    (``gr.RNN/LSTM/GRU/JANET``) inside it with forward pre-hooks, then replays each
    layer with the reference step functions under ``no_grad`` (see the module
    docstring). ``module`` is a recurrent layer or any module containing some, e.g.
    ``nn.Sequential(gr.LSTM(...), gr.MeanPool(), nn.Linear(...))``.

    Args:
        module: the module to run (its mode is respected; a stack with dropout between
            layers must be in eval mode, else ``ValueError``).
        input: a dense tensor as the module takes it: (T, B, I), (B, T, I) for
            ``batch_first`` layers, or unbatched (T, I). A ``PackedSequence`` raises
            ``ValueError("record takes a dense tensor ...")``, also when met by a
            layer inside ``module``.
        hx: optional initial state, passed to ``module`` as its second argument.

    Returns:
        A :class:`Trace`. ``trace.layers`` is ordered by module in
        ``module.named_modules()`` order, then by call (a layer called twice is
        recorded twice), then by stacked layer index, forward direction before reverse.
        Each :class:`LayerTrace` holds (T, B, ·) time-major tensors in real time order
        (B = 1 for unbatched input), whatever ``batch_first``.

    Example::

        >>> import torch, torch.nn as nn, gatedrnn as gr
        >>> model = nn.Sequential(gr.GRU(2, 5, batch_first=True),
        ...                       gr.MeanPool(batch_first=True), nn.Linear(5, 1))
        >>> trace = gr.inspect.record(model, torch.randn(3, 7, 2))
        >>> trace.names(), trace["0.l0"].gates["z"].shape
        (['0.l0'], torch.Size([7, 3, 5]))
    """
    _dense(input)
    layers = _recurrent_layers(module)
    calls: Dict[int, List[Tuple[Any, Any]]] = {id(m): [] for _, m in layers}

    def pre_hook(layer, args, kwargs):
        layer_input, layer_hx = _layer_args(args, kwargs)
        _dense(layer_input)
        calls[id(layer)].append((layer_input, layer_hx))

    handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True) for _, m in layers]
    try:
        with torch.no_grad():
            output = _call(module, input, hx)
    finally:
        for handle in handles:
            handle.remove()

    trace = Trace(output=_detach(output))
    with torch.no_grad():
        for prefix, layer in layers:
            for n, (layer_input, layer_hx) in enumerate(calls[id(layer)]):
                *_, runs = _replay(layer, layer_input, layer_hx, with_gates=True)
                for run in runs:
                    name = f"l{run.layer}" + ("_reverse" if run.direction == 1 else "")
                    name = f"{prefix}.{name}" if prefix else name
                    if n > 0:
                        name += f"@{n}"
                    trace.layers.append(LayerTrace(
                        name=name, spec=layer.spec,
                        gates={g: v.detach() for g, v in run.gates.items()},
                        hidden=run.hidden.detach(),
                        cell=None if run.cell is None else run.cell.detach(),
                    ))
    return trace
