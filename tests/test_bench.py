"""The speed benchmark suite: FLOP counts, medians, interleaved timing, peak memory and
the smoke grid end to end through ``gatedrnn bench``."""

import json

import pytest
import torch

from gatedrnn import backends, bench
from gatedrnn.cli import main


def test_flops_match_hand_computed_values():
    point = bench.GridPoint("training", T=100, B=64, I=128, H=256)
    # 2 * g * H * (I + H) * B * T = 2 * g * 256 * 384 * 64 * 100 = g * 1_258_291_200
    assert bench.forward_flops(bench.CELLS["janet"].gates, point) == 2_516_582_400
    assert bench.forward_flops(bench.CELLS["lstm"].gates, point) == 5_033_164_800
    assert bench.mode_flops(2, point, bench.FORWARD) == 2_516_582_400
    assert bench.mode_flops(2, point, bench.TRAIN) == 7_549_747_200  # 3x the forward
    # GRU at (784, 100, 1, 128): 2 * 3 * 128 * 129 * 100 * 784
    assert bench.forward_flops(bench.CELLS["gru"].gates, bench.GridPoint("training", 784, 100, 1, 128)) \
        == 7_767_244_800
    # RNN at the smoke point (10, 4, 8, 16): 2 * 1 * 16 * 24 * 4 * 10
    assert bench.forward_flops(bench.CELLS["rnn"].gates, bench.GRIDS["smoke"][0]) == 30_720
    assert {name: (c.gates, c.baseline_gates) for name, c in bench.CELLS.items()} == {
        "janet": (2, 4), "lstm": (4, 4), "gru": (3, 3), "rnn": (1, 1), "mgu": (2, 4)}


def test_median():
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    assert bench.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert bench.median([7.0]) == 7.0
    with pytest.raises(ValueError):
        bench.median([])


def test_contenders_are_timed_interleaved_and_resets_are_not_timed():
    clock = [0.0]
    calls = []

    def contender(name, duration):
        def run():
            calls.append(name)
            clock[0] += duration

        def reset():
            calls.append("reset " + name)
            clock[0] += 100.0  # must not count

        return bench.Contender(name, run, reset)

    contenders = [contender("a", 1.0), contender("b", 3.0), contender("c", 0.5)]
    times = bench.time_interleaved(contenders, repeats=3, warmup=2, timer=lambda: clock[0])
    runs = [c for c in calls if not c.startswith("reset")]
    assert runs == ["a", "b", "c"] * 5  # 2 warm-up rounds + 3 timed rounds, alternating
    assert calls[:2] == ["reset a", "a"]  # reset right before each run
    assert times == {"a": [1.0] * 3, "b": [3.0] * 3, "c": [0.5] * 3}


def test_time_interleaved_rejects_duplicate_names():
    with pytest.raises(ValueError, match="unique"):
        bench.time_interleaved([bench.Contender("a", int), bench.Contender("a", int)], 1)


def test_peak_memory_is_the_most_held_at_once():
    def run():
        a = torch.empty(2**18)  # 1 MiB of float32
        b = torch.empty(2**19)  # 2 MiB, while a is alive: 3 MiB held
        del a
        c = torch.empty(2**17)  # 0.5 MiB after a is freed: 2.5 MiB
        return b, c

    assert bench.peak_memory_bytes(bench.Contender("x", run)) == 3 * 2**20


def test_select_points_by_index_and_name():
    training = bench.GRIDS["training"]
    assert bench.select_points("training") == training
    assert bench.select_points("training", "1,T100-B64-I128-H256") == [training[1], training[0]]
    assert bench.select_points("all", "5") == [bench.GRIDS["inference"][0]]
    assert bench.GRIDS["inference"][0].modes == (bench.FORWARD,)
    assert training[0].modes == (bench.FORWARD, bench.TRAIN)
    with pytest.raises(ValueError, match="T100-B64-I128-H256"):
        bench.select_points("training", "9")


def test_cli_rejects_an_unknown_backend(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--backend", "auto,nonexistent"])
    assert "nonexistent" in capsys.readouterr().err


def test_smoke_grid_end_to_end_through_the_cli(tmp_path, capsys):
    path = tmp_path / "out" / "smoke.json"
    assert main(["bench", "--grid", "smoke", "--repeats", "2", "--warmup", "1",
                 "--json", str(path)]) == 0
    result = json.loads(path.read_text())

    records = result["records"]
    keys = [(r["point"], r["cell"], r["mode"]) for r in records]
    expected = {("T10-B4-I8-H16", cell, mode) for cell in ("janet", "lstm", "gru", "rnn", "mgu")
                for mode in ("forward", "forward+backward")}
    assert sorted(keys) == sorted(expected)  # one record per (point, cell, mode)

    baselines = {"janet": "torch.nn.LSTM", "lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU",
                 "rnn": "torch.nn.RNN", "mgu": "torch.nn.LSTM"}
    for r in records:
        assert r["baseline"] == baselines[r["cell"]]
        fast = "native" if backends.native.is_available() else "fused"
        assert r["backend"] == "auto"
        assert r["backend_resolved"] == ("torch" if r["cell"] == "lstm" else fast)
        assert len(r["gatedrnn_times_ms"]) == len(r["torch_times_ms"]) == 2
        assert all(t > 0 for t in r["gatedrnn_times_ms"] + r["torch_times_ms"])
        assert r["gatedrnn_ms"] == pytest.approx(bench.median(r["gatedrnn_times_ms"]))
        assert r["torch_ms"] == pytest.approx(bench.median(r["torch_times_ms"]))
        assert r["gatedrnn_ms"] > 0 and r["torch_ms"] > 0
        assert r["ratio"] == pytest.approx(r["gatedrnn_ms"] / r["torch_ms"], rel=1e-12)
        assert r["gatedrnn_us_per_step"] == pytest.approx(r["gatedrnn_ms"] * 1e3 / 10)
        gates = bench.CELLS[r["cell"]].gates
        assert r["flops"] == 2 * gates * 16 * (8 + 16) * 4 * 10 * (3 if r["mode"] == "forward+backward" else 1)
        assert r["gatedrnn_gflops"] == pytest.approx(r["flops"] / (r["gatedrnn_ms"] / 1e3) / 1e9)
        assert r["gatedrnn_peak_mib"] > 0 and r["torch_peak_mib"] > 0

    # training allocates more than inference: saved tensors and gradients
    by_key = {(r["cell"], r["mode"]): r for r in records}
    for cell in ("janet", "lstm", "gru", "rnn"):
        assert by_key[cell, "forward+backward"]["gatedrnn_peak_mib"] > by_key[cell, "forward"]["gatedrnn_peak_mib"]

    machine = result["machine"]
    assert machine["torch"] == torch.__version__ and machine["threads"] >= 1
    assert machine["cpu"] and machine["date"]
    assert result["settings"]["repeats"] == 2

    table = capsys.readouterr().out
    header, rule, *rows = table.strip().splitlines()
    assert "ratio" in header and "peak MiB" in header
    assert len(rows) == len(records)
