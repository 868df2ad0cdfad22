"""gatedrnn.heads: LastStep, MeanPool, MaxPool."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence

import gatedrnn as gr

# output (T=3, B=2, F=2), time-major, hand-written
X = torch.tensor([
    [[1.0, -2.0], [0.0, 5.0]],   # t = 0
    [[3.0, 4.0], [-1.0, -1.0]],  # t = 1
    [[-5.0, 0.0], [2.0, 2.0]],   # t = 2
])
EXPECTED = {
    gr.LastStep: torch.tensor([[-5.0, 0.0], [2.0, 2.0]]),
    gr.MeanPool: torch.tensor([[-1.0 / 3, 2.0 / 3], [1.0 / 3, 2.0]]),
    gr.MaxPool: torch.tensor([[3.0, 4.0], [2.0, 5.0]]),
}
HEADS = [gr.LastStep, gr.MeanPool, gr.MaxPool]


@pytest.mark.parametrize("head", HEADS)
def test_time_major(head):
    torch.testing.assert_close(head()(X), EXPECTED[head])


@pytest.mark.parametrize("head", HEADS)
def test_batch_first(head):
    xb = X.transpose(0, 1).contiguous()  # (B, T, F)
    torch.testing.assert_close(head(batch_first=True)(xb), EXPECTED[head])
    # the flag matters: reading (B, T, F) as (T, B, F) gives something else
    assert head()(xb).shape == (3, 2)


@pytest.mark.parametrize("head", HEADS)
def test_unbatched(head):
    for b in range(2):
        torch.testing.assert_close(head()(X[:, b]), EXPECTED[head][b])
        # batch_first does not apply to unbatched (T, F)
        torch.testing.assert_close(head(batch_first=True)(X[:, b]), EXPECTED[head][b])


@pytest.mark.parametrize("head", HEADS)
def test_tuple_input(head):
    state = (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
    torch.testing.assert_close(head()((X, state)), EXPECTED[head])
    torch.testing.assert_close(head()((X, state[0])), EXPECTED[head])


def test_packed_hand_computed():
    # lengths 1 and 3, unsorted; padding holds huge values that must never be used
    padded = X.clone()
    padded[1:, 0] = 100.0
    packed = pack_padded_sequence(padded, torch.tensor([1, 3]), enforce_sorted=False)
    torch.testing.assert_close(gr.LastStep()(packed), torch.tensor([[1.0, -2.0], [2.0, 2.0]]))
    torch.testing.assert_close(gr.MeanPool()(packed), torch.tensor([[1.0, -2.0], [1.0 / 3, 2.0]]))
    torch.testing.assert_close(gr.MaxPool()(packed), torch.tensor([[1.0, -2.0], [2.0, 5.0]]))


def reference(head, seq):
    """The head applied to one unpadded sequence (t, F), by hand."""
    if head is gr.LastStep:
        return seq[-1]
    if head is gr.MeanPool:
        return seq.sum(0) / seq.size(0)
    return torch.stack([max(seq[:, j].tolist()) * torch.ones(()) for j in range(seq.size(1))])


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_unsorted_lengths(head, batch_first):
    torch.manual_seed(0)
    lengths = [3, 7, 1, 5, 7, 2]
    # negative values everywhere: a max over zero padding would be wrong
    seqs = [-torch.rand(n, 4) - 0.1 for n in lengths]
    packed = pack_sequence(seqs, enforce_sorted=False)
    out = head(batch_first=batch_first)(packed)  # batch_first is irrelevant for packed input
    assert out.shape == (len(seqs), 4)
    for b, seq in enumerate(seqs):
        torch.testing.assert_close(out[b], reference(head, seq))


@pytest.mark.parametrize("head", HEADS)
def test_packed_from_a_layer(head):
    """(PackedSequence, h_n) from a JANET: the head sees each sequence's own steps."""
    torch.manual_seed(0)
    janet = gr.JANET(2, 3)
    seqs = [torch.randn(n, 2) for n in (4, 2, 5)]
    out = head()(janet(pack_sequence(seqs, enforce_sorted=False)))
    for b, seq in enumerate(seqs):
        alone, _ = janet(seq)  # unbatched (t, 3)
        torch.testing.assert_close(out[b], reference(head, alone))


@pytest.mark.parametrize("head", HEADS)
def test_lstm_tuple_output_and_gradient(head):
    torch.manual_seed(0)
    lstm = gr.LSTM(3, 5, batch_first=True)
    x = torch.randn(4, 6, 3)
    out = head(batch_first=True)(lstm(x))  # (output, (h, c))
    assert out.shape == (4, 5)
    out.sum().backward()
    assert lstm.weight_ih_l0.grad is not None


def test_last_step_is_h_n_for_unidirectional():
    torch.manual_seed(0)
    lstm = gr.LSTM(3, 5, batch_first=True)
    output, (h_n, _) = lstm(torch.randn(4, 6, 3))
    torch.testing.assert_close(gr.LastStep(batch_first=True)(output), h_n[0])
    seqs = [torch.randn(n, 3) for n in (2, 6, 4)]
    packed_out, (h_n, _) = lstm(pack_sequence(seqs, enforce_sorted=False))
    torch.testing.assert_close(gr.LastStep()(packed_out), h_n[0])


def test_sequential_example():
    torch.manual_seed(0)
    model = nn.Sequential(gr.JANET(1, 64, batch_first=True), gr.MeanPool(batch_first=True),
                          nn.Linear(64, 1))
    assert model(torch.randn(8, 100, 1)).shape == (8, 1)
    model = nn.Sequential(nn.LSTM(1, 8), gr.LastStep(), nn.Linear(8, 1))  # torch.nn too
    assert model(torch.randn(10, 3, 1)).shape == (3, 1)


@pytest.mark.parametrize("head", HEADS)
def test_errors(head):
    with pytest.raises(TypeError, match=f"{head.__name__} expects .*got list"):
        head()([X])
    with pytest.raises(TypeError, match="got ndarray"):
        head()(X.numpy())
    with pytest.raises(TypeError, match="got NoneType"):
        head()(None)
    with pytest.raises(TypeError, match="empty tuple"):
        head()(())
    with pytest.raises(TypeError, match="floating-point"):
        head()(torch.ones(3, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="3-D"):
        head()(torch.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="3-D"):
        head()(torch.ones(5))
    with pytest.raises(ValueError, match="empty sequence: got 0 time steps"):
        head()(torch.ones(0, 2, 3))


def test_repr():
    assert repr(gr.MeanPool(batch_first=True)) == "MeanPool(batch_first=True)"
    assert repr(gr.LastStep()) == "LastStep()"
