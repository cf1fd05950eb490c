"""Span (SQuAD) tasks in the multi-task bank, on a tiny encoder.

A span task and an RTE task are trained for a few steps by the trainer (the
bank itself never imports it); the bank, in Python and as a SavedModel
loaded without this package, must answer the span task's questions exactly
as its own `run_squad.py --do_predict` did, alone or in batches mixing
classification rows and span windows, and answer bad rows with an error
without failing their batch.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bert_adapters import checkpoints
from bert_adapters.bank import BankError, TaskBank
from bert_adapters.checkpoints import artifact
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.bank.__main__ import main as bank_main
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.tasks.squad import SquadConfig
from bert_adapters.training import trainer
from tiny_runs import write_tiny_encoder, write_tiny_rte, write_tiny_squad

MAX_SEQ_LENGTH = 32


def _questions(path):
    """[(id, question, context)] of a SQuAD v1.1 file, in file order."""
    with open(path) as f:
        data = json.load(f)["data"]
    return [(q["id"], q["question"], p["context"])
            for article in data for p in article["paragraphs"] for q in p["qas"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank_span")
    encoder = write_tiny_encoder(root / "encoder", max_sequence_length=64)
    train, dev = write_tiny_squad(root / "train.json"), write_tiny_squad(root / "dev.json", seed=1)
    squad = str(root / "squad")
    trainer.run(SquadConfig(
        encoder=encoder, train_file=train, predict_file=dev, adapter_size=4,
        adapter_init_scale=0.3, max_seq_length=MAX_SEQ_LENGTH, doc_stride=8, max_query_length=6,
        n_best_size=5, max_answer_length=4, train_batch_size=8, eval_batch_size=16,
        learning_rate=1e-2, max_train_steps=3, seed=1, do_train=True, do_predict=True,
        log_every_steps=1), squad)
    rte = str(root / "rte")
    trainer.run(ClassifierConfig(
        task_name="rte", data_dir=write_tiny_rte(root / "RTE"), encoder=encoder,
        adapter_size=2, adapter_init_scale=0.3, max_seq_length=MAX_SEQ_LENGTH,
        train_batch_size=8, eval_batch_size=16, learning_rate=3e-3, max_train_steps=2,
        seed=2, do_train=True, log_every_steps=1), rte)
    with open(os.path.join(squad, "predictions.json")) as f:
        predictions = json.load(f)
    with open(os.path.join(squad, "nbest_predictions.json")) as f:
        nbest = json.load(f)
    return {"root": root, "squad": squad, "rte": rte, "dev": _questions(dev),
            "predictions": predictions, "nbest": nbest, "rte_rows": _rte_rows(root / "RTE"),
            "rte_labels": _own_labels(rte, _rte_rows(root / "RTE"))}


def _own_labels(run_dir, rows):
    """RTE's labels of `rows` by its own Keras task model (not the bank)."""
    model, _, config = artifact.load_task_model(run_dir)
    vocab_file, lower_case = checkpoints.locate_vocab(config["encoder_source"])
    tokenizer = BertTokenizer(vocab_file, lower_case=lower_case, max_seq_length=MAX_SEQ_LENGTH)
    logits = model(tokenizer(*zip(*rows)), training=False).numpy()
    return [config["label_names"][i] for i in logits.argmax(axis=1)]


def _rte_rows(folder):
    with open(os.path.join(folder, "test.tsv")) as f:
        return [line.split("\t")[1:3] for line in f.read().rstrip("\n").split("\n")[1:]]


def _expected_scores(runs, ids):
    """The n-best probability of each answer; 0 where the answer is "" (no span qualified)."""
    return [runs["nbest"][i][0]["probability"] if runs["predictions"][i] else 0.0 for i in ids]


@pytest.fixture(scope="module")
def bank(runs):
    """The RTE + span bank in Python, its forward passes recorded while its graph is traced."""
    bank = TaskBank.load(None, [runs["rte"], runs["squad"]])
    outputs, bank.passes = bank.model.outputs, []

    def spy(inputs, task_ids):
        bank.passes.append(task_ids)
        return outputs(inputs, task_ids)

    bank.model.outputs = spy
    return bank


def test_span_answers_equal_the_tasks_own_predictions(runs, bank):
    ids, questions, contexts = zip(*runs["dev"])
    assert bank.task("squad-v1.1").is_span
    # The tiny contexts (20-40 pieces) need several 32-token windows.
    answers, scores = bank.predict("SQuAD-v1.1", questions, contexts, batch_size=7,
                                   return_scores=True)
    assert answers == [runs["predictions"][i] for i in ids]
    np.testing.assert_allclose(scores[:, 0], _expected_scores(runs, ids), atol=1e-5)
    assert len(set(answers)) > 3 and scores.shape == (len(ids), 1)


