"""``gatedrnn train`` / ``compare`` / ``tasks``: the command line's answers and error cases."""

import json
import subprocess
import sys

import pytest

from gatedrnn import tasks
from gatedrnn.cli import main


def _run(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as exit:  # argparse errors
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_tasks_lists_every_task(capsys):
    status, out, _ = _run(capsys, "tasks")
    assert status == 0
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == tasks.names()
    assert "mnist1d" in out and "accuracy" in out and "mse" in out


def test_python_dash_m_is_the_same_command(capsys):
    _, expected, _ = _run(capsys, "tasks")
    done = subprocess.run([sys.executable, "-m", "gatedrnn", "tasks"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == expected


@pytest.mark.parametrize("argv, message", [
    (["train", "--task", "nope", "--cell", "janet"], "invalid choice: 'nope' (choose from 'mnist1d'"),
    (["train", "--task", "mnist1d", "--cell", "elman"], "invalid choice: 'elman' (choose from 'rnn', 'lstm'"),
    (["train", "--task", "mnist1d"], "the following arguments are required: --cell"),
    (["train", "--task", "mnist1d", "--cell", "gru", "--epochs", "x"], "argument --epochs: invalid int value"),
    (["train", "--task", "mnist1d", "--cell", "gru", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
    (["compare", "--task", "mnist1d", "--cells", "lstm,elman"], "--cells takes a comma-separated list of rnn"),
], ids=["task", "cell", "missing-cell", "epochs-type", "optimizer", "compare-cells"])
def test_usage_errors_exit_2_and_list_the_choices(capsys, argv, message):
    status, _, err = _run(capsys, *argv)
    assert status == 2
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("options, message", [
    (["--seq-len", "10"], "task mnist1d does not take --seq-len (got 10)"),
    (["--hidden", "0"], "hidden must be a positive integer, got 0"),
    (["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
    (["--chrono"], "chrono initialisation applies to lstm (janet always has it), not gru"),
    (["--zoneout", "1.0"], "zoneout must be in [0, 1), got 1.0"),
    (["--recurrent-dropout", "-0.1"], "recurrent_dropout must be in [0, 1), got -0.1"),
], ids=["option-of-another-task", "hidden", "dropout", "chrono", "zoneout", "recurrent-dropout"])
def test_bad_values_exit_2_with_the_argument_named(capsys, tmp_path, options, message):
    status, _, err = _run(capsys, "train", "--task", "mnist1d", "--cell", "gru", "--out", str(tmp_path / "r"),
                          *options)
    assert status == 2
    assert f"gatedrnn train: error: {message}" in err
    assert not (tmp_path / "r").exists()


def test_regularisation_of_a_cell_without_it_exits_2(capsys, tmp_path):
    status, _, err = _run(capsys, "train", "--task", "mnist1d", "--cell", "indrnn", "--zoneout", "0.1",
                          "--out", str(tmp_path / "r"))
    assert status == 2
    assert "zoneout applies to lstm, gru, janet, mgu, layernorm-lstm, not indrnn" in err


def test_zoneout_and_recurrent_dropout_are_recorded_and_a_run_from_before_them_resumes(capsys, tmp_path):
    """config.json stores the rates; a run directory written before the options existed
    (no such keys) resumes, the missing keys taking their defaults."""
    argv = ["train", "--task", "digits", "--cell", "gru", "--hidden", "8", "--epochs", "1", "--limit", "60",
            "--quiet"]
    assert _run(capsys, *argv, "--zoneout", "0.2", "--recurrent-dropout", "0.1", "--out", str(tmp_path / "z"))[0] == 0
    stored = json.loads((tmp_path / "z" / "config.json").read_text())
    assert stored["zoneout"] == 0.2 and stored["recurrent_dropout"] == 0.1
    assert _run(capsys, *argv, "--out", str(tmp_path / "old"))[0] == 0
    config = tmp_path / "old" / "config.json"
    old = {k: v for k, v in json.loads(config.read_text()).items() if k not in ("zoneout", "recurrent_dropout")}
    config.write_text(json.dumps(old))
    assert _run(capsys, *argv, "--resume", "--out", str(tmp_path / "old"))[0] == 0


def test_missing_data_says_how_to_get_it_without_a_traceback(capsys, tmp_path):
    status, _, err = _run(capsys, "train", "--task", "fmnist", "--cell", "janet", "--data-dir", str(tmp_path),
                          "--out", str(tmp_path / "r"))
    assert status == 1
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # a retry is not refused as an existing run


def test_train_reports_and_refuses_to_overwrite(capsys, tmp_path):
    argv = ["train", "--task", "digits", "--cell", "janet", "--hidden", "8", "--epochs", "1", "--limit", "60",
            "--quiet", "--out", str(tmp_path / "r")]
    status, out, _ = _run(capsys, *argv)
    assert status == 0 and out.startswith("test accuracy ") and str(tmp_path / "r") in out
    status, _, err = _run(capsys, *argv)
    assert status == 1 and "exists and is not empty; pass --resume" in err
    status, out, _ = _run(capsys, *argv, "--resume")
    assert status == 0
