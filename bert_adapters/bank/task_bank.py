"""`TaskBank`: one frozen base encoder serving many tasks' artifacts, in Python and as a SavedModel.

    bank = TaskBank.load("minilm_l6", ["runs/rte", "runs/sst2"])
    bank.predict("sst2", ["a gripping film"])                 # ["1"]
    bank.predict("squad", ["Who won?"], ["The Broncos won."])  # ["The Broncos"] (a span task)
    bank.predict_mixed(["RTE", "SST-2"], ["A man sleeps.", "dull"], ["A person rests.", ""])
    bank.export("banks/glue")                                  # one SavedModel
    TaskBank.from_directory("banks/glue").add("runs/stsb").export("banks/glue", overwrite=True)

A bank directory is a SavedModel (`saved_model.pb`, `variables/`) plus
`bank.json` (the base, the tasks in index order) and `tasks/<key>/`, a copy
of each task's artifact, so that `bank add` can rebuild the bank without the
original run directories.
"""

import uuid

import numpy as np
import tensorflow as tf

from bert_adapters import checkpoints, io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.bank.bank_server import BankServer
from bert_adapters.bank.bank_task import (BankError, check_span_texts, check_texts,
                                          read_bank_task, task_key)
from bert_adapters.bank.banked_model import BankedModel
from bert_adapters.model.bert_encoder import INPUT_NAMES, BertEncoder
from bert_adapters.data.squad import SquadExample
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.tasks.squad_features import convert_examples
from bert_adapters.tasks.squad_postprocess import postprocess
from bert_adapters.data.tokenization import BertTokenizer

