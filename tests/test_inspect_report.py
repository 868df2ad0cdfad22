"""``gatedrnn.inspect.inspect_run`` / ``inspect_fresh`` and ``gatedrnn inspect``: a
self-contained report.html whose embedded figures are PNGs of the documented sizes."""

import base64
import json
import struct
from html.parser import HTMLParser

import pytest
import torch

pytest.importorskip("matplotlib")

from gatedrnn.cli import main  # noqa: E402
from gatedrnn.inspect import inspect_fresh, inspect_run  # noqa: E402
from gatedrnn.inspect.plots import DPI, figure_size  # noqa: E402
from gatedrnn.train import TrainConfig, read_metrics, train  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: per cell: (gate, how the report names it), written independently of the report code
GATE_NAMES = {
    "lstm": [("i", "input gate"), ("f", "forget gate"), ("g", "candidate"), ("o", "output gate")],
    "gru": [("r", "reset gate"), ("z", "update gate"), ("n", "candidate")],
    "janet": [("f", "forget gate"), ("g", "candidate")],
    "mgu": [("f", "forget gate"), ("h", "candidate")],
    "layernorm-lstm": [("i", "input gate"), ("f", "forget gate"), ("g", "candidate"), ("o", "output gate")],
    "indrnn": [],
    "mingru": [("z", "update gate"), ("h", "candidate")],
    "rnn": [],
}
RECURRENT_FIGURES = {"cell_vs_output", "gradient_flow_comparison", "learning_curves"}
GATED_FIGURES = RECURRENT_FIGURES | {"gate_heatmaps", "forget_histogram"}


class Page(HTMLParser):
    """The parts of report.html the tests read: every <img>'s attributes, every tag
    name, and the text."""

    def __init__(self, text):
        super().__init__()
        self.images, self.tags, self.chunks = [], [], []
        self.feed(text)
        self.close()
        self.text = "".join(self.chunks)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        self.chunks.append(data)


def png_size(data):
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def expected_pixels(kind, cell):
    width, height = figure_size(kind, len(GATE_NAMES.get(cell, [])) or 1)
    return round(width * DPI), round(height * DPI)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny finished runs (MNIST-1D, 200 examples, 2 epochs), one per cell; the GRU has
    two layers."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for cell, layers in (("janet", 1), ("lstm", 1), ("gru", 2), ("rnn", 1), ("transformer", 1),
                         ("mgu", 1), ("indrnn", 1), ("layernorm-lstm", 1), ("mingru", 1)):
        made[cell] = root / cell
        train(TrainConfig(task="mnist1d", cell=cell, hidden=16, layers=layers, epochs=2, limit=200),
              made[cell], progress=False)
    return made


def check_report(report, cell, kinds):
    """Parse report.html: every image an embedded PNG of its kind's size, equal to the
    PNG file beside the report; nothing loaded from outside. Returns the Page."""
    page = Page(report.read_text(encoding="utf-8"))
    assert not {"script", "link", "iframe"} & set(page.tags)
    found = []
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        data = base64.b64decode(image["src"][len(prefix):], validate=True)
        kind = image["data-kind"]
        assert png_size(data) == expected_pixels(kind, cell), kind
        beside = report.parent / image["data-file"]
        assert beside.is_file() and beside.stat().st_size > 0
        assert beside.read_bytes() == data
        found.append(kind)
    assert sorted(found) == sorted(kinds)  # each figure once
    return page


def figures_of(cell):
    if not GATE_NAMES[cell]:
        return RECURRENT_FIGURES
    # the MGU's f and minGRU's z are the share replaced, not kept: no forget histogram
    return GATED_FIGURES - {"forget_histogram"} if cell in ("mgu", "mingru") else GATED_FIGURES


@pytest.mark.parametrize("cell", ["janet", "lstm", "gru", "rnn", "mgu", "indrnn", "layernorm-lstm", "mingru"])
def test_report_of_a_recurrent_run(runs, tmp_path, cell):
    rng = torch.get_rng_state()
    report = inspect_run(runs[cell], out=tmp_path / "report", examples=4)
    assert report == tmp_path / "report" / "report.html"
    assert torch.equal(torch.get_rng_state(), rng)  # rebuilding the initial model draws nothing
    page = check_report(report, cell, figures_of(cell))
    text = page.text
    assert f"gatedrnn inspect: {cell} on mnist1d" in text
    for gate, name in GATE_NAMES[cell]:
        assert f"{gate}: {name}" in text
    if cell in ("rnn", "indrnn"):
        assert "has no gates" in text
    if cell == "janet":
        assert "1 - sigmoid(s_t - 1)" in text
    if cell == "gru":  # the summary table has both stacked layers
        assert "Total params" in text and "\nl1 " in text
    summary = json.loads((runs[cell] / "summary.json").read_text())
    assert f"test accuracy{summary['test_accuracy']:.4g}" in text
    assert f"best epoch{summary['best_epoch']}" in text
    assert f"parameters{summary['parameters']}" in text
    for row in read_metrics(runs[cell]):
        assert f"{row['train_loss']:.4g}" in text


def test_transformer_report_has_no_recurrent_figures(runs, tmp_path):
    report = inspect_run(runs["transformer"], out=tmp_path)
    page = check_report(report, "transformer", {"learning_curves"})
    assert "no recurrent layer" in page.text
    assert "TransformerModel(" in page.text


