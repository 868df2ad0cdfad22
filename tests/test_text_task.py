"""The character-level language-model task (pysource), its baselines and truncated BPTT."""

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gatedrnn import models, tasks
from gatedrnn.cli import main
from gatedrnn.tasks import text
from gatedrnn.tasks.base import Split
from gatedrnn.train import TrainConfig, TrainingError, read_metrics, train
from gatedrnn.train.distributed import World
from gatedrnn.train.runs import build_model
from gatedrnn.train.tbptt import EVAL_ROWS, detach_state, evaluate_stream, stream_rows

TINY = dict(task="pysource", cell="lstm", hidden=12, epochs=2, limit=3000, batch_size=4, seq_len=25)
ONE_PROCESS = World(rank=0, size=1, device=torch.device("cpu"))


def _weights(path):
    return load_file(str(path))


# -- the alphabet and the corpus ------------------------------------------------------------


def test_encode_decode_round_trip_and_unknown_characters():
    sample = 'def f(x):\n\treturn "~" + x  # ok\n'
    ids = text.encode(sample)
    assert ids.dtype == torch.int64 and ids.shape == (len(sample),)
    assert text.decode(ids) == sample
    assert text.encode("é€\r").tolist() == [text.OTHER] * 3
    assert text.encode("\t\n A~").tolist() == [0, 1, 2, 35, 96]  # tab, newline, then ASCII from 32
    assert len(text.VOCABULARY) == 98


def test_the_splits_are_different_files_of_this_interpreters_stdlib():
    splits = (set(text.TRAIN_MODULES), set(text.VALIDATION_MODULES), set(text.TEST_MODULES))
    assert sum(map(len, splits)) == len(set.union(*splits)) == 138
    task = tasks.get("pysource")
    texts = task.texts()
    root = text.stdlib_root()
    assert texts["test"] == "".join(text.module_path(name, root).read_text(encoding="utf-8")
                                    for name in text.TEST_MODULES)
    assert len(texts["train"]) > 2_000_000
    options = task.options()
    whole = "".join(texts[split] for split in ("train", "validation", "test"))
    assert options["sha256"] == hashlib.sha256(whole.encode("utf-8")).hexdigest()
    assert options["characters"] == {split: len(t) for split, t in texts.items()}
    splits = task.load()
    for name in ("train", "validation", "test"):
        split = getattr(splits, name)
        ids = text.encode(texts[name])
        assert torch.equal(split.x, ids[:-1]) and torch.equal(split.y, ids[1:])  # y: the next character


def test_missing_sources_raise_data_unavailable(tmp_path):
    with pytest.raises(tasks.DataUnavailable, match="no csv.py"):
        text.read_modules(["csv"], tmp_path)


def test_seq_len_is_the_tasks_option_and_checked():
    assert tasks.get("pysource", seq_len=64).seq_len == 64
    with pytest.raises(ValueError, match="truncated-BPTT length"):
        tasks.get("pysource", seq_len=0)
    with pytest.raises(ValueError, match="does not take --delay"):
        tasks.get("pysource", delay=3)


# -- baselines ------------------------------------------------------------------------------


def test_unigram_bits_by_hand():
    train_ids = np.array([0, 0, 1])
    test_ids = np.array([0, 2])
    # add-one: p(0) = 3/6, p(1) = 2/6, p(2) = 1/6
    expected = -(math.log2(3 / 6) + math.log2(1 / 6)) / 2
    assert text.unigram_bits(train_ids, test_ids, 3) == pytest.approx(expected)


def _log2_probability(train_ids, context, vocabulary, order):
    """log2 p(w | context) for every w, from kneser_ney_bits' mean over a test stream."""
    before = text.kneser_ney_bits(train_ids, np.array(context), vocabulary, order) * len(context)
    return np.array([before - text.kneser_ney_bits(train_ids, np.array(context + [w]), vocabulary, order)
                     * (len(context) + 1) for w in range(vocabulary)])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_is_a_distribution_for_seen_and_unseen_contexts(order):
    rng = np.random.default_rng(0)
    vocabulary = 5
    train_ids = rng.choice(vocabulary, size=400, p=[0.4, 0.3, 0.2, 0.1, 0.0])  # symbol 4 never seen
    for context in ([0, 1, 2], [4, 4, 4], [3, 0, 4]):
        p = 2.0 ** _log2_probability(train_ids, context, vocabulary, order)
        assert p.sum() == pytest.approx(1.0, abs=1e-9)
        assert (p > 0).all()


