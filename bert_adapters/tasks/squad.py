"""SQuAD v1.1 span extraction (paper section 3.5) as a task kind.

`SquadConfig` adds BERT's `run_squad.py` fields to the shared settings;
`SpanKind` is what the trainer runs for it: questions cut into windows of the
context (`squad_features`), start/end logits from the sequence output
(`heads.build_span_model`), the mean of the start and end cross-entropies as
BERT's loss, BERT's best-span search over every window of a question
(`squad_postprocess`) and the official v1.1 exact match and F1
(`squad_metric`).
"""

import dataclasses
import json
from typing import ClassVar, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.model import heads
from bert_adapters.tasks import squad_metric
from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.data import squad as squad_data
from bert_adapters.tasks.base import Split, TaskKind
from bert_adapters.tasks.squad_features import convert_examples
from bert_adapters.tasks.squad_postprocess import postprocess
from bert_adapters.tasks.run_config import RunConfig

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
TASK_NAME = "SQuAD-v1.1"


@dataclasses.dataclass(frozen=True)
class SquadConfig(RunConfig):
    """Settings of `run_squad.py`: the shared ones plus BERT's SQuAD flags.

    Without `train_file` / `predict_file` the splits come from TFDS
    `squad/v1.1` (train / validation).
    """

    max_seq_length: int = 384              # BERT's run_squad.py default
    train_file: Optional[str] = None       # SQuAD v1.1 JSON
    predict_file: Optional[str] = None     # SQuAD v1.1 JSON (with answers: also scored)
    tfds_data_dir: Optional[str] = None
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30

    TRAINING_FIELDS: ClassVar[Tuple[str, ...]] = RunConfig.TRAINING_FIELDS + (
        "train_file", "tfds_data_dir", "doc_stride", "max_query_length")

    def __post_init__(self):
        super().__post_init__()
        for field in ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"):
            if getattr(self, field) < 1:
                raise ValueError(f"--{field} must be positive, got {getattr(self, field)}")
        if self.max_query_length + 3 >= self.max_seq_length:
            raise ValueError(f"--max_query_length={self.max_query_length} leaves no room for "
                             f"the context in --max_seq_length={self.max_seq_length}")

    def task_kind(self, artifact_config=None):
        return SpanKind(self, artifact_config)


class SpanKind(TaskKind):
    """Answer spans: start and end logits for every token of a window."""

    name = heads.SPAN
    task_name = TASK_NAME
    primary_metric = "f1"
    train_split = "train"
    eval_splits = ("dev",)

    def __init__(self, config, artifact_config=None):
        super().__init__(config, artifact_config)
        self._skipped = {}
        self._answers = {}

    def check_artifact(self, artifact_config):
        kind = artifact_config.get("kind", heads.CLASSIFICATION)
        if kind != self.name:
            raise ValueError(f"--task_dir {self.config.task_dir} holds a {kind} model for "
                             f"{artifact_config.get('task')}, not a SQuAD span model")

    # === Data ===
    def _read(self, split):
        """SquadData of `train` or `dev`: the JSON file given, else TFDS."""
        path = self.config.train_file if split == "train" else self.config.predict_file
        if path:
            return squad_data.read_squad_json(path, is_training=split == "train")
        tfds_split = "train" if split == "train" else "validation"
        return squad_data.load_squad_tfds(tfds_split, self.config.tfds_data_dir)

    def load_splits(self, tokenizer):
        c = self.config
        needed = (["train"] if c.do_train else []) + (
            ["dev"] if c.do_eval or c.do_predict else [])
        splits = {}
        for split in needed:
            data = self._read(split)
            if not data.examples:
                raise ValueError(f"{data.source}: no questions in the {split} split")
            training = split == "train"
            features = convert_examples(data.examples, tokenizer, c.max_seq_length,
                                        c.doc_stride, c.max_query_length, is_training=training)
            if training:
                self._skipped = {"train_questions": len(data.examples),
                                 "train_skipped_questions": data.num_skipped,
                                 "train_unaligned_answers": features.num_unaligned,
                                 "train_windows": len(features.input_mask)}
                if features.num_unaligned:
                    logging.warning("%s: %d training question(s) whose answer could not be "
                                    "aligned to WordPiece tokens were skipped (e.g. %s)",
                                    data.source, features.num_unaligned,
                                    features.unaligned_ids[:5])
                labels = np.stack([features.start_positions, features.end_positions], axis=1)
            else:
                labels = None
            logging.info("%s: %d questions in %d windows of %d tokens", data.source,
                         len(data.examples), len(features.input_mask), c.max_seq_length)
            inputs = {name: getattr(features, name) for name in INPUT_NAMES}
            splits[split] = Split(split, inputs, labels, (data, features))
        return splits

    def predict_splits(self, splits):
        return [key for key in self.eval_splits if key in splits]

    def num_examples(self, split):
        return len(split.data[0].examples)

    # === Model and loss ===
    def build_model(self, encoder):
        # The span head reads the sequence output: the pooler gets no gradient
        # (BERT's optimiser skips it), so it is frozen and stays out of the
        # artifact whatever the tuning mode trains.
        encoder.pooler.trainable = False
        return heads.build_span_model(encoder)

    def loss(self, labels, outputs):
        """BERT's: the mean of the start and end cross-entropies over the window."""
        labels = tf.cast(labels, tf.int64)
        start = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels[:, 0], logits=outputs[:, :, 0])
        end = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels[:, 1], logits=outputs[:, :, 1])
        return (start + end) / 2.0

    # === Outputs ===
    def _answers_of(self, split, outputs):
        """(predictions, nbest), computed once per split."""
        if split.name not in self._answers:
            data, features = split.data
            self._answers[split.name] = postprocess(
                data.examples, features, outputs[:, :, 0], outputs[:, :, 1],
                self.config.n_best_size, self.config.max_answer_length)
        return self._answers[split.name]

    @staticmethod
    def _gold(split):
        examples = split.data[0].examples
        if not all(ex.answers for ex in examples):
            return None
        return {ex.qas_id: [text for text, _ in ex.answers] for ex in examples}

    def evaluate(self, split, outputs):
        gold = self._gold(split)
        if gold is None:
            raise ValueError(f"{split.data[0].source}: --do_eval needs answers for every "
                             f"question; use --do_predict alone to only predict")
        predictions, _ = self._answers_of(split, outputs)
        return squad_metric.evaluate(gold, predictions)

    def write_predictions(self, output_dir, split, outputs):
        predictions, nbest = self._answers_of(split, outputs)
        io_utils.write_text(io_utils.join(output_dir, PREDICTIONS_FILE),
                            json.dumps(predictions, indent=2, ensure_ascii=False) + "\n")
        io_utils.write_text(io_utils.join(output_dir, NBEST_FILE),
                            json.dumps(nbest, indent=2, ensure_ascii=False) + "\n")
        logging.info("Wrote %s and %s (%d questions)", PREDICTIONS_FILE, NBEST_FILE,
                     len(predictions))
        gold = self._gold(split)
        return {} if gold is None else squad_metric.evaluate(gold, predictions)

    def prediction_files(self):
        return [PREDICTIONS_FILE, NBEST_FILE]

    # === Records ===
    def artifact_config(self):
        c = self.config
        return {"kind": self.name, "task": TASK_NAME, "doc_stride": c.doc_stride,
                "max_query_length": c.max_query_length, "n_best_size": c.n_best_size,
                "max_answer_length": c.max_answer_length}

    def record(self):
        return {"task": TASK_NAME, **self._skipped}
