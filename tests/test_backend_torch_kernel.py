"""torch's own LSTM kernel behind backend="torch" (and auto for plain LSTMs) against the
reference backend; the LSTMs it cannot run."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr
from gatedrnn import backends
from gatedrnn.backends import torch_kernel

I, H = 3, 6

CASES = {
    "plain": {},
    "forget_bias": {"forget_bias": 1.0},
    "proj-L2-bi": {"proj_size": 4, "num_layers": 2, "bidirectional": True},
    "no_bias": {"bias": False},
    "batch_first-forget_bias": {"batch_first": True, "forget_bias": -0.5},
}


@pytest.mark.parametrize("backend", ["torch", "auto"])
@pytest.mark.parametrize("case", CASES)
def test_torch_kernel_matches_reference(case, backend):
    torch.manual_seed(0)
    kwargs = CASES[case]
    ours = gr.LSTM(I, H, backend=backend, **kwargs).double()
    ref = gr.LSTM(I, H, backend="reference", **kwargs).double()
    ref.load_state_dict(ours.state_dict())
    layers = ours.num_layers * ours.num_directions
    x = torch.randn(*((2, 5) if ours.batch_first else (5, 2)), I, dtype=torch.double)
    hx = (torch.randn(layers, 2, ours.real_hidden_size, dtype=torch.double),
          torch.randn(layers, 2, H, dtype=torch.double))
    results = []
    for layer in (ours, ref):
        inp = x.clone().requires_grad_(True)
        output, (h_n, c_n) = layer(inp, hx)
        (output.sin().sum() + h_n.sum() + (c_n * c_n).sum()).backward()
        results.append([output, h_n, c_n, inp.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_auto_uses_torch_kernel_only_where_semantics_are_torchs():
    plain = gr.LSTM(I, H, forget_bias=1.0)
    x = torch.randn(4, 2, I)
    assert backends.uses_torch_kernel("auto", plain, None)
    assert not backends.uses_torch_kernel("auto", plain, torch.tensor([4, 2]))  # packed input
    for kwargs in ({"peepholes": True}, {"cell_clip": 1.0}, {"proj_size": 2, "proj_clip": 1.0},
                   {"bias": False, "forget_bias": 1.0}):
        assert not torch_kernel.supports(gr.LSTM(I, H, **kwargs), None), kwargs
    assert not backends.uses_torch_kernel("auto", gr.GRU(I, H), None)
    assert not backends.uses_torch_kernel("native", plain, None)
    plain(x)  # runs


def test_naming_torch_for_an_lstm_it_cannot_run_is_an_error():
    layer = gr.LSTM(I, H, peepholes=True, backend="torch")
    with pytest.raises(ValueError, match="backend 'torch' runs only LSTMs without peepholes or clipping"):
        layer(torch.randn(4, 2, I))
    packed = pack_padded_sequence(torch.randn(4, 2, I), torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="dense"):
        gr.LSTM(I, H, backend="torch")(packed)
