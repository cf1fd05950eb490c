"""The README commands of google-research/bert and adapter-bert, run unchanged.

Each command below is the one the repository's README gives (flags and
values as printed there); only the paths are substituted: `$BERT_BASE_DIR`
and `$BERT_LARGE_DIR` are a 2-layer, hidden-8 TF1 checkpoint written in
BERT's layout (`bert_config.json`, `bert_model.ckpt.*`, `vocab.txt`) in a
folder named like Google's (`uncased_L-...`), `$GLUE_DIR/MRPC` a small MRPC in
the GLUE layout, `$SQUAD_DIR` a small SQuAD v1.1, and `/tmp/` a test folder.
`python` is this interpreter. Commands that need a Cloud TPU are checked up
to the settings they produce (no TPU here); SQuAD v2.0 commands must be
refused in one line.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bert_adapters.model.bert_encoder import BertEncoder
from checkpoint_writers import VOCAB, write_tf1
from conftest import REPO_ROOT, random_canonical_weights, tiny_config

# Lines TensorFlow prints natively (absl C++ logging) and Python tracebacks.
NATIVE_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")

# google-research/bert README: "Sentence (and sentence-pair) classification tasks".
BERT_MRPC = """
python run_classifier.py \\
  --task_name=MRPC \\
  --do_train=true \\
  --do_eval=true \\
  --data_dir=$GLUE_DIR/MRPC \\
  --vocab_file=$BERT_BASE_DIR/vocab.txt \\
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \\
  --max_seq_length=128 \\
  --train_batch_size=32 \\
  --learning_rate=2e-5 \\
  --num_train_epochs=3.0 \\
  --output_dir=/tmp/mrpc_output/
"""

# google-research/bert README: "Prediction from classifier".
BERT_MRPC_PREDICT = """
python run_classifier.py \\
  --task_name=MRPC \\
  --do_predict=true \\
  --data_dir=$GLUE_DIR/MRPC \\
  --vocab_file=$BERT_BASE_DIR/vocab.txt \\
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
  --init_checkpoint=$TRAINED_CLASSIFIER \\
  --max_seq_length=128 \\
  --output_dir=/tmp/mrpc_output/
"""

# google-research/adapter-bert README: "Tuning BERT with Adapters".
ADAPTER_BERT_MRPC = """
python run_classifier.py \\
  --task_name=MRPC \\
  --do_train=true \\
  --do_eval=true \\
  --data_dir=$GLUE_DIR/MRPC \\
  --vocab_file=$BERT_BASE_DIR/vocab.txt \\
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \\
  --max_seq_length=128 \\
  --train_batch_size=32 \\
  --learning_rate=3e-4 \\
  --num_train_epochs=5.0 \\
  --output_dir=/tmp/adapter_bert_mrpc/
"""

# google-research/bert README: SQuAD 1.1 with BERT-Base on a GPU.
BERT_SQUAD_BASE = """
python run_squad.py \\
  --vocab_file=$BERT_BASE_DIR/vocab.txt \\
  --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
  --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \\
  --do_train=True \\
  --train_file=$SQUAD_DIR/train-v1.1.json \\
  --do_predict=True \\
  --predict_file=$SQUAD_DIR/dev-v1.1.json \\
  --train_batch_size=12 \\
  --learning_rate=3e-5 \\
  --num_train_epochs=2.0 \\
  --max_seq_length=384 \\
  --doc_stride=128 \\
  --output_dir=/tmp/squad_base/
"""

# google-research/bert README: SQuAD 1.1 with BERT-Large on a Cloud TPU.
BERT_SQUAD_LARGE_TPU = """
python run_squad.py \\
  --vocab_file=$BERT_LARGE_DIR/vocab.txt \\
  --bert_config_file=$BERT_LARGE_DIR/bert_config.json \\
  --init_checkpoint=$BERT_LARGE_DIR/bert_model.ckpt \\
  --do_train=True \\
  --train_file=$SQUAD_DIR/train-v1.1.json \\
  --do_predict=True \\
  --predict_file=$SQUAD_DIR/dev-v1.1.json \\
  --train_batch_size=24 \\
  --learning_rate=3e-5 \\
  --num_train_epochs=2.0 \\
  --max_seq_length=384 \\
  --doc_stride=128 \\
  --output_dir=gs://some_bucket/squad_large/ \\
  --use_tpu=True \\
  --tpu_name=$TPU_NAME
