"""The multi-task bank on tiny encoders and real GLUE test rows.

Tasks are trained for two steps by the trainer (the bank itself never
imports it) on a tiny encoder whose vocabulary holds the real rows' words,
so that real text gives varied outputs.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

from bert_adapters.checkpoints import artifact
from bert_adapters.bank import BankError, TaskBank
from bert_adapters.bank.__main__ import main as bank_main
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from bert_adapters.model import heads
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer
from conftest import require_data
from tiny_runs import write_tiny_encoder

NUM_ROWS = 120  # real test rows per task
MAX_SEQ_LENGTH = 48


def _read_tsv(path, num_rows):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    return lines[0], [line for line in lines[1:num_rows + 1] if line]


def _task_data(root, folder, num_train=16):
    """`train.tsv` from real dev rows, `test.tsv` the first real test rows."""
    source = require_data("glue", folder)
    target = os.path.join(root, folder)
    os.makedirs(target)
    for split, rows, name in (("dev", num_train, "train"), ("test", NUM_ROWS, "test")):
        header, lines = _read_tsv(source / f"{split}.tsv", rows)
        with open(os.path.join(target, f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join([header] + lines) + "\n")
    return target


def _test_texts(data_dir, text_a, text_b=None):
    with open(os.path.join(data_dir, "test.tsv"), encoding="utf-8") as f:
        lines = f.read().rstrip("\n").split("\n")
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    a = [row[header.index(text_a)] for row in rows]
    b = [row[header.index(text_b)] for row in rows] if text_b else None
    return a, b


def _submission(path):
    with open(path) as f:
        return [line.split("\t")[1] for line in f.read().rstrip("\n").split("\n")[1:]]


def _write_vocab(encoder_dir, data_dirs, size):
    """The tiny encoder's vocabulary: special tokens and the test rows' commonest words."""
    counts = collections.Counter()
    for data_dir in data_dirs:
        with open(os.path.join(data_dir, "test.tsv"), encoding="utf-8") as f:
            counts.update(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", f.read().lower()))
    words = [w for w, _ in counts.most_common(size - 5)]
    words += [f"unused{i}" for i in range(size - 5 - len(words))]
    with open(os.path.join(encoder_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")


def _train(root, name, data_dir, task_name, encoder, adapter_size, seed, adapter_layers=None):
    """Two training steps, then the real test rows predicted: `<root>/<name>/<TASK>.tsv`."""
    out = os.path.join(root, name)
    trainer.run(ClassifierConfig(
        task_name=task_name, data_dir=data_dir, encoder=encoder, adapter_size=adapter_size,
        adapter_layers=adapter_layers,
        adapter_init_scale=0.3, max_seq_length=MAX_SEQ_LENGTH, train_batch_size=8,
        eval_batch_size=64, learning_rate=3e-3, max_train_steps=2, seed=seed,
        do_train=True, do_predict=True, log_every_steps=1), out)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bank"))
    data = {task: _task_data(root, task) for task in ("RTE", "SST-2", "STS-B")}
    encoder = write_tiny_encoder(os.path.join(root, "encoder"), max_sequence_length=64,
                                 vocab_size=300)
    _write_vocab(encoder, data.values(), 300)
    runs = {"root": root, "encoder": encoder, "data": data,
            "rte": _train(root, "rte", data["RTE"], "rte", encoder, 2, 1),
            # Adapters in the top layer only: the bank zeroes the other's.
            "sst2": _train(root, "sst2", data["SST-2"], "sst-2", encoder, 4, 2, "2-2"),
            "stsb": _train(root, "stsb", data["STS-B"], "sts-b", encoder, 8, 3)}
    runs["bank"] = TaskBank.load(None, [runs["rte"], runs["sst2"]])
    runs["bank_dir"] = runs["bank"].export(os.path.join(root, "bank_ab"))
    return runs


@pytest.fixture(scope="module")
def bank(runs):
    return runs["bank"]


@pytest.fixture(scope="module")
def mixed(runs):
    """The RTE and SST-2 test rows interleaved: (tasks, texts_a, texts_b, rows of each task)."""
    rte_a, rte_b = _test_texts(runs["data"]["RTE"], "sentence1", "sentence2")
    sst_a, _ = _test_texts(runs["data"]["SST-2"], "sentence")
    order = np.random.default_rng(0).permutation(len(rte_a) + len(sst_a))
    items = [("rte", a, b) for a, b in zip(rte_a, rte_b)] + [("SST-2", a, "") for a in sst_a]
    items = [items[i] for i in order]
    return ([t for t, _, _ in items], [a for _, a, _ in items], [b for _, _, b in items],
            {"rte": (rte_a, rte_b), "sst2": (sst_a, None)})


def _own_scores(run_dir, tokenizer, texts_a, texts_b):
    model, _, config = artifact.load_task_model(run_dir)
    assert heads.is_cls_only(model)   # a classifier's top layer at [CLS] only, as in training
    logits = model(tokenizer(texts_a, texts_b), training=False).numpy()
    return logits if config["label_names"] is None else tf.nn.softmax(logits).numpy()


def test_mixed_batches_equal_each_tasks_own_predictions(runs, bank, mixed):
    # SST-2's adapters and trained LayerNorms are in layer 2 only; RTE's everywhere.
    sst2 = next(t for t in bank.tasks if t.name == "SST-2")
    assert sst2.config["adapter_layers"] == "2-2"
    assert not any(n.startswith(("layer_0/", "embeddings/")) for n in sst2.weights)
    tasks, texts_a, texts_b, _ = mixed
    labels, scores = bank.predict_mixed(tasks, texts_a, texts_b, return_scores=True)
    for key, file_name, text_a, text_b in (("rte", "RTE.tsv", "sentence1", "sentence2"),
                                           ("sst2", "SST-2.tsv", "sentence", None)):
        rows = [i for i, t in enumerate(tasks) if t.lower().replace("-", "") == key]
        own_labels = _submission(os.path.join(runs[key], file_name))
        a, b = _test_texts(runs["data"][file_name[:-4]], text_a, text_b)
        own_scores = _own_scores(runs[key], bank.tokenizer, a, b)
        # The rows were shuffled: find each one's place in its own task's file.
        position = {(x, y): i for i, (x, y) in enumerate(zip(a, b or [""] * len(a)))}
        places = [position[(texts_a[i], texts_b[i])] for i in rows]
        assert [labels[i] for i in rows] == [own_labels[p] for p in places]
        np.testing.assert_allclose(np.stack([scores[i] for i in rows]), own_scores[places],
                                   atol=1e-5)
    # Two training steps leave each tiny task on one side of its boundary,
    # but the scores differ from row to row.
    assert np.std([s[0] for s in scores]) > 1e-4


def test_predict_one_task_names_are_case_insensitive(bank, mixed):
    sst_a, _ = mixed[3]["sst2"]
    assert bank.predict("sst2", sst_a[:5]) == bank.predict("SST-2", sst_a[:5])
    labels, scores = bank.predict("Sst_2", sst_a[:5], return_scores=True)
    assert scores.shape == (5, 2) and set(labels) <= {"0", "1"}
    with pytest.raises(BankError, match="unknown task 'mnli': this bank serves RTE, SST-2"):
        bank.predict("mnli", ["x"])
    with pytest.raises(BankError, match='example 0: field "text_b" is missing: task RTE'):
        bank.predict("rte", ["a premise"])


_RELOAD = textwrap.dedent("""\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)
    request = json.load(open(sys.argv[2]))
    model = tf.saved_model.load(sys.argv[1])
    out = model.signatures["serving_default"](
        task=tf.constant(request["task"]), text_a=tf.constant(request["text_a"]),
        text_b=tf.constant(request["text_b"]))
    sst = model.signatures["SST-2"](text_a=tf.constant(request["sst2"]))
    assert "bert_adapters" not in sys.modules
    json.dump({"prediction": [p.decode() for p in out["prediction"].numpy()],
               "scores": out["scores"].numpy().tolist(),
               "sst2": [p.decode() for p in sst["prediction"].numpy()],
               "signatures": sorted(model.signatures)}, sys.stdout)
