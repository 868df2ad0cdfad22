"""The command line and the demo task."""

import subprocess
import sys

import torch

from gatedrnn.cli import main
from gatedrnn.demo import adding_problem, run_demo


def test_adding_problem_targets_are_the_two_marked_values():
    inputs, targets = adding_problem(16, 10, torch.Generator().manual_seed(0))
    assert inputs.shape == (16, 10, 2) and targets.shape == (16, 1)
    markers = inputs[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :5].sum(1) == 1).all()  # one marker in each half
    torch.testing.assert_close(targets[:, 0], (inputs[..., 0] * markers).sum(1))


def test_demo_loss_falls():
    losses = run_demo(steps=60, seq_len=10, hidden=16, log_every=0)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


def test_cli_lists_backends(capsys):
    assert main(["backends"]) == 0
    assert capsys.readouterr().out.split("\n\n")[0].split() in (["torch", "native", "fused", "reference"],
                                                 ["torch", "fused", "reference"])


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "gatedrnn", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("gatedrnn 0.1.0")