"""

# google-research/bert README: SQuAD 2.0 on a Cloud TPU, then with a tuned threshold.
BERT_SQUAD_V2 = """
python run_squad.py \\
  --vocab_file=$BERT_LARGE_DIR/vocab.txt \\
  --bert_config_file=$BERT_LARGE_DIR/bert_config.json \\
  --init_checkpoint=$BERT_LARGE_DIR/bert_model.ckpt \\
  --do_train=True \\
  --train_file=$SQUAD_DIR/train-v2.0.json \\
  --do_predict=True \\
  --predict_file=$SQUAD_DIR/dev-v2.0.json \\
  --train_batch_size=24 \\
  --learning_rate=3e-5 \\
  --num_train_epochs=2.0 \\
  --max_seq_length=384 \\
  --doc_stride=128 \\
  --output_dir=/tmp/squad_large/ \\
  --use_tpu=True \\
  --tpu_name=$TPU_NAME \\
  --version_2_with_negative=True
"""
BERT_SQUAD_V2_THRESHOLD = BERT_SQUAD_V2.replace(
    "--version_2_with_negative=True", "--version_2_with_negative=True \\\n"
    "  --null_score_diff_threshold=$THRESH").replace("--do_train=True", "--do_train=False")

WORDS = VOCAB[5:]


# === Substituted paths ===
def _write_mrpc(folder, num_train=64, num_dev=16, num_test=8, seed=0):
    """MRPC's GLUE TSV layout: label first; train/dev with the MSR header's BOM."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder)

    def sentence():
        return " ".join(rng.choice(WORDS, size=rng.integers(3, 9)))

    for split, count in (("train", num_train), ("dev", num_dev), ("test", num_test)):
        if split == "test":
            rows = ["index\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            rows += [f"{i}\t{1000 + i}\t{2000 + i}\t{sentence()}\t{sentence()}"
                     for i in range(count)]
        else:
            rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            rows += [f"{i % 2}\t{1000 + i}\t{2000 + i}\t{sentence()}\t{sentence()}"
                     for i in range(count)]
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")