def test_kneser_ney_learns_a_deterministic_sequence_and_beats_the_unigram():
    train_ids = np.tile(np.arange(7), 200)  # 0 1 2 ... 6 0 1 ...
    test_ids = np.tile(np.arange(7), 5)
    kn = text.kneser_ney_bits(train_ids, test_ids, 7, 3)
    assert kn < 0.2 < text.unigram_bits(train_ids, test_ids, 7)
    with pytest.raises(ValueError, match="order"):
        text.kneser_ney_bits(train_ids, test_ids, 7, 10)


def test_the_tasks_baselines_are_cached_and_ordered(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEDRNN_CACHE", str(tmp_path))
    baselines = tasks.get("pysource").load().baselines
    assert set(baselines) == {"unigram_bpc", f"kneser_ney_{text.NGRAM_ORDER}gram_bpc"}
    assert 1.0 < baselines[f"kneser_ney_{text.NGRAM_ORDER}gram_bpc"] < baselines["unigram_bpc"] < 6.0
    assert len(list((tmp_path / "pysource").glob("baselines-*.json"))) == 1


# -- truncated BPTT ---------------------------------------------------------------------------


def test_stream_rows_are_contiguous_and_refuse_too_short_streams():
    split = Split(torch.arange(10), torch.arange(1, 11))
    x, y = stream_rows(split, 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="cannot fill 11 rows"):
        stream_rows(split, 11)


def test_evaluation_in_chunks_equals_one_pass_over_the_rows():
    # the state carried across chunks makes chunked evaluation the same function as one
    # forward pass over each whole row
    task = tasks.get("pysource", seq_len=7)
    torch.manual_seed(0)
    model = models.build_language_model("gru", task.output_size, hidden=10, t_max=7).eval()
    ids = torch.randint(0, task.output_size, (301,))
    split = Split(ids[:-1], ids[1:])
    chunked, chunked_loss = evaluate_stream(model, task, split, ONE_PROCESS, rows=4)
    x, y = stream_rows(split, 4)
    with torch.no_grad():
        logits, _ = model(x)
    whole = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item() / math.log(2) / y.numel()
    assert chunked == pytest.approx(whole, rel=1e-5)
    assert chunked_loss == pytest.approx(whole * math.log(2), rel=1e-5)  # nats per character
    assert EVAL_ROWS == 32


def test_an_epoch_is_truncated_bptt_with_the_state_carried(tmp_path):
    # an independent loop: rows of the stream, chunks of seq_len, Adam, clipping, the
    # state detached between chunks; the trainer's weights after one epoch must equal it
    config = TrainConfig(**{**TINY, "epochs": 1, "schedule": "constant"})
    train(config, tmp_path / "run", progress=False)
    task = tasks.get("pysource", seq_len=TINY["seq_len"])
    resolved = config.resolved(task.defaults)
    model = build_model(resolved, task)  # seeded as the trainer seeds it
    optimizer = torch.optim.Adam(model.parameters(), lr=resolved.lr)
    train_split = task.load().head(TINY["limit"]).train
    rows = len(train_split) // TINY["batch_size"]
    x = train_split.x[: rows * TINY["batch_size"]].view(TINY["batch_size"], rows)
    y = train_split.y[: rows * TINY["batch_size"]].view(TINY["batch_size"], rows)
    state = None
    model.train()
    for start in range(0, rows, TINY["seq_len"]):
        logits, state = model(x[:, start: start + TINY["seq_len"]], state)
        loss = F.cross_entropy(logits.flatten(0, 1), y[:, start: start + TINY["seq_len"]].flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), resolved.clip)
        optimizer.step()
        state = tuple(s.detach() for s in state)
    trained = _weights(tmp_path / "run/checkpoints/model-0001.safetensors")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trained[name], value, rtol=1e-5, atol=1e-6)


def test_detach_state_cuts_the_graph():
    h = torch.ones(2, requires_grad=True) * 2
    detached = detach_state((h, h))
    assert all(not s.requires_grad for s in detached)
    assert not detach_state(h).requires_grad


