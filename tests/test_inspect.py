"""gatedrnn.inspect: recorded gates and states, and gradient flow over time."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr

CELLS = {
    "rnn_tanh": lambda **kw: gr.RNN(3, 5, nonlinearity="tanh", **kw),
    "lstm": lambda **kw: gr.LSTM(3, 5, **kw),
    "lstm_peep_fb": lambda **kw: gr.LSTM(3, 5, peepholes=True, forget_bias=1.0, **kw),
    "gru_reset_after": lambda **kw: gr.GRU(3, 5, reset_after=True, **kw),
    "gru_reset_before": lambda **kw: gr.GRU(3, 5, reset_after=False, **kw),
    "janet": lambda **kw: gr.JANET(3, 5, beta=1.5, **kw),
}


def _make(cell, dtype=torch.float32, backend="auto", **kw):
    torch.manual_seed(0)
    layer = CELLS[cell](num_layers=2, bidirectional=True, backend=backend, **kw).to(dtype)
    with torch.no_grad():  # give the peepholes (zero-initialised in torch's way or not) weight
        for name, p in layer.named_parameters():
            if name.startswith("weight_c"):
                p.uniform_(-0.5, 0.5)
    return layer


def _check_against_layer(layer, trace, output, h_n, atol):
    """Top layer's hidden == output; every layer's last step == its final state."""
    D = layer.num_directions
    top = [trace[f"l{layer.num_layers - 1}" + s].hidden for s in ("", "_reverse")[:D]]
    torch.testing.assert_close(torch.cat(top, -1), output, atol=atol, rtol=0)
    for k in range(layer.num_layers):
        torch.testing.assert_close(trace[f"l{k}"].hidden[-1], h_n[k * D], atol=atol, rtol=0)
        torch.testing.assert_close(trace[f"l{k}_reverse"].hidden[0], h_n[k * D + 1], atol=atol, rtol=0)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype,backend,atol", [(torch.float32, "auto", 1e-6),
                                                (torch.float64, "reference", 1e-12)])
def test_hidden_reproduces_layer_output(cell, dtype, backend, atol):
    layer = _make(cell, dtype, backend)
    x = torch.randn(9, 4, 3, dtype=dtype)
    output, state = layer(x)
    h_n = state[0] if isinstance(state, tuple) else state
    trace = gr.inspect.record(layer, x)
    assert trace.names() == ["l0", "l0_reverse", "l1", "l1_reverse"]
    _check_against_layer(layer, trace, output, h_n, atol)
    for lt in trace.layers:
        assert lt.hidden.shape == (9, 4, 5) and not lt.hidden.requires_grad
        assert set(lt.gates) == (set() if cell.startswith("rnn") else set(layer.spec.gates))
        assert all(g.shape == (9, 4, 5) and not g.requires_grad for g in lt.gates.values())
        assert (lt.cell is not None) == cell.startswith("lstm")
    if cell.startswith("lstm"):
        torch.testing.assert_close(trace["l1"].cell[-1], state[1][2], atol=atol, rtol=0)


def test_every_backend_batch_first_and_unbatched():
    for backend in gr.backends.available():
        torch.manual_seed(1)
        layer = gr.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, backend=backend)
        x = torch.randn(4, 9, 3)
        output, (h_n, _) = layer(x)
        trace = gr.inspect.record(layer, x)
        _check_against_layer(layer, trace, output.transpose(0, 1), h_n, 1e-6)
    output, h_n = (layer := _make("gru_reset_before"))(x1 := torch.randn(9, 3))
    trace = gr.inspect.record(layer, x1)
    assert trace["l0"].hidden.shape == (9, 1, 5)
    _check_against_layer(layer, trace, output.unsqueeze(1), h_n.unsqueeze(1), 1e-6)


def test_initial_state_is_used():
    layer = _make("lstm")
    x = torch.randn(6, 2, 3)
    hx = (torch.randn(4, 2, 5), torch.randn(4, 2, 5))
    output, (h_n, _) = layer(x, hx)
    _check_against_layer(layer, gr.inspect.record(layer, x, hx), output, h_n, 1e-6)


def _previous(seq, direction, initial=0.0):
    """The state before each step in the direction's own time: (T, B, H)."""
    pad = torch.full_like(seq[:1], initial)
    if direction == "":
        return torch.cat([pad, seq[:-1]])
    return torch.cat([seq[1:], pad])


