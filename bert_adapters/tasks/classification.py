"""Sentence (pair) classification and regression: GLUE and custom files.

`ClassifierConfig` adds the task and data fields of `run_classifier.py` to
the shared settings; `ClassificationKind` is what the trainer runs for it:
BERT's pooled-output head, softmax cross-entropy (squared error for
regression), the task's GLUE metrics and submission files.
"""

import dataclasses
from typing import ClassVar, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import data, io_utils
from bert_adapters.model import heads
from bert_adapters.tasks import metrics, glue_files
from bert_adapters.tasks import classification_data
from bert_adapters.tasks.base import Split, TaskKind
from bert_adapters.data.tokenization import encode
from bert_adapters.tasks.run_config import RunConfig


# BERT's --do_predict output: class probabilities of each test example.
TEST_RESULTS_FILE = "test_results.tsv"


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(RunConfig):
    """Settings of `run_classifier.py`: the shared ones plus task and data.

    `task_name` is a GLUE task (case-insensitive) or `custom` with files.
    """

    task_name: Optional[str] = None
    data_dir: Optional[str] = None          # the task's GLUE folder (or a GLUE root)
    tfds_data_dir: Optional[str] = None     # TFDS `glue/*` when data_dir is None
    train_file: Optional[str] = None        # custom tasks: CSV, TSV or JSONL with a header
    dev_file: Optional[str] = None
    test_file: Optional[str] = None
    text_fields: Optional[Tuple[str, ...]] = None
    label_field: Optional[str] = None
    labels: Optional[Tuple[str, ...]] = None  # custom label set; else from train_file
    head_dropout: float = 0.1
    # The top layer computes its output at [CLS] alone, the only position the
    # head reads (`heads.ClsPooledOutput`), with the dropout masks the full
    # layer draws there: the same step up to float rounding, so, as
    # `jit_compile`, not a training field (a run or sweep resumes across it).
    cls_only_top_layer: bool = True

    TRAINING_FIELDS: ClassVar[Tuple[str, ...]] = RunConfig.TRAINING_FIELDS + (
        "task_name", "data_dir", "tfds_data_dir", "train_file", "text_fields", "label_field",
        "labels", "head_dropout")
    TUPLE_FIELDS: ClassVar[Tuple[str, ...]] = ("text_fields", "labels")

    def __post_init__(self):
        super().__post_init__()
        if not self.task_name:
            raise ValueError("--task_name is required: a GLUE task (MRPC, SST-2, ...) or custom")

    def task_kind(self, artifact_config=None):
        return ClassificationKind(self, artifact_config)


class ClassificationKind(TaskKind):
    """Classification / regression on the pooled [CLS] output (BERT's head)."""

    name = heads.CLASSIFICATION

    def __init__(self, config, artifact_config=None):
        super().__init__(config, artifact_config)
        self.task = classification_data.resolve_task(config, artifact_config)
        self._splits = {}

    @property
    def task_name(self):
        return self.task.name

    @property
    def primary_metric(self):
        return self.task.primary_metric

    @property
    def train_split(self):
        return self.task.train_split

    @property
    def eval_splits(self):
        return tuple(self.task.eval_splits)

    def check_artifact(self, artifact_config):
        if self.task.name != artifact_config.get("task") or tuple(
                self.task.label_names or ()) != tuple(artifact_config.get("label_names") or ()):
            raise ValueError(
                f"--task_dir {self.config.task_dir} holds a {artifact_config.get('task')} model "
                f"(labels {artifact_config.get('label_names')}), not one for {self.task.name} "
                f"(labels {self.task.label_names})")

    # === Data ===
    def load_splits(self, tokenizer):
        examples = classification_data.load_splits(self.task, self.config)
        self._splits = {
            name: Split(name, encode(tokenizer, ex.texts_a, ex.texts_b), ex.labels, ex)
            for name, ex in examples.items()}
        return self._splits

    def predict_splits(self, splits):
        return list(classification_data.prediction_files(self.task, splits))

    # === Model and loss ===
    def build_model(self, encoder):
        return heads.build_classifier_model(encoder, self.task.num_outputs,
                                            self.config.head_dropout,
                                            cls_only_top_layer=self.config.cls_only_top_layer)

    def loss(self, labels, outputs):
        """Squared error (regression) or softmax cross-entropy, per example."""
        if self.task.is_regression:
            return tf.square(outputs[:, 0] - tf.cast(labels, tf.float32))
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int64), logits=outputs)

    # === Outputs ===
    def _predictions(self, outputs):
        if self.task.is_regression:
            return outputs[:, 0]
        return outputs.argmax(axis=-1)

    def _eval_loss(self, outputs, labels):
        if self.task.is_regression:
            return float(np.mean((outputs[:, 0] - labels) ** 2))
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return float(-np.mean(log_probs[np.arange(len(labels)), labels]))

    def evaluate(self, split, outputs):
        labels = split.labels
        values = metrics.compute_metrics(self.task, labels, self._predictions(outputs))
        values["eval_loss"] = self._eval_loss(outputs, labels)
        return values

    def write_predictions(self, output_dir, split, outputs):
        owner = classification_data.task_of_split(self.task, split.name)
        file_name = owner.submission_file(classification_data.split_name(split.name))
        glue_files.write_submission(
            io_utils.join(output_dir, file_name), owner,
            classification_data.split_name(split.name), split.data.indices,
            self._predictions(outputs))
        logging.info("Wrote %s (%d rows)", io_utils.join(output_dir, file_name), len(outputs))
        if split.name == next(iter(self.task.test_files)):
            # BERT's test_results.tsv: the task's (first) test split, one row
            # per example in file order, no header; a column per class, in
            # the order of the task's label_names (BERT's label lists).
            values = outputs[:, :1] if self.task.is_regression else _softmax(outputs)
            io_utils.write_text(
                io_utils.join(output_dir, TEST_RESULTS_FILE),
                "".join("\t".join(str(v) for v in row) + "\n"
                        for row in values.astype(np.float32)))
            logging.info("Wrote %s (%s per example)", io_utils.join(output_dir, TEST_RESULTS_FILE),
                         "the score" if self.task.is_regression else "class probabilities")
        return {}

    def prediction_files(self):
        files = list(self.task.test_files.values()) + [TEST_RESULTS_FILE]
        if self.task.custom_format is None:
            for other in data.tasks_predicted_by(self.task):
                files += list(other.test_files.values())
        return files

    # === Records ===
    def artifact_config(self):
        return {"kind": self.name, "task": self.task.name, "label_names": self.task.label_names,
                "submission_labels": self.task.submission_labels,
                "num_outputs": self.task.num_outputs, "head_dropout": self.config.head_dropout}

    def record(self):
        return {"task": self.task.name, "label_names": self.task.label_names}
