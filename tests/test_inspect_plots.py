"""gatedrnn.inspect plots (PNG files of known pixel size) and the summary table / CLI."""

import struct

import pytest
import torch

pytest.importorskip("matplotlib")

import matplotlib.pyplot as plt  # noqa: E402

import gatedrnn as gr  # noqa: E402
from gatedrnn import inspect as gi  # noqa: E402
from gatedrnn.cli import main  # noqa: E402
from gatedrnn.inspect import plots  # noqa: E402

T, B = 12, 3


def png_size(path):
    """(width, height) from the PNG IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def trace_of(layer, input_size=2):
    torch.manual_seed(0)
    return gi.record(layer, torch.randn(T, B, input_size))["l0"]


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions close, to read their titles and axes."""
    figures = []
    close = plots.plt.close

    def spy(fig=None):
        figures.append(fig)
        close(fig)

    monkeypatch.setattr(plots.plt, "close", spy)
    return figures


def written(path, expected_size):
    assert path.stat().st_size > 0
    assert png_size(path) == expected_size
    assert plt.get_fignums() == []  # every figure closed after saving


def test_dpi_and_sizes_are_what_the_tests_assume():
    assert plots.DPI == 100
    assert plots.figure_size("gate_heatmaps", 4) == (16.0, 3.0)
    assert plots.figure_size("forget_histogram") == (6.0, 4.0)


@pytest.mark.parametrize("layer, gates, size", [
    (gr.LSTM(2, 5), "ifgo", (1600, 300)),
    (gr.GRU(2, 5), "rzn", (1200, 300)),
    (gr.JANET(2, 5), "fg", (800, 300)),
])
def test_gate_heatmaps(tmp_path, captured, layer, gates, size):
    path = tmp_path / "gates.png"
    assert gi.gate_heatmaps(trace_of(layer), path, batch_index=1) == path
    written(path, size)
    (fig,) = captured
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == list(gates)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (5, T)  # units x time


