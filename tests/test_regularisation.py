"""Zoneout and variational recurrent dropout: independent NumPy transcriptions with the
same masks, masks fixed per sequence (dropout) or fresh per step (zoneout), identity in
evaluation mode, reproducible under a seed, expected values at large sample counts,
gradients (gradcheck with the masks held fixed)."""

import numpy as np
import pytest
import torch

import gatedrnn as gr
from gatedrnn.backends import reference

T, B, I, H = 6, 3, 2, 4


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def masks_as_the_layer_draws_them(seed, dropout, zoneout, widths):
    """Recurrent dropout's (B, H) first, then one (T, B, width) zoneout mask per state element."""
    torch.manual_seed(seed)
    mask = None
    if dropout:
        keep = 1 - dropout
        mask = (torch.bernoulli(torch.full((B, widths[0]), keep, dtype=torch.float64)) / keep).numpy()
    zones = [torch.bernoulli(torch.full((T, B, w), zoneout, dtype=torch.float64)).numpy()
             for w in widths] if zoneout else None
    return mask, zones


def numpy_run(cell, p, x, state, mask, zones):
    """One layer's loop: ``cell(x_t, state, m)`` then zoneout ``m z + (1 - z) new``."""
    outputs = []
    for t, x_t in enumerate(x):
        m = np.ones_like(state[0]) if mask is None else mask
        new = cell(p, x_t, state, m)
        if zones is not None:
            new = tuple(z[t] * old + (1 - z[t]) * n for z, old, n in zip(zones, state, new))
        state = new
        outputs.append(state[0])
    return np.stack(outputs), state


