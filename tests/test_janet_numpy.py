"""gr.JANET and gr.JANETCell against an independent NumPy implementation of the paper.

van der Westhuizen & Lasenby 2018, with the biases split as in torch.nn:

    s   = W_if x + b_if + W_hf h + b_hf
    c~  = W_ig x + b_ig + W_hg h + b_hg
    c'  = sigmoid(s) * c + (1 - sigmoid(s - beta)) * tanh(c~)
    h'  = c'
"""

import numpy as np
import pytest
import torch

import gatedrnn as gr


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_janet_step(x, h, w_ih, w_hh, b_ih, b_hh, beta):
    """x (B, I), h (B, H); weights (2H, ·) with blocks f, g."""
    H = h.shape[-1]
    w_if, w_ig = w_ih[:H], w_ih[H:]
    w_hf, w_hg = w_hh[:H], w_hh[H:]
    b_if, b_ig = b_ih[:H], b_ih[H:]
    b_hf, b_hg = b_hh[:H], b_hh[H:]
    s = x @ w_if.T + b_if + h @ w_hf.T + b_hf
    c_tilde = x @ w_ig.T + b_ig + h @ w_hg.T + b_hg
    c = sigmoid(s) * h + (1.0 - sigmoid(s - beta)) * np.tanh(c_tilde)
    return c


def np_janet_layer(x, h0, params, num_layers, bidirectional, beta):
    """x (T, B, I), h0 (L*D, B, H) -> output (T, B, D*H), h_n (L*D, B, H)."""
    T = x.shape[0]
    directions = ["", "_reverse"] if bidirectional else [""]
    h_n = []
    for layer in range(num_layers):
        outputs = []
        for d, suffix in enumerate(directions):
            p = {name: params[f"{name}_l{layer}{suffix}"]
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            h = h0[layer * len(directions) + d]
            out = [None] * T
            steps = range(T) if d == 0 else reversed(range(T))
            for t in steps:
                h = np_janet_step(x[t], h, p["weight_ih"], p["weight_hh"],
                                  p["bias_ih"], p["bias_hh"], beta)
                out[t] = h
            outputs.append(np.stack(out))
            h_n.append(h)
        x = np.concatenate(outputs, axis=-1)
    return x, np.stack(h_n)


def numpy_params(module):
    return {name: p.detach().numpy().copy() for name, p in module.named_parameters()}


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("batch_first", [False, True])
def test_janet_layer_matches_numpy(beta, batch_first):
    torch.manual_seed(0)
    T, B, I, H, L = 7, 3, 4, 5, 2
    janet = gr.JANET(I, H, num_layers=L, bidirectional=True, beta=beta,
                     batch_first=batch_first, dtype=torch.float64)
    with torch.no_grad():  # make every parameter matter, larger than the default init
        for p in janet.parameters():
            p.normal_(0.0, 0.6)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(L * 2, B, H, dtype=torch.float64)

    out, h_n = janet(x.transpose(0, 1) if batch_first else x, h0)
    if batch_first:
        out = out.transpose(0, 1)
    ref_out, ref_h_n = np_janet_layer(x.numpy(), h0.numpy(), numpy_params(janet), L, True, beta)

    assert out.shape == (T, B, 2 * H) and h_n.shape == (L * 2, B, H)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h_n, rtol=0, atol=1e-10)
    # the final states are where the directions end: forward at T-1, backward at 0
    np.testing.assert_allclose(ref_h_n[2], ref_out[-1, :, :H], atol=0)
    np.testing.assert_allclose(ref_h_n[3], ref_out[0, :, H:], atol=0)


def test_beta_changes_the_output():
    """Guards the reference itself: beta enters the equations."""
    rng = np.random.default_rng(0)
    H, I = 3, 2
    args = (rng.normal(size=(2, I)), rng.normal(size=(2, H)), rng.normal(size=(2 * H, I)),
            rng.normal(size=(2 * H, H)), rng.normal(size=2 * H), rng.normal(size=2 * H))
    assert np.abs(np_janet_step(*args, 1.0) - np_janet_step(*args, 0.5)).max() > 1e-3


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_janet_cell_matches_numpy(beta):
    torch.manual_seed(1)
    B, I, H = 4, 3, 6
    cell = gr.JANETCell(I, H, beta=beta, dtype=torch.float64)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.6)
    p = numpy_params(cell)
    h = torch.randn(B, H, dtype=torch.float64)
    h_np = h.numpy().copy()
    for _ in range(5):  # a few steps, feeding the state back
        x = torch.randn(B, I, dtype=torch.float64)
        h = cell(x, h)
        h_np = np_janet_step(x.numpy(), h_np, p["weight_ih"], p["weight_hh"],
                             p["bias_ih"], p["bias_hh"], beta)
        np.testing.assert_allclose(h.detach().numpy(), h_np, rtol=0, atol=1e-10)
    # unbatched
    x = torch.randn(I, dtype=torch.float64)
    h1 = cell(x, h[0])
    ref = np_janet_step(x.numpy()[None], h.detach().numpy()[:1], p["weight_ih"],
                        p["weight_hh"], p["bias_ih"], p["bias_hh"], beta)[0]
    np.testing.assert_allclose(h1.detach().numpy(), ref, rtol=0, atol=1e-10)


def test_janet_cell_zero_state_default():
    torch.manual_seed(2)
    cell = gr.JANETCell(3, 4, dtype=torch.float64)
    p = numpy_params(cell)
    x = torch.randn(2, 3, dtype=torch.float64)
    ref = np_janet_step(x.numpy(), np.zeros((2, 4)), p["weight_ih"], p["weight_hh"],
                        p["bias_ih"], p["bias_hh"], 1.0)
    np.testing.assert_allclose(cell(x).detach().numpy(), ref, rtol=0, atol=1e-10)
