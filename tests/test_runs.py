"""gatedrnn.train.runs: one function builds a run's model, for the trainer and for the
commands that read a run back (inspect, explore, generate)."""

import pytest
import torch

from gatedrnn import tasks
from gatedrnn.train import TrainConfig, train
from gatedrnn.train.distributed import World
from gatedrnn.train.runs import build_model, load_run, new_model
from gatedrnn.train.trainer import _run_class

ONE_PROCESS = World(rank=0, size=1, device=torch.device("cpu"))

#: configurations with every model option of TrainConfig away from its default
CONFIGS = {
    "lstm-options": dict(task="mnist1d", cell="lstm", hidden=8, layers=2, dropout=0.1, output_dropout=0.25,
                         weight_init="glorot", forget_bias_init=2.0, zoneout=0.1, recurrent_dropout=0.1,
                         head="mean", seed=3, limit=40),
    "janet-chrono": dict(task="mnist1d", cell="janet", hidden=8, chrono_t_max=12.0, seed=5, limit=40),
    "pysource-gru": dict(task="pysource", cell="gru", hidden=8, weight_init="glorot", output_dropout=0.2,
                         seed=7, limit=2000, batch_size=4, seq_len=20),
}


def _task_and_config(options):
    task = tasks.get(options["task"], seq_len=options.get("seq_len"))
    return task, TrainConfig(**options).for_task(task)


@pytest.mark.parametrize("name", CONFIGS)
def test_a_seeded_build_equals_the_trainers_initial_model(name, tmp_path):
    task, config = _task_and_config(CONFIGS[name])
    splits = task.load().head(config.limit)
    run = _run_class(task)(config, task, splits, tmp_path, ONE_PROCESS, False, False)
    after_trainer = torch.get_rng_state()
    torch.manual_seed(1234)  # build_model neither depends on nor changes the caller's random state
    before = torch.get_rng_state()
    built = build_model(config, task)
    assert torch.equal(torch.get_rng_state(), before)
    assert not built.training
    trained, rebuilt = run.model.state_dict(), built.state_dict()
    assert trained.keys() == rebuilt.keys()
    for key in trained:
        assert torch.equal(trained[key], rebuilt[key]), key
    assert built.dropout.p == run.model.dropout.p
    # the trainer seeds, builds and draws nothing else: its dropout goes on from there
    torch.manual_seed(config.seed)
    new_model(config, task)
    assert torch.equal(torch.get_rng_state(), after_trainer)


def test_the_newer_options_shape_the_rebuilt_model():
    task, config = _task_and_config(CONFIGS["lstm-options"])
    model = build_model(config, task)
    assert model.dropout.p == 0.25  # output_dropout, not dropout
    hidden = config.hidden
    forget = model.recurrent.bias_ih_l0[hidden: 2 * hidden] + model.recurrent.bias_hh_l0[hidden: 2 * hidden]
    assert torch.all(forget == 2.0)  # forget_bias_init (glorot zeroed the biases first)
    bound = (6 / (model.readout.in_features + model.readout.out_features)) ** 0.5
    assert float(model.readout.weight.detach().abs().max()) <= bound and torch.all(model.readout.bias == 0)
    assert model.recurrent.zoneout == 0.1 and model.recurrent.recurrent_dropout == 0.1


def test_load_run_rebuilds_a_run_trained_with_the_newer_options(tmp_path):
    options = {**CONFIGS["lstm-options"], "epochs": 1}
    out = tmp_path / "run"
    train(TrainConfig(**options), out, progress=False)
    run = load_run(out)
    assert run.config.output_dropout == 0.25 and run.model.dropout.p == 0.25
    assert not run.model.training
