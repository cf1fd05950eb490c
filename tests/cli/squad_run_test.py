"""SQuAD through the one trainer: run_squad.py, resume, TFDS, sweeps, bad input."""

import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from bert_adapters.tasks import squad_metric
from bert_adapters.data.squad_split import split_articles
from bert_adapters.sweep import runner
from bert_adapters.tasks.squad import SquadConfig
from bert_adapters.training import trainer
from conftest import REPO_ROOT, require_data
from bert_adapters.tasks.classification import ClassifierConfig
from tiny_runs import write_hparams, write_tiny_encoder, write_tiny_rte, write_tiny_squad
from resume import assert_same_weights, interrupt_and_resume, run_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_squad")
    return {"encoder": write_tiny_encoder(root / "encoder", max_sequence_length=64),
            "train": write_tiny_squad(root / "train.json"),
            "dev": write_tiny_squad(root / "dev.json", num_articles=1, seed=1)}


def _config(tiny, **overrides):
    fields = dict(encoder=tiny["encoder"], train_file=tiny["train"], predict_file=tiny["dev"],
                  adapter_size=4, adapter_init_scale=0.1, max_seq_length=32, doc_stride=8,
                  max_query_length=6, train_batch_size=4, eval_batch_size=8,
                  learning_rate=1e-2, num_train_epochs=1.0, do_train=True,
                  save_checkpoints_steps=2, log_every_steps=2)
    fields.update(overrides)
    return SquadConfig(**fields)


def _gold(path):
    with open(path) as f:
        data = json.load(f)["data"]
    return {q["id"]: [a["text"] for a in q["answers"]]
            for art in data for p in art["paragraphs"] for q in p["qas"]}


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """One tiny run that trains, evaluates and predicts: (output dir, results)."""
    out = str(tmp_path_factory.mktemp("trained") / "run")
    return out, trainer.run(_config(tiny, do_predict=True, do_eval=True), out)


def test_outputs_metrics_and_artifact(tiny, trained, tmp_path):
    out, results = trained
    files = set(os.listdir(out))
    assert {"run_config.json", "params.json", "eval_results.json", "eval_results.txt",
            "predictions.json", "nbest_predictions.json", "task_artifact"} <= files
    with open(os.path.join(out, "predictions.json")) as f:
        predictions = json.load(f)
    with open(os.path.join(out, "nbest_predictions.json")) as f:
        nbest = json.load(f)
    gold = _gold(tiny["dev"])
    assert set(predictions) == set(gold) == set(nbest)
    for qid, text in predictions.items():
        assert nbest[qid][0]["text"] == text
    # eval_results.json is the official metric over the written predictions.
    expected = squad_metric.evaluate(gold, predictions)
    assert results["exact_match"] == pytest.approx(expected["exact_match"])
    assert results["f1"] == pytest.approx(expected["f1"])
    assert results["num_questions"] == len(gold) == results["num_eval_examples"]
    with open(os.path.join(out, "run_config.json")) as f:
        record = json.load(f)
    assert record["task_kind"] == "span"
    assert record["train_questions"] == 24 and record["train_unaligned_answers"] == 0
    with open(os.path.join(out, "task_artifact", "task_config.json")) as f:
        artifact = json.load(f)
    assert artifact["kind"] == "span" and artifact["doc_stride"] == 8
    assert run_weights(out)["head/kernel"].shape == (8, 2)

    # The artifact reloads for prediction alone, with the same answers.
    again = trainer.run(_config(tiny, do_train=False, do_predict=True, task_dir=out,
                                adapter_size=None), str(tmp_path / "again"))
    with open(os.path.join(tmp_path, "again", "predictions.json")) as f:
        assert json.load(f) == predictions
    assert again["f1"] == pytest.approx(results["f1"])


def test_classification_artifact_is_refused(tiny, tmp_path):
    rte = str(tmp_path / "rte")
    trainer.run(ClassifierConfig(task_name="RTE", data_dir=write_tiny_rte(tmp_path / "RTE"),
                                 encoder=tiny["encoder"], adapter_size=4, max_seq_length=32,
                                 train_batch_size=4, max_train_steps=1, do_train=True), rte)
    with pytest.raises(ValueError, match=r"holds a classification model for RTE, not a SQuAD"):
        trainer.run(_config(tiny, do_train=False, do_predict=True, task_dir=rte),
                    str(tmp_path / "squad"))


def test_resume_equals_uninterrupted(tiny, tmp_path):
    config = _config(tiny, num_train_epochs=2.0)
    trainer.run(config, str(tmp_path / "whole"))

    interrupt_and_resume(
        lambda callback: trainer.run(config, str(tmp_path / "cut"), step_callback=callback), 4)
    assert_same_weights(run_weights(tmp_path / "whole"), run_weights(tmp_path / "cut"),
                        rtol=1e-5, atol=1e-6)


def test_tfds_squad_when_no_files(tiny, trained, tmp_path):
    """No --train_file/--predict_file: TFDS squad/v1.1 (mocked: random texts)."""
    with tfds.testing.mock_data(num_examples=6):
        results = trainer.run(_config(tiny, train_file=None, predict_file=None, do_train=False,
                                      do_predict=True, task_dir=trained[0]),
                              str(tmp_path / "tfds"))
    with open(os.path.join(tmp_path, "tfds", "predictions.json")) as f:
        predictions = json.load(f)
    assert len(predictions) == 6 == results["num_questions"]