def _write_squad(path, title, num_paragraphs, seed):
    """SQuAD v1.1 JSON: contexts of tiny-vocabulary words, 3 questions each."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for p in range(num_paragraphs):
        words = list(rng.choice(WORDS, size=40))
        context = " ".join(words)
        qas = []
        for q in range(3):
            start, length = int(rng.integers(0, 38)), int(rng.integers(1, 3))
            answer = " ".join(words[start:start + length])
            offset = len(" ".join(words[:start])) + (1 if start else 0)
            assert context[offset:offset + len(answer)] == answer
            qas.append({"id": f"{title}-{p}-{q}", "question": " ".join(rng.choice(WORDS, 4)),
                        "answers": [{"text": answer, "answer_start": offset}]})
        paragraphs.append({"context": context, "qas": qas})
    with open(path, "w") as f:
        json.dump({"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}, f)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    config = tiny_config(max_sequence_length=512)  # BERT's 512 positions: 384 fits.
    bert = write_tf1(str(root / "bert" / "uncased_L-2_H-8_A-2"), config,
                     random_canonical_weights(BertEncoder(config), seed=3))
    _write_mrpc(root / "glue" / "MRPC")
    os.makedirs(root / "squad")
    _write_squad(root / "squad" / "train-v1.1.json", "train", 4, seed=1)
    _write_squad(root / "squad" / "dev-v1.1.json", "dev", 2, seed=2)
    os.makedirs(root / "tmp")
    # A user's environment: no TF_CPP_MIN_LOG_LEVEL (the test process sets one).
    user_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**user_env, "BERT_BASE_DIR": bert, "BERT_LARGE_DIR": bert,
            "GLUE_DIR": str(root / "glue"), "SQUAD_DIR": str(root / "squad"),
            "TPU_NAME": "my-tpu", "THRESH": "-1.5", "TMP": str(root / "tmp"),
            "TRAINED_CLASSIFIER": str(root / "tmp" / "mrpc_output")}


def _run(command, env, **extra_env):
    """Runs a README command with `python` = this interpreter and /tmp/ = a test folder."""
    command = command.strip().replace("python ", f"{sys.executable} ", 1)
    command = command.replace("=/tmp/", "=$TMP/")
    done = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, env={**env, **extra_env},
                          capture_output=True, text=True, timeout=900)
    return done


def _assert_clean(done):
    """Exit 0; no native TensorFlow line, no traceback, no ANSI escape."""
    assert done.returncode == 0, done.stderr[-3000:]
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream and "\x1b[" not in stream, stream[-3000:]
        assert not [line for line in stream.splitlines() if NATIVE_LINE.match(line)], stream


def _eval_lines(output_dir):
    with open(os.path.join(output_dir, "eval_results.txt")) as f:
        return dict(line.split(" = ") for line in f.read().splitlines())


def _settings(output_dir):
    with open(os.path.join(output_dir, "run_config.json")) as f:
        return json.load(f)["settings"]


# === The commands ===
@pytest.mark.slow  # A training job each (about 30-60 s on 2 shared cores).
def test_bert_mrpc_then_prediction_from_the_trained_classifier(env):
    done = _run(BERT_MRPC, env)
    _assert_clean(done)
    out = os.path.join(env["TMP"], "mrpc_output")
    lines = _eval_lines(out)
    # BERT's estimator lines; global_step = int(64 examples / 32 * 3 epochs).
    assert set(lines) == {"eval_accuracy", "eval_f1", "eval_loss", "global_step", "loss"}
    assert lines["global_step"] == "6" and lines["loss"] == lines["eval_loss"]
    assert "***** Eval results *****" in done.stderr
    settings = _settings(out)
    assert (settings["learning_rate"], settings["num_train_epochs"], settings["max_seq_length"],
            settings["train_batch_size"]) == (2e-5, 3.0, 128, 32)

    # --init_checkpoint=$TRAINED_CLASSIFIER (the run above), same output dir.
    done = _run(BERT_MRPC_PREDICT, env)
    _assert_clean(done)
    probabilities = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t", ndmin=2)
    assert probabilities.shape == (8, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with open(os.path.join(out, "MRPC.tsv")) as f:
        rows = f.read().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 9
    assert [r.split("\t")[1] for r in rows[1:]] == [str(i) for i in probabilities.argmax(1)]


@pytest.mark.slow
def test_adapter_bert_mrpc_trains_adapters_of_size_64_as_that_code(env):
    done = _run(ADAPTER_BERT_MRPC, env)
    _assert_clean(done)
    out = os.path.join(env["TMP"], "adapter_bert_mrpc")
    assert _eval_lines(out)["global_step"] == "10"  # int(64 / 32 * 5.0)
    settings = _settings(out)
    assert settings["tuning"] == "adapters" and settings["adapter_size"] == 64
    assert (settings["learning_rate"], settings["num_train_epochs"], settings["train_batch_size"],
            settings["max_seq_length"], settings["warmup_proportion"],
            settings["optimizer"]) == (3e-4, 5.0, 32, 128, 0.1, "bert_adam")
    with open(os.path.join(out, "task_artifact", "task_config.json")) as f:
        trained = json.load(f)["trained_weights"]
    # adapter-bert trains the adapters, every LayerNorm and the head; nothing else.
    assert trained and all("adapter" in n or "layer_norm" in n or n.startswith("head/")
                           for n in trained)
    assert {n.split("/")[0] for n in trained if "adapter" in n} == {"layer_0", "layer_1"}
    assert "layer_0/attention_adapter/down/kernel" in trained


@pytest.mark.slow
def test_bert_squad_base(env):
    done = _run(BERT_SQUAD_BASE, env)
    _assert_clean(done)
    out = os.path.join(env["TMP"], "squad_base")
    with open(os.path.join(out, "predictions.json")) as f:
        predictions = json.load(f)
    assert sorted(predictions) == sorted(f"dev-{p}-{q}" for p in range(2) for q in range(3))
    with open(os.path.join(out, "eval_results.json")) as f:
        assert {"exact_match", "f1"} <= set(json.load(f))
    assert {"eval_exact_match", "eval_f1", "global_step"} <= set(_eval_lines(out))
    assert _settings(out)["max_seq_length"] == 384


def test_bert_squad_large_on_a_tpu_maps_onto_a_tpu_strategy(env):
    # No TPU here: the command's flags are parsed as run_squad.py parses them
    # and turned into its settings, without starting the job.
    words = BERT_SQUAD_LARGE_TPU.replace("\\\n", " ").split()
    assert words[:2] == ["python", "run_squad.py"]
    argv = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], word) for word in words[2:]]
    script = (
        "import sys, json\n"
        "sys.argv = ['run_squad.py'] + json.loads(sys.argv[1])\n"
        "import run_squad\n"
        "from bert_adapters.cli import flags as ba_flags\n"
        "from bert_adapters.tasks.squad import SquadConfig\n"
        "run_squad.FLAGS(sys.argv)\n"
        "ba_flags.apply_bert_flags(run_squad.FLAGS)\n"
        "print(json.dumps(ba_flags.run_config_from_flags(run_squad.FLAGS, SquadConfig)"
        ".to_json()))\n")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(argv)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    settings = json.loads(done.stdout.strip().splitlines()[-1])
    assert settings["distribution_strategy"] == "tpu" and settings["tpu"] == "my-tpu"
    assert settings["train_batch_size"] == 24 and settings["do_train"] and settings["do_predict"]


@pytest.mark.parametrize("command", [BERT_SQUAD_V2, BERT_SQUAD_V2_THRESHOLD],
                         ids=["train", "threshold"])
def test_bert_squad_v2_is_refused_in_one_line(env, command):
    done = _run(command, env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "run_squad.py: error: --version_2_with_negative: SQuAD v2.0 is not supported; this "
        "project reproduces the paper's SQuAD v1.1 (pass v1.1 files, or leave the flag out)"]
    assert not os.path.exists(os.path.join(env["TMP"], "squad_large"))
