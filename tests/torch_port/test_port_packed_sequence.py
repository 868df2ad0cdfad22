"""PyTorch's ``test/nn/test_packed_sequence.py`` (PackedSequenceTest), the parts a user of
recurrent layers relies on, re-written to feed the packed batches through torch.nn's and
gatedrnn's layers.

Upstream tests the packing utilities alone; here each one's packing path goes through a
layer, and the layer's output (a PackedSequence) through the inverse utility, compared
with each sequence run on its own:

- test_type_casts -> test_packed_type_casts (float and double; the integer casts of
  upstream have no recurrent counterpart)
- test_total_length -> test_total_length (pad_packed_sequence of a layer's output)
- test_to -> test_packed_output_to
- test_pack_sequence (+ its compatibility with pad_sequence / pack_padded_sequence) ->
  test_pack_sequence
- test_unpack_sequence -> test_unpack_sequence; test_unpad_sequence -> test_unpad_sequence
- test_pack_padded_sequence -> test_pack_padded_sequence_gradients (sorted and shuffled,
  batch_first or not: gradients reach the steps within each length and only those;
  upstream's 3 length cases x 2 layouts cut to 4 points, each layout with each order)

Not ported (they test the utilities on their own, with no module involved, and run in
PyTorch's own suite): test_wrong_order, test_pad_sequence, test_pad_sequence_with_tensor_sequences,
test_pad_sequence_with_non_iterable_sequences, the error messages of test_pack_sequence /
test_pack_padded_sequence, and test_to_memory_format (a Conv2d test).
"""

import itertools

import pytest
import torch
import torch.nn.utils.rnn as rnn_utils

from port_utils import assert_close

D = torch.float64
KINDS = ["RNN", "GRU", "LSTM"]


def _layer(impl, kind, batch_first=False, dtype=D):
    return getattr(impl, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first).to(dtype)


def _sequences(lengths, dtype=D):
    return [torch.randn(n, 3, dtype=dtype) for n in lengths]


def _alone(layer, sequences):
    """Each sequence on its own (unbatched input) -> [(output (T_i, ·), final state)]."""
    return [layer(s) for s in sequences]