def test_sweep_through_run_squad(tiny, tmp_path):
    settings = {"encoder": tiny["encoder"], "adapter_size": 4, "max_seq_length": 32,
                "doc_stride": 8, "max_query_length": 6, "train_batch_size": 4,
                "eval_batch_size": 8, "max_train_steps": 2, "save_checkpoints_steps": 1,
                "log_every_steps": 1}
    path = write_hparams(tmp_path / "squad_sweep.py", settings,
                         "grid(learning_rate=[1e-3, 1e-2])", runner="run_squad.py")
    best = runner.run_sweep(path, str(tmp_path / "sweep"), runner="run_squad.py",
                            explicit={"train_file": tiny["train"], "predict_file": tiny["dev"]})
    with open(tmp_path / "sweep" / "results.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["trial_id"] for r in records] == ["lr=0.001", "lr=0.01"]
    scores = {r["trial_id"]: r["metrics"]["f1"] for r in records}
    assert best["metric"] == "f1" and best["score"] == max(scores.values())
    assert set(best["predictions"]) == {"predictions.json", "nbest_predictions.json"}


def test_bad_train_file_exits_2(tiny, tmp_path):
    """One line naming the file, exit 2 (the reader's messages: squad_data_test.py)."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_squad.py"), f"--encoder={tiny['encoder']}",
         f"--train_file={bad}", "--do_train", f"--output_dir={tmp_path / 'out'}",
         "--max_seq_length=32", "--doc_stride=8", "--max_query_length=6"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert re.search(r"run_squad\.py: error: .*bad\.json.*line 1", proc.stderr)


def test_squad_v2_train_file_stops_in_one_line(tiny, tmp_path):
    """As --version_2_with_negative: one line naming the file, exit 2, nothing trained."""
    with open(tiny["train"]) as f:
        dataset = json.load(f)
    dataset["data"][0]["paragraphs"][0]["qas"][0].update(is_impossible=True, answers=[])
    v2 = tmp_path / "train-v2.0.json"
    v2.write_text(json.dumps(dataset))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_squad.py"), f"--encoder={tiny['encoder']}",
         f"--train_file={v2}", "--do_train", f"--output_dir={tmp_path / 'out'}",
         "--max_seq_length=32", "--doc_stride=8", "--max_query_length=6"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "run_squad.py: error:" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(v2) in lines[0] and "SQuAD v2.0 is not supported" in lines[0]
    assert not os.path.exists(tmp_path / "out" / "task_artifact")


@pytest.mark.slow
def test_embedded_encoder_trains_on_some_articles_and_predicts_others(tmp_path):
    """minilm_l6, full fine-tuning: a few dev articles to train, another to predict."""
    with open(require_data("squad", "v1.1", "dev-v1.1.json")) as f:
        dataset = json.load(f)
    train, dev = split_articles(dataset, train_articles=47)
    train["data"] = [{**a, "paragraphs": a["paragraphs"][:4]} for a in train["data"][:2]]
    dev["data"] = [{**a, "paragraphs": a["paragraphs"][:2]} for a in dev["data"]]
    paths = {}
    for name, part in (("train", train), ("dev", dev)):
        paths[name] = str(tmp_path / f"{name}.json")
        with open(paths[name], "w") as f:
            json.dump(part, f)
    out = str(tmp_path / "run")
    results = trainer.run(SquadConfig(
        encoder="minilm_l6", tuning="full", train_file=paths["train"],
        predict_file=paths["dev"], max_seq_length=128, doc_stride=64, train_batch_size=8,
        learning_rate=1e-4, optimizer="adamw", max_train_steps=12, do_train=True,
        do_predict=True), out)
    gold = _gold(paths["dev"])
    with open(os.path.join(out, "predictions.json")) as f:
        predictions = json.load(f)
    assert set(predictions) == set(gold)
    assert results["num_questions"] == len(gold)
    assert results["f1"] == pytest.approx(squad_metric.evaluate(gold, predictions)["f1"])
    # Every answer is a piece of its own context, never invented text.
    contexts = {q["id"]: p["context"] for a in dev["data"] for p in a["paragraphs"]
                for q in p["qas"]}
    assert all(text in contexts[qid] for qid, text in predictions.items())


@pytest.mark.parametrize("tuning, kwargs, trained_params", [
    ("top_k", {"num_tuned_layers": 1}, None),
    ("layer_norm", {}, (2 * 2 + 1) * 2 * 8 + 8 * 2 + 2),
])
def test_every_tuning_mode_trains_the_span_head(tiny, tmp_path, tuning, kwargs, trained_params):
    out = str(tmp_path / tuning)
    trainer.run(_config(tiny, tuning=tuning, adapter_size=None, max_train_steps=1, **kwargs),
                out)
    with open(os.path.join(out, "task_artifact", "task_config.json")) as f:
        artifact = json.load(f)
    assert artifact["tuning"] == tuning and "head/kernel" in artifact["trained_weights"]
    if trained_params is not None:  # 2L+1 LayerNorms of width 8, and the 8x2 head.
        assert artifact["trained_params"] == trained_params


def test_adapters_in_a_span_of_layers_reload_with_the_same_answers(tiny, tmp_path):
    out = str(tmp_path / "span")
    trained = trainer.run(_config(tiny, adapter_layers="2-2", max_train_steps=2, do_eval=True),
                          out)
    with open(os.path.join(out, "task_artifact", "task_config.json")) as f:
        artifact = json.load(f)
    assert artifact["adapter_layers"] == "2-2"
    assert {n.split("/")[0] for n in artifact["trained_weights"]} == {"layer_1", "head"}
    again = trainer.run(_config(tiny, do_train=False, do_eval=True, task_dir=out,
                                adapter_size=None), str(tmp_path / "again"))
    assert again["f1"] == pytest.approx(trained["f1"])
    assert again["exact_match"] == pytest.approx(trained["exact_match"])