def test_mixed_batch_of_classification_rows_and_span_windows(runs, bank):
    dev, rte = runs["dev"][:6], runs["rte_rows"][:6]
    tasks, texts_a, texts_b = [], [], []
    for (_, question, context), (premise, hypothesis) in zip(dev, rte):
        tasks += ["squad-v1.1", "RTE"]
        texts_a += [question, premise]
        texts_b += [context, hypothesis]
    # 5 examples a call: RTE rows and span windows together.
    labels, scores = bank.predict_mixed(tasks, texts_a, texts_b, batch_size=5,
                                        return_scores=True)
    # The graph, traced once for every call of every test, has one forward pass.
    assert len(bank.passes) == 1
    rte_labels, rte_scores = bank.predict("rte", texts_a[1::2], texts_b[1::2],
                                          return_scores=True)
    span_labels, span_scores = bank.predict("squad_v1.1", texts_a[0::2], texts_b[0::2],
                                            return_scores=True)
    assert labels[1::2] == rte_labels and labels[0::2] == span_labels
    assert labels[0::2] == [runs["predictions"][i] for i, _, _ in dev]
    assert rte_labels == runs["rte_labels"][:6]
    assert bank.max_seq_length == MAX_SEQ_LENGTH  # The classification task's length.
    np.testing.assert_allclose(np.stack(scores[1::2]), rte_scores, atol=1e-5)
    np.testing.assert_allclose(np.stack(scores[0::2]), span_scores, atol=1e-5)
    # The span task (adapters of size 4, RTE's 2) leaves RTE's outputs bit for bit.
    alone_labels, alone_scores = TaskBank.load(None, [runs["rte"]]).predict(
        "rte", texts_a[1::2], texts_b[1::2], return_scores=True)
    assert alone_labels == rte_labels and np.array_equal(alone_scores, rte_scores)
    with pytest.raises(BankError, match=r'example 0: field "text_b" \(the context\) must be a '
                                        'non-empty string'):
        bank.predict("squad-v1.1", ["a question"])
    with pytest.raises(BankError, match=r"example 1: the context \(text_b\) has no word pieces"):
        bank.predict("squad-v1.1", ["w1", "w2"], [dev[0][2], "\u200b\x07"])


# Rows the SavedModel must answer each on its own: (task, text_a, text_b,
# expected error or None).
_BAD_ROWS = [
    ("squad", "", "w1 w2 w3", "the question (text_a) is empty: task squad answers"),
    ("squad", "w1 w2", " \t ", "the context (text_b) is empty: task squad answers"),
    ("squad", "w1 w2", "\u200b\x07", "the context (text_b) has no word pieces"),
    ("rte", "w1 w2", "", "text_b is empty: task RTE takes a pair of texts (text_a and text_b)"),
    ("mnli", "w1", "w2", "unknown task 'mnli'; this bank serves RTE, squad"),
    ("squad", "w1", b"w2 \xff\xfe", "text_b is not valid UTF-8"),
]

_RELOAD = textwrap.dedent("""\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)
    request = json.load(open(sys.argv[2]))
    model = tf.saved_model.load(sys.argv[1])
    assert "bert_adapters" not in sys.modules

    def strings(values):  # Hex on the wire: raw bytes, not only text.
        return tf.constant([bytes.fromhex(v) for v in values])

    out = model.signatures["serving_default"](task=strings(request["task"]),
                                              text_a=strings(request["text_a"]),
                                              text_b=strings(request["text_b"]))
    span = model.signatures["squad"](question=strings(request["question"]),
                                     context=strings(request["context"]))
    json.dump({"signatures": sorted(model.signatures),
               "default": {k: v.numpy().tolist() for k, v in out.items()},
               "squad": {k: v.numpy().tolist() for k, v in span.items()}}, sys.stdout,
              default=lambda b: b.decode("utf-8"))
""")


def _wire(text):
    """A text (or raw bytes) for the reload script, in hex."""
    return (text if isinstance(text, bytes) else text.encode("utf-8")).hex()


@pytest.fixture(scope="module")
def bank_dir(runs):
    """The RTE + span bank exported by the command line, the span task named `squad`."""
    bank_dir = str(runs["root"] / "bank")
    assert bank_main(["export", "--task_dirs", runs["rte"], f"squad={runs['squad']}",
                      "--output_dir", bank_dir]) == 0
    return bank_dir


