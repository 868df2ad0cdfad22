"""A T = 10,000 sequence runs forward and backward with finite values for every cell
(JANET chrono-initialised), and the same layer matches the reference backend in
float64 on a shorter slice."""

import pytest
import torch

import gatedrnn as gr

T_LONG, T_SLICE, B, I, H = 10_000, 300, 2, 3, 16

CELLS = {
    "rnn_tanh": lambda **kw: gr.RNN(I, H, **kw),
    "rnn_relu": lambda **kw: gr.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: gr.LSTM(I, H, **kw),
    "lstm_tf_extras": lambda **kw: gr.LSTM(I, H, proj_size=8, forget_bias=1.0, peepholes=True,
                                           cell_clip=3.0, proj_clip=2.0, **kw),
    "gru_reset_after": lambda **kw: gr.GRU(I, H, **kw),
    "gru_reset_before": lambda **kw: gr.GRU(I, H, reset_after=False, **kw),
    "janet_chrono": lambda **kw: gr.init.chrono_(gr.JANET(I, H, **kw), t_max=T_LONG),
}


@pytest.mark.parametrize("name", CELLS)
def test_ten_thousand_steps_stay_finite(name):
    torch.manual_seed(0)
    layer = CELLS[name]()  # backend="auto": the fastest available
    x = torch.randn(T_LONG, B, I, requires_grad=True)
    output, _ = layer(x)
    output[-1].sum().backward()
    assert torch.isfinite(output).all()
    assert torch.isfinite(x.grad).all()
    for p in layer.parameters():
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", CELLS)
def test_long_slice_matches_reference_in_float64(name):
    torch.manual_seed(0)
    layer = CELLS[name]().double()
    reference = CELLS[name](backend="reference").double()
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(T_SLICE, B, I, dtype=torch.float64)
    results = []
    for module in (layer, reference):
        inp = x.clone().requires_grad_(True)
        output, _ = module(inp)
        output[-1].sum().backward()
        results.append((output.detach(), inp.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)
