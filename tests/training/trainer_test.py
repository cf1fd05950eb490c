"""The trainer end to end on a tiny encoder and generated RTE-layout data."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.tasks import glue_files
from bert_adapters.data import get_task, load_split
from bert_adapters.training import trainer
from bert_adapters.tasks.classification import ClassifierConfig as RunConfig
from checkpoint_writers import VOCAB
from conftest import REPO_ROOT, require_data
from resume import assert_same_weights, run_weights, stop_after
from tiny_runs import write_tiny_encoder, write_tiny_rte


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    encoder = write_tiny_encoder(root / "encoder", max_sequence_length=64)
    no_dropout = write_tiny_encoder(root / "encoder_nodrop", max_sequence_length=64)
    with open(os.path.join(no_dropout, "config.json")) as f:
        config = json.load(f)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(os.path.join(no_dropout, "config.json"), "w") as f:
        json.dump(config, f)
    return {"encoder": encoder, "no_dropout": no_dropout,
            "data": write_tiny_rte(root / "RTE", num_train=48, num_dev=20, num_test=12)}


def _config(tiny, **overrides):
    fields = dict(task_name="rte", data_dir=tiny["data"], encoder=tiny["encoder"],
                  adapter_size=4, adapter_init_scale=0.1, max_seq_length=32, train_batch_size=8,
                  eval_batch_size=8, learning_rate=1e-2, num_train_epochs=1.0,
                  do_train=True, save_checkpoints_steps=2, log_every_steps=2)
    fields.update(overrides)
    return RunConfig(**fields)


def test_outputs_of_a_full_run(tiny, tmp_path):
    out = str(tmp_path / "run")
    results = trainer.run(_config(tiny, do_eval=True, do_predict=True), out)
    files = set(os.listdir(out))
    assert {"run_config.json", "params.json", "eval_results.json", "eval_results.txt",
            "RTE.tsv", "test_results.tsv", "task_artifact", "checkpoints", "logs"} <= files
    assert not [f for f in files if ".tmp-" in f]
    with open(os.path.join(out, "eval_results.json")) as f:
        assert json.load(f) == pytest.approx(results)
    assert set(results) == {"accuracy", "eval_loss", "global_step", "num_eval_examples"}
    assert results["global_step"] == 48 // 8 and results["num_eval_examples"] == 20
    # BERT's estimator lines: metrics prefixed eval_, global_step, loss (the mean eval loss).
    with open(os.path.join(out, "eval_results.txt")) as f:
        lines = f.read().splitlines()
    assert lines == [f"eval_accuracy = {results['accuracy']}",
                     f"eval_loss = {results['eval_loss']}", "global_step = 6",
                     f"loss = {results['eval_loss']}"]
    # BERT's test_results.tsv: a row of class probabilities per test example, in file order.
    probabilities = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    assert probabilities.shape == (12, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with open(os.path.join(out, "RTE.tsv")) as f:
        predicted = [row.split("\t")[1] for row in f.read().splitlines()[1:]]
    assert predicted == [("entailment", "not_entailment")[i] for i in probabilities.argmax(1)]
    with open(os.path.join(out, "params.json")) as f:
        params = json.load(f)
    assert params["trained_params"] < params["total_params"]
    task = get_task("rte")
    test = load_split(task, "test", tiny["data"])
    assert glue_files.validate_submission(os.path.join(out, "RTE.tsv"), task, "test",
                                          test.indices) == 12
    with open(os.path.join(out, "run_config.json")) as f:
        record = json.load(f)
    assert record["settings"]["adapter_size"] == 4
    assert record["base_fingerprint"].startswith("sha256:")


def test_task_dir_reloads_the_artifact_and_refuses_another_base(tiny, tmp_path):
    out = str(tmp_path / "run")
    trained = trainer.run(_config(tiny, do_eval=True), out)
    again = trainer.run(_config(tiny, do_train=False, do_eval=True, task_dir=out, adapter_size=None,
                                tuning="adapters"), str(tmp_path / "eval"))
    for key in ("accuracy", "eval_loss"):
        assert again[key] == pytest.approx(trained[key], abs=1e-6)
    # The reload reports the steps the artifact was trained for, not 0.
    assert again["global_step"] == trained["global_step"] == 6
    with open(tmp_path / "eval" / "eval_results.txt") as f:
        assert "global_step = 6\n" in f.read()
    with pytest.raises(ValueError, match="holds a RTE model"):
        trainer.run(_config(tiny, task_name="WNLI", do_train=False, do_eval=True, task_dir=out),
                    str(tmp_path / "wrong_task"))
    other = write_tiny_encoder(tmp_path / "other", seed=7, max_sequence_length=64)
    with pytest.raises(ValueError, match="fingerprint"):
        trainer.run(_config(tiny, do_train=False, do_eval=True, task_dir=out, encoder=other),
                    str(tmp_path / "refused"))

    # Predicting into the training folder (as BERT's README does) keeps its record.
    with open(os.path.join(out, "run_config.json")) as f:
        record = f.read()
    trainer.run(_config(tiny, do_train=False, do_predict=True, task_dir=out, adapter_size=None),
                out)
    assert os.path.exists(os.path.join(out, "RTE.tsv"))
    with open(os.path.join(out, "run_config.json")) as f:
        assert f.read() == record

    # A task_config.json without the settings the reload needs is named.
    broken = tmp_path / "broken"
    shutil.copytree(os.path.join(out, "task_artifact"), broken)
    with open(broken / "task_config.json") as f:
        config = json.load(f)
    del config["tuning"], config["adapter_size"]
    with open(broken / "task_config.json", "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"broken.task_config\.json lacks \['tuning', "
                                         r"'adapter_size'\]"):
        trainer.run(_config(tiny, do_train=False, do_eval=True, task_dir=str(broken)),
                    str(tmp_path / "from_broken"))


def test_same_seed_same_result_and_interrupted_run_resumes_identically(tiny, tmp_path):
    # Dropout on: the resumed run must also restore the dropout RNG state.
    config = _config(tiny, num_train_epochs=2.0)   # 12 steps, checkpoints every 2
    trainer.run(config, str(tmp_path / "a"))
    trainer.run(config, str(tmp_path / "b"))
    assert_same_weights(run_weights(tmp_path / "a"), run_weights(tmp_path / "b"), rtol=0, atol=0)

    stop_after(lambda callback: trainer.run(config, str(tmp_path / "c"), step_callback=callback),
               7)
    assert not os.path.exists(tmp_path / "c" / "task_artifact")
    trainer.run(config, str(tmp_path / "c"))   # resumes from step 6
    assert_same_weights(run_weights(tmp_path / "a"), run_weights(tmp_path / "c"), rtol=1e-6, atol=1e-7)

    trainer.run(_config(tiny, num_train_epochs=2.0, seed=1), str(tmp_path / "d"))
    assert not np.allclose(run_weights(tmp_path / "a")["head/kernel"],
                           run_weights(tmp_path / "d")["head/kernel"])


def test_mirrored_on_two_cpus_matches_one_device(tiny, tmp_path):
    """Dropout on: two replicas drop out what one device drops for the whole batch
    (`ops.dropout.keep_bits`), so the step is the same up to float rounding."""
    cpus = tf.config.list_logical_devices("CPU")
    # conftest splits the CPU in two before TensorFlow starts; if that failed
    # (something initialised TensorFlow's devices first), this is a failure.
    assert len(cpus) >= 2, f"conftest could not configure two logical CPUs: {cpus}"
    config = _config(tiny, do_eval=True, max_train_steps=4)
    one = trainer.run(config, str(tmp_path / "one"),
                      strategy=tf.distribute.OneDeviceStrategy(cpus[0].name))
    two = trainer.run(config, str(tmp_path / "two"),
                      strategy=tf.distribute.MirroredStrategy([d.name for d in cpus[:2]]))
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-5)
    assert_same_weights(run_weights(tmp_path / "one"), run_weights(tmp_path / "two"),
                         rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tuning,kwargs", [("full", {}), ("top_k", dict(num_tuned_layers=1)),
                                           ("layer_norm", {})])
def test_other_tuning_modes_store_what_they_train(tiny, tmp_path, tuning, kwargs):
    out = str(tmp_path / tuning)
    trainer.run(_config(tiny, tuning=tuning, adapter_size=None, max_train_steps=2, **kwargs), out)
    names = set(run_weights(out))
    assert {"head/kernel", "head/bias"} <= names
    if tuning == "full":
        assert "embeddings/word_embeddings" in names
    elif tuning == "top_k":
        assert {n.split("/")[0] for n in names} == {"layer_1", "pooler", "head"}
    else:
        assert all("layer_norm" in n or n.startswith("head/") for n in names)


def test_changed_settings_on_the_same_output_dir_are_refused(tiny, tmp_path):
    out = str(tmp_path / "run")
    trainer.run(_config(tiny, max_train_steps=2), out)
    with pytest.raises(ValueError, match="learning_rate"):
        trainer.run(_config(tiny, max_train_steps=2, learning_rate=0.5), out)


@pytest.mark.parametrize("overrides,message", [
    (dict(task_name="nope"), "unknown task"),
    (dict(max_seq_length=65), "exceeds the encoder's 64 position"),
    (dict(do_train=False), "--task_dir"),
    (dict(tuning="top_k", adapter_size=None), "num_tuned_layers"),
    (dict(data_dir="missing_folder"), "missing_folder"),
    (dict(adapter_layers="3-3"), r"--adapter_layers=3-3: the encoder has 2 layers"),
    (dict(tuning="full", adapter_size=None, adapter_layers="1-2"),
     r"--adapter_layers places adapters: it applies to tuning='adapters' only"),
])
def test_bad_settings_fail_clearly_and_write_no_results(tiny, tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        trainer.run(_config(tiny, do_eval=True, **overrides), str(out))
    assert not (out / "eval_results.json").exists()


@pytest.mark.slow
def test_end_to_end_rte_with_the_embedded_encoder(tmp_path):
    data = require_data("glue", "RTE")
    out = str(tmp_path / "rte")
    config = RunConfig(task_name="RTE", data_dir=str(data), encoder="minilm_l6", adapter_size=8,
                       max_seq_length=64, train_batch_size=16, max_train_steps=3,
                       learning_rate=1e-3, do_train=True, do_eval=True)
    results = trainer.run(config, out)
    assert results["global_step"] == 3 and results["num_eval_examples"] == 277
    assert np.isfinite(results["eval_loss"])  # Learning: test_adapters_learn_* below.
    with open(os.path.join(out, "params.json")) as f:
        params = json.load(f)
    # 6 layers x 2 adapters x (2*8*384 + 384 + 8) + 13 LayerNorms + 2-way head.
    assert params["trained_params"] == 12 * (2 * 8 * 384 + 384 + 8) + 13 * 2 * 384 + 384 * 2 + 2


def _write_marker_task(folder, num_train, num_dev, seed=0):
    """RTE-layout data whose label is which marker word (w5 or w6) sentence1 holds.

    The marker sits at a random place among filler words (w10..w14), and
    sentence2 is filler: a model that learns nothing scores the majority
    class, 50%.
    """
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(10, 15)]
    os.makedirs(folder, exist_ok=True)
    for split, count in (("train", num_train), ("dev", num_dev)):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(count):
            words = list(rng.choice(filler, size=rng.integers(2, 5)))
            words.insert(rng.integers(0, len(words) + 1), ("w5", "w6")[i % 2])
            rows.append(f"{i}\t{' '.join(words)}\t{' '.join(rng.choice(filler, size=3))}\t"
                        f"{('entailment', 'not_entailment')[i % 2]}")
        with open(os.path.join(folder, f"{split}.tsv"), "w") as f:
            f.write("\n".join(rows) + "\n")
    return str(folder)


def test_adapters_learn_a_task_above_the_majority_class(tiny, tmp_path):
    # Adapters (and LayerNorms and the head) on the frozen random tiny base.
    # Measured over seeds 42, 0, 1, 7, 123: dev accuracy 0.95-0.975, eval loss
    # 0.18-0.40; the majority class scores 0.5, a constant prediction ln 2 = 0.69.
    data = _write_marker_task(tmp_path / "RTE", num_train=96, num_dev=40)
    results = trainer.run(_config(tiny, data_dir=data, encoder=tiny["no_dropout"],
                                  head_dropout=0.0, adapter_size=8, adapter_init_scale=0.1,
                                  optimizer="adamw", learning_rate=3e-2, train_batch_size=16,
                                  num_train_epochs=10.0, save_checkpoints_steps=100,
                                  do_eval=True), str(tmp_path / "out"))
    assert results["global_step"] == 60
    assert results["accuracy"] >= 0.75
    assert results["eval_loss"] < 0.5


def test_custom_task_from_csv_files(tiny, tmp_path):
    rng = np.random.default_rng(1)
    words = VOCAB[5:]
    labels = ["sports", "politics", "science"]

    def write(name, n, with_labels=True):
        lines = ["id,title,body,label,extra"]
        for i in range(n):
            body = " ".join(rng.choice(words, 12))
            label = labels[i % 3] if with_labels else ""
            lines.append(f'{i},"w1, w2","{body}\n{body}",{label},junk')
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    config = _config(tiny, task_name="custom", data_dir=None, train_file=write("train.csv", 24),
                     dev_file=write("dev.csv", 9), test_file=write("test.csv", 5, False),
                     text_fields=("title", "body"), label_field="label",
                     do_eval=True, do_predict=True)
    results = trainer.run(config, str(tmp_path / "out"))
    assert {"accuracy", "macro_f1"} <= set(results)
    with open(tmp_path / "out" / "test_predictions.tsv") as f:
        rows = f.read().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 6
    assert {r.split("\t")[1] for r in rows[1:]} <= set(labels)
    with open(tmp_path / "out" / "task_artifact" / "task_config.json") as f:
        assert json.load(f)["label_names"] == sorted(labels)


def test_tfds_path_without_data_dir(tiny, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        results = trainer.run(_config(tiny, data_dir=None, do_eval=True, max_train_steps=2),
                              str(tmp_path / "out"))
    assert results["num_eval_examples"] == 24


def test_offline_tfds_without_data_dir_says_how_to_pass_files(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="--data_dir"):
        trainer.run(_config(tiny, data_dir=None, tfds_data_dir=str(tmp_path / "empty")),
                    str(tmp_path / "out"))


def test_bf16_mixed_precision_trains_and_restores_the_policy(tiny, tmp_path):
    import keras

    results = trainer.run(_config(tiny, mixed_precision="bf16", do_eval=True, max_train_steps=2),
                          str(tmp_path / "out"))
    assert np.isfinite(results["eval_loss"])
    assert keras.config.dtype_policy().name == "float32"
    weights = run_weights(tmp_path / "out")
    assert all(w.dtype == np.float32 for w in weights.values())


def test_bf16_matmul_kernels_agree_and_the_choice_is_restored(tiny, tmp_path):
    from bert_adapters.ops import settings

    losses = {}
    for kernels in ("bfloat16", "float32"):
        results = trainer.run(_config(tiny, mixed_precision="bf16", bf16_matmuls=kernels,
                                      do_eval=True, max_train_steps=2),
                              str(tmp_path / kernels))
        losses[kernels] = results["eval_loss"]
        assert settings.current() == settings.Settings()
        with open(tmp_path / kernels / "run_config.json") as f:
            record = json.load(f)
        assert record["bf16_matmul_kernels"] == kernels
        assert record["op_settings"]["devices"] == "cpu"
        assert record["op_settings"]["bf16_matmul_kernels"] == kernels
    assert losses["float32"] == pytest.approx(losses["bfloat16"], rel=2e-2)
    with pytest.raises(trainer.RunError, match="--bf16_matmuls='fp8': expected one of auto"):
        trainer.run(_config(tiny, bf16_matmuls="fp8"), str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_command_line_exit_code_and_message(tiny, tmp_path):
    import subprocess
    import sys

    repo = str(REPO_ROOT)
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, os.path.join(repo, "run_classifier.py"), "--task_name=XNLI",
         f"--data_dir={tiny['data']}", f"--encoder={tiny['encoder']}", "--do_train",
         f"--output_dir={out}"], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 2
    assert "unknown task 'XNLI'" in proc.stderr
    assert not (out / "eval_results.json").exists()


def test_jit_compile_matches_the_graph_run(tiny, tmp_path):
    config = _config(tiny, encoder=tiny["no_dropout"], head_dropout=0.0, max_train_steps=3)
    trainer.run(config, str(tmp_path / "graph"))
    trainer.run(_config(tiny, encoder=tiny["no_dropout"], head_dropout=0.0, max_train_steps=3,
                        jit_compile=True), str(tmp_path / "xla"))
    assert_same_weights(run_weights(tmp_path / "graph"), run_weights(tmp_path / "xla"),
                         rtol=1e-3, atol=1e-5)


def test_fast_dropout_is_reproducible_and_differs_from_the_default_masks(tiny, tmp_path):
    # 6 steps with dropout on: fast masks train reproducibly from the seed,
    # and differently from Keras' masks (so the option reaches the layers).
    fast = _config(tiny, fast_dropout=True)
    trainer.run(fast, str(tmp_path / "fast_a"))
    trainer.run(fast, str(tmp_path / "fast_b"))
    trainer.run(_config(tiny), str(tmp_path / "default"))
    a, b = run_weights(tmp_path / "fast_a"), run_weights(tmp_path / "fast_b")
    assert_same_weights(a, b, rtol=0, atol=0)
    assert not np.allclose(a["head/kernel"], run_weights(tmp_path / "default")["head/kernel"])
    with open(tmp_path / "fast_a" / "run_config.json") as f:
        assert json.load(f)["settings"]["fast_dropout"] is True
    # Resuming with the other masks is refused like any changed training setting.
    with pytest.raises(ValueError, match="fast_dropout"):
        trainer.run(_config(tiny, fast_dropout=False), str(tmp_path / "fast_a"))


def test_adapters_in_a_span_of_layers_are_recorded_reloaded_and_measured(tiny, tmp_path):
    out = str(tmp_path / "span")
    trained = trainer.run(_config(tiny, adapter_layers="2-2", do_eval=True, max_train_steps=3,
                                  iterations_per_loop=2), out)
    with open(os.path.join(out, "task_artifact", "task_config.json")) as f:
        artifact = json.load(f)
    assert artifact["adapter_layers"] == "2-2"
    # The second layer's adapters and LayerNorms and the head; nothing below.
    assert {n.split("/")[0] for n in artifact["trained_weights"]} == {"layer_1", "head"}
    assert len([n for n in artifact["trained_weights"] if "layer_norm" in n]) == 4
    again = trainer.run(_config(tiny, do_train=False, do_eval=True, task_dir=out,
                                adapter_size=None), str(tmp_path / "eval"))
    for key in ("accuracy", "eval_loss"):
        assert again[key] == pytest.approx(trained[key], abs=1e-6)
    with open(os.path.join(out, "train_stats.json")) as f:
        stats = json.load(f)
    # Loops of 2 and 1 steps: the first (tracing) is not timed.
    assert stats["train_steps"] == 3 and stats["timed_steps"] == 1
    assert stats["examples_per_second"] == pytest.approx(8 / stats["step_seconds"])
    assert stats["peak_rss_bytes"] > 2 ** 27 and stats["peak_device_memory_bytes"] is None


def test_cls_only_top_layer_trains_as_the_full_top_layer(tiny, tmp_path):
    # Dropout on: the [CLS]-only top layer draws the full layer's masks there,
    # so it is the same training up to float rounding (and the default).
    assert RunConfig(task_name="rte").cls_only_top_layer
    results = {}
    for cls_only in (False, True):
        out = tmp_path / str(cls_only)
        results[cls_only] = trainer.run(_config(
            tiny, max_train_steps=3, do_eval=True, cls_only_top_layer=cls_only), str(out))
    assert results[True]["eval_loss"] == pytest.approx(results[False]["eval_loss"], rel=1e-4)
    assert_same_weights(run_weights(tmp_path / "True"), run_weights(tmp_path / "False"),
                        rtol=1e-3, atol=1e-5)
