"""The janet-paper protocol and the trainer options it needs: L2 on the non-bias weights,
dropout before the read-out, TensorFlow's initialisation, selection by validation loss,
and runs that go on to more epochs."""

import json
import math
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import gatedrnn as gr
from gatedrnn import cli, models, tasks
from gatedrnn.train import TrainConfig, TrainingError, l2_penalty, read_metrics, train
from gatedrnn.train.compare import compare

#: what the authors' code sets (github.com/JosvanderWesthuizen/janet, docs/janet-paper.md)
PAPER = {"hidden": 128, "head": "last", "dropout": 0.1, "output_dropout": 0.0, "epochs": 100,
         "batch_size": 200, "lr": 1e-3, "optimizer": "adam", "schedule": "constant", "clip": 5.0,
         "weight_decay": 0.0, "l2": 1e-5, "weight_init": "glorot", "best_by": "loss"}


def _resolved(task_name, cell, **options):
    return TrainConfig(task=task_name, cell=cell, protocol="janet-paper", **options).for_task(tasks.get(task_name))


@pytest.mark.parametrize("task_name, layers", [("smnist5k", 2), ("pmnist5k", 1), ("smnist", 2), ("pmnist", 1),
                                               ("fmnist", 2), ("pfmnist", 1)])
@pytest.mark.parametrize("cell", ["janet", "lstm", "gru"])
def test_preset_resolves_to_every_setting_of_the_authors(task_name, layers, cell):
    config = _resolved(task_name, cell)
    for name, value in {**PAPER, "layers": layers}.items():
        assert getattr(config, name) == value, name
    # JANET: chrono with t_max = 784, drawn from U(1, 784) (chrono_ draws U(1, t_max - 1));
    # the LSTM: b_f = 1; the GRU: neither
    expected = {"janet": (785, None), "lstm": (None, 1.0), "gru": (None, None)}[cell]
    assert (config.chrono_t_max, config.forget_bias_init) == expected


def test_preset_lstm_with_chrono_takes_the_authors_chrono():
    config = _resolved("smnist5k", "lstm", chrono=True)
    assert (config.chrono, config.chrono_t_max, config.forget_bias_init) == (True, 785, None)


def test_every_option_given_overrides_the_preset():
    given = {"hidden": 64, "layers": 3, "dropout": 0.0, "output_dropout": 0.2, "epochs": 10,
             "batch_size": 50, "lr": 2e-3, "optimizer": "rmsprop", "schedule": "cosine", "clip": 0.0,
             "weight_decay": 1e-4, "l2": 0.0, "weight_init": "torch", "best_by": "metric",
             "chrono_t_max": 100.0}
    config = _resolved("smnist5k", "janet", **given)
    assert {name: getattr(config, name) for name in given} == given
    assert _resolved("smnist5k", "lstm", forget_bias_init=0.5).forget_bias_init == 0.5


def test_without_a_protocol_nothing_changes():
    config = TrainConfig(task="smnist5k", cell="janet").for_task(tasks.get("smnist5k"))
    assert (config.l2, config.weight_init, config.best_by, config.output_dropout, config.chrono_t_max,
            config.forget_bias_init, config.schedule, config.batch_size, config.layers) == (
        0.0, "torch", "metric", None, None, None, "cosine", 100, 1)


def test_preset_refuses_tasks_that_are_not_pixel_mnist(capsys):
    with pytest.raises(ValueError, match="pixel-by-pixel MNIST experiment.*smnist5k.*not mnist-rows"):
        _resolved("mnist-rows", "janet")
    assert cli.main(["train", "--protocol", "janet-paper", "--task", "adding", "--cell", "janet",
                     "--out", "unused"]) == 2
    assert "not adding" in capsys.readouterr().err


@pytest.mark.parametrize("options, match", [
    ({"forget_bias_init": 1.0, "cell": "janet"}, "forget_bias_init applies to the lstm"),
    ({"forget_bias_init": 1.0, "chrono": True}, "forget_bias_init applies to the lstm"),
    ({"chrono_t_max": 50.0, "cell": "gru"}, "chrono_t_max applies"),
    ({"l2": -1.0}, "l2 must be >= 0"),
    ({"output_dropout": 1.0}, "output_dropout must be in"),
    ({"weight_init": "he"}, "weight_init must be one of"),
    ({"best_by": "accuracy"}, "best_by must be one of"),
    ({"protocol": "nope"}, "protocol must be one of janet-paper"),
])
def test_bad_options_are_refused(options, match):
    options = {"cell": "lstm", **options}
    with pytest.raises(ValueError, match=match):
        TrainConfig(task="smnist5k", **options).for_task(tasks.get("smnist5k"))