FORMAT_VERSION = 1
BANK_FILE = "bank.json"
TASKS_DIR = "tasks"
DEFAULT_MAX_SEQ_LENGTH = 128  # run_classifier.py's default
_BASE_FIELDS = ("encoder_source", "init_checkpoint", "bert_config_file", "vocab_file")


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
            self._check(task)
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
        items = task_dirs.items() if isinstance(task_dirs, dict) else task_dirs
        named = [item if isinstance(item, tuple) else (None, item) for item in items]
        tasks = [read_bank_task(directory, name) for name, directory in named]
        if not tasks:
            raise BankError("a bank needs at least one task artifact")
        if max_seq_length is None:
            # A bank of span tasks only: their windows' length (unused but valid).
            max_seq_length = max([int(t.config.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
                                  for t in tasks if not t.is_span]
                                 or [t.max_seq_length for t in tasks])
        record = {field: tasks[0].config.get(field) for field in _BASE_FIELDS}
        return cls._assemble(base, tasks, max_seq_length, record)

    @classmethod
    def from_directory(cls, bank_dir, *, base=None):
        """The bank exported to `bank_dir`, rebuilt from its copies of the artifacts.

        The base is read again from where `bank.json` says (or from `base`,
        as for `load`) and must have the recorded fingerprint.
        """
        path = io_utils.join(bank_dir, BANK_FILE)
        if not io_utils.exists(path):
            raise BankError(f"{path} not found: {bank_dir} is not a bank exported by "
                            f"`python -m bert_adapters.bank export`")
        record = io_utils.read_json(path)
        if record.get("format_version") != FORMAT_VERSION:
            raise BankError(f"{path}: format_version {record.get('format_version')!r}, "
                            f"expected {FORMAT_VERSION}")
        tasks = [read_bank_task(io_utils.join(bank_dir, t["artifact"]), t["name"])
                 for t in record["tasks"]]
        bank = cls._assemble(base, tasks, record["max_seq_length"], record["base"])
        if bank.fingerprint != record["fingerprint"]:
            raise BankError(f"{path}: the bank was built on a base with fingerprint "
                            f"{record['fingerprint']}, but its base read now has "
                            f"{bank.fingerprint}")
        return bank

    @classmethod
    def _assemble(cls, base, tasks, max_seq_length, record):
        """The bank of `tasks` on `base` (see `load`); `record` says where a None base is."""
        if isinstance(base, BertEncoder):
            encoder = base
        else:
            if base is not None:
                record = {"encoder_source": str(base), "init_checkpoint": None,
                          "bert_config_file": None, "vocab_file": None}
            encoder = _load_base(record)
        return cls(encoder, _load_tokenizer(record, encoder, max_seq_length), tasks, record)

    def add(self, task_dir, name=None):
        """Adds a task (its artifact in `task_dir`) after the others; returns the bank.

        The other tasks keep their indices and weights, so their outputs do
        not change.
        """
        task = read_bank_task(task_dir, name)
        self._check(task)
        self.tasks.append(task)
        self._build()
        return self

    def _check(self, task):
        if task.fingerprint != self.fingerprint:
            raise BankError(
                f"{io_utils.join(task.source, artifact.CONFIG_FILE)} was trained on a base with "
                f"fingerprint {task.fingerprint} ({task.config.get('encoder_source')!r}), but "
                f"this bank's base ({self.base.get('encoder_source')!r}) has fingerprint "
                f"{self.fingerprint}: adapters only work on the exact base they were trained on")
        if task.is_span:
            positions = self.encoder.config.max_sequence_length
            length, query = task.max_seq_length, task.span_setting("max_query_length")
            if length > positions or query + 3 >= length:
                raise BankError(
                    f"{io_utils.join(task.source, artifact.CONFIG_FILE)}: span windows of "
                    f"max_seq_length={length} with max_query_length={query} do not fit this "
                    f"base ({positions} positions; the query needs room for the context)")
        for other in self.tasks:
            if other.key == task.key:
                raise BankError(
                    f"{task.source}: the bank already has a task named {other.name!r} (from "
                    f"{other.source}); task names are case-insensitive. Give one of them "
                    f"another name (NAME=DIR on the command line)")

    def _build(self):
        self.model = BankedModel(self.encoder, self.tasks)
        self.server = BankServer(self.model, self.tokenizer, self.tasks)
        self._serve = self.server.serve_function()
        ids = tf.TensorSpec([None], tf.int32)
        strings = tf.TensorSpec([None], tf.string)
        self._encode = tf.function(self.server.encode, input_signature=[ids, strings, strings])
        self._forward = tf.function(
            self.model.outputs,
            input_signature=[{name: tf.TensorSpec([None, None], tf.int32) for name in INPUT_NAMES},
                             ids])
        self._classify = tf.function(
            self.server.classify, input_signature=[ids, tf.TensorSpec([None, None], tf.float32)])

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

        Batches of `batch_size` rows, in order, each one forward pass
        whatever its mix of tasks. A classification example is one row; a
        span example (`texts_a[i]` the question, `texts_b[i]` the context)
        is one row per window of its context (as its task's `run_squad.py`
        cuts them), and its answer is BERT's best span over all its windows.
        `texts_b` may be None (single-sentence tasks) and holds "" or None
        for examples without a second text.

        Returns:
            A list of label strings (floats for regression tasks; answer
            texts for span tasks); with `return_scores`, also a list of
            float32 arrays, each example's task's probabilities (regression:
            `[score]`; span: `[the answer's n-best probability]`).
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
        spans = self._span_windows(entries, texts_a, texts_b)
        rows = []  # (example, span task key or None, window)
        for i, entry in enumerate(entries):
            if entry.is_span:
                rows += [(i, entry.key, w) for w in spans[entry.key]["windows_of"][i]]
            else:
                rows.append((i, None, None))
        predictions, scores = [None] * len(tasks), [None] * len(tasks)
        for start in range(0, len(rows), batch_size):
            self._predict_rows(rows[start:start + batch_size], entries, texts_a, texts_b, spans,
                               predictions, scores)
        for span in spans.values():
            task = span["task"]
            answers, nbest = postprocess(
                span["examples"], span["features"], span["start"], span["end"],
                task.span_setting("n_best_size"), task.span_setting("max_answer_length"))
            for example in span["examples"]:
                i = int(example.qas_id)
                predictions[i] = answers[example.qas_id]
                scores[i] = np.array([nbest[example.qas_id][0]["probability"]], np.float32)
        return (predictions, scores) if return_scores else predictions

    def _span_windows(self, entries, texts_a, texts_b):
        """Each span task's examples cut into windows: {task key: its windows and logits}."""
        spans = {}
        for i, entry in enumerate(entries):
            if entry.is_span:
                span = spans.setdefault(entry.key, {"task": entry, "examples": []})
                span["examples"].append(SquadExample(
                    qas_id=str(i), question_text=texts_a[i], context_text=texts_b[i],
                    answers=(), title=""))
        for span in spans.values():
            task = span["task"]
            features = convert_examples(
                span["examples"], self.tokenizer, task.max_seq_length,
                task.span_setting("doc_stride"), task.span_setting("max_query_length"))
            windows_of = {int(e.qas_id): [] for e in span["examples"]}
            for window, example in enumerate(features.example_index):
                windows_of[int(span["examples"][example].qas_id)].append(window)
            shape = (len(features), task.max_seq_length)
            span.update(features=features, windows_of=windows_of,
                        start=np.zeros(shape, np.float32), end=np.zeros(shape, np.float32))
        return spans

    def _predict_rows(self, rows, entries, texts_a, texts_b, spans, predictions, scores):
        """One forward pass over `rows` (classification examples and span windows)."""
        classified = [r for r, (_, key, _) in enumerate(rows) if key is None]
        windowed = [r for r, (_, key, _) in enumerate(rows) if key is not None]
        index = {task.key: t for t, task in enumerate(self.tasks)}
        task_ids = np.array([index[entries[i].key] for i, _, _ in rows], np.int32)
        parts = {}
        width = 1
        if classified:
            examples = [rows[r][0] for r in classified]
            encoded = self._encode(tf.constant(task_ids[classified]),
                                   tf.constant([texts_a[i] for i in examples]),
                                   tf.constant([texts_b[i] for i in examples]))
            parts["classified"] = {name: v.numpy() for name, v in encoded.items()}
            width = max(width, int(parts["classified"]["input_mask"].sum(axis=1).max()))
        for r in windowed:
            width = max(width, spans[rows[r][1]]["task"].max_seq_length)
        inputs = {name: np.zeros((len(rows), width), np.int32) for name in INPUT_NAMES}
        for name in INPUT_NAMES:
            if classified:
                values = parts["classified"][name][:, :width]
                inputs[name][classified, :values.shape[1]] = values
            for r in windowed:
                _, key, window = rows[r]
                values = getattr(spans[key]["features"], name)[window]
                inputs[name][r, :len(values)] = values
        logits, span_logits = self._forward({k: tf.constant(v) for k, v in inputs.items()},
                                            tf.constant(task_ids))
        if classified:
            out = self._classify(tf.constant(task_ids[classified]),
                                 tf.gather(logits, classified))
            for r, label, row in zip(classified, out["prediction"].numpy(),
                                     out["scores"].numpy()):
                i = rows[r][0]
                label = label.decode("utf-8")
                predictions[i] = float(label) if entries[i].is_regression else label
                scores[i] = row[:entries[i].num_scores]
        span_logits = span_logits.numpy()
        for r in windowed:
            _, key, window = rows[r]
            span = spans[key]
            length = span["task"].max_seq_length
            # The best-span search ranks a window's own tokens only (padding
            # masked), as the task's own run does (`training.evaluation.predict`).
            tokens = span["features"].input_mask[window] > 0
            span["start"][window] = np.where(tokens, span_logits[r, :length, 0], MASKED_LOGIT)
            span["end"][window] = np.where(tokens, span_logits[r, :length, 1], MASKED_LOGIT)

    # === Export ===
    def export(self, output_dir, *, overwrite=False):
        """Writes the bank as one SavedModel directory (see the module docstring).

        Written to a temporary sibling and renamed into place at the end:
        an interrupted export leaves no half-written bank. An existing
        `output_dir` is replaced only with `overwrite`.
        """
        output_dir = output_dir.rstrip("/")
        if io_utils.exists(output_dir) and not overwrite:
            raise BankError(f"{output_dir} already exists: choose a new --output_dir, or add "
                            f"tasks to that bank with `bank add --bank {output_dir}`")
        tmp = f"{output_dir}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tf.saved_model.save(self.server, tmp, signatures=self.server.signatures(self._serve))
            tasks = []
            for index, task in enumerate(self.tasks):
                folder = io_utils.join(TASKS_DIR, task.key)
                _copy_artifact(task.source, io_utils.join(tmp, folder))
                tasks.append({"name": task.name, "index": index, "artifact": folder,
                              "labels": list(task.labels) if task.labels else None,
                              "kind": task.kind,
                              "regression": task.is_regression, "text_mode": task.text_mode,
                              "adapter_size": task.adapter_size,
                              "tuning": task.config.get("tuning"), "source": task.source})
            io_utils.write_json(io_utils.join(tmp, BANK_FILE), {
                "format_version": FORMAT_VERSION, "base": self.base,
                "fingerprint": self.fingerprint, "max_seq_length": self.max_seq_length,
                "signatures": ["serving_default"] + [t.name for t in self.tasks
                                                     if not t.is_span], "tasks": tasks})
            _replace_dir(tmp, output_dir)
        finally:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.rmtree(tmp)
        return output_dir


def _load_base(record):
    try:
        return checkpoints.load_encoder(record.get("encoder_source"),
                                        init_checkpoint=record.get("init_checkpoint"),
                                        bert_config_file=record.get("bert_config_file"))
    except (ValueError, FileNotFoundError, OSError) as err:
        raise BankError(f"cannot read the base encoder {record.get('encoder_source')!r}: "
                        f"{err}") from None


def _load_tokenizer(record, encoder, max_seq_length):
    if not 2 < max_seq_length <= encoder.config.max_sequence_length:
        raise BankError(f"max_seq_length={max_seq_length}: expected 3 to the base's "
                        f"{encoder.config.max_sequence_length} position embeddings")
    vocab_file, lower_case = checkpoints.locate_vocab(
        record.get("encoder_source"), vocab_file=record.get("vocab_file"),
        init_checkpoint=record.get("init_checkpoint"))
    return BertTokenizer(vocab_file, lower_case=lower_case, max_seq_length=max_seq_length)


def _copy_artifact(source, target):
    io_utils.makedirs(target)
    for name in (artifact.WEIGHTS_FILE, artifact.CONFIG_FILE):
        with io_utils.gfile_open(io_utils.join(source, name), "rb") as f:
            io_utils.write_bytes(io_utils.join(target, name), f.read())


def _replace_dir(tmp, target):
    """Renames `tmp` to `target`, replacing an existing `target` (moved aside, then removed)."""
    old = None
    if tf.io.gfile.exists(target):
        old = f"{target}.old-{uuid.uuid4().hex[:8]}"
        tf.io.gfile.rename(target, old)
    tf.io.gfile.rename(tmp, target)
    if old:
        tf.io.gfile.rmtree(old)
