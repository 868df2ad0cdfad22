"""Models of the training tool: shapes, heads, initialisation, causality."""

import math

import pytest
import torch

from gatedrnn import heads, layers
from gatedrnn.models import CELLS, RecurrentModel, TransformerModel, build


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head", ["last", "mean"])
def test_output_shapes(cell, head):
    torch.manual_seed(0)
    model = build(cell, input_size=3, output_size=5, hidden=16, layers=2, head=head, t_max=12)
    assert model(torch.randn(4, 12, 3)).shape == (4, 5)
    per_step = build(cell, input_size=3, output_size=5, hidden=16, per_step=True, t_max=12)
    assert per_step(torch.randn(4, 12, 3)).shape == (4, 12, 5)


def test_recurrent_model_is_layer_head_linear():
    torch.manual_seed(0)
    model = build("gru", input_size=2, output_size=3, hidden=8, head="mean")
    x = torch.randn(5, 9, 2)
    output, _ = model.recurrent(x)  # (B, T, H)
    expected = model.readout(output.mean(dim=1))
    torch.testing.assert_close(model(x), expected)
    last = RecurrentModel(model.recurrent, 3, head="last")
    torch.testing.assert_close(last(x), last.readout(output[:, -1]))
    assert isinstance(model.recurrent, layers.GRU) and model.recurrent.batch_first
    assert isinstance(model.head, heads.MeanPool)


def test_janet_is_always_chrono_initialised_and_lstm_on_request():
    torch.manual_seed(0)
    t_max = 50
    janet = build("janet", 1, 10, hidden=64, t_max=t_max).recurrent
    forget = janet.bias_ih_l0[:64]  # gate f first
    assert forget.min() >= 0 and forget.max() <= math.log(t_max - 1)
    assert (janet.bias_hh_l0[:64] == 0).all()
    lstm = build("lstm", 1, 10, hidden=64, t_max=t_max, chrono=True).recurrent
    b_i, b_f = lstm.bias_ih_l0[:64], lstm.bias_ih_l0[64:128]
    assert torch.equal(b_i, -b_f) and b_f.min() >= 0
    plain = build("lstm", 1, 10, hidden=64, t_max=t_max).recurrent
    assert plain.bias_ih_l0.abs().max() <= 1 / math.sqrt(64)  # torch's uniform init


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = TransformerModel(2, 4, hidden=16, layers=2, per_step=True).eval()
    x = torch.randn(3, 10, 2)
    changed = x.clone()
    changed[:, 6:] = torch.randn(3, 4, 2)  # the future of step 5
    torch.testing.assert_close(model(x)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(x)[:, 6:], model(changed)[:, 6:])


def test_build_errors():
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru, janet, mgu, indrnn, layernorm-lstm, mingru, minlstm, transformer"):
        build("elman", 1, 2)
    with pytest.raises(ValueError, match="head must be one of last, mean"):
        build("gru", 1, 2, head="max")
    with pytest.raises(ValueError, match="chrono initialisation needs t_max"):
        build("janet", 1, 2)
    with pytest.raises(ValueError, match="chrono initialisation applies to lstm and janet"):
        build("gru", 1, 2, chrono=True, t_max=10)
    with pytest.raises(ValueError, match="multiple of the 4 attention heads"):
        build("transformer", 1, 2, hidden=10)