def test_l2_penalty_is_half_the_coefficient_times_the_sum_of_squares_of_the_non_bias_weights():
    model = nn.ModuleDict({"recurrent": gr.JANET(1, 1), "readout": nn.Linear(1, 1)})
    with torch.no_grad():
        model["recurrent"].weight_ih_l0.copy_(torch.tensor([[1.0], [2.0]]))
        model["recurrent"].weight_hh_l0.copy_(torch.tensor([[0.5], [-1.0]]))
        model["recurrent"].bias_ih_l0.fill_(10.0)
        model["recurrent"].bias_hh_l0.fill_(-20.0)
        model["readout"].weight.fill_(3.0)
        model["readout"].bias.fill_(7.0)
    # 0.1 / 2 * (1 + 4 + 0.25 + 1 + 9), as TensorFlow's 0.1 * tf.nn.l2_loss summed over the weights
    assert l2_penalty(model, 0.1).item() == pytest.approx(0.7625, rel=1e-6)
    l2_penalty(model, 0.1).backward()  # gradient 0.1 * w on the weights, nothing on the biases
    assert torch.allclose(model["recurrent"].weight_hh_l0.grad, torch.tensor([[0.05], [-0.1]]))
    assert model["readout"].bias.grad is None


def _digits(**options):
    """A one-step-per-epoch run on the 8x8 digits, small enough for a test."""
    values = {"task": "digits", "cell": "janet", "hidden": 8, "epochs": 1, "batch_size": 50, "limit": 50,
              "schedule": "constant", "clip": 0.0, **options}
    return TrainConfig(**values)


def test_trainer_adds_the_l2_term_to_the_loss_it_minimises_not_to_the_loss_it_reports(tmp_path):
    lr, coefficient = 0.1, 0.5
    for name, l2 in (("plain", 0.0), ("l2", coefficient)):
        train(_digits(optimizer="sgd", lr=lr, l2=l2), tmp_path / name, progress=False)
    plain, decayed = (load_file(str(tmp_path / name / "checkpoints" / "best.safetensors")) for name in ("plain", "l2"))
    torch.manual_seed(0)  # the trainer's initialisation, to read w0
    initial = models.build("janet", 1, 10, hidden=8, t_max=64).state_dict()
    # one SGD step (its first, so momentum has no history): w1 = w0 - lr * (g + l2 * w0)
    for name, w0 in initial.items():
        expected = torch.zeros_like(w0) if "bias" in name else -lr * coefficient * w0
        torch.testing.assert_close(decayed[name] - plain[name], expected, atol=1e-6, rtol=0)
    assert read_metrics(tmp_path / "l2")[0]["train_loss"] == read_metrics(tmp_path / "plain")[0]["train_loss"]


def test_output_dropout_is_before_the_read_out_and_only_in_training():
    x = torch.randn(4, 10, 1)
    model = models.build("janet", 1, 10, hidden=8, t_max=10, output_dropout=0.5)
    model.eval()
    features = model.head(model.recurrent(x)[0])  # (B, H)
    assert torch.equal(model(x), model.readout(features))
    model.train()
    torch.manual_seed(1)
    trained = model(x)
    torch.manual_seed(1)
    expected = model.readout(F.dropout(model.head(model.recurrent(x)[0]), 0.5, training=True))
    assert torch.equal(trained, expected) and not torch.allclose(trained, model.readout(features))


def test_dropout_between_layers_without_output_dropout_leaves_the_read_out_input_alone():
    x = torch.randn(4, 10, 1)
    model = models.build("janet", 1, 10, hidden=8, layers=2, t_max=10, dropout=0.5, output_dropout=0.0).train()
    torch.manual_seed(1)
    trained = model(x)
    torch.manual_seed(1)
    assert torch.equal(trained, model.readout(model.head(model.recurrent(x)[0])))
    model.eval()
    assert not torch.allclose(trained, model(x))  # the layers' dropout is on in training