def test_run_directory_config_records_the_corpus_and_summary_the_baselines(tmp_path):
    out = tmp_path / "run"
    summary = train(TrainConfig(**TINY), out, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["task_options"]["sha256"] == tasks.get("pysource").options()["sha256"]
    assert config["task_options"]["seq_len"] == TINY["seq_len"]
    assert summary["metric"] == "bpc" and 0 < summary["test_bpc"] < 8
    assert set(summary["baselines"]) == {"unigram_bpc", f"kneser_ney_{text.NGRAM_ORDER}gram_bpc"}
    rows = read_metrics(out)
    assert [row["epoch"] for row in rows] == [1, 2] and "validation_bpc" in rows[0]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert summary["best_validation_bpc"] == min(row["validation_bpc"] for row in rows)

    # the test score is the bits per character of the best weights on the test stream
    task = tasks.get("pysource", seq_len=TINY["seq_len"])
    model = build_model(TrainConfig(**TINY).resolved(task.defaults), task)
    model.load_state_dict(_weights(out / "checkpoints/best.safetensors"))
    test = task.load().head(TINY["limit"]).test
    assert summary["test_bpc"] == pytest.approx(evaluate_stream(model, task, test, ONE_PROCESS)[0], rel=1e-6)


def test_resume_ends_exactly_as_the_uninterrupted_run(tmp_path, monkeypatch, one_thread):
    train(TrainConfig(**TINY), tmp_path / "straight", progress=False)
    # the second run dies in epoch 2 (after epoch 1's checkpoint), then resumes
    from gatedrnn.train.tbptt import StreamRun

    evaluate, calls = StreamRun.evaluate, []

    def dies_in_epoch_two(self, split):
        calls.append(split)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self, split)

    monkeypatch.setattr(StreamRun, "evaluate", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**TINY), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(StreamRun, "evaluate", evaluate)
    assert [row["epoch"] for row in read_metrics(tmp_path / "resumed")] == [1]
    with pytest.raises(TrainingError, match="configuration differs"):
        train(TrainConfig(**{**TINY, "hidden": 13}), tmp_path / "resumed", resume=True, progress=False)
    train(TrainConfig(**TINY), tmp_path / "resumed", resume=True, progress=False)
    strip = lambda out: [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(out)]
    assert strip(tmp_path / "straight") == strip(tmp_path / "resumed")
    a = _weights(tmp_path / "straight/checkpoints/model-0002.safetensors")
    b = _weights(tmp_path / "resumed/checkpoints/model-0002.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_resume_refuses_a_different_corpus(tmp_path, one_thread):
    out = tmp_path / "run"
    train(TrainConfig(**{**TINY, "epochs": 1}), out, progress=False)
    stored = json.loads((out / "config.json").read_text())
    stored["task_options"]["sha256"] = "0" * 64
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(TrainingError, match="the task's data differs"):
        train(TrainConfig(**{**TINY, "epochs": 1}), out, resume=True, progress=False)


@pytest.mark.parametrize("cell", [c for c in models.CELLS if c != "transformer"])
def test_every_recurrent_cell_trains_on_the_text_task(tmp_path, cell):
    summary = train(TrainConfig(**{**TINY, "cell": cell, "epochs": 1, "limit": 800}), tmp_path / cell,
                    progress=False)
    assert math.isfinite(summary["test_bpc"]) and summary["cell"] == cell


def test_the_transformer_gets_a_clear_error_from_the_command_line(tmp_path, capsys):
    status = main(["train", "--task", "pysource", "--cell", "transformer", "--limit", "500", "--epochs", "1",
                   "--out", str(tmp_path / "t"), "--quiet"])
    assert status == 2
    error = capsys.readouterr().err
    assert "no recurrent state to carry" in error and "Traceback" not in error


def test_two_process_ddp_takes_the_rows_of_the_single_process_batch(tmp_path, one_thread):
    args = ["--task", "pysource", "--cell", "gru", "--hidden", "8", "--epochs", "1", "--limit", "2000",
            "--batch-size", "4", "--seq-len", "20", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gatedrnn", "train",
         *args, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # the reference run in this process (one thread, as the ranks): only torchrun needs processes
    assert main(["train", *args, "--out", str(tmp_path / "single")]) == 0
    a = _weights(tmp_path / "ddp/checkpoints/model-0001.safetensors")
    b = _weights(tmp_path / "single/checkpoints/model-0001.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    ddp_summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    single_summary = json.loads((tmp_path / "single/summary.json").read_text())
    assert ddp_summary["test_bpc"] == pytest.approx(single_summary["test_bpc"], rel=1e-4)
