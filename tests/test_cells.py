"""Step functions against hard-coded values and invariants; the backend registry."""

import math

import pytest
import torch
from torch import nn

import gatedrnn as gr
from gatedrnn.backends import fused, reference
from gatedrnn.sequences import reverse_within_lengths


def zero_parameters(module):
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


def test_janet_zero_weights_halves_the_state():
    # s = 0, c~ = 0: c' = sigmoid(0) c + (1 - sigmoid(-1)) tanh(0) = c / 2
    cell = zero_parameters(gr.JANETCell(3, 2).double())
    h0 = torch.tensor([[1.0, -4.0]], dtype=torch.double)
    torch.testing.assert_close(cell(torch.ones(1, 3, dtype=torch.double), h0), h0 / 2)


def test_janet_beta_shifts_the_input_gate():
    # c = 0, s = 0, c~ = b: c' = (1 - sigmoid(-beta)) tanh(b) = sigmoid(beta) tanh(b)
    for beta in (0.0, 1.0, 3.0):
        cell = zero_parameters(gr.JANETCell(1, 1, beta=beta).double())
        with torch.no_grad():
            cell.bias_ih[1] = 0.7
        expected = 1 / (1 + math.exp(-beta)) * math.tanh(0.7)
        assert cell(torch.zeros(1, 1, dtype=torch.double)).item() == pytest.approx(expected, abs=1e-15)


def test_lstm_forget_bias_with_zero_weights():
    # i = o = sigmoid(0) = 1/2, g = 0, f = sigmoid(0 + 1): c' = sigmoid(1) c, h' = tanh(c') / 2
    cell = zero_parameters(gr.LSTMCell(2, 1, forget_bias=1.0).double())
    c0 = torch.tensor([[2.0]], dtype=torch.double)
    h, c = cell(torch.ones(1, 2, dtype=torch.double), (torch.zeros(1, 1, dtype=torch.double), c0))
    sig1 = 1 / (1 + math.exp(-1))
    assert c.item() == pytest.approx(2 * sig1, abs=1e-15)
    assert h.item() == pytest.approx(math.tanh(2 * sig1) / 2, abs=1e-15)


def test_lstm_forget_bias_equals_a_shifted_torch_bias():
    torch.manual_seed(0)
    ours = gr.LSTM(3, 5, num_layers=2, forget_bias=1.5).double()
    theirs = nn.LSTM(3, 5, num_layers=2).double()
    state = ours.state_dict()
    for k in ("bias_ih_l0", "bias_ih_l1"):
        state[k] = state[k].clone()
        state[k][5:10] += 1.5  # the f block
    theirs.load_state_dict(state)
    x = torch.randn(7, 2, 3, dtype=torch.double)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


def test_lstm_cell_clip_bounds_the_cell_state():
    torch.manual_seed(0)
    lstm = gr.LSTM(2, 8, cell_clip=0.25).double()
    with torch.no_grad():
        lstm.bias_ih_l0.fill_(3.0)  # saturate the gates so that c grows past the clip
    _, (h, c) = lstm(torch.randn(20, 4, 2, dtype=torch.double))
    assert c.abs().max().item() == pytest.approx(0.25)


def test_lstm_zero_peepholes_equal_no_peepholes():
    torch.manual_seed(0)
    with_peep = gr.LSTM(3, 4, peepholes=True).double()
    plain = gr.LSTM(3, 4).double()
    plain.load_state_dict({k: v for k, v in with_peep.state_dict().items() if "_c" not in k})
    with torch.no_grad():
        for name in ("weight_ci_l0", "weight_cf_l0", "weight_co_l0"):
            getattr(with_peep, name).zero_()
    x = torch.randn(6, 2, 3, dtype=torch.double)
    torch.testing.assert_close(with_peep(x)[0], plain(x)[0])
    assert [n for n, _ in with_peep.named_parameters()][-3:] == ["weight_ci_l0", "weight_cf_l0", "weight_co_l0"]


def test_gru_reset_before_differs_from_reset_after_only_in_the_candidate():
    torch.manual_seed(0)
    after = gr.GRUCell(3, 4).double()
    before = gr.GRUCell(3, 4, reset_after=False).double()
    before.load_state_dict(after.state_dict())
    x, h = torch.randn(2, 3, dtype=torch.double), torch.randn(2, 4, dtype=torch.double)
    assert not torch.allclose(after(x, h), before(x, h))
    with torch.no_grad():  # with b_hn = 0 and r = 1 both forms coincide
        for cell in (after, before):
            cell.bias_hh[8:].zero_()
            cell.bias_ih[:4].fill_(50.0)
    torch.testing.assert_close(after(x, h), before(x, h))


def test_reverse_within_lengths_is_an_involution_that_keeps_padding():
    x = torch.arange(12.0).view(4, 3, 1)  # (T, B, 1)
    lengths = torch.tensor([4, 2, 1])
    rev = reverse_within_lengths(x, lengths)
    assert rev[:, 0, 0].tolist() == [9.0, 6.0, 3.0, 0.0]
    assert rev[:, 1, 0].tolist() == [4.0, 1.0, 7.0, 10.0]
    assert rev[:, 2, 0].tolist() == [2.0, 5.0, 8.0, 11.0]
    torch.testing.assert_close(reverse_within_lengths(rev, lengths), x)


def test_reference_backend_freezes_state_and_zeros_output_past_length():
    spec = gr.cells.JANETSpec()
    xw = torch.randn(5, 2, 6, dtype=torch.double)
    weights = {"weight_hh": torch.randn(6, 3, dtype=torch.double)}
    h0 = (torch.zeros(2, 3, dtype=torch.double),)
    out, (h,) = reference.run(spec, xw, h0, weights, torch.tensor([5, 2]))
    assert out[2:, 1].abs().max() == 0
    torch.testing.assert_close(h[1], out[1, 1])
    torch.testing.assert_close(h[0], out[4, 0])
    full, _ = reference.run(spec, xw[:2, 1:], (h0[0][1:],), weights)
    torch.testing.assert_close(out[:2, 1:], full)


def test_backends_registry():
    native = ["native"] if gr.backends.native.is_available() else []  # built here or not
    assert gr.backends.available() == ["torch"] + native + ["fused", "reference"]
    assert gr.backends.get("auto") is (gr.backends.native if native else fused)
    assert gr.backends.get("reference") is reference
    with pytest.raises(TypeError, match="backend must be a string, got int"):
        gr.backends.get(3)