def lstm_cell(p, x, state, m):
    h, c = state
    a = x @ p["weight_ih"].T + p["bias_ih"] + (h * m) @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = np.split(a, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def gru_reset_before_cell(p, x, state, m):
    (h,) = state
    hm = h * m
    W, U, b, c = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    r = sigmoid(x @ W[:H].T + b[:H] + hm @ U[:H].T + c[:H])
    z = sigmoid(x @ W[H:2 * H].T + b[H:2 * H] + hm @ U[H:2 * H].T + c[H:2 * H])
    n = np.tanh(x @ W[2 * H:].T + b[2 * H:] + (r * hm) @ U[2 * H:].T + c[2 * H:])
    return ((1 - z) * n + z * h,)


def janet_cell(p, x, state, m):
    (h,) = state
    a = x @ p["weight_ih"].T + p["bias_ih"] + (h * m) @ p["weight_hh"].T + p["bias_hh"]
    s, g = np.split(a, 2, axis=-1)
    return (sigmoid(s) * h + (1 - sigmoid(s - 1.0)) * np.tanh(g),)


CASES = [
    ("lstm", lambda **kw: gr.LSTM(I, H, **kw), lstm_cell, 2),
    ("gru_reset_before", lambda **kw: gr.GRU(I, H, reset_after=False, **kw), gru_reset_before_cell, 1),
    ("janet", lambda **kw: gr.JANET(I, H, **kw), janet_cell, 1),
]


@pytest.mark.parametrize("dropout, zoneout", [(0.4, 0.0), (0.0, 0.3), (0.4, 0.3)])
@pytest.mark.parametrize("name, make, cell, num_states", CASES, ids=[c[0] for c in CASES])
def test_training_matches_numpy_with_the_same_masks(name, make, cell, num_states, dropout, zoneout):
    torch.manual_seed(0)
    layer = make(zoneout=zoneout, recurrent_dropout=dropout).double().train()
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(11)
    output, _ = layer(x)
    mask, zones = masks_as_the_layer_draws_them(11, dropout, zoneout, [H] * num_states)
    p = {n[:-3]: q.detach().numpy() for n, q in layer.named_parameters()}
    state = tuple(np.zeros((B, H)) for _ in range(num_states))
    expected, _ = numpy_run(cell, p, x.numpy(), state, mask, zones)
    np.testing.assert_allclose(output.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, make, cell, num_states", CASES, ids=[c[0] for c in CASES])
def test_evaluation_mode_is_the_plain_cell(name, make, cell, num_states):
    torch.manual_seed(1)
    regularised = make(zoneout=0.5, recurrent_dropout=0.5).double().eval()
    plain = make().double()
    plain.load_state_dict(regularised.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.testing.assert_close(regularised(x)[0], plain(x)[0], rtol=0, atol=0)


def test_reproducible_under_a_seed_and_different_across_seeds():
    layer = gr.JANET(I, H, zoneout=0.2, recurrent_dropout=0.3).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(layer(x)[0])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def captured_inputs(monkeypatch, layer, x):
    """What the layer hands the reference backend: (spec, xw, weights) of each run."""
    calls = []
    run = reference.run

    def spy(spec, xw, state, weights, lengths=None):
        calls.append((spec, xw, weights))
        return run(spec, xw, state, weights, lengths)

    monkeypatch.setattr(reference, "run", spy)
    layer(x)
    return calls


def test_dropout_mask_is_one_per_sequence_with_expectation_one(monkeypatch):
    """One (B, H) mask per layer and direction, values 0 or 1/keep, mean 1."""
    layer = gr.GRU(I, 64, num_layers=2, bidirectional=True, recurrent_dropout=0.25)
    torch.manual_seed(2)
    calls = captured_inputs(monkeypatch, layer, torch.randn(T, 2000, I))
    assert len(calls) == 4
    masks = [weights["recurrent_mask"] for _, _, weights in calls]
    for mask in masks:
        assert mask.shape == (2000, 64)
        assert torch.equal(mask.unique(), torch.tensor([0.0, 1 / 0.75]))
        assert abs(mask.mean().item() - 1.0) < 0.01  # std of the mean 0.0036
        assert abs((mask == 0).float().mean().item() - 0.25) < 0.005
    assert not torch.equal(masks[0], masks[1])


def test_zoneout_masks_are_fresh_each_step_with_rate_p(monkeypatch):
    layer = gr.LSTM(I, 32, zoneout=0.15)
    torch.manual_seed(3)
    ((spec, xw, _),) = captured_inputs(monkeypatch, layer, torch.randn(T, 3000, I))
    assert spec.name == "lstm+zoneout"
    keep = xw[..., 4 * 32:]  # (T, B, 2H): the masks of h and c after the cell's 4H
    assert keep.shape == (T, 3000, 64)
    assert abs(keep.mean().item() - 0.15) < 0.005
    assert not torch.equal(keep[0], keep[1])


def test_zoneout_expected_state_at_large_sample_counts():
    """E[h_1] = p h_0 + (1 - p) cell(x_1, h_0): averaged over 200 000 copies."""
    torch.manual_seed(4)
    n, p = 200_000, 0.3
    layer = gr.GRU(I, H, zoneout=p).double()
    x = torch.randn(1, 1, I, dtype=torch.float64).expand(1, n, I)
    h0 = torch.randn(1, 1, H, dtype=torch.float64).expand(1, n, H).contiguous()
    h1, _ = layer(x, h0)
    plain = layer.eval()(x[:, :1], h0[:, :1])[0][0, 0]
    expected = p * h0[0, 0] + (1 - p) * plain
    spread = (plain - h0[0, 0]).abs() * (p * (1 - p) / n) ** 0.5  # std of the mean
    assert ((h1[0].mean(0) - expected).abs() <= 5 * spread + 1e-12).all()


@pytest.mark.parametrize("name, make, cell, num_states", CASES, ids=[c[0] for c in CASES])
def test_gradcheck_with_the_masks_held_fixed(name, make, cell, num_states):
    torch.manual_seed(5)
    layer = make(zoneout=0.3, recurrent_dropout=0.3).double()
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(4, 2, I, dtype=torch.float64, requires_grad=True)

    def fn(x, *params):
        torch.manual_seed(6)  # the same masks at every evaluation
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))[0]

    params = [p.detach().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(fn, (x, *params))


def test_fast_backends_refuse_to_train_with_regularisation():
    layer = gr.LSTM(I, H, zoneout=0.1, backend="fused")
    with pytest.raises(ValueError, match="zoneout and recurrent_dropout train on the reference"):
        layer(torch.randn(T, B, I))
    layer.eval()(torch.randn(T, B, I))  # evaluation runs the plain cell: allowed


@pytest.mark.parametrize("argument", ["zoneout", "recurrent_dropout"])
def test_rates_are_checked(argument):
    with pytest.raises(ValueError, match=f"{argument} must be in"):
        gr.JANET(I, H, **{argument: 1.0})
    with pytest.raises(TypeError, match=argument):
        gr.GRU(I, H, **{argument: "0.1"})
