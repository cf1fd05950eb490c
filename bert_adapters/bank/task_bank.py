"""`TaskBank`: one frozen base encoder serving many tasks' artifacts, in Python and as a SavedModel.

    bank = TaskBank.load("minilm_l6", ["runs/rte", "runs/sst2"])
    bank.predict("sst2", ["a gripping film"])                 # ["1"]
    bank.predict("squad", ["Who won?"], ["The Broncos won."])  # ["The Broncos"] (a span task)
    bank.predict_mixed(["RTE", "SST-2"], ["A man sleeps.", "dull"], ["A person rests.", ""])
    bank.export("banks/glue")                                  # one SavedModel
    TaskBank.from_directory("banks/glue").add("runs/stsb").export("banks/glue", overwrite=True)

The class ties three pieces together: building (`bank_builder`: the base,
its tokenizer and the artifacts, checked), answering (`bank_server`: the
graph that the SavedModel holds, which `predict` calls too, so Python and
TF Serving answer alike) and exporting (`bank_export`).
"""

import numpy as np
import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.bank import bank_builder
from bert_adapters.bank.bank_builder import BANK_FILE
from bert_adapters.bank.bank_export import export_bank
from bert_adapters.bank.bank_server import BankServer
from bert_adapters.bank.bank_task import (BankError, check_span_texts, check_texts,
                                          read_bank_task, task_key)
from bert_adapters.bank.banked_model import BankedModel
from bert_adapters.checkpoints.fingerprint import base_fingerprint


