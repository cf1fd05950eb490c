"""`analysis tradeoff`, `init_scale` and `adapter_layers` on small synthetic sweep results."""

import csv
import json
import math
import os

import pytest
from PIL import Image

from bert_adapters.analysis import __main__ as cli
from bert_adapters.analysis import figures

BASE = {"encoder": "minilm_l6", "tuning": "adapters", "adapter_size": 64,
        "num_tuned_layers": None, "adapter_init_scale": 0.01, "learning_rate": 3e-4, "seed": 0}


def _trial(hparams, score, params, metric="accuracy"):
    return {"hparams": hparams, "metrics": {metric: score, "eval_loss": 0.5},
            "trained_params": params}


def write_sweep(directory, task, trials, base=None, metric="accuracy"):
    """A sweep directory as the runner writes it: sweep.json and results.jsonl."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "sweep.json"), "w") as f:
        json.dump({"task": task, "metric": metric, "base_settings": {**BASE, **(base or {})}}, f)
    with open(os.path.join(directory, "results.jsonl"), "w") as f:
        for i, trial in enumerate(trials):
            f.write(json.dumps({"trial_id": f"t{i}", "wall_seconds": 1.0, **trial}) + "\n")
    return str(directory)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _png_size(path):
    with Image.open(path) as image:
        image.load()
        return image.size


# === Trade-off ===
def _rte_sweeps(root, full_score=0.68, shift=0.0):
    """Adapters m=2 (two lrs x two seeds), m=8, top-k 1 and 2, LayerNorm; full apart."""
    s = shift
    methods = write_sweep(root / "methods", "RTE", [
        _trial({"adapter_size": 2, "learning_rate": 1e-3, "seed": 0}, 0.60 + s, 1000),
        _trial({"adapter_size": 2, "learning_rate": 1e-3, "seed": 1}, 0.64 + s, 1000),
        _trial({"adapter_size": 2, "learning_rate": 1e-4, "seed": 0}, 0.70 + s, 1000),
        _trial({"adapter_size": 2, "learning_rate": 1e-4, "seed": 1}, 0.50 + s, 1000),
        _trial({"adapter_size": 8, "learning_rate": 1e-3}, 0.66 + s, 4000),
        _trial({"tuning": "top_k", "adapter_size": None, "num_tuned_layers": 1}, 0.55 + s, 50000),
        _trial({"tuning": "top_k", "adapter_size": None, "num_tuned_layers": 2}, 0.58 + s,
               100000),
        _trial({"tuning": "layer_norm", "adapter_size": None}, 0.53 + s, 500),
    ])
    full = write_sweep(root / "full", "RTE", [
        _trial({"learning_rate": 3e-5}, full_score - 0.1, 200000),
        _trial({"learning_rate": 1e-4}, full_score, 200000),
    ], base={"tuning": "full", "adapter_size": None})
    return [methods, full]


def test_tradeoff_points_by_hand(tmp_path):
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", *_rte_sweeps(tmp_path), "--output_dir", str(out)])
    assert sorted(os.listdir(out)) == ["tradeoff.csv", "tradeoff.md", "tradeoff.png"]
    rows = read_csv(out / "tradeoff.csv")
    got = {(r["method"], r["variant"]): r for r in rows}
    assert list(got) == [("adapters", "2"), ("adapters", "8"), ("top_k", "1"), ("top_k", "2"),
                         ("layer_norm", ""), ("full", "")]
    # m=2: lr 1e-3 has the better mean over seeds (0.62 > 0.60); sem = |0.64-0.60|/2.
    m2 = got[("adapters", "2")]
    assert float(m2["mean"]) == pytest.approx(0.62)
    assert float(m2["sem"]) == pytest.approx(0.02)
    assert (m2["n_seeds"], m2["trained_params"], m2["trials"]) == ("2", "1000", "t0;t1")
    expected = {("adapters", "2"): -0.06, ("adapters", "8"): -0.02, ("top_k", "1"): -0.13,
                ("top_k", "2"): -0.10, ("layer_norm", ""): -0.15, ("full", ""): 0.0}
    for key, delta in expected.items():
        assert float(got[key]["delta_vs_full"]) == pytest.approx(delta), key
    assert float(got[("full", "")]["mean"]) == pytest.approx(0.68)
    assert got[("top_k", "2")]["trained_params"] == "100000"
    assert _png_size(out / "tradeoff.png") == figures.pixel_size(figures.TRADEOFF_SIZE)


def test_tradeoff_first_seed_selection_and_table(tmp_path):
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", *_rte_sweeps(tmp_path), "--output_dir", str(out),
              "--select", "first_seed"])
    got = {(r["method"], r["variant"]): r for r in read_csv(out / "tradeoff.csv")}
    # m=2: seed 0 scored best at lr 1e-4 (0.70 > 0.60): that rate, over both its seeds.
    m2 = got[("adapters", "2")]
    assert (m2["trials"], float(m2["mean"])) == ("t2;t3", pytest.approx(0.60))
    assert float(m2["std"]) == pytest.approx(math.sqrt(0.02))
    table = (out / "tradeoff.md").read_text().splitlines()
    assert table[0] == "| method | trained params | RTE (accuracy) | average |"
    assert table[2] == "| adapters, m=2 | 1,000 | 60.0 ± 14.1 (n=2) | 60.0 |"
    assert table[-1] == "| full fine-tuning | 200,000 | 68.0 ± 0.0 (n=1) | 68.0 |"
    with pytest.raises(SystemExit):
        cli.main(["tradeoff", "--runs_dir", *_rte_sweeps(tmp_path), "--output_dir", str(out),
                  "--select", "best"])


def test_tradeoff_keeps_the_methods_named(tmp_path, capsys):
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", *_rte_sweeps(tmp_path), "--output_dir", str(out),
              "--methods", "adapters:8, full,top_k"])
    rows = read_csv(out / "tradeoff.csv")
    assert [(r["method"], r["variant"]) for r in rows] == [
        ("adapters", "8"), ("top_k", "1"), ("top_k", "2"), ("full", "")]
    assert float(rows[0]["delta_vs_full"]) == pytest.approx(-0.02)
    for methods, message in (("adapters:8,bitfit", "'bitfit': expected one of adapters, "),
                             ("full:3", "'full:3': full takes no variant"),
                             ("top_k:0", "'top_k:0': top_k takes a positive integer k"),
                             ("adapters:64", "--methods=adapters:64: no trial of these")):
        err = _fail(["tradeoff", "--runs_dir", *_rte_sweeps(tmp_path), "--output_dir",
                     str(tmp_path / "bad"), "--methods", methods], capsys)
        assert message in err, (methods, err)
    assert not (tmp_path / "bad").exists()


def test_a_diverged_trial_counts_as_not_finite(tmp_path):
    # results.jsonl writes a NaN metric (a run that diverged) as null: that rate loses.
    sweep = write_sweep(tmp_path / "sweep", "STS-B", [
        _trial({"learning_rate": 1e-3, "seed": 0}, None, 1000, metric="pearson"),
        _trial({"learning_rate": 3e-4, "seed": 0}, 0.80, 1000, metric="pearson"),
    ], metric="pearson")
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", sweep, "--output_dir", str(out)])
    (row,) = read_csv(out / "tradeoff.csv")
    assert (row["trials"], float(row["mean"])) == ("t1", pytest.approx(0.80))
    # A metric that is missing altogether is still an error naming the line.
    broken = write_sweep(tmp_path / "broken", "STS-B", [
        {"hparams": {}, "metrics": {"eval_loss": 1.0}, "trained_params": 1}], metric="pearson")
    with pytest.raises(SystemExit):
        cli.main(["tradeoff", "--runs_dir", broken, "--output_dir", str(tmp_path / "o2")])


def test_tradeoff_without_full_run_has_no_deltas(tmp_path):
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", _rte_sweeps(tmp_path)[0], "--output_dir", str(out)])
    rows = read_csv(out / "tradeoff.csv")
    assert all(r["delta_vs_full"] == "" for r in rows)
    assert _png_size(out / "tradeoff.png") == figures.pixel_size(figures.TRADEOFF_SIZE)


def test_tradeoff_bands_over_tasks_by_hand(tmp_path):
    dirs = []
    # Three tasks; the full run's score varies, so the deltas differ by task.
    for task, full, shift in (("RTE", 0.68, 0.0), ("MRPC", 0.70, 0.0), ("CoLA", 0.70, 0.04)):
        sweeps = _rte_sweeps(tmp_path / task, full_score=full, shift=shift)
        for path in sweeps:  # Name the task in sweep.json.
            with open(os.path.join(path, "sweep.json")) as f:
                sweep = json.load(f)
            sweep["task"] = task
            with open(os.path.join(path, "sweep.json"), "w") as f:
                json.dump(sweep, f)
        dirs += sweeps
    out = tmp_path / "out"
    cli.main(["tradeoff", "--runs_dir", *dirs, "--output_dir", str(out)])
    bands = {(b["method"], b["variant"]): b for b in read_csv(out / "tradeoff_bands.csv")}
    # m=8 deltas: RTE 0.66-0.68, MRPC 0.66-0.70, CoLA 0.70-0.70 -> sorted -0.04, -0.02, 0.
    # numpy's linear percentiles: p20 = -0.04 + 0.4 * 0.02, p50 = -0.02, p80 = -0.02 + 0.6 * 0.02.
    m8 = bands[("adapters", "8")]
    assert m8["value"] == "delta_vs_full" and m8["n_tasks"] == "3"
    assert float(m8["p20"]) == pytest.approx(-0.032)
    assert float(m8["p50"]) == pytest.approx(-0.02)
    assert float(m8["p80"]) == pytest.approx(-0.008)
    assert float(m8["trained_params"]) == 4000
    assert float(bands[("full", "")]["p50"]) == 0.0
    assert len(read_csv(out / "tradeoff.csv")) == 18
    assert _png_size(out / "tradeoff.png") == figures.pixel_size(figures.TRADEOFF_SIZE)


# === Init scale ===
def test_init_scale_points_by_hand(tmp_path):
    rte = write_sweep(tmp_path / "rte", "RTE", [
        _trial({"adapter_init_scale": 1e-3, "seed": 0}, 0.60, 10),
        _trial({"adapter_init_scale": 1e-3, "seed": 1}, 0.70, 10),
        _trial({"adapter_init_scale": 1e-1, "seed": 0}, 0.50, 10),
        _trial({"adapter_init_scale": 1e-1, "seed": 1}, 0.52, 10),
        _trial({"adapter_init_scale": 1e-1, "seed": 2}, 0.57, 10),
    ])
    cola = write_sweep(tmp_path / "cola", "CoLA", [
        _trial({"adapter_init_scale": 1.0}, 0.1, 10, metric="matthews_corrcoef"),
        _trial({"adapter_init_scale": 1e-7}, 0.4, 10, metric="matthews_corrcoef"),
    ], metric="matthews_corrcoef")
    output = tmp_path / "plots" / "init_scale.png"
    cli.main(["init_scale", "--runs_dir", rte, cola, "--output", str(output)])
    rows = read_csv(tmp_path / "plots" / "init_scale.csv")
    keys = [(r["task"], float(r["adapter_init_scale"])) for r in rows]
    assert keys == [("RTE", 1e-3), ("RTE", 1e-1), ("CoLA", 1e-7), ("CoLA", 1.0)]
    first, second = rows[0], rows[1]
    assert (float(first["mean"]), float(first["min"]), float(first["max"])) == pytest.approx(
        (0.65, 0.60, 0.70))
    assert float(first["std"]) == pytest.approx(math.sqrt(0.005))
    assert float(second["mean"]) == pytest.approx(0.53)
    assert float(second["std"]) == pytest.approx(math.sqrt(0.0013))
    assert second["n_seeds"] == "3" and second["metric"] == "accuracy"
    assert rows[3]["metric"] == "matthews_corrcoef" and float(rows[3]["std"]) == 0.0
    assert _png_size(output) == figures.pixel_size(figures.INIT_SCALE_SIZE)


# === Adapters in a span of layers ===
def _write_trial_file(sweep_dir, trial_id, name, content):
    folder = os.path.join(sweep_dir, "trials", trial_id)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        json.dump(content, f)


def test_adapter_layers_points_by_hand(tmp_path):
    sweep = write_sweep(tmp_path / "mrpc", "MRPC", [
        _trial({"seed": 0}, 0.80, 100),                                       # t0: every layer
        _trial({"seed": 1}, 0.84, 100),                                       # t1
        _trial({"adapter_layers": "3-6", "seed": 0}, 0.78, 60),               # t2
        _trial({"adapter_layers": "3-6", "seed": 1}, 0.74, 60),               # t3
        _trial({"adapter_layers": "6-6", "seed": 0}, 0.70, 20),               # t4
        _trial({"adapter_layers": "6-6", "seed": 0, "learning_rate": 1e-3}, 0.72, 20),  # t5
    ])
    for trial_id in ("t0", "t1"):   # Every layer: the encoder's count, from the run's record.
        _write_trial_file(sweep, trial_id, "run_config.json",
                          {"encoder_config": {"num_layers": 6}})
    step = {"t0": 0.40, "t1": 0.44, "t2": 0.30, "t3": 0.34, "t5": 0.10}   # t4 recorded none
    for trial_id, seconds in step.items():
        _write_trial_file(sweep, trial_id, "train_stats.json", {
            "step_seconds": seconds, "examples_per_second": 32 / seconds,
            "peak_rss_bytes": int(seconds * 10 * 2 ** 30)})
    out = tmp_path / "figure"
    cli.main(["adapter_layers", "--runs_dir", sweep, "--output_dir", str(out)])
    assert sorted(os.listdir(out)) == ["adapter_layers.csv", "adapter_layers.png"]
    rows = read_csv(out / "adapter_layers.csv")
    assert [(r["adapter_layers"], r["lowest_layer"], r["trials"]) for r in rows] == [
        ("1-6", "1", "t0;t1"), ("3-6", "3", "t2;t3"), ("6-6", "6", "t5")]
    every, top4, top1 = rows
    assert float(every["mean"]) == pytest.approx(0.82)
    assert float(every["std"]) == pytest.approx(math.sqrt(0.0008))
    # The fastest seed and the smallest peak: other processes only ever add.
    assert float(every["step_seconds"]) == pytest.approx(0.40)
    assert float(every["examples_per_second"]) == pytest.approx(80)
    assert float(every["peak_rss_gb"]) == pytest.approx(4.0)
    assert float(top4["mean"]) == pytest.approx(0.76) and top4["n_seeds"] == "2"
    # 6-6: the better learning rate (t5, 0.72) is shown, with its own step time.
    assert float(top1["mean"]) == pytest.approx(0.72)
    assert float(top1["step_seconds"]) == pytest.approx(0.10)
    assert _png_size(out / "adapter_layers.png") == figures.pixel_size(
        figures.ADAPTER_LAYERS_SIZE)


def test_adapter_layers_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    bad = write_sweep(tmp_path / "bad", "MRPC", [_trial({"adapter_layers": "5-2"}, 0.7, 10)])
    err = _fail(["adapter_layers", "--runs_dir", bad, "--output_dir", str(out)], capsys)
    assert "results.jsonl line 1: trial t0: --adapter_layers=5-2: the first layer 5" in err
    full = write_sweep(tmp_path / "full", "MRPC", [_trial({}, 0.7, 10)],
                       base={"tuning": "full", "adapter_size": None})
    err = _fail(["adapter_layers", "--runs_dir", full, "--output_dir", str(out)], capsys)
    assert "tuning='full'" in err and "adapter runs only" in err
    every = write_sweep(tmp_path / "every", "MRPC", [_trial({}, 0.7, 10)])
    err = _fail(["adapter_layers", "--runs_dir", every, "--output_dir", str(out)], capsys)
    assert "trials/t0/run_config.json not found" in err
    assert not out.exists()


# === Bad input ===
def _fail(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_sweeps_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    err = _fail(["tradeoff", "--runs_dir", str(tmp_path / "none"), "--output_dir", str(out)],
                capsys)
    assert "sweep.json not found" in err
    broken = write_sweep(tmp_path / "broken", "RTE", [_trial({"adapter_size": 2}, 0.6, 10)])
    with open(os.path.join(broken, "results.jsonl"), "a") as f:
        f.write('{"trial_id": "t1", "hparams": {}, "metrics": {"accuracy": 0.5}}\n')
    err = _fail(["tradeoff", "--runs_dir", broken, "--output_dir", str(out)], capsys)
    assert "results.jsonl line 2: field `trained_params`" in err
    with open(os.path.join(broken, "results.jsonl"), "a") as f:
        f.write("{oops\n")
    err = _fail(["init_scale", "--runs_dir", broken, "--output", str(out / "a.png")], capsys)
    assert "line 2" in err
    top_k = write_sweep(tmp_path / "top_k", "RTE", [
        _trial({"tuning": "top_k", "adapter_size": None, "num_tuned_layers": 1}, 0.6, 10)])
    err = _fail(["init_scale", "--runs_dir", top_k, "--output", str(out / "a.png")], capsys)
    assert "tuning='top_k'" in err and "adapter runs only" in err
    err = _fail(["init_scale", "--runs_dir", top_k, "--output", str(out / "a.svg")], capsys)
    assert "expected a .png" in err
    err = _fail(["tradeoff", "--runs_dir", top_k, "--output_dir", str(out), "--metric", "f1"],
                capsys)
    assert "metrics have no number `f1`" in err
    no_size = write_sweep(tmp_path / "no_size", "RTE", [
        _trial({"tuning": "top_k", "adapter_size": None}, 0.6, 10)])
    err = _fail(["tradeoff", "--runs_dir", no_size, "--output_dir", str(out)], capsys)
    assert "num_tuned_layers" in err
    assert not out.exists()
