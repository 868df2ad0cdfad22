"""gatedrnn.init: chrono_ and forget_bias_."""

import math

import pytest
import torch
from torch import nn

import gatedrnn as gr
from gatedrnn.init import chrono_, forget_bias_


def bias_pairs(module):
    """(bias_ih, bias_hh) per layer and direction, found by name, independently of init.py."""
    if not hasattr(module, "num_layers"):
        return [(module.bias_ih, module.bias_hh)]
    pairs = []
    for k in range(module.num_layers):
        for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
            pairs.append((getattr(module, f"bias_ih_l{k}{suffix}"),
                          getattr(module, f"bias_hh_l{k}{suffix}")))
    return pairs


def weights(module):
    return {n: p.detach().clone() for n, p in module.named_parameters() if "bias" not in n}


H = 50
T_MAX = 40

# (constructor, its bias blocks in order); the two-layer bidirectional ones have 4 bias pairs
CHRONO_MODULES = [
    pytest.param(lambda: gr.LSTM(3, H, num_layers=2, bidirectional=True), "ifgo", id="gr.LSTM"),
    pytest.param(lambda: nn.LSTM(3, H, num_layers=2, bidirectional=True), "ifgo", id="nn.LSTM"),
    pytest.param(lambda: gr.LSTMCell(3, H), "ifgo", id="gr.LSTMCell"),
    pytest.param(lambda: nn.LSTMCell(3, H), "ifgo", id="nn.LSTMCell"),
    pytest.param(lambda: gr.LSTM(3, H, proj_size=7, peepholes=True), "ifgo", id="gr.LSTM-proj"),
    pytest.param(lambda: gr.JANET(3, H, num_layers=2, bidirectional=True), "fg", id="gr.JANET"),
    pytest.param(lambda: gr.JANETCell(3, H), "fg", id="gr.JANETCell"),
]


def check_forget(b_f, t_max):
    assert torch.all(b_f >= 0.0)
    assert torch.all(b_f <= math.log(t_max - 1) + 1e-6)
    assert b_f.unique().numel() > H // 2  # drawn per unit, not one constant


@pytest.mark.parametrize("make, gates", CHRONO_MODULES)
def test_chrono(make, gates):
    """b_f drawn per layer and direction, b_i = -b_f (LSTM), the other blocks and bias_hh
    zero, the weights untouched."""
    torch.manual_seed(0)
    module = make()
    before = weights(module)
    assert chrono_(module, T_MAX) is module
    pairs = bias_pairs(module)
    assert len(pairs) == (4 if getattr(module, "num_layers", 1) == 2 else 1)
    forget = []
    for bias_ih, bias_hh in pairs:
        blocks = dict(zip(gates, bias_ih.detach().split(H), strict=True))
        b_f = blocks.pop("f")
        check_forget(b_f, T_MAX)
        if "i" in blocks:  # LSTM
            assert torch.equal(blocks.pop("i"), -b_f)
        for gate, b in blocks.items():  # g, and o for the LSTM
            assert torch.equal(b, torch.zeros(H)), gate
        assert torch.equal(bias_hh.detach(), torch.zeros(len(gates) * H))
        forget.append(b_f)
    # each layer and direction drawn independently
    for a, b in zip(forget, forget[1:]):
        assert not torch.equal(a, b)
    for name, w in weights(module).items():
        assert torch.equal(w, before[name]), name


@pytest.mark.parametrize("t_max", [3, 10, 1000])
def test_chrono_spread_is_log_uniform(t_max):
    """exp(b_f) ~ U(1, t_max - 1): mean, spread and quartiles of the uniform."""
    torch.manual_seed(1)
    n = 2000
    janet = chrono_(gr.JANET(1, n, dtype=torch.float64), t_max)
    u = janet.bias_ih_l0.detach()[:n].exp()
    lo, hi = 1.0, t_max - 1.0
    width = hi - lo
    assert u.min() >= lo - 1e-9 and u.max() <= hi + 1e-9
    # mean of U(1, t_max-1) is t_max/2; its standard error is width/sqrt(12 n)
    assert abs(u.mean().item() - t_max / 2) < 5 * width / math.sqrt(12 * n)
    assert abs(u.std().item() - width / math.sqrt(12)) < 0.05 * width
    quartiles = torch.quantile(u, torch.tensor([0.25, 0.5, 0.75], dtype=u.dtype))
    expected = torch.tensor([lo + 0.25 * width, lo + 0.5 * width, lo + 0.75 * width], dtype=u.dtype)
    assert torch.allclose(quartiles, expected, atol=0.05 * width)


def test_chrono_t_max_3_is_zero_bias():
    # U(1, 2) -> log in [0, log 2]
    janet = chrono_(gr.JANET(1, 100), 3)
    b_f = janet.bias_ih_l0.detach()[:100]
    assert b_f.min() >= 0 and b_f.max() <= math.log(2) + 1e-6


def test_chrono_finds_layers_in_sequential():
    torch.manual_seed(0)
    model = nn.Sequential(gr.JANET(1, H, batch_first=True), gr.MeanPool(batch_first=True),
                          nn.Linear(H, 1))
    linear_before = model[2].bias.detach().clone()
    bias_hh_before = model[0].bias_hh_l0.detach().clone()
    assert chrono_(model, T_MAX) is model
    b_f, b_g = model[0].bias_ih_l0.detach().split(H)
    check_forget(b_f, T_MAX)
    assert torch.equal(b_g, torch.zeros(H))
    assert not torch.equal(bias_hh_before, torch.zeros(2 * H))
    assert torch.equal(model[0].bias_hh_l0.detach(), torch.zeros(2 * H))
    assert torch.equal(model[2].bias.detach(), linear_before)


