"""gatedrnn explore without a browser: the recording, its quantisation, the features, the
cell diagrams read from the specs, and the page's self-containment."""

import base64
import json
import re

import numpy as np
import pytest
import torch

import gatedrnn as gr
from gatedrnn.cells import CELL_SPECS, GRUSpec, JANETSpec, LSTMSpec, MGUSpec
from gatedrnn.cli import main
from gatedrnn.inspect import explore as ex
from gatedrnn.train import TrainConfig, train
from gatedrnn.train.runs import load_run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, torch_threads):
    out = tmp_path_factory.mktemp("explore") / "lstm"
    with torch_threads(1):
        train(TrainConfig(task="pysource", cell="lstm", hidden=10, layers=2, epochs=1, limit=3000, batch_size=4,
                          seq_len=30), out, progress=False)
    return out


@pytest.fixture(scope="module")
def sequence_run(tmp_path_factory, torch_threads):
    out = tmp_path_factory.mktemp("explore") / "janet"
    with torch_threads(1):
        train(TrainConfig(task="mnist1d", cell="janet", hidden=8, epochs=1, limit=100), out, progress=False)
    return out


def _page_parts(page: str):
    meta = json.loads(re.search(r'<script type="application/json" id="meta">(.*?)</script>', page, re.S).group(1))
    blob = base64.b64decode(re.search(r'<script type="text/plain" id="blob">(.*?)</script>', page, re.S).group(1))
    return meta, np.frombuffer(blob, dtype=np.uint8)


def _dequantised(meta, blob, layer, name):
    """(N, H) values of quantity ``name`` of layer ``layer`` as the page computes them."""
    entry = next(q for q in meta["layers"][layer]["quantities"] if q["name"] == name)
    hidden, steps = meta["layers"][layer]["hidden"], meta["steps"]
    codes = blob[entry["offset"]: entry["offset"] + hidden * steps].reshape(hidden, steps).T
    lo, hi = np.array(entry["lo"]), np.array(entry["hi"])
    return lo + codes * (hi - lo) / 255, (hi - lo) / 510


def test_quantise_is_within_half_a_level():
    values = np.random.default_rng(0).normal(size=(500, 7)) * np.arange(1, 8)
    values[:, 3] = 2.5  # a constant unit
    codes, lo, hi = ex.quantise(values)
    assert codes.shape == (7, 500) and codes.dtype == np.uint8
    restored = lo + codes.T * (hi - lo) / 255
    assert np.all(np.abs(restored - values) <= (hi - lo) / 510 + 1e-12)
    assert np.all(restored[:, 3] == 2.5)


def test_text_features_by_hand():
    source = 'x = "a#b"  # c\nif (y[0]\n        + 1):\n    z\n'
    features = ex.text_features(source)
    at = {name: dict(zip(source, values)) for name, values in features.items()}
    position = source.index
    assert features["in string"][position('"a#b"'): position('"a#b"') + 5].tolist() == [1.0] * 5
    assert features["in string"][position("=")] == 0
    assert features["in comment"][position("# c")] == 1 and features["in comment"][position("#b")] == 0
    assert features["bracket depth"][position("y")] == 1 and features["bracket depth"][position("0")] == 2
    assert features["bracket depth"][position("(")] == 0 and features["bracket depth"][position("+")] == 1
    assert features["indentation"][position("+")] == 8 and features["indentation"][position("z")] == 4
    assert features["start of line"][position("if")] == 1 and features["start of line"][position("f (")] == 0
    assert features["column"][position("f (")] == 1
    assert at  # every feature has one value per character
    assert all(len(v) == len(source) for v in features.values())


def test_text_features_survive_a_window_cut_inside_a_string():
    features = ex.text_features('x = 1\ns = """never closed\n')
    assert features["in string"][:5].tolist() == [0.0] * 5