@pytest.mark.parametrize("cell", ["lstm", "lstm_peep_fb", "janet", "gru_reset_after", "gru_reset_before"])
def test_cell_equations_hold_on_recorded_values(cell):
    layer = _make(cell, torch.float64, "reference")
    trace = gr.inspect.record(layer, torch.randn(8, 3, 3, dtype=torch.float64))
    for lt in trace.layers:
        g, h = lt.gates, lt.hidden
        direction = "_reverse" if lt.name.endswith("_reverse") else ""
        if cell.startswith("lstm"):
            c_prev = _previous(lt.cell, direction)
            torch.testing.assert_close(lt.cell, g["f"] * c_prev + g["i"] * g["g"], atol=1e-12, rtol=0)
            torch.testing.assert_close(h, g["o"] * torch.tanh(lt.cell), atol=1e-12, rtol=0)
        elif cell == "janet":
            s = torch.logit(g["f"])
            expected = g["f"] * _previous(h, direction) + (1 - torch.sigmoid(s - 1.5)) * g["g"]
            torch.testing.assert_close(h, expected, atol=1e-10, rtol=0)
        else:
            expected = (1 - g["z"]) * g["n"] + g["z"] * _previous(h, direction)
            torch.testing.assert_close(h, expected, atol=1e-12, rtol=0)


def test_forget_bias_is_in_the_forget_gate():
    """Same weights with and without forget_bias: f differs by exactly the shift."""
    torch.manual_seed(0)
    plain = gr.LSTM(3, 5, dtype=torch.float64)
    shifted = gr.LSTM(3, 5, forget_bias=2.0, dtype=torch.float64)
    shifted.load_state_dict(plain.state_dict())
    x = torch.randn(1, 2, 3, dtype=torch.float64)  # one step from zero state: same pre-activations
    f0 = gr.inspect.record(plain, x)["l0"].gates["f"]
    f1 = gr.inspect.record(shifted, x)["l0"].gates["f"]
    torch.testing.assert_close(torch.logit(f1) - torch.logit(f0), torch.full_like(f0, 2.0))


def test_record_through_sequential():
    torch.manual_seed(0)
    model = nn.Sequential(gr.GRU(3, 5, batch_first=True), gr.MeanPool(batch_first=True),
                          nn.Linear(5, 2), nn.Tanh())
    x = torch.randn(4, 7, 3)
    trace = gr.inspect.record(model, x)
    assert trace.names() == ["0.l0"]
    hidden = trace["0.l0"].hidden  # (T, B, H)
    assert hidden.shape == (7, 4, 5)
    torch.testing.assert_close(torch.tanh(model[2](hidden.mean(0))), trace.output)
    torch.testing.assert_close(trace.output, model(x).detach())


def test_record_orders_modules_and_repeated_calls():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = gr.JANET(3, 4)
            self.second = gr.RNN(4, 4, bidirectional=True)

        def forward(self, x):
            y, _ = self.first(x)
            y, _ = self.first(y[..., :3])
            return self.second(y)[0]

    trace = gr.inspect.record(Two(), torch.randn(5, 2, 3))
    assert trace.names() == ["first.l0", "first.l0@1", "second.l0", "second.l0_reverse"]


def test_packed_sequence_is_refused():
    layer = gr.LSTM(3, 5)
    packed = pack_padded_sequence(torch.randn(4, 2, 3), torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="record takes a dense tensor"):
        gr.inspect.record(layer, packed)
    with pytest.raises(ValueError, match="dense tensor"):
        gr.inspect.gradient_flow(layer, packed)


