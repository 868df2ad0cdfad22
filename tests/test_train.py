"""The trainer: run directory, determinism, resume after SIGKILL, non-finite loss,
distributed training, compare."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gatedrnn import models, tasks
from gatedrnn.cli import main
from gatedrnn.tasks.mnist1d import MNIST1D
from gatedrnn.train import NonFiniteLoss, RunExists, TrainConfig, TrainingError, read_metrics, train
from gatedrnn.train.compare import compare

TINY = dict(task="mnist1d", cell="janet", hidden=16, epochs=2, limit=200)


def _rows_without_seconds(out):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(out)]


def _weights(path):
    return load_file(str(path))


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_run_directory_and_summary(tmp_path):
    out = tmp_path / "run"
    summary = train(TrainConfig(**TINY), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "curves.png", "metrics.jsonl", "summary.json"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "best.safetensors", "last.json", "model-0002.safetensors", "trainer-0002.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == MNIST1D.defaults["lr"] and config["head"] == "mean"  # task defaults filled in
    rows = read_metrics(out)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "validation_accuracy", "validation_loss", "lr", "seconds"}
    assert json.loads((out / "summary.json").read_text()) == summary
    for key in ("task", "cell", "test_accuracy", "epochs", "seconds", "parameters", "world_size", "versions"):
        assert key in summary
    assert summary["world_size"] == 1 and summary["versions"]["torch"] == torch.__version__
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the test metric is the best-validation weights' accuracy on the test split
    model = models.build("janet", 1, 10, hidden=16, head="mean", t_max=40)
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    model.load_state_dict(_weights(out / "checkpoints" / "best.safetensors"))
    test = tasks.get("mnist1d").load().test.head(200)
    with torch.no_grad():
        accuracy = (model.eval()(test.x).argmax(-1) == test.y).float().mean().item()
    assert summary["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    best_epoch = max(rows, key=lambda row: row["validation_accuracy"])["epoch"]
    assert summary["best_epoch"] == best_epoch


def test_training_lowers_the_loss(tmp_path):
    train(TrainConfig(task="digits", cell="gru", hidden=32, epochs=2, limit=300), tmp_path / "r", progress=False)
    first, second = read_metrics(tmp_path / "r")
    assert second["train_loss"] < first["train_loss"]


def test_regression_task_reports_mse_and_baseline(tmp_path):
    summary = train(TrainConfig(task="adding", cell="janet", seq_len=20, hidden=16, epochs=1, limit=200),
                    tmp_path / "r", progress=False)
    assert summary["metric"] == "mse" and "test_mse" in summary
    assert set(summary["baselines"]) == {"predict_mean_mse"}
    assert summary["task_options"] == {"seq_len": 20}


def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    config = TrainConfig(**TINY, dropout=0.2)
    train(config, tmp_path / "a", progress=False)
    train(config, tmp_path / "b", progress=False)
    assert _rows_without_seconds(tmp_path / "a") == _rows_without_seconds(tmp_path / "b")
    _assert_same_weights(_weights(tmp_path / "a/checkpoints/model-0002.safetensors"),
                         _weights(tmp_path / "b/checkpoints/model-0002.safetensors"))
    train(TrainConfig(**{**TINY, "seed": 1}, dropout=0.2), tmp_path / "c", progress=False)
    assert _rows_without_seconds(tmp_path / "a") != _rows_without_seconds(tmp_path / "c")


def test_resume_after_sigkill_ends_exactly_as_the_uninterrupted_run(tmp_path, one_thread):
    # dropout and a cosine schedule: the RNG, optimizer and scheduler states all matter.
    # Only the run that is killed needs a process of its own; the uninterrupted and the
    # resumed runs are commands in this one, on one thread as the killed run is
    args = ["train", "--task", "mnist1d", "--cell", "janet", "--hidden", "16", "--epochs", "6",
            "--limit", "300", "--dropout", "0.2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    killed = subprocess.Popen([sys.executable, "-m", "gatedrnn", *args, "--out", str(tmp_path / "cut")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "cut" / "summary.json").exists(), "the run finished before it was killed"

    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert _rows_without_seconds(tmp_path / "whole") == _rows_without_seconds(tmp_path / "cut")
    for name in ("best.safetensors", "model-0006.safetensors", "trainer-0006.safetensors"):
        _assert_same_weights(_weights(tmp_path / "whole/checkpoints" / name),
                             _weights(tmp_path / "cut/checkpoints" / name))
    whole = json.loads((tmp_path / "whole/summary.json").read_text())
    cut = json.loads((tmp_path / "cut/summary.json").read_text())
    assert whole["test_accuracy"] == cut["test_accuracy"]


def test_existing_run_is_refused_and_resume_checks_the_configuration(tmp_path):
    out = tmp_path / "r"
    train(TrainConfig(**TINY), out, progress=False)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(RunExists, match="pass --resume"):
        train(TrainConfig(**TINY), out, progress=False)
    with pytest.raises(TrainingError, match=r"configuration differs \(hidden: 16 -> 32\)"):
        train(TrainConfig(**{**TINY, "hidden": 32}), out, resume=True, progress=False)
    assert (out / "metrics.jsonl").read_text() == before
    # resuming a finished run trains nothing more and reports the same test metric
    again = train(TrainConfig(**TINY), out, resume=True, progress=False)
    assert (out / "metrics.jsonl").read_text() == before
    assert again["test_accuracy"] == json.loads((out / "summary.json").read_text())["test_accuracy"]


def test_non_finite_loss_stops_with_the_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    steps_per_epoch = 2  # limit 200, batch 100
    real_loss = MNIST1D.loss

    def poisoned(self, output, target):
        calls["n"] += torch.is_grad_enabled()  # training steps only, not the validation's loss
        loss = real_loss(self, output, target)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 2 else loss

    monkeypatch.setattr(MNIST1D, "loss", poisoned)
    out = tmp_path / "r"
    with pytest.raises(NonFiniteLoss, match=r"non-finite \(nan\) at epoch 2, step 2"):
        train(TrainConfig(**TINY), out, progress=False)
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert [row["epoch"] for row in read_metrics(out)] == [1]
    assert not (out / "summary.json").exists()


def test_non_finite_loss_exits_non_zero_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MNIST1D, "loss", lambda self, output, target: output.sum() * float("inf"))
    status = main(["train", "--task", "mnist1d", "--cell", "gru", "--hidden", "8", "--limit", "100",
                   "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")])
    assert status == 1
    error = capsys.readouterr().err
    assert "epoch 1, step 1" in error and "Traceback" not in error


def test_two_process_gloo_ddp_matches_one_process(tmp_path, one_thread):
    # DistributedSampler gives rank r the examples r, r+2, ... of the epoch's permutation,
    # so the two ranks' batches together are the single process's batch, and averaging
    # their gradients gives its gradient: the runs agree up to rounding.
    args = ["--task", "mnist1d", "--cell", "janet", "--hidden", "16", "--epochs", "2", "--limit", "200",
            "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gatedrnn", "train",
         *args, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("test accuracy") == 1  # rank 0 reports
    # the reference run in this process (one thread, as the ranks): only torchrun needs processes
    assert main(["train", *args, "--out", str(tmp_path / "single")]) == 0
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["world_size"] == 2
    a = _weights(tmp_path / "ddp/checkpoints/model-0002.safetensors")
    b = _weights(tmp_path / "single/checkpoints/model-0002.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    for row_ddp, row_single in zip(read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")):
        assert row_ddp["train_loss"] == pytest.approx(row_single["train_loss"], rel=1e-4)


def test_compare_writes_reports_and_reuses_finished_runs(tmp_path, capsys):
    options = dict(hidden=8, limit=100)
    summaries = compare("mnist1d", ["gru", "janet"], 2, tmp_path, epochs=1, command="gatedrnn compare ...",
                        **options)
    assert [(s["cell"], s["seed"]) for s in summaries] == [("gru", 0), ("gru", 1), ("janet", 0), ("janet", 1)]
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["test_accuracy"]) for r in rows] == [s["test_accuracy"] for s in summaries]
    report = (tmp_path / "results.md").read_text()
    janet = [s["test_accuracy"] for s in summaries if s["cell"] == "janet"]
    mean = sum(janet) / 2
    std = abs(janet[0] - janet[1]) / 2 ** 0.5
    assert f"| janet | {mean:.4f} ± {std:.4f} | 2 |" in report
    assert "Command: `gatedrnn compare ...`" in report and "Published anchors" in report
    assert (tmp_path / "curves.png").stat().st_size > 0
    before = (tmp_path / "gru-seed0" / "metrics.jsonl").read_text()
    again = compare("mnist1d", ["gru", "janet"], 2, tmp_path, epochs=1, **options)
    assert [s["test_accuracy"] for s in again] == [s["test_accuracy"] for s in summaries]
    assert (tmp_path / "gru-seed0" / "metrics.jsonl").read_text() == before


def test_compare_side_by_side_gives_the_runs_of_one_after_the_other(tmp_path):
    """jobs=2: each run in a process of its own; the same runs (seeded, one thread each)
    as jobs=1 with one thread, reported in the order cell by cell."""
    options = dict(hidden=8, limit=100, backend="fused")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = compare("mnist1d", ["janet", "gru"], 1, tmp_path / "alone", epochs=2, progress=False, **options)
    finally:
        torch.set_num_threads(torch_threads)
    side = compare("mnist1d", ["janet", "gru"], 1, tmp_path / "side", epochs=2, progress=False, jobs=2, **options)
    assert [(s["cell"], s["seed"]) for s in side] == [("janet", 0), ("gru", 0)]
    for a, b in zip(alone, side):
        assert b["test_accuracy"] == a["test_accuracy"]
        assert read_metrics(tmp_path / "side" / f"{b['cell']}-seed0")[-1]["train_loss"] == pytest.approx(
            read_metrics(tmp_path / "alone" / f"{a['cell']}-seed0")[-1]["train_loss"], rel=1e-6)
    threads = max(1, os.cpu_count() // 2)
    assert f"2 runs at a time, {threads} thread(s) each" in (tmp_path / "side" / "results.md").read_text()
    with pytest.raises(ValueError, match="jobs must be an integer >= 1, got 0"):
        compare("mnist1d", ["janet"], 1, tmp_path / "bad", epochs=1, jobs=0, **options)


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    train(TrainConfig(**TINY), tmp_path / "r", tensorboard=True, progress=False)
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))