""")


def test_exported_savedmodel_agrees_in_a_fresh_process(runs, bank, mixed, tmp_path):
    tasks, texts_a, texts_b, by_task = mixed
    request = {"task": tasks[:64], "text_a": texts_a[:64], "text_b": texts_b[:64],
               "sst2": by_task["sst2"][0][:16]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "reload.py").write_text(_RELOAD)
    # Run from tmp_path so that the repository is not on the path.
    done = subprocess.run([sys.executable, "reload.py", runs["bank_dir"], "request.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout)
    labels, scores = bank.predict_mixed(request["task"], request["text_a"], request["text_b"],
                                        return_scores=True)
    assert served["prediction"] == labels
    assert served["sst2"] == bank.predict("sst2", request["sst2"])
    assert served["signatures"] == ["RTE", "SST-2", "serving_default"]
    for row, expected in zip(served["scores"], scores):
        np.testing.assert_allclose(row[:len(expected)], expected, atol=1e-6)
        assert not any(row[len(expected):])  # A task's padding scores are 0.


def test_savedmodel_holds_one_copy_of_the_base(runs, bank):
    checkpoint = os.path.join(runs["bank_dir"], "variables", "variables")
    shapes = [tuple(shape) for name, shape in tf.train.list_variables(checkpoint)
              if "VARIABLE_VALUE" in name]
    base = bank.encoder.base_weight_map()
    word_shape = tuple(base["embeddings/word_embeddings"].shape)
    assert shapes.count(word_shape) == 1
    base_size = sum(int(np.prod(v.shape)) for v in base.values())
    task_size = sum(v.size for t in bank.tasks for v in t.weights.values())
    # The base once, the tasks' (padded) weights, nothing else of note.
    assert sum(int(np.prod(s)) for s in shapes) < base_size + 3 * task_size


@pytest.fixture(scope="module")
def bank_abc(runs, tmp_path_factory):
    """A copy of the RTE + SST-2 bank with STS-B added by `bank add`.

    STS-B is a regression task with larger adapters (8 vs 2 and 4): the
    stacked weights grow in every dimension but the task axis too.
    """
    bank_dir = str(tmp_path_factory.mktemp("abc") / "bank")
    shutil.copytree(runs["bank_dir"], bank_dir)
    assert bank_main(["add", "--bank", bank_dir, "--task_dir", runs["stsb"]]) == 0
    return bank_dir


def test_adding_a_task_leaves_the_others_bit_for_bit(runs, bank, bank_abc, mixed):
    tasks, texts_a, texts_b, _ = mixed
    labels, scores = bank.predict_mixed(tasks, texts_a, texts_b, return_scores=True)
    assert not [f for f in os.listdir(os.path.dirname(bank_abc)) if f != "bank"]
    for task in ("rte", "sst2"):
        before = os.path.join(runs["bank_dir"], "tasks", task, "weights.safetensors")
        after = os.path.join(bank_abc, "tasks", task, "weights.safetensors")
        assert open(before, "rb").read() == open(after, "rb").read()
    grown = TaskBank.from_directory(bank_abc)
    assert grown.task_names == ["RTE", "SST-2", "STS-B"]
    labels_after, scores_after = grown.predict_mixed(tasks, texts_a, texts_b,
                                                     return_scores=True)
    assert labels_after == labels
    assert all(np.array_equal(x, y) for x, y in zip(scores_after, scores))
    # The new task answers as its own run did (STS-B.tsv: scores clipped, 3 decimals).
    stsb_a, stsb_b = _test_texts(runs["data"]["STS-B"], "sentence1", "sentence2")
    own = _submission(os.path.join(runs["stsb"], "STS-B.tsv"))
    assert grown.predict("stsb", stsb_a, stsb_b) == [float(v) for v in own]
    assert len(set(own)) > 1


def test_refuses_an_artifact_of_another_base(runs, tmp_path):
    other = write_tiny_encoder(tmp_path / "other", seed=9, max_sequence_length=64,
                               vocab_size=300)
    shutil.copy(os.path.join(runs["encoder"], "vocab.txt"), os.path.join(other, "vocab.txt"))
    with pytest.raises(BankError) as err:
        TaskBank.load(other, [runs["rte"]])
    message = str(err.value)
    theirs = artifact.read_task_config(runs["rte"])["base_fingerprint"]
    ours = base_fingerprint(artifact.load_base_encoder({"encoder_source": other}))
    assert os.path.join(runs["rte"], "task_artifact", "task_config.json") in message
    assert theirs in message and ours in message and theirs != ours


def _fake_artifact(source, target, **changes):
    shutil.copytree(os.path.join(source, "task_artifact"), target)
    path = os.path.join(target, "task_config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w") as f:
        json.dump(config, f)
    return str(target)


def test_refuses_tuning_that_changes_the_base_and_unknown_kinds(runs, tmp_path):
    full = _fake_artifact(runs["rte"], tmp_path / "full", tuning="full")
    with pytest.raises(BankError, match=r"tuning='full', which changes the base encoder's own"):
        TaskBank.load(None, [full])
    tagging = _fake_artifact(runs["rte"], tmp_path / "tagging", kind="tagging")
    with pytest.raises(BankError, match="kind 'tagging': the bank serves 'classification' and "
                                        "'span' tasks"):
        TaskBank.load(None, [tagging])
    base_weight = _fake_artifact(runs["rte"], tmp_path / "pooler")
    path = os.path.join(base_weight, "weights.safetensors")
    with open(path, "rb") as f:
        weights = safetensors.numpy.load(f.read())
    weights["pooler/bias"] = np.zeros(8, np.float32)
    with open(path, "wb") as f:
        f.write(safetensors.numpy.save(weights))
    with pytest.raises(BankError, match="holds 'pooler/bias', a weight of the shared base"):
        TaskBank.load(None, [base_weight])
    with pytest.raises(BankError, match="already has a task named 'RTE'"):
        TaskBank.load(None, [runs["rte"], runs["rte"]])
    renamed = TaskBank.load(None, [("rte_copy", runs["rte"]), runs["rte"]])
    assert renamed.task_names == ["rte_copy", "RTE"]


def test_jsonl_predict_answers_good_lines_and_reports_bad_ones(runs, bank, bank_abc, mixed,
                                                               tmp_path, capsys):
    tasks, texts_a, texts_b, _ = mixed
    stsb_a, stsb_b = _test_texts(runs["data"]["STS-B"], "sentence1", "sentence2")
    good = [{"task": t, "text_a": a, **({"text_b": b} if b else {}), "index": i}
            for i, (t, a, b) in enumerate(zip(tasks[:6], texts_a[:6], texts_b[:6]))]
    good += [{"task": "sts-b", "text_a": stsb_a[i], "text_b": stsb_b[i], "index": 6 + i,
              "source": "STS-B test"} for i in range(3)]
    lines = [json.dumps(r) for r in good[:3]] + [
        '{"task": "mnli", "text_a": "x", "text_b": "y"}',
        "not json",
        '{"task": "RTE", "text_a": "a premise"}',
        '{"task": "SST-2", "text_b": "no text_a"}',
        "[1, 2]"] + [json.dumps(r, ensure_ascii=False) for r in good[3:]]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = str(tmp_path / "predictions.jsonl")
    code = bank_main(["predict", "--bank", bank_abc, "--input", str(tmp_path / "requests.jsonl"),
                      "--output", output, "--batch_size", "4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for number, text in ((4, "field \"task\": unknown task 'mnli'; this bank serves RTE, SST-2, "
                             "STS-B"),
                         (5, "not valid JSON"), (6, 'field "text_b" is missing: task RTE'),
                         (7, 'field "text_a" must be a non-empty string'),
                         (8, "expected a JSON object")):
        assert f"requests.jsonl:{number}: {text}" in err
    with open(output, encoding="utf-8") as f:
        answers = [json.loads(line) for line in f]
    assert len(answers) == len(lines)
    assert "error" in answers[3] and answers[3]["task"] == "mnli"
    answered = [a for a in answers if "prediction" in a]
    assert [{k: v for k, v in a.items() if k not in ("prediction", "scores")}
            for a in answered] == good  # Every input field copied through, in order.
    # RTE and SST-2 as the bank without STS-B answered them; STS-B as its own run.
    labels, scores = bank.predict_mixed(tasks[:6], texts_a[:6], texts_b[:6], return_scores=True)
    assert [a["prediction"] for a in answered[:6]] == labels
    for a, s in zip(answered, scores):
        np.testing.assert_allclose(a["scores"], s, atol=1e-6)
    own = _submission(os.path.join(runs["stsb"], "STS-B.tsv"))
    assert [a["prediction"] for a in answered[6:]] == [float(v) for v in own[:3]]
    assert all(len(a["scores"]) == 1 for a in answered[6:])


def test_cli_errors_exit_2_and_write_nothing(runs, tmp_path, capsys):
    assert bank_main(["export", "--task_dirs", runs["rte"], "--output_dir",
                      runs["bank_dir"]]) == 2
    assert "already exists" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere")
    out = str(tmp_path / "bank")
    assert bank_main(["export", "--task_dirs", missing, "--output_dir", out]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nowhere" in err and "task_config.json" in err
    assert bank_main(["add", "--bank", missing, "--task_dir", runs["stsb"]]) == 2
    assert "bank.json not found" in capsys.readouterr().err
    assert bank_main(["predict", "--bank", runs["bank_dir"], "--input", missing,
                      "--output", out]) == 2
    assert "--input" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