def test_bad_arguments_and_missing_files(runs, tmp_path):
    with pytest.raises(ValueError, match="examples must be >= 1, got 0"):
        inspect_run(runs["janet"], out=tmp_path, examples=0)
    with pytest.raises(TypeError, match="examples must be an int, got float"):
        inspect_run(runs["janet"], out=tmp_path, examples=2.0)
    with pytest.raises(FileNotFoundError, match="no run directory"):
        inspect_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        inspect_run(tmp_path)
    (tmp_path / "config.json").write_text((runs["janet"] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no checkpoints/best.safetensors"):
        inspect_run(tmp_path)
    assert not (tmp_path / "inspect").exists()


def _cli(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_inspect_run_dir(runs, capsys):
    status, out, err = _cli(capsys, "inspect", str(runs["janet"]), "--examples", "2")
    report = runs["janet"] / "inspect" / "report.html"
    assert status == 0, err
    assert f"written: {report}" in out
    check_report(report, "janet", GATED_FIGURES)


@pytest.mark.parametrize("argv, message", [
    (["RUN", "--task", "mnist1d", "--cell", "janet"], "give either RUN_DIR or --task and --cell, not both"),
    ([], "give RUN_DIR (a gatedrnn train directory) or --task and --cell"),
    (["--task", "mnist1d"], "--task and --cell go together"),
    (["RUN", "--epochs", "2"], "--epochs trains a fresh run"),
    (["RUN", "--examples", "0"], "--examples must be >= 1, got 0"),
    (["--task", "mnist1d", "--cell", "elman"], "invalid choice: 'elman'"),
], ids=["both", "neither", "task-only", "epochs-with-run-dir", "examples", "cell"])
def test_cli_usage_errors_exit_2(runs, capsys, argv, message):
    argv = [str(runs["janet"]) if a == "RUN" else a for a in argv]
    status, _, err = _cli(capsys, "inspect", *argv)
    assert status == 2
    assert message in err and "Traceback" not in err


def test_cli_missing_run_exits_1_with_one_line(tmp_path, capsys):
    status, out, err = _cli(capsys, "inspect", str(tmp_path / "nowhere"))
    assert status == 1 and out == ""
    assert err == f"gatedrnn inspect: error: no run directory {tmp_path / 'nowhere'}\n"
    status, _, err = _cli(capsys, "inspect", str(tmp_path))
    assert status == 1 and "has no config.json" in err and err.count("\n") == 1


def test_inspect_fresh_trains_then_reports(tmp_path):
    report = inspect_fresh("mnist1d", "janet", tmp_path, epochs=1, limit=200, hidden=16)
    assert report == tmp_path / "report.html"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["train_examples"] == 200
    page = check_report(report, "janet", GATED_FIGURES)
    assert f"test accuracy{summary['test_accuracy']:.4g}" in page.text


def test_report_of_a_language_model_run_records_what_record_gives(tmp_path, monkeypatch, capsys):
    """``gatedrnn inspect`` on a pysource run: the traces behind the figures equal
    gr.inspect.record of the run's best weights, loaded independently into a language
    model, on the starts of the test text's rows (ids, not floats)."""
    import gatedrnn as gr
    from safetensors.torch import load_file

    from gatedrnn import models, tasks
    from gatedrnn.inspect import plots

    out = tmp_path / "run"
    train(TrainConfig(task="pysource", cell="lstm", hidden=6, epochs=1, limit=2000, batch_size=4, seq_len=20),
          out, progress=False)
    seen = {}
    for name in ("gate_heatmaps", "cell_vs_output", "gradient_flow_comparison"):
        def spy(first, path, _name=name, _plot=getattr(plots, name)):
            seen[_name] = first
            return _plot(first, path)
        monkeypatch.setattr(plots, name, spy)
    status, _, err = _cli(capsys, "inspect", str(out), "--examples", "3")
    assert status == 0, err
    page = check_report(out / "inspect" / "report.html", "lstm", GATED_FIGURES)
    assert "gatedrnn inspect: lstm on pysource" in page.text and "3 stretches of 20 characters" in page.text

    task = tasks.get("pysource", seq_len=20)
    model = models.build_language_model("lstm", task.output_size, hidden=6, t_max=20)
    model.load_state_dict(load_file(str(out / "checkpoints" / "best.safetensors")))
    test = task.load().test
    stream = test.x
    row = len(stream) // 3
    ids = torch.stack([stream[r * row: r * row + 20] for r in range(3)])  # (3, 20)
    expected = gr.inspect.record(model.eval(), ids)[0]
    for trace in (seen["gate_heatmaps"], seen["cell_vs_output"]):
        assert trace.gates.keys() == expected.gates.keys() == {"i", "f", "g", "o"}
        for gate in expected.gates:
            torch.testing.assert_close(trace.gates[gate], expected.gates[gate], rtol=0, atol=0)
        torch.testing.assert_close(trace.hidden, expected.hidden, rtol=0, atol=0)  # (20, 3, 6)
        torch.testing.assert_close(trace.cell, expected.cell, rtol=0, atol=0)

    # the gradient flow of the initial weights: the seed's model, before training
    torch.manual_seed(0)
    initial = models.build_language_model("lstm", task.output_size, hidden=6, t_max=20).eval()
    targets = torch.stack([test.y[r * row: r * row + 20] for r in range(3)])  # (3, 20)

    def loss(output):
        return torch.nn.functional.cross_entropy(output[0].flatten(0, 1), targets.flatten())

    flows = seen["gradient_flow_comparison"]
    torch.testing.assert_close(flows["trained"], gr.inspect.gradient_flow(model, ids, loss))
    torch.testing.assert_close(flows["initialised (seed 0)"], gr.inspect.gradient_flow(initial, ids, loss))
