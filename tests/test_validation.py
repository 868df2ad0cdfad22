"""Bad input raises a ValueError/TypeError that names the argument, the expected and
the received value, never an error from deep inside torch."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gatedrnn as gr

LAYERS = [gr.RNN, gr.LSTM, gr.GRU, gr.JANET]
CELLS = [gr.RNNCell, gr.LSTMCell, gr.GRUCell, gr.JANETCell]
# torch.nn's drop-ins accept what torch.nn accepts (issue 12): dropout=1 for the layers,
# zero sizes for the cells (tests/test_torch_nn_contract.py compares them with torch.nn)
TORCH_NN_LAYERS = [gr.RNN, gr.LSTM, gr.GRU]
TORCH_NN_CELLS = [gr.RNNCell, gr.LSTMCell, gr.GRUCell]


@pytest.mark.parametrize("cls", LAYERS + CELLS)
def test_hidden_size_must_be_positive(cls):
    minimum = 0 if cls in TORCH_NN_CELLS else 1
    if minimum:
        with pytest.raises(ValueError, match=r"hidden_size must be >= 1, got 0"):
            cls(3, 0)
    with pytest.raises(TypeError, match=r"hidden_size must be an int, got float"):
        cls(3, 2.5)
    with pytest.raises(ValueError, match=rf"input_size must be >= {minimum}, got -1"):
        cls(-1, 4)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_dropout_outside_unit_interval(cls, dropout):
    interval = r"\[0, 1\]" if cls in TORCH_NN_LAYERS else r"\[0, 1\)"
    if cls in TORCH_NN_LAYERS and dropout == 1.0:
        assert cls(3, 4, num_layers=2, dropout=dropout).dropout == 1.0
        return
    with pytest.raises(ValueError, match=rf"dropout must be in {interval}, got {dropout}"):
        cls(3, 4, num_layers=2, dropout=dropout)


def test_num_layers_must_be_positive():
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        gr.LSTM(3, 4, num_layers=0)


@pytest.mark.parametrize("cls", [gr.RNN, gr.RNNCell])
def test_unknown_nonlinearity(cls):
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \['relu', 'tanh'\], got 'sigmoid'"):
        cls(3, 4, nonlinearity="sigmoid")


@pytest.mark.parametrize("proj_size", [4, 5])
def test_proj_size_must_be_smaller_than_hidden(proj_size):
    with pytest.raises(ValueError, match=f"proj_size must be smaller than hidden_size: got proj_size={proj_size}, hidden_size=4"):
        gr.LSTM(3, 4, proj_size=proj_size)
    with pytest.raises(ValueError, match="proj_size"):
        gr.LSTMCell(3, 4, proj_size=proj_size)


def test_proj_clip_needs_projection_and_clips_positive():
    with pytest.raises(ValueError, match="proj_clip needs proj_size > 0"):
        gr.LSTM(3, 4, proj_clip=1.0)
    with pytest.raises(ValueError, match="cell_clip must be None or a positive number, got -1"):
        gr.LSTM(3, 4, cell_clip=-1)


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match=r"backend 'cuda_magic' is unknown; available backends: auto, torch, (native, )?fused, reference$"):
        gr.JANET(3, 4, backend="cuda_magic")


@pytest.mark.parametrize("cls", LAYERS)
def test_wrong_feature_size(cls):
    layer = cls(5, 4)
    with pytest.raises(ValueError, match=r"expected input size 5, got 4"):
        layer(torch.randn(7, 2, 4))
    packed = pack_padded_sequence(torch.randn(7, 2, 4), torch.tensor([7, 3]))
    with pytest.raises(ValueError, match=r"expected input size 5, got 4"):
        layer(packed)


@pytest.mark.parametrize("cls", CELLS)
def test_cell_wrong_feature_size_and_dims(cls):
    cell = cls(5, 4)
    with pytest.raises(ValueError, match=r"expected input size 5, got 3"):
        cell(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"input must be 1-D or 2-D, got 3-D input of shape \(1, 2, 5\)"):
        cell(torch.randn(1, 2, 5))


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 5)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match=rf"input must be 2-D or 3-D, got {len(shape)}-D input of shape"):
        gr.GRU(5, 4)(torch.randn(*shape))


def test_non_floating_dtype():
    with pytest.raises(TypeError, match=r"input must have a floating-point dtype, got torch.int64"):
        gr.LSTM(5, 4)(torch.ones(3, 2, 5, dtype=torch.long))
    with pytest.raises(TypeError, match=r"input must be a Tensor, got list"):
        gr.LSTM(5, 4)([[1.0] * 5])


def test_empty_sequence():
    with pytest.raises(ValueError, match=r"input has an empty sequence: got 0 time steps"):
        gr.JANET(5, 4)(torch.randn(0, 2, 5))
    with pytest.raises(ValueError, match=r"empty sequence"):
        gr.JANET(5, 4, batch_first=True)(torch.randn(2, 0, 5))


# (layer, input shape, hx, error, message); a GRU of 2 layers and an LSTM with h
# projected to 2, both of hidden size 4, for inputs of 5 features
GRU2, LSTM_PROJ = (lambda: gr.GRU(5, 4, num_layers=2)), (lambda: gr.LSTM(5, 4, proj_size=2))
BAD_HX = [
    pytest.param(GRU2, (3, 2, 5), torch.zeros(1, 2, 4), ValueError,
                 r"hx has the wrong shape: expected \(2, 2, 4\), got \(1, 2, 4\)", id="gru-layers"),
    pytest.param(GRU2, (3, 2, 5), torch.zeros(2, 3, 4), ValueError,
                 r"hx has the wrong shape: expected \(2, 2, 4\), got \(2, 3, 4\)", id="gru-batch"),
    pytest.param(GRU2, (3, 5), torch.zeros(2, 2, 4), ValueError,
                 r"hx has the wrong shape: expected \(2, 4\), got \(2, 2, 4\)", id="gru-unbatched-input"),
    pytest.param(LSTM_PROJ, (3, 2, 5), torch.zeros(1, 2, 2), TypeError,
                 r"hx must be a tuple \(h, c\) of 2 tensors, got Tensor", id="lstm-not-a-pair"),
    pytest.param(LSTM_PROJ, (3, 2, 5), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)), ValueError,
                 r"hx\[0\] has the wrong shape: expected \(1, 2, 2\), got \(1, 2, 4\)", id="lstm-h"),
    pytest.param(LSTM_PROJ, (3, 2, 5), (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)), ValueError,
                 r"hx\[1\] has the wrong shape: expected \(1, 2, 4\), got \(1, 2, 2\)", id="lstm-c"),
]


@pytest.mark.parametrize("make, x_shape, hx, error, message", BAD_HX)
def test_hx_wrong_shape_or_type(make, x_shape, hx, error, message):
    with pytest.raises(error, match=message):
        make()(torch.randn(*x_shape), hx)


def test_cell_hx_wrong_shape():
    with pytest.raises(ValueError, match=r"hx has the wrong shape: expected \(2, 4\), got \(3, 4\)"):
        gr.JANETCell(5, 4)(torch.randn(2, 5), torch.zeros(3, 4))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h, c\)"):
        gr.LSTMCell(5, 4)(torch.randn(2, 5), torch.zeros(2, 4))


def test_dtype_mismatch_between_input_and_parameters():
    with pytest.raises(TypeError, match=r"input has dtype torch.float64 but the parameters have dtype torch.float32"):
        gr.LSTM(5, 4)(torch.randn(3, 2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"hx has dtype torch.float64 but the parameters have dtype torch.float32"):
        gr.GRU(5, 4)(torch.randn(3, 2, 5), torch.zeros(1, 2, 4, dtype=torch.float64))


def test_device_mismatch_between_input_and_parameters():
    layer = gr.JANET(5, 4, device="meta")
    with pytest.raises(ValueError, match=r"input is on device cpu but the parameters are on meta"):
        layer(torch.randn(3, 2, 5))