def _finals(results):
    """Stack the per-sequence final states along the batch dimension, as the layer's."""
    finals = [final for _, final in results]
    if isinstance(finals[0], tuple):
        return tuple(torch.stack(parts, 1) for parts in zip(*finals))
    return torch.stack(finals, 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
def test_pack_sequence(impl, kind, enforce_sorted):
    """pack_sequence through a layer and back gives each sequence's own output and final
    state, in the caller's order; pack_padded_sequence of pad_sequence gives the same."""
    lengths = [6, 4, 4, 1] if enforce_sorted else [4, 6, 1, 4]
    sequences = _sequences(lengths)
    layer = _layer(impl, kind)
    packed = rnn_utils.pack_sequence(sequences, enforce_sorted=enforce_sorted)
    output, final = layer(packed)
    assert isinstance(output, rnn_utils.PackedSequence)
    assert torch.equal(output.batch_sizes, packed.batch_sizes)
    for name in ("sorted_indices", "unsorted_indices"):
        got, given = getattr(output, name), getattr(packed, name)
        assert (got is None and given is None) or torch.equal(got, given), name
    alone = _alone(layer, sequences)
    padded, out_lengths = rnn_utils.pad_packed_sequence(output)
    assert out_lengths.tolist() == lengths
    for i, (out_i, _) in enumerate(alone):
        assert_close(padded[:lengths[i], i], out_i)
        assert padded[lengths[i]:, i].abs().sum() == 0
    assert_close(final, _finals(alone))

    from_padded = rnn_utils.pack_padded_sequence(rnn_utils.pad_sequence(sequences), lengths,
                                                 enforce_sorted=enforce_sorted)
    assert_close(layer(from_padded), (output, final))


@pytest.mark.parametrize("kind", KINDS)
def test_unpack_sequence(impl, kind):
    sequences = _sequences([2, 5, 3])
    layer = _layer(impl, kind)
    output, _ = layer(rnn_utils.pack_sequence(sequences, enforce_sorted=False))
    unpacked = rnn_utils.unpack_sequence(output)
    assert_close(unpacked, [out for out, _ in _alone(layer, sequences)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tf"])
def test_unpad_sequence(impl, kind, batch_first):
    """A padded batch with its lengths through a packed layer: unpad_sequence of the
    padded output gives each sequence's own output."""
    sequences = _sequences([2, 5, 3])
    lengths = torch.tensor([2, 5, 3])
    layer = _layer(impl, kind, batch_first=batch_first)
    padded = rnn_utils.pad_sequence(sequences, batch_first=batch_first)
    packed = rnn_utils.pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=False)
    output, _ = rnn_utils.pad_packed_sequence(layer(packed)[0], batch_first=batch_first)
    unpadded = rnn_utils.unpad_sequence(output, lengths, batch_first=batch_first)
    assert_close(unpadded, [out for out, _ in _alone(layer, sequences)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
def test_packed_type_casts(impl, kind, enforce_sorted):
    """A packed input cast with .float() / .double() runs through a layer of that dtype;
    the output and its padding are of that dtype and match the dtype's own run."""
    lengths = [5, 3, 2] if enforce_sorted else [3, 5, 2]
    padded = rnn_utils.pad_sequence(_sequences(lengths, torch.float32))
    packed = rnn_utils.pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted)
    reference_layer = _layer(impl, kind)
    for cast, dtype in (("float", torch.float32), ("double", torch.float64)):
        layer = _layer(impl, kind, dtype=dtype)
        layer.load_state_dict(reference_layer.state_dict())
        cast_packed = getattr(packed, cast)()
        assert cast_packed.data.dtype == dtype
        output, _ = layer(cast_packed)
        assert output.data.dtype == dtype
        unpacked, _ = rnn_utils.pad_packed_sequence(output)
        assert unpacked.dtype == dtype
        expected, _ = rnn_utils.pad_packed_sequence(reference_layer(packed.double())[0])
        assert_close(unpacked, expected.to(dtype))


@pytest.mark.parametrize("kind", KINDS)
def test_total_length(impl, kind):
    """pad_packed_sequence(total_length=...) of a layer's output pads with zeros to that
    length (what DataParallel's gather needs), and refuses a shorter one."""
    lengths = [6, 5, 3, 1]
    layer = _layer(impl, kind)
    packed = rnn_utils.pack_sequence(_sequences(lengths))
    output, _ = layer(packed)
    longest = max(lengths)
    for total_length, batch_first in itertools.product((-1, 0, longest - 1), (True, False)):
        with pytest.raises(ValueError, match="Expected total_length to be at least the length of the longest"):
            rnn_utils.pad_packed_sequence(output, batch_first=batch_first, total_length=total_length)
    for batch_first in (True, False):
        no_extra, _ = rnn_utils.pad_packed_sequence(output, batch_first=batch_first)
        time_dim = 1 if batch_first else 0
        for extra in (0, 1, 8):
            padded, out_lengths = rnn_utils.pad_packed_sequence(
                output, batch_first=batch_first, total_length=longest + extra)
            assert out_lengths.tolist() == lengths
            assert padded.size(time_dim) == longest + extra
            assert_close(padded.narrow(time_dim, 0, longest), no_extra)
            assert padded.narrow(time_dim, longest, extra).abs().sum() == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
def test_packed_output_to(impl, kind, enforce_sorted):
    """The layer's PackedSequence output behaves as a PackedSequence: .to('cpu') and
    .cpu() return it unchanged, .to(dtype) equals the cast method, indices follow."""
    lengths = [4, 2, 3] if not enforce_sorted else [4, 3, 2]
    output, _ = _layer(impl, kind)(rnn_utils.pack_sequence(_sequences(lengths), enforce_sorted=enforce_sorted))
    assert output.to("cpu") is output and output.cpu() is output
    assert output.to("cpu", dtype=torch.float64) is output
    as_float = output.to(torch.float32)
    assert_close(as_float, output.float())
    assert as_float.data.dtype == torch.float32
    assert torch.equal(as_float.batch_sizes, output.batch_sizes)
    if not enforce_sorted:
        assert torch.equal(as_float.unsorted_indices, output.unsorted_indices)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sorted_lengths, shuffle, batch_first", [
    ([10, 8, 4, 2, 2, 2, 1], False, False), ([11, 10, 8, 6, 4, 3, 1], False, True),
    ([11, 10, 8, 6, 4, 3, 1], True, False), ([11, 10, 8, 6, 4, 3, 1], True, True)],
    ids=["sorted_a-tf", "sorted_b-bf", "shuffled-tf", "shuffled-bf"])
def test_pack_padded_sequence_gradients(impl, kind, sorted_lengths, shuffle, batch_first):
    """A padded batch packed, through a layer, unpacked: the gradient of the padded input
    equals each sequence's own within its length and is zero on the padding."""
    lengths = list(sorted_lengths)
    if shuffle:
        lengths = [lengths[i] for i in torch.randperm(len(lengths)).tolist()]
    sequences = _sequences(lengths)
    layer = _layer(impl, kind, batch_first=batch_first)
    padded = rnn_utils.pad_sequence(sequences, batch_first=batch_first).requires_grad_()
    packed = rnn_utils.pack_padded_sequence(padded, torch.tensor(lengths), batch_first=batch_first,
                                            enforce_sorted=not shuffle)
    unpacked, out_lengths = rnn_utils.pad_packed_sequence(layer(packed)[0], batch_first=batch_first)
    assert out_lengths.tolist() == lengths
    grad_output = torch.randn_like(unpacked)
    unpacked.backward(grad_output)
    grad = padded.grad if batch_first else padded.grad.transpose(0, 1)  # (B, T, ·)
    grad_output = grad_output if batch_first else grad_output.transpose(0, 1)
    for i, (sequence, length) in enumerate(zip(sequences, lengths)):
        alone = sequence.clone().requires_grad_()
        layer(alone)[0].backward(grad_output[i, :length])
        assert_close(grad[i, :length], alone.grad)
        assert grad[i, length:].abs().sum() == 0
