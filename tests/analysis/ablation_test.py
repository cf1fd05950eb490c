"""Layer ablation: adapter gates, spans, and `analysis ablate` end to end on a tiny run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bert_adapters.model import heads, trainable
from bert_adapters.analysis import __main__ as cli
from bert_adapters.analysis import ablation, figures
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.model.heads import head_weight_map
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer
from conftest import REPO_ROOT, random_canonical_weights, random_inputs, tiny_config
from tiny_runs import TINY_RUN, write_tiny_encoder, write_tiny_rte

NUM_LAYERS = 3


def _models(seed=0):
    """A classifier with adapters (large init, so they matter) and the same base and head
    without adapters."""
    config = tiny_config(num_layers=NUM_LAYERS)
    with_adapters = BertEncoder(config, adapter_size=4, adapter_init_scale=0.5)
    plain = BertEncoder(config)
    weights = random_canonical_weights(plain, seed=seed)
    with_adapters.set_canonical_weights(weights)
    plain.set_canonical_weights(weights)
    model = heads.build_classifier_model(with_adapters, 3)
    reference = heads.build_classifier_model(plain, 3)
    for name, var in head_weight_map(model).items():
        head_weight_map(reference)[name].assign(var)
    return model, with_adapters, reference, plain


def _features(seed=0):
    inputs = random_inputs(batch_size=5, seq_length=12, seed=seed)
    return {k: np.asarray(v, np.int32) for k, v in inputs.items()}


def test_gates_are_no_weights_and_leave_counts_unchanged():
    model, encoder, _, _ = _models()
    assert not [v for v in model.weights if "gate" in v.path]
    trainable.apply_tuning(encoder, "adapters")
    report = trainable.parameter_report(model, encoder)
    counted = sum(int(np.prod(v.shape)) for v in encoder.weight_map().values())
    counted += sum(int(np.prod(v.shape)) for v in head_weight_map(model).values())
    assert report["total_params"] == counted
    assert report["trained_params"] == trainable.count_trained_params(
        encoder.config, "adapters", adapter_size=4) + 8 * 3 + 3
    assert all(layer.adapters_enabled for layer in encoder.transformer_layers)


def test_empty_span_is_the_full_model_and_all_layers_the_model_without_adapters():
    model, encoder, reference, _ = _models()
    features = _features()
    predictor = ablation.Predictor(model, batch_size=2)
    full = predictor(features)
    eager = np.asarray(model(features, training=False))
    np.testing.assert_allclose(full, eager, atol=1e-6)
    without = ablation.Predictor(reference, batch_size=2)(features)
    assert np.abs(full - without).max() > 1e-3  # The adapters matter here.
    with ablation.ablated(encoder, 1, 0):  # Empty span.
        np.testing.assert_allclose(predictor(features), full, atol=1e-6)
    with ablation.ablated(encoder, 0, NUM_LAYERS - 1):
        np.testing.assert_allclose(predictor(features), without, atol=1e-6)
    np.testing.assert_allclose(predictor(features), full, atol=1e-6)  # All back on.
    assert predictor.traces == 1


def test_a_middle_span_equals_adapters_with_zero_up_projections():
    model, encoder, _, _ = _models(seed=1)
    features = _features(seed=1)
    predictor = ablation.Predictor(model, batch_size=8)
    with ablation.ablated(encoder, 1, 1):
        ablated = predictor(features)
    # Independently: zero up-projections make layer 1's adapters the identity.
    for name, var in encoder.weight_map().items():
        if name.startswith("layer_1/") and "_adapter/up/" in name:
            var.assign(np.zeros(var.shape, "float32"))
    np.testing.assert_allclose(predictor(features), ablated, atol=1e-6)
    assert predictor.traces == 1


def test_matrix_shape_and_nulls():
    encoder = BertEncoder(tiny_config(num_layers=4), adapter_size=2)
    on = lambda: float(sum(layer.adapters_enabled for layer in encoder.transformer_layers))
    full, matrix = ablation.ablation_matrix(encoder, on)
    assert full == 4.0
    assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
    for i in range(4):
        for j in range(4):
            assert matrix[i][j] == (None if j < i else 4.0 - (j - i + 1))
    assert all(layer.adapters_enabled for layer in encoder.transformer_layers)


# === The command on a tiny trained run ===
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    config = ClassifierConfig(
        task_name="rte", data_dir=write_tiny_rte(root / "RTE", num_train=16, num_dev=12),
        encoder=write_tiny_encoder(root / "encoder", num_layers=NUM_LAYERS),
        adapter_init_scale=0.3, learning_rate=1e-2, do_train=True, do_eval=True,
        **TINY_RUN)
    run_dir = str(root / "run")
    results = trainer.run(config, run_dir)
    return {"run": run_dir, "results": results, "root": root}


def test_ablate_command_reuses_one_model(tiny_run, tmp_path, monkeypatch):
    builds = []
    build = heads.build_task_model
    monkeypatch.setattr(heads, "build_task_model",
                        lambda *a, **k: builds.append(1) or build(*a, **k))
    out = str(tmp_path / "out")
    cli.main(["ablate", "--task_dir", tiny_run["run"], "--output_dir", out])
    assert sorted(os.listdir(out)) == ["ablation.json", "ablation.png"]
    with open(os.path.join(out, "ablation.json")) as f:
        result = json.load(f)
    assert result["metric"] == "accuracy"
    assert result["full"] == pytest.approx(tiny_run["results"]["accuracy"], abs=1e-6)
    matrix = result["matrix"]
    assert len(matrix) == NUM_LAYERS and all(len(row) == NUM_LAYERS for row in matrix)
    assert all((matrix[i][j] is None) == (j < i)
               for i in range(NUM_LAYERS) for j in range(NUM_LAYERS))
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row if v is not None)
    assert (result["traces"], len(builds)) == (1, 1)
    assert (result["task"], result["split"], result["num_eval_examples"]) == ("RTE", "dev", 12)
    with Image.open(os.path.join(out, "ablation.png")) as image:
        assert image.size == figures.pixel_size(figures.ABLATION_SIZE)


def test_a_run_with_adapters_in_some_layers_is_ablated_where_it_has_them(tiny_run, tmp_path):
    run_dir = str(tmp_path / "span_run")
    config = ClassifierConfig(
        task_name="rte", data_dir=str(tiny_run["root"] / "RTE"),
        encoder=str(tiny_run["root"] / "encoder"), adapter_init_scale=0.3, learning_rate=1e-2,
        do_train=True, do_eval=True, adapter_layers="2-3", **TINY_RUN)
    results = trainer.run(config, run_dir)
    result = ablation.run_ablation(run_dir, metric="eval_loss")   # finer than accuracy
    assert result["adapter_layers"] == "2-3"
    assert result["full"] == pytest.approx(results["eval_loss"], rel=1e-5)
    matrix = result["matrix"]
    # Layer 1 has no adapters: switching it "off" changes nothing; layer 2's do matter.
    assert matrix[0][0] == result["full"] != matrix[1][1]
    assert matrix[0][1] == matrix[1][1] and matrix[0][2] == matrix[1][2]


def test_data_dir_replaces_the_recorded_one(tiny_run):
    run = ablation.load_run(tiny_run["run"], data_dir="elsewhere/RTE")
    assert run.config.data_dir == "elsewhere/RTE"
    assert (run.config.do_train, run.config.do_eval, run.config.do_predict) == (
        False, True, False)


def _fail(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_inputs_exit_2_and_write_nothing(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "out")
    err = _fail(["ablate", "--task_dir", str(tmp_path / "nowhere"), "--output_dir", out], capsys)
    assert "run_config.json not found" in err
    # A run without adapters.
    fake = tmp_path / "full_run"
    (fake / "task_artifact").mkdir(parents=True)
    with open(os.path.join(tiny_run["run"], "run_config.json")) as f:
        (fake / "run_config.json").write_text(f.read())
    (fake / "task_artifact" / "task_config.json").write_text(
        json.dumps({"format_version": 1, "tuning": "full", "adapter_size": None}))
    err = _fail(["ablate", "--task_dir", str(fake), "--output_dir", out], capsys)
    assert "task_config.json" in err and "tuning='adapters'" in err
    (fake / "run_config.json").write_text("{not json")
    err = _fail(["ablate", "--task_dir", str(fake), "--output_dir", out], capsys)
    assert "run_config.json is not valid JSON" in err
    err = _fail(["ablate", "--task_dir", tiny_run["run"], "--output_dir", out,
                 "--data_dir", str(tmp_path / "no_data")], capsys)
    assert "reading the dev data" in err and "--data_dir" in err
    err = _fail(["ablate", "--task_dir", tiny_run["run"], "--output_dir", out,
                 "--metric", "bleu"], capsys)
    assert "--metric 'bleu'" in err and "accuracy" in err
    assert not os.path.exists(out)


def test_the_module_runs_without_the_trainer_and_fails_cleanly(tmp_path):
    script = (
        "import sys\n"
        "from bert_adapters.analysis import __main__ as cli, ablation, init_scale, tradeoff\n"
        "assert not [m for m in sys.modules if m.startswith('bert_adapters.training')]\n"
        "cli.main(sys.argv[1:])\n")
    proc = subprocess.run(
        [sys.executable, "-c", script, "ablate", "--task_dir", str(tmp_path / "nowhere"),
         "--output_dir", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "analysis ablate: error:" in proc.stderr
    assert not (tmp_path / "out").exists()


def _tiny_squad_file(path, rng):
    """Two paragraphs of tiny-vocabulary words, answers cut from the context."""
    from tiny_runs import WORDS
    paragraphs = []
    for p in range(2):
        words = list(rng.choice(WORDS, size=20))
        context = " ".join(words)
        qas = []
        for q in range(3):
            start = int(rng.integers(0, 17))
            text = " ".join(words[start:start + 2])
            char_start = len(" ".join(words[:start])) + (1 if start else 0)
            qas.append({"id": f"p{p}q{q}", "question": " ".join(rng.choice(WORDS, 4)),
                        "answers": [{"text": text, "answer_start": char_start}]})
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "1.1",
                                "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return str(path)


def test_a_squad_run_is_ablated_on_f1(tmp_path):
    from bert_adapters.tasks.squad import SquadConfig
    rng = np.random.default_rng(0)
    config = SquadConfig(
        encoder=write_tiny_encoder(tmp_path / "encoder", max_sequence_length=64),
        train_file=_tiny_squad_file(tmp_path / "train.json", rng),
        predict_file=_tiny_squad_file(tmp_path / "dev.json", rng), adapter_size=2,
        adapter_init_scale=0.3, max_seq_length=32, doc_stride=8, max_query_length=6,
        train_batch_size=4, eval_batch_size=8, learning_rate=1e-2, max_train_steps=2,
        do_train=True, do_eval=True, save_checkpoints_steps=2)
    results = trainer.run(config, str(tmp_path / "run"))
    result = ablation.run_ablation(str(tmp_path / "run"))
    assert (result["metric"], result["task_kind"], result["num_eval_examples"]) == (
        "f1", "span", 6)
    assert result["full"] == pytest.approx(results["f1"], abs=1e-6)
    assert [[v is None for v in row] for row in result["matrix"]] == [[False, False],
                                                                      [True, False]]
    assert result["traces"] == 1