@torch.no_grad()
def test_glorot_init_and_the_authors_biases():
    lstm = models.build("lstm", 1, 10, hidden=64, layers=2, weight_init="glorot", forget_bias_init=1.0)
    layer, H = lstm.recurrent, 64
    for k, fan_in in ((0, 1), (1, H)):
        for weight, fan in ((getattr(layer, f"weight_ih_l{k}"), fan_in), (getattr(layer, f"weight_hh_l{k}"), H)):
            limit = math.sqrt(6 / (fan + 4 * H))
            assert weight.abs().max() <= limit and weight.std() == pytest.approx(limit / math.sqrt(3), rel=0.1)
        bias = getattr(layer, f"bias_ih_l{k}") + getattr(layer, f"bias_hh_l{k}")  # (4H,) gates i, f, g, o
        assert bias[H:2 * H].eq(1.0).all() and bias[:H].eq(0).all() and bias[2 * H:].eq(0).all()
    assert lstm.readout.weight.abs().max() <= math.sqrt(6 / 74) and lstm.readout.bias.eq(0).all()

    janet = models.build("janet", 1, 10, hidden=256, t_max=784, weight_init="glorot", chrono_t_max=4)
    bias = janet.recurrent.bias_ih_l0 + janet.recurrent.bias_hh_l0  # (2H,) gates f, g
    assert bias[:256].exp().min() >= 1 - 1e-6 and bias[:256].exp().max() <= 3 + 1e-5  # U(1, t_max - 1)
    assert bias[256:].eq(0).all()


def test_best_by_loss_keeps_the_epoch_of_the_lowest_validation_loss(tmp_path):
    summary = train(_digits(epochs=4, limit=100, lr=0.05, best_by="loss"), tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    lowest = min(rows, key=lambda row: row["validation_loss"])
    assert summary["best_epoch"] == lowest["epoch"]
    assert summary["best_validation_loss"] == pytest.approx(lowest["validation_loss"])
    assert summary["best_validation_accuracy"] == pytest.approx(lowest["validation_accuracy"])


def _rows_without_seconds(out):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(out)]


def test_compare_extends_a_finished_preset_run_to_more_epochs_exactly(tmp_path):
    options = {"protocol": "janet-paper", "hidden": 8, "limit": 40, "progress": False}
    compare("smnist5k", ["janet"], 1, tmp_path / "extended", epochs=1, **options)
    compare("smnist5k", ["janet"], 1, tmp_path / "extended", epochs=2, **options)
    compare("smnist5k", ["janet"], 1, tmp_path / "straight", epochs=2, **options)
    extended, straight = tmp_path / "extended" / "janet-seed0", tmp_path / "straight" / "janet-seed0"
    assert len(read_metrics(extended)) == 2
    assert _rows_without_seconds(extended) == _rows_without_seconds(straight)
    assert json.loads((extended / "config.json").read_text())["epochs"] == 2
    last = json.loads((extended / "checkpoints" / "last.json").read_text())["model"]
    for name, value in load_file(str(extended / "checkpoints" / last)).items():
        assert torch.equal(value, load_file(str(straight / "checkpoints" / last))[name])


def test_a_cosine_run_cannot_be_extended_and_no_run_shortened(tmp_path):
    train(_digits(schedule="cosine"), tmp_path / "cosine", progress=False)
    with pytest.raises(TrainingError, match="epochs: 1 -> 2.*cosine schedule"):
        train(_digits(schedule="cosine", epochs=2), tmp_path / "cosine", resume=True, progress=False)
    train(_digits(epochs=2), tmp_path / "constant", progress=False)
    with pytest.raises(TrainingError, match="epochs: 2 -> 1.*never fewer"):
        train(_digits(epochs=1), tmp_path / "constant", resume=True, progress=False)


def test_runs_written_before_the_new_options_existed_still_resume(tmp_path):
    out = tmp_path / "run"
    train(_digits(), out, progress=False)
    stored = json.loads((out / "config.json").read_text())
    for name in ("l2", "output_dropout", "weight_init", "forget_bias_init", "chrono_t_max", "best_by", "protocol"):
        del stored[name]
    (out / "config.json").write_text(json.dumps(stored))
    assert train(_digits(), out, resume=True, progress=False)["epochs"] == 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_reuse_freed_memory_cuts_the_page_faults_of_a_long_sequence_step():
    # in a fresh process (the setting lasts for the process): a 784-step JANET layer's
    # training step, whose (T, B, 2H) buffers of 40 MB glibc maps afresh every time
    code = """
import resource, torch, gatedrnn as gr
from gatedrnn.train.trainer import reuse_freed_memory
torch.manual_seed(0)
layer, x = gr.JANET(1, 64, batch_first=True), torch.rand(100, 784, 1)
def faults_of_two_steps():
    layer(x)[0].sum().backward()  # settles the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        layer(x)[0].sum().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
default = faults_of_two_steps()
applied = reuse_freed_memory()
print(applied, default, faults_of_two_steps())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    applied, default, reused = result.stdout.split()
    assert applied == "True"
    assert int(default) > 40_000  # at least one 40 MB buffer (10,000 pages) faulted per step and more
    assert int(reused) < int(default) / 2  # measured: 0-15,000 against 69,000-74,000