# -- gradient flow ----------------------------------------------------------------------


def _flow_by_hand(cells, x, loss_of_outputs):
    """Independent oracle: torch.nn cells step by step, retain_grad on every h_t.

    ``cells``: one torch.nn cell per direction (forward, then reverse).
    """
    steps = x.size(0)
    per_direction = []
    for d, cell in enumerate(cells):
        h = torch.zeros(x.size(1), cell.hidden_size, dtype=x.dtype)
        state = (h, h.clone()) if isinstance(cell, nn.LSTMCell) else h
        hs = [None] * steps
        for t in (range(steps) if d == 0 else reversed(range(steps))):
            state = cell(x[t], state)
            h = state[0] if isinstance(state, tuple) else state
            h.retain_grad()
            hs[t] = h
        per_direction.append(hs)
    outputs = torch.stack([torch.cat([hs[t] for hs in per_direction], -1) for t in range(steps)])
    loss_of_outputs(outputs).backward()
    return torch.stack([torch.cat([hs[t].grad for hs in per_direction], -1).norm()
                        for t in range(steps)])


def _copy_to_cell(layer, cell, suffix=""):
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(layer, f"{name}_l0{suffix}"))
    return cell


def test_gradient_flow_rnn_default_loss_batch_first():
    torch.manual_seed(0)
    layer = gr.RNN(3, 6, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    flow = gr.inspect.gradient_flow(layer, x)
    cell = _copy_to_cell(layer, nn.RNNCell(3, 6, dtype=torch.float64))
    expected = _flow_by_hand([cell], x.transpose(0, 1), lambda out: out[-1].sum())
    assert flow.shape == (12,)
    torch.testing.assert_close(flow, expected, atol=1e-12, rtol=1e-10)
    assert flow[0] < flow[-1] and flow[:-1].abs().min() > 0  # through the recurrence


def test_gradient_flow_through_sequential_lstm():
    torch.manual_seed(0)
    model = nn.Sequential(gr.LSTM(3, 6, dtype=torch.float64), gr.LastStep(),
                          nn.Linear(6, 2, dtype=torch.float64))
    x = torch.randn(10, 4, 3, dtype=torch.float64)
    flow = gr.inspect.gradient_flow(model, x)  # default: sum of the module's output
    cell = _copy_to_cell(model[0], nn.LSTMCell(3, 6, dtype=torch.float64))
    expected = _flow_by_hand([cell], x, lambda out: model[2](out[-1]).sum())
    torch.testing.assert_close(flow, expected, atol=1e-12, rtol=1e-10)


def test_gradient_flow_bidirectional_gru_custom_loss():
    torch.manual_seed(0)
    layer = gr.GRU(3, 4, bidirectional=True, dtype=torch.float64)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    loss = lambda out: (out ** 2).mean(1).sum()  # noqa: E731
    flow = gr.inspect.gradient_flow(layer, x, loss=lambda output: loss(output[0]))
    cells = [_copy_to_cell(layer, nn.GRUCell(3, 4, dtype=torch.float64), s) for s in ("", "_reverse")]
    torch.testing.assert_close(flow, _flow_by_hand(cells, x, loss), atol=1e-12, rtol=1e-10)


def test_gradient_flow_vanishes_for_rnn_not_for_chrono_janet():
    """The issue's target: over T = 200, a vanilla RNN's gradient vanishes (>= 100x more)."""
    torch.manual_seed(0)
    rnn = gr.RNN(1, 64)
    janet = gr.init.chrono_(gr.JANET(1, 64), t_max=200)
    x = torch.randn(200, 8, 1)
    flow_rnn = gr.inspect.gradient_flow(rnn, x)
    flow_janet = gr.inspect.gradient_flow(janet, x)
    ratio_rnn = (flow_rnn[0] / flow_rnn[-1]).item()
    ratio_janet = (flow_janet[0] / flow_janet[-1]).item()
    assert ratio_janet > 0
    assert ratio_rnn * 100 <= ratio_janet