def test_sequence_features_and_correlations():
    inputs = np.arange(12.0).reshape(6, 2)
    features = ex.sequence_features(inputs, 3)
    assert features["step in sequence"].tolist() == [0, 1, 2, 0, 1, 2]
    values = np.stack([features["input 0"] * 2 + 1, -features["input 0"], np.ones(6)], axis=1)
    assert ex.correlations(values, features["input 0"]).tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_cell_diagrams_are_read_from_the_specs():
    lstm = ex.cell_diagram(LSTMSpec(), ["i", "f", "g", "o"])
    assert [g["activation"] for g in lstm["gates"]] == ["σ", "σ", "tanh", "σ"]
    c, h = lstm["updates"]
    assert c["state"] == "c" and c["terms"] == [[{"kind": "gate", "name": "f"}, {"kind": "previous", "name": "c"}],
                                                [{"kind": "gate", "name": "i"}, {"kind": "gate", "name": "g"}]]
    assert h["terms"] == [[{"kind": "gate", "name": "o"}, {"kind": "function", "text": "tanh(c_t)", "reads": "c"}]]
    assert lstm["forget"] == "f"
    gru = ex.cell_diagram(GRUSpec(), ["r", "z", "n"])
    assert gru["updates"][0]["terms"] == [[{"kind": "complement", "name": "z"}, {"kind": "gate", "name": "n"}],
                                          [{"kind": "gate", "name": "z"}, {"kind": "previous", "name": "h"}]]
    assert gru["forget"] == "z"
    janet = ex.cell_diagram(JANETSpec(beta=1.0), ["f", "g"])
    (update,) = janet["updates"]  # h_t = c_t = ...: c is JANET's h
    assert update["terms"][0] == [{"kind": "gate", "name": "f"}, {"kind": "previous", "name": "h"}]
    assert update["terms"][1][0]["kind"] == "function" and update["terms"][1][1] == {"kind": "gate", "name": "g"}
    mgu = ex.cell_diagram(MGUSpec(), ["f", "h"])  # the candidate h is shown as h~
    assert [g["name"] for g in mgu["gates"]] == ["f", "h~"]
    assert mgu["updates"][0]["terms"][1] == [{"kind": "gate", "name": "f"}, {"kind": "gate", "name": "h~"}]
    assert mgu["forget"] is None
    minlstm = ex.cell_diagram(CELL_SPECS["minlstm"](), ["f", "i", "h"])
    assert minlstm["updates"][0]["terms"] is None  # a quotient: drawn as one box
    for name, cls in CELL_SPECS.items():  # every cell has one update per state
        diagram = ex.cell_diagram(cls(), list(cls.gates))
        assert {u["state"] for u in diagram["updates"]} == set(cls.state_names), name


def test_the_page_holds_what_record_recorded(text_run):
    run = load_run(text_run)
    recording = ex.record_run(run, steps=200)
    meta, blob = _page_parts(ex.render_page(recording))
    test = run.task.load().test
    trace = gr.inspect.record(run.model, test.x[:200].unsqueeze(0))
    assert meta["kind"] == "text" and meta["steps"] == 200 and meta["text"] == run.task.decode(test.x[:200])
    assert [layer["name"] for layer in meta["layers"]] == trace.names() == ["recurrent.l0", "recurrent.l1"]
    for index, layer in enumerate(trace.layers):
        recorded = {"h": layer.hidden, "c": layer.cell, **layer.gates}
        assert [q["name"] for q in meta["layers"][index]["quantities"]] == ["h", "c", "i", "f", "g", "o"]
        for name, values in recorded.items():
            shown, tolerance = _dequantised(meta, blob, index, name)
            assert np.all(np.abs(shown - values[:, 0].double().numpy()) <= tolerance + 1e-6), name
        # correlations are of the recorded floats
        r = meta["layers"][index]["correlations"]["in string"]["h"]
        expected = ex.correlations(layer.hidden[:, 0].double().numpy(), ex.text_features(meta["text"])["in string"])
        assert r == pytest.approx(np.round(expected, 4).tolist(), abs=1e-6)
    # the model's guesses are the top of its softmax
    logits, _ = trace.output
    top = torch.softmax(logits[0].double(), -1).topk(3)
    ids = blob[meta["guesses"]["ids"]: meta["guesses"]["ids"] + 600].reshape(3, 200).T
    assert np.array_equal(ids, top.indices.numpy())


def test_sequences_are_laid_end_to_end(sequence_run):
    run = load_run(sequence_run)
    recording = ex.record_run(run, steps=130)  # 3 sequences of 40 steps fit
    assert recording.kind == "sequence" and recording.segment == 40 and recording.steps == 120
    x = run.task.load().test.x[:3]
    trace = gr.inspect.record(run.model, x)
    expected = trace[0].gates["f"].transpose(0, 1).reshape(120, -1).double().numpy()
    assert np.allclose(recording.layers[0].quantities["f"], expected)
    assert np.allclose(recording.inputs, x.reshape(120, -1).double().numpy())
    assert list(recording.features) == ["input 0", "step in sequence"]


def test_the_page_is_self_contained_and_the_command_prints_its_path(text_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["explore", str(text_run), "--out", str(out), "--steps", "150"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "{{" not in page
    code = re.sub(r'<script type="(application/json|text/plain)" id="(meta|blob)">.*?</script>', "", page, flags=re.S)
    assert set(re.findall(r"https?://[^\s\"'<>]+", code)) == {"http://www.w3.org/2000/svg"}  # a namespace


def test_runs_without_a_recurrent_layer_and_bad_steps(tmp_path, text_run, capsys):
    transformer = tmp_path / "transformer"
    train(TrainConfig(task="mnist1d", cell="transformer", hidden=8, layers=1, epochs=1, limit=50), transformer,
          progress=False)
    with pytest.raises(ValueError, match="no recurrent layer"):
        ex.explore(transformer)
    assert main(["explore", str(transformer)]) == 2
    assert "no recurrent layer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="steps"):
        ex.explore(text_run, steps=0)
    with pytest.raises(FileNotFoundError):
        ex.explore(tmp_path / "nothing")