class TaskBank:
    """Many tasks on one frozen base: predictions for any mix of tasks in one batch.

    Build one with `TaskBank.load` (a base and task artifacts) or
    `TaskBank.from_directory` (an exported bank). Every task's artifact was
    checked against the base's fingerprint.

    Args:
        encoder: the base `BertEncoder`.
        tokenizer: its `BertTokenizer` (sets the bank's `max_seq_length`).
        tasks: `BankTask`s, in task-index order.
        base: {encoder_source, init_checkpoint, bert_config_file, vocab_file}:
            where the base was read from, recorded in `bank.json`.
    """

    def __init__(self, encoder, tokenizer, tasks, base):
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.base = dict(base)
        self.fingerprint = base_fingerprint(encoder)
        self.tasks = []
        for task in tasks:
            bank_builder.check_task(task, self.tasks, encoder, self.fingerprint, self.base)
            self.tasks.append(task)
        self._build()

    # === Building ===
    @classmethod
    def load(cls, base, task_dirs, *, max_seq_length=None):
        """A bank of the artifacts in `task_dirs` on the base `base`.

        Args:
            base: a `load_encoder` source (alias, TF Hub handle, checkpoint
                or HF directory), a `BertEncoder`, or None for the base the
                first artifact names.
            task_dirs: artifact (or run output) directories; an item
                `(name, dir)` (or a dict {name: dir}) gives a task a name of
                its own (two custom tasks would both be called `custom`).
            max_seq_length: tokens per classification example; default the
                longest the classification artifacts were trained with (128
                if they do not say). Span tasks cut contexts into windows of
                their own training length, as their `run_squad.py` did.

        Raises:
            BankError: an artifact the bank cannot take (another base: the
                message names the artifact and both fingerprints; `full` or
                `top_k` tuning; two tasks of one name).
        """
        tasks = bank_builder.read_tasks(task_dirs)
        if max_seq_length is None:
            max_seq_length = bank_builder.default_max_seq_length(tasks)
        encoder, tokenizer, record = bank_builder.load_base(
            base, bank_builder.base_record(tasks), max_seq_length)
        return cls(encoder, tokenizer, tasks, record)

    @classmethod
    def from_directory(cls, bank_dir, *, base=None):
        """The bank exported to `bank_dir`, rebuilt from its copies of the artifacts.

        The base is read again from where `bank.json` says (or from `base`,
        as for `load`) and must have the recorded fingerprint.
        """
        record = bank_builder.read_bank_record(bank_dir)
        tasks = bank_builder.read_bank_tasks(bank_dir, record)
        encoder, tokenizer, base_record = bank_builder.load_base(base, record["base"],
                                                                 record["max_seq_length"])
        bank = cls(encoder, tokenizer, tasks, base_record)
        if bank.fingerprint != record["fingerprint"]:
            raise BankError(f"{io_utils.join(bank_dir, BANK_FILE)}: the bank was built on a "
                            f"base with fingerprint {record['fingerprint']}, but its base read "
                            f"now has {bank.fingerprint}")
        return bank

    def add(self, task_dir, name=None):
        """Adds a task (its artifact in `task_dir`) after the others; returns the bank.

        The other tasks keep their indices and weights, so their outputs do
        not change.
        """
        task = read_bank_task(task_dir, name)
        bank_builder.check_task(task, self.tasks, self.encoder, self.fingerprint, self.base)
        self.tasks.append(task)
        self._build()
        return self

    def _build(self):
        self.model = BankedModel(self.encoder, self.tasks)
        self.server = BankServer(self.model, self.tokenizer, self.tasks)
        self._serve = self.server.serve_function()

    # === Prediction ===
    @property
    def task_names(self):
        return [task.name for task in self.tasks]

    @property
    def max_seq_length(self):
        return self.tokenizer.max_seq_length

    def task(self, name):
        """The `BankTask` called `name` (case-insensitive)."""
        key = task_key(name)
        for task in self.tasks:
            if task.key == key:
                return task
        raise BankError(f"unknown task {name!r}: this bank serves {', '.join(self.task_names)}")

    def predict(self, task, texts_a, texts_b=None, *, batch_size=32, return_scores=False):
        """Predictions of one task: label strings (regression: floats, as its submission).

        A span task takes questions as `texts_a` and their contexts as
        `texts_b`, and predicts answer texts (as its `run_squad.py
        --do_predict` writes them to predictions.json).

        With `return_scores`, also a float32 array `[num_examples, num_scores]`:
        class probabilities in the order of the task's labels (regression:
        the raw score; span: the answer's n-best probability).
        """
        texts_a = list(texts_a)
        out = self.predict_mixed([task] * len(texts_a), texts_a, texts_b,
                                 batch_size=batch_size, return_scores=return_scores)
        if return_scores:
            labels, scores = out
            return labels, np.stack(scores) if scores else np.zeros((0, self.task(task).num_scores))
        return out

    def predict_mixed(self, tasks, texts_a, texts_b=None, *, batch_size=32, return_scores=False):
        """Predictions for examples of any tasks, `tasks[i]` naming example i's task.

        Batches of `batch_size` examples, in order, each one call of the
        graph the SavedModel holds (`BankServer.serve`) and one forward pass
        whatever its mix of tasks. A span example (`texts_a[i]` the
        question, `texts_b[i]` the context) runs as one row per window of its
        context (as its task's `run_squad.py` cuts them), and its answer is
        BERT's best span over all its windows. `texts_b` may be None
        (single-sentence tasks) and holds "" or None for examples without a
        second text.

        Returns:
            A list of label strings (floats for regression tasks; answer
            texts for span tasks); with `return_scores`, also a list of
            float32 arrays, each example's task's probabilities (regression:
            `[score]`; span: `[the answer's n-best probability]`, 0 when no
            span qualifies and the answer is "").

        Raises:
            BankError: an unknown task or a text the task cannot take, naming
                the example and the field.
        """
        tasks, texts_a = list(tasks), list(texts_a)
        texts_b = [""] * len(texts_a) if texts_b is None else ["" if t is None else t
                                                               for t in texts_b]
        if not len(tasks) == len(texts_a) == len(texts_b):
            raise BankError(f"{len(tasks)} tasks, {len(texts_a)} texts_a and {len(texts_b)} "
                            f"texts_b: give one of each per example")
        entries = [self.task(name) for name in tasks]
        for i, (entry, text_a, text_b) in enumerate(zip(entries, texts_a, texts_b)):
            if entry.is_span:
                check_span_texts(entry.name, text_a, text_b, where=f"example {i}")
            else:
                check_texts(entry.name, entry.text_mode, text_a, text_b, where=f"example {i}")
        predictions, scores = [], []
        for start in range(0, len(entries), batch_size):
            part = slice(start, start + batch_size)
            out = self._serve(tf.constant([e.name for e in entries[part]]),
                              tf.constant(texts_a[part]), tf.constant(texts_b[part]))
            for i, entry, label, row, error in zip(
                    range(start, len(entries)), entries[part], out["prediction"].numpy(),
                    out["scores"].numpy(), out["error"].numpy()):
                if error:
                    raise BankError(f"example {i}: {error.decode('utf-8')}")
                label = label.decode("utf-8")
                predictions.append(float(label) if entry.is_regression else label)
                scores.append(row[:entry.num_scores])
        return (predictions, scores) if return_scores else predictions

    # === Export ===
    def export(self, output_dir, *, overwrite=False):
        """Writes the bank as one SavedModel directory (see `bank_export`); returns it.

        An existing `output_dir` is replaced only with `overwrite`.
        """
        return export_bank(self.server, self._serve, {
            "base": self.base, "fingerprint": self.fingerprint,
            "max_seq_length": self.max_seq_length, "tasks": self.tasks}, output_dir, overwrite)
