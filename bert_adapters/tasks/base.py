"""`TaskKind`: what one kind of task supplies to the one trainer.

The trainer (`training/trainer.py`) owns strategy, precision, optimiser,
schedule, checkpoints, resume, the evaluation loop and artifact writing. A
task kind (sentence classification/regression, span extraction) owns
everything that differs between kinds:

  - data: which splits a run needs, read and turned into features
    (`load_splits` -> {split: `Split`});
  - the head on the encoder (`build_model`, from `heads`);
  - the per-example loss (`loss`);
  - turning the model's outputs into metrics (`evaluate`) and output files
    (`write_predictions`);
  - what its task artifact and `run_config.json` record
    (`artifact_config`, `record`), and whether an artifact fits the run
    (`check_artifact`).

This is the shape of tensorflow/models' `base_task.Task`, without its
registry: a runner's config class names its kind (`config.task_kind()`).
"""

import abc
import dataclasses
from typing import Any, ClassVar, Optional

import numpy as np


@dataclasses.dataclass
class Split:
    """One split of a run, ready for the input pipeline.

    Args:
        name: the split's key (`"train"`, `"dev"`, `"AX:test"`, ...).
        features: the encoder's inputs, int32 arrays `[num_rows, max_seq_length]`
            keyed by `bert_encoder.INPUT_NAMES` (one row per example for
            classification, per document window for span extraction).
        labels: per-row training targets for the loss (`[num_rows]` class
            indices or floats, `[num_rows, 2]` start/end positions), or None.
        data: whatever the task kind needs later to score or write the split
            (examples, indices, window-to-text maps).
    """

    name: str
    features: dict
    labels: Optional[np.ndarray]
    data: Any = None

    @property
    def num_rows(self):
        return len(self.features["input_mask"])


class TaskKind(abc.ABC):
    """The part of a run that depends on the kind of task.

    Args:
        config: the runner's config (a `training.RunConfig` subclass).
        artifact_config: the `task_config.json` of `--task_dir`, if any.
    """

    # The artifact's `kind` (`heads.KINDS`).
    name: ClassVar[str]

    def __init__(self, config, artifact_config=None):
        self.config = config
        self.loaded_artifact = artifact_config  # task_config.json of --task_dir, or None

    @property
    @abc.abstractmethod
    def task_name(self):
        """The task's name as recorded in run_config.json and artifacts."""

    @property
    @abc.abstractmethod
    def primary_metric(self):
        """The eval_results.json key that selects the best run of a sweep."""

    def check_artifact(self, artifact_config):
        """Raises ValueError if `--task_dir` holds a model for another task."""

    @abc.abstractmethod
    def load_splits(self, tokenizer):
        """{split key: `Split`} for the splits this run needs.

        The training split is `self.train_split`, evaluated splits
        `self.eval_splits`, predicted ones `self.predict_splits(splits)`.
        """

    @property
    @abc.abstractmethod
    def train_split(self):
        """Key of the training split."""

    @property
    @abc.abstractmethod
    def eval_splits(self):
        """Keys of the labelled splits `--do_eval` scores, primary first."""

    @abc.abstractmethod
    def predict_splits(self, splits):
        """Keys of the loaded splits `--do_predict` writes predictions for."""

    @abc.abstractmethod
    def build_model(self, encoder):
        """The task model on `encoder` (a head from `heads`)."""

    @abc.abstractmethod
    def loss(self, labels, outputs):
        """Per-example float32 loss `[batch_size]` from labels and outputs."""

    @abc.abstractmethod
    def evaluate(self, split, outputs):
        """{metric: value} of a labelled split from its float32 outputs."""

    @abc.abstractmethod
    def write_predictions(self, output_dir, split, outputs):
        """Writes the split's prediction files; returns {metric: value} or {}.

        Returns the split's metrics when the predicted data has labels
        (a SQuAD file with answers), else {}.
        """

    @abc.abstractmethod
    def prediction_files(self):
        """Names of the files `write_predictions` may write in an output dir."""

    @abc.abstractmethod
    def artifact_config(self):
        """The kind's part of task_config.json (`kind` and what the head needs)."""

    def num_examples(self, split):
        """How many examples a split's metrics are over (rows by default)."""
        return split.num_rows

    def record(self):
        """The kind's part of run_config.json (task, labels, skipped examples)."""
        return {"task": self.task_name}