def test_chrono_nested_mixed_model():
    """Every LSTM/JANET is initialised; a GRU beside them is left alone."""
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.ModuleList([gr.LSTM(2, H), nn.LSTM(H, H)])
            self.gru = gr.GRU(H, H)
            self.dec = gr.JANETCell(H, H)

    model = Model()
    gru_before = model.gru.bias_ih_l0.detach().clone()
    chrono_(model, T_MAX)
    for lstm in model.enc:
        b_i, b_f, _, _ = lstm.bias_ih_l0.detach().split(H)
        check_forget(b_f, T_MAX)
        assert torch.equal(b_i, -b_f)
    check_forget(model.dec.bias_ih.detach()[:H], T_MAX)
    assert torch.equal(model.gru.bias_ih_l0.detach(), gru_before)


def test_chrono_no_grad_and_still_trainable():
    lstm = chrono_(gr.LSTM(2, 4), 10)
    assert lstm.bias_ih_l0.requires_grad and lstm.bias_ih_l0.grad_fn is None
    lstm(torch.randn(3, 2, 2))[0].sum().backward()
    assert lstm.bias_ih_l0.grad is not None


def test_chrono_errors():
    with pytest.raises(ValueError, match=r"chrono_ applies to LSTM and JANET layers; found none in GRU\(3, 4\)"):
        chrono_(gr.GRU(3, 4), 10)
    with pytest.raises(ValueError, match="found none in Sequential"):
        chrono_(nn.Sequential(nn.Linear(2, 2), nn.GRU(2, 2)), 10)
    for module in (gr.LSTM(3, 4, bias=False), gr.JANET(3, 4, bias=False),
                   gr.JANETCell(3, 4, bias=False), nn.LSTM(3, 4, bias=False),
                   nn.LSTMCell(3, 4, bias=False)):
        with pytest.raises(ValueError, match="needs bias=True"):
            chrono_(module, 10)
    for t_max in (2.9, 2, 0, -5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="t_max"):
            chrono_(gr.JANET(3, 4), t_max)
    for t_max in ("100", None, True, [10]):
        with pytest.raises(TypeError, match="t_max"):
            chrono_(gr.JANET(3, 4), t_max)
    with pytest.raises(TypeError, match="nn.Module"):
        chrono_("lstm", 10)


def test_chrono_error_leaves_module_unchanged():
    model = nn.Sequential(gr.LSTM(2, 4), gr.JANET(4, 4, bias=False))
    before = model[0].bias_ih_l0.detach().clone()
    with pytest.raises(ValueError, match="bias=True"):
        chrono_(model, 10)
    assert torch.equal(model[0].bias_ih_l0.detach(), before)


@pytest.mark.parametrize("make, gates", [
    (lambda: gr.LSTM(3, H, num_layers=2, bidirectional=True), 4),
    (lambda: nn.LSTM(3, H, bidirectional=True), 4),
    (lambda: gr.LSTMCell(3, H), 4),
    (lambda: gr.JANET(3, H, num_layers=2, bidirectional=True), 2),
    (lambda: gr.JANETCell(3, H), 2),
])
def test_forget_bias(make, gates):
    torch.manual_seed(0)
    module = make()
    before_w = weights(module)
    before_b = [(ih.detach().clone(), hh.detach().clone()) for ih, hh in bias_pairs(module)]
    assert forget_bias_(module, 1.5) is module
    f = 1 if gates == 4 else 0  # forget block: i,f,g,o / f,g
    for (ih, hh), (ih0, hh0) in zip(bias_pairs(module), before_b):
        ih, hh = ih.detach().view(gates, H), hh.detach().view(gates, H)
        ih0, hh0 = ih0.view(gates, H), hh0.view(gates, H)
        assert torch.equal(ih[f], torch.full((H,), 1.5))
        assert torch.equal(hh[f], torch.zeros(H))
        others = [k for k in range(gates) if k != f]
        assert torch.equal(ih[others], ih0[others]) and torch.equal(hh[others], hh0[others])
    for name, w in weights(module).items():
        assert torch.equal(w, before_w[name]), name


def test_forget_bias_is_not_the_run_time_option():
    """forget_bias_(m, v) on an LSTM with zero forget biases equals forget_bias=v at run time."""
    torch.manual_seed(0)
    a = gr.LSTM(3, 5, forget_bias=1.0)
    b = gr.LSTM(3, 5)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for m in (a, b):
            m.bias_ih_l0[5:10] = 0.0
            m.bias_hh_l0[5:10] = 0.0
    forget_bias_(b, 1.0)
    assert a.forget_bias == 1.0 and a.bias_ih_l0[5:10].abs().sum() == 0  # a: no parameter change
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(a(x)[0], b(x)[0])


def test_forget_bias_errors():
    with pytest.raises(ValueError, match="forget_bias_ applies to LSTM and JANET layers; found none in GRU"):
        forget_bias_(gr.GRU(3, 4), 1.0)
    with pytest.raises(ValueError, match="needs bias=True"):
        forget_bias_(gr.LSTMCell(3, 4, bias=False), 1.0)
    with pytest.raises(TypeError, match="value"):
        forget_bias_(gr.LSTM(3, 4), "1")
    with pytest.raises(ValueError, match="value"):
        forget_bias_(gr.LSTM(3, 4), float("nan"))