def test_savedmodel_answers_span_rows_with_the_others(runs, bank_dir, tmp_path):
    dev, rte = runs["dev"], runs["rte_rows"]
    rows = [("squad", q, c, None) for _, q, c in dev[:5]] + [
        ("RTE", a, b, None) for a, b in rte[:3]] + _BAD_ROWS
    request = {"task": [_wire(r[0]) for r in rows], "text_a": [_wire(r[1]) for r in rows],
               "text_b": [_wire(r[2]) for r in rows],
               "question": [_wire(q) for _, q, _ in dev], "context": [_wire(c) for _, _, c in dev]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "reload.py").write_text(_RELOAD)
    # Run from tmp_path so that the repository is not on the path.
    done = subprocess.run([sys.executable, "reload.py", bank_dir, "request.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout)
    assert served["signatures"] == ["RTE", "serving_default", "squad"]
    out = served["default"]
    ids = [i for i, _, _ in dev]
    good = len(rows) - len(_BAD_ROWS)
    assert out["prediction"][:5] == [runs["predictions"][i] for i in ids[:5]]
    assert out["prediction"][5:good] == runs["rte_labels"][:3]
    assert out["error"][:good] == [""] * good
    for error, (_, _, _, expected) in zip(out["error"][good:], _BAD_ROWS):
        assert expected in error
    assert out["prediction"][good:] == [""] * len(_BAD_ROWS)
    assert not np.any(out["scores"][good:]) and set(out["answer_start"][good:]) == {-1}
    assert out["task"][:good] == ["squad"] * 5 + ["RTE"] * 3 and out["task"][-2] == "mnli"
    span = served["squad"]
    assert span["answer"] == [runs["predictions"][i] for i in ids]
    np.testing.assert_allclose(span["score"], _expected_scores(runs, ids), atol=1e-5)
    for (_, _, context), answer, start, end in zip(dev, span["answer"], span["answer_start"],
                                                   span["answer_end"]):
        assert context[start:end] == answer if answer else start == end == -1
    assert set(span["error"]) == {""}
    with open(os.path.join(bank_dir, "bank.json")) as f:
        record = json.load(f)
    assert record["signatures"] == ["serving_default", "RTE", "squad"]
    assert record["tasks"][1]["span"] == {"max_seq_length": MAX_SEQ_LENGTH, "doc_stride": 8,
                                          "max_query_length": 6, "n_best_size": 5,
                                          "max_answer_length": 4}


def test_jsonl_predict_answers_span_lines_through_the_savedmodel(runs, bank_dir, tmp_path,
                                                                 capsys, monkeypatch):
    dev = runs["dev"]
    lines = [json.dumps({"task": "squad", "question": q, "context": c, "id": i})
             for i, q, c in dev[:3]]
    lines += [json.dumps({"task": "SQuAD", "text_a": dev[3][1], "text_b": dev[3][2]}),
              json.dumps({"task": "rte", "text_a": runs["rte_rows"][0][0],
                          "text_b": runs["rte_rows"][0][1]}),
              json.dumps({"task": "squad", "question": "w1 w2"}),
              json.dumps({"task": "squad", "question": " ", "context": "w1 w2"}),
              json.dumps({"task": "squad", "text_a": "w1", "context": 3}),
              json.dumps({"task": "squad", "question": "w1", "context": "\u200b"})]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    output = str(tmp_path / "predictions.jsonl")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("bank predict rebuilt the bank in Python")

    monkeypatch.setattr(TaskBank, "from_directory", no_rebuild)
    assert bank_main(["predict", "--bank", bank_dir, "--input",
                      str(tmp_path / "requests.jsonl"), "--output", output]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ('requests.jsonl:6: field "context" is missing: task squad is a span task'
            in err)
    assert 'requests.jsonl:7: field "question" (the question) must be a non-empty string' in err
    assert 'requests.jsonl:8: field "context" (the context) must be a non-empty string' in err
    assert "requests.jsonl:9: the context (text_b) has no word pieces" in err
    with open(output) as f:
        answers = [json.loads(line) for line in f]
    assert len(answers) == len(lines)
    assert [a["prediction"] for a in answers[:4]] == [runs["predictions"][i]
                                                      for i, _, _ in dev[:4]]
    assert answers[0]["id"] == dev[0][0] and answers[0]["question"] == dev[0][1]
    for a, expected in zip(answers[:4], _expected_scores(runs, [i for i, _, _ in dev[:4]])):
        assert a["scores"] == pytest.approx([expected], abs=1e-5)
    assert answers[4]["prediction"] == runs["rte_labels"][0]
    assert all("error" in a for a in answers[5:])
    # A bank rebuilt from its directory keeps the span task.
    monkeypatch.undo()
    assert TaskBank.from_directory(bank_dir).task("squad").is_span
