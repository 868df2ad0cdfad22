"""gatedrnn generate: sampling from a trained language model, checked against an
independent sampler that recomputes every step from the whole text so far."""

import subprocess
import sys

import pytest
import torch

from gatedrnn.cli import main
from gatedrnn.generate import generate, sample
from gatedrnn.train import TrainConfig, train
from gatedrnn.train.runs import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, torch_threads):
    out = tmp_path_factory.mktemp("generate") / "run"
    with torch_threads(1):
        train(TrainConfig(task="pysource", cell="gru", hidden=16, epochs=1, limit=4000, batch_size=4, seq_len=30),
              out, progress=False)
    return out


def _from_scratch(model, task, prompt, length, temperature, seed):
    """Each next character from the logits of one forward pass over everything so far
    (no carried state), drawn with the same generator."""
    generator = torch.Generator().manual_seed(seed)
    ids = task.encode(prompt).tolist()
    written = []
    with torch.no_grad():
        for _ in range(length):
            logits, _ = model(torch.tensor([ids]))
            last = logits[0, -1].float()
            if temperature == 0:
                chosen = int(last.argmax())
            else:
                chosen = int(torch.multinomial(torch.softmax(last.double() / temperature, -1), 1,
                                               generator=generator))
            ids.append(chosen)
            written.append(chosen)
    return task.decode(written)


@pytest.mark.parametrize("temperature", [0.0, 0.8, 1.5])
def test_sampling_carries_the_state_exactly(run_dir, temperature):
    run = load_run(run_dir)
    text = sample(run.model, run.task, "def ", 40, temperature=temperature, seed=3)
    assert len(text) == 40
    assert text == _from_scratch(run.model, run.task, "def ", 40, temperature, 3)


def test_a_seed_gives_the_same_text_and_seeds_differ(run_dir):
    first = generate(run_dir, prompt="import ", length=80, temperature=1.0, seed=7)
    assert generate(run_dir, prompt="import ", length=80, temperature=1.0, seed=7) == first
    assert generate(run_dir, prompt="import ", length=80, temperature=1.0, seed=8) != first


def test_bad_arguments_and_runs_of_other_tasks(run_dir, tmp_path):
    run = load_run(run_dir)
    with pytest.raises(ValueError, match="length"):
        sample(run.model, run.task, "x", -1)
    with pytest.raises(ValueError, match="temperature"):
        sample(run.model, run.task, "x", 5, temperature=-0.5)
    other = tmp_path / "mnist1d"
    train(TrainConfig(task="mnist1d", cell="gru", hidden=8, epochs=1, limit=50), other, progress=False)
    with pytest.raises(ValueError, match="was trained on task 'mnist1d'"):
        generate(other)


def test_command_line(run_dir, tmp_path, capsys):
    result = subprocess.run([sys.executable, "-m", "gatedrnn", "generate", str(run_dir), "--prompt", "def ",
                             "--length", "50", "--temperature", "0.8", "--seed", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "def " + generate(run_dir, "def ", 50, 0.8, seed=1) + "\n"
    # the errors are the command's (cli.main), not the process's: they need no python of their own
    assert main(["generate", str(tmp_path / "nothing")]) == 1
    assert "no run directory" in capsys.readouterr().err
    assert main(["generate", str(run_dir), "--length", "-3"]) == 2
    assert "length must be" in capsys.readouterr().err