def test_gate_heatmaps_rnn_has_no_gates(tmp_path):
    with pytest.raises(ValueError, match="no gates"):
        gi.gate_heatmaps(trace_of(gr.RNN(2, 5)), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("layer, gate", [(gr.LSTM(2, 5), "f"), (gr.JANET(2, 5), "f"), (gr.GRU(2, 5), "z")])
def test_forget_histogram(tmp_path, captured, layer, gate):
    trace = trace_of(layer)
    path = tmp_path / "forget.png"
    assert gi.forget_histogram(trace, path) == path
    written(path, (600, 400))
    (fig,) = captured
    counts = sum(patch.get_height() for patch in fig.axes[0].patches)
    assert counts == trace.gates[gate].numel()  # every value of that gate is counted


def test_forget_histogram_rejects_rnn(tmp_path):
    with pytest.raises(ValueError, match="forget gate"):
        gi.forget_histogram(trace_of(gr.RNN(2, 5)), tmp_path / "x.png")


def test_cell_vs_output_lstm(tmp_path, captured):
    path = tmp_path / "cell.png"
    assert gi.cell_vs_output(trace_of(gr.LSTM(2, 6)), path, units=3, batch_index=2) == path
    written(path, (600, 400))
    (fig,) = captured
    ax = fig.axes[0]
    assert len(ax.lines) == 6  # c and h for 3 units
    assert "cell state vs output" in ax.get_title()


@pytest.mark.parametrize("layer", [gr.GRU(2, 6), gr.JANET(2, 6), gr.RNN(2, 6)])
def test_cell_vs_output_hidden_only(tmp_path, captured, layer):
    path = tmp_path / "hidden.png"
    trace = trace_of(layer)
    gi.cell_vs_output(trace, path, units=10)
    written(path, (600, 400))
    ax = captured[0].axes[0]
    assert "hidden state only" in ax.get_title()
    assert len(ax.lines) == 6  # units clipped to H
    assert torch.allclose(torch.as_tensor(ax.lines[1].get_ydata()).float(), trace.hidden[:, 0, 1])


def test_gradient_flow_comparison_with_zeros(tmp_path, captured):
    torch.manual_seed(0)
    x = torch.randn(20, 2, 1)
    flows = {"janet chrono": gi.gradient_flow(gr.init.chrono_(gr.JANET(1, 8), t_max=20), x),
             "rnn": gi.gradient_flow(gr.RNN(1, 8), x),
             "dead": torch.tensor([0.0, 0.0, 1e-3, 1.0])}
    path = tmp_path / "flow.png"
    assert gi.gradient_flow_comparison(flows, path) == path
    written(path, (600, 400))
    ax = captured[0].axes[0]
    assert ax.get_yscale() == "log"
    dead = ax.lines[2]
    assert list(dead.get_xdata()) == [0, 1, 2, 3]  # steps back
    y = torch.as_tensor(dead.get_ydata())
    assert y[0] == 1.0 and y[1] == torch.tensor(1e-3).double()
    assert (y[2:] > 0).all() and (y[2:] == torch.finfo(torch.float64).tiny).all()
    assert ax.get_ylim()[0] > 0


# -- summary ----------------------------------------------------------------------


def test_summary_lstm_rows_by_hand():
    lstm = gr.LSTM(10, 20, num_layers=2, bidirectional=True)
    rows = gi.layer_rows(lstm)
    layer0 = 4 * 20 * 10 + 4 * 20 * 20 + 2 * 4 * 20  # 2560
    layer1 = 4 * 20 * 40 + 4 * 20 * 20 + 2 * 4 * 20  # 4960: input is both directions
    assert [r.params for r in rows] == [layer0, layer0, layer1, layer1]
    assert [r.name for r in rows] == ["l0", "l0_reverse", "l1", "l1_reverse"]
    assert [r.input_shape for r in rows] == ["(T, B, 10)"] * 2 + ["(T, B, 40)"] * 2
    assert rows[0].output_shape == "(T, B, 20)"
    assert rows[0].states == {"h": "(B, 20)", "c": "(B, 20)"}
    table = gi.summary_table(lstm)
    total = sum(p.numel() for p in lstm.parameters())
    assert total == 2 * layer0 + 2 * layer1
    assert f"Total params: {total}" in table
    assert "(T, B, 40)" in table


def test_summary_lstm_projection():
    lstm = gr.LSTM(10, 20, proj_size=5)
    (row,) = gi.layer_rows(lstm)
    assert row.params == 4 * 20 * 10 + 4 * 20 * 5 + 2 * 4 * 20 + 5 * 20
    assert row.states == {"h": "(B, 5)", "c": "(B, 20)"}
    assert row.output_shape == "(T, B, 5)"


def test_summary_janet_rows_by_hand():
    janet = gr.JANET(1, 64, num_layers=2)
    rows = gi.layer_rows(janet)
    assert [r.params for r in rows] == [2 * 64 * 1 + 2 * 64 * 64 + 2 * 2 * 64,
                                        2 * 64 * 64 + 2 * 64 * 64 + 2 * 2 * 64]
    assert rows[0].states == {"h": "(B, 64)"}
    assert sum(r.params for r in rows) == sum(p.numel() for p in janet.parameters())


def test_summary_total_invariant_is_checked(monkeypatch):
    janet = gr.JANET(1, 4)
    janet.extra = torch.nn.Parameter(torch.zeros(3))  # a parameter no row accounts for
    with pytest.raises(RuntimeError, match="parameters"):
        gi.summary_table(janet)


def test_cli_summary(capsys):
    assert main(["summary", "--cell", "janet", "--input-size", "1", "--hidden", "64", "--layers", "2"]) == 0
    out = capsys.readouterr().out
    total = sum(p.numel() for p in gr.JANET(1, 64, num_layers=2).parameters())
    assert f"Total params: {total}" in out
    assert out.count("(T, B, 64)") == 4  # l1 input, both rows output, the output line


def test_cli_summary_bidirectional_projection(capsys):
    main(["summary", "--cell", "lstm", "--input-size", "3", "--hidden", "8", "--bidirectional",
          "--proj-size", "4"])
    out = capsys.readouterr().out
    total = sum(p.numel() for p in gr.LSTM(3, 8, bidirectional=True, proj_size=4).parameters())
    assert f"Total params: {total}" in out and "l0_reverse" in out
    with pytest.raises(SystemExit):
        main(["summary", "--cell", "gru", "--input-size", "3", "--hidden", "8", "--proj-size", "4"])
