"""Span (SQuAD) tasks in the multi-task bank, on a tiny encoder.

A span task and an RTE task are trained for a few steps by the trainer (the
bank itself never imports it); the bank must answer the span task's
questions exactly as its own `run_squad.py --do_predict` did, alone or in
batches mixing classification rows and span windows.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bert_adapters.bank import BankError, TaskBank
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
    bank = TaskBank.load(None, [rte, squad])
    return {"root": root, "squad": squad, "rte": rte, "dev": _questions(dev),
            "predictions": predictions, "nbest": nbest, "bank": bank,
            "rte_rows": _rte_rows(root / "RTE")}


def _rte_rows(folder):
    with open(os.path.join(folder, "test.tsv")) as f:
        return [line.split("\t")[1:3] for line in f.read().rstrip("\n").split("\n")[1:]]


def test_span_answers_equal_the_tasks_own_predictions(runs):
    bank = runs["bank"]
    ids, questions, contexts = zip(*runs["dev"])
    assert bank.task("squad-v1.1").is_span
    # The tiny contexts (20-40 pieces) need several 32-token windows.
    answers, scores = bank.predict("SQuAD-v1.1", questions, contexts, batch_size=7,
                                   return_scores=True)
    assert answers == [runs["predictions"][i] for i in ids]
    np.testing.assert_allclose(scores[:, 0], [runs["nbest"][i][0]["probability"] for i in ids],
                               atol=1e-5)
    assert len(set(answers)) > 3 and scores.shape == (len(ids), 1)
    assert bank.max_seq_length == MAX_SEQ_LENGTH  # The classification tasks' length.


def test_mixed_batch_of_classification_rows_and_span_windows(runs):
    bank = runs["bank"]
    dev, rte = runs["dev"][:6], runs["rte_rows"][:6]
    tasks, texts_a, texts_b = [], [], []
    for (_, question, context), (premise, hypothesis) in zip(dev, rte):
        tasks += ["squad-v1.1", "RTE"]
        texts_a += [question, premise]
        texts_b += [context, hypothesis]
    # 5 rows a batch: batches hold RTE rows and span windows together.
    forward, mixes = bank._forward, []

    def spy(inputs, task_ids):
        mixes.append(len(set(task_ids.numpy().tolist())))
        return forward(inputs, task_ids)

    bank._forward = spy
    try:
        labels, scores = bank.predict_mixed(tasks, texts_a, texts_b, batch_size=5,
                                            return_scores=True)
    finally:
        bank._forward = forward
    assert mixes.count(2) >= 2
    rte_labels, rte_scores = bank.predict("rte", texts_a[1::2], texts_b[1::2],
                                          return_scores=True)
    span_labels, span_scores = bank.predict("squad_v1.1", texts_a[0::2], texts_b[0::2],
                                            return_scores=True)
    assert labels[1::2] == rte_labels and labels[0::2] == span_labels
    assert labels[0::2] == [runs["predictions"][i] for i, _, _ in dev]
    np.testing.assert_allclose(np.stack(scores[1::2]), rte_scores, atol=1e-5)
    np.testing.assert_allclose(np.stack(scores[0::2]), span_scores, atol=1e-5)
    # The span task (adapters of size 4, RTE's 2) leaves RTE's outputs bit for bit.
    alone_labels, alone_scores = TaskBank.load(None, [runs["rte"]]).predict(
        "rte", texts_a[1::2], texts_b[1::2], return_scores=True)
    assert alone_labels == rte_labels and np.array_equal(alone_scores, rte_scores)
    with pytest.raises(BankError, match=r'example 0: field "text_b" \(the context\) must be a '
                                        'non-empty string'):
        bank.predict("squad-v1.1", ["a question"])


_RELOAD = textwrap.dedent("""\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    model = tf.saved_model.load(sys.argv[1])
    serve = model.signatures["serving_default"]
    out = serve(task=tf.constant(["rte"]), text_a=tf.constant(["w1 w2"]),
                text_b=tf.constant(["w3"]))
    try:
        serve(task=tf.constant(["rte", "squad"]), text_a=tf.constant(["w1", "w2"]),
              text_b=tf.constant(["w3", "w4"]))
        refused = ""
    except tf.errors.InvalidArgumentError as err:
        refused = err.message
    json.dump({"signatures": sorted(model.signatures), "refused": refused,
               "rte": out["prediction"].numpy()[0].decode()}, sys.stdout)
""")


def test_export_and_jsonl_predict_with_a_span_task(runs, tmp_path, capsys):
    bank_dir = str(tmp_path / "bank")
    assert bank_main(["export", "--task_dirs", runs["rte"], f"squad={runs['squad']}",
                      "--output_dir", bank_dir]) == 0
    # The SavedModel answers the classification task and refuses the span task by name.
    (tmp_path / "reload.py").write_text(_RELOAD)
    done = subprocess.run([sys.executable, "reload.py", bank_dir], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout)
    assert served["signatures"] == ["RTE", "serving_default"]
    assert "span (SQuAD) task(s) are not answered by this SavedModel" in served["refused"]
    assert "squad" in served["refused"]
    assert served["rte"] == runs["bank"].predict("rte", ["w1 w2"], ["w3"])[0]

    dev = runs["dev"]
    lines = [json.dumps({"task": "squad", "question": q, "context": c, "id": i})
             for i, q, c in dev[:3]]
    lines += [json.dumps({"task": "SQuAD", "text_a": dev[3][1], "text_b": dev[3][2]}),
              json.dumps({"task": "rte", "text_a": runs["rte_rows"][0][0],
                          "text_b": runs["rte_rows"][0][1]}),
              json.dumps({"task": "squad", "question": "w1 w2"}),
              json.dumps({"task": "squad", "question": " ", "context": "w1 w2"}),
              json.dumps({"task": "squad", "text_a": "w1", "context": 3})]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    output = str(tmp_path / "predictions.jsonl")
    assert bank_main(["predict", "--bank", bank_dir, "--input",
                      str(tmp_path / "requests.jsonl"), "--output", output]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "Span task(s) squad: answered by `bank predict`" in captured.out
    assert "Traceback" not in err
    assert ('requests.jsonl:6: field "context" is missing: task squad is a span task'
            in err)
    assert 'requests.jsonl:7: field "question" (the question) must be a non-empty string' in err
    assert 'requests.jsonl:8: field "context" (the context) must be a non-empty string' in err
    with open(output) as f:
        answers = [json.loads(line) for line in f]
    assert len(answers) == len(lines)
    assert [a["prediction"] for a in answers[:4]] == [runs["predictions"][i]
                                                      for i, _, _ in dev[:4]]
    assert answers[0]["id"] == dev[0][0] and answers[0]["question"] == dev[0][1]
    for a, (i, _, _) in zip(answers[:4], dev[:4]):
        assert a["scores"] == pytest.approx([runs["nbest"][i][0]["probability"]], abs=1e-5)
    assert answers[4]["prediction"] == runs["bank"].predict("rte", *zip(runs["rte_rows"][0]))[0]
    assert all("error" in a for a in answers[5:])
    # A bank rebuilt from its directory keeps the span task.
    assert TaskBank.from_directory(bank_dir).task("squad").is_span
    # A bank of span tasks only exports too (its SavedModel serves nothing).
    TaskBank.load(None, [runs["squad"]]).export(str(tmp_path / "span_only"))
    with open(tmp_path / "span_only" / "bank.json") as f:
        assert json.load(f)["signatures"] == ["serving_default"]
