"""`BankTask`: one task artifact, read and checked for a bank.

A bank shares one frozen base between its tasks, so it takes only artifacts
whose trained weights are adapters, LayerNorms and the head (`adapters` and
`layer_norm` tuning). `full` and `top_k` fine-tuning change the base's own
weights: such an artifact is refused with a message saying how to serve it.

Two task kinds: sentence classification/regression (`run_classifier.py`; a
head on the pooled output) and span extraction (`run_squad.py`; a 2-unit
start/end head on the sequence output, requests `text_a` = question,
`text_b` = context).
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np
import safetensors.numpy

from bert_adapters import io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.model import heads
from bert_adapters.model.bert_encoder import is_adapter_weight
from bert_adapters.data.registry import get_task

# Tuning modes whose artifacts leave the base untouched.
SHAREABLE_TUNING = ("adapters", "layer_norm")

# How a task's requests are packed: one text, two texts, or (a custom task,
# whose artifact does not say) two when `text_b` is given, else one.
SINGLE, PAIR, PAIR_IF_GIVEN = 0, 1, -1

# A span head: start and end logits. Artifacts written by run_squad.py record
# these settings; the defaults are BERT's run_squad.py flags.
SPAN_OUTPUTS = 2
SPAN_DEFAULTS = {"max_seq_length": 384, "doc_stride": 128, "max_query_length": 64,
                 "n_best_size": 20, "max_answer_length": 30}


class BankError(ValueError):
    """A task, artifact or request the bank cannot take, explained for the user."""


def task_key(name):
    """The case-insensitive key of a task name: `SST-2`, `sst2` and `Sst_2` are one task."""
    return "".join(c for c in str(name).lower() if c.isalnum())


@dataclasses.dataclass(frozen=True)
class BankTask:
    """One task of a bank: its labels, how its inputs are packed, its trained weights.

    Args:
        name: the task's name in the bank (the artifact's `task` unless renamed).
        source: the artifact directory it was read from.
        config: the artifact's `task_config.json`.
        labels: the submission label string of each output (None: regression).
        text_mode: `SINGLE`, `PAIR` or `PAIR_IF_GIVEN`.
        weights: {canonical name: float32 array} of `weights.safetensors`.
        kind: `heads.CLASSIFICATION` or `heads.SPAN`.
    """

    name: str
    source: str
    config: dict
    labels: Optional[Tuple[str, ...]]
    text_mode: int
    weights: dict
    kind: str = heads.CLASSIFICATION

    @property
    def key(self):
        return task_key(self.name)

    @property
    def is_span(self):
        return self.kind == heads.SPAN

    @property
    def is_regression(self):
        return self.labels is None and not self.is_span

    @property
    def num_outputs(self):
        """The head's width: classes (regression: 1; span: 2, start and end)."""
        return SPAN_OUTPUTS if self.is_span else int(self.config["num_outputs"])

    @property
    def num_scores(self):
        """Scores per prediction: class probabilities, [raw score], or [answer probability]."""
        return 1 if self.is_span else self.num_outputs

    @property
    def max_seq_length(self):
        """Tokens per window of a span task (its training length)."""
        return int(self.config.get("max_seq_length") or SPAN_DEFAULTS["max_seq_length"])

    def span_setting(self, field):
        """`doc_stride`, `max_query_length`, `n_best_size` or `max_answer_length` of a span task."""
        return int(self.config.get(field) or SPAN_DEFAULTS[field])

    @property
    def adapter_size(self):
        """The adapters' bottleneck size; 0 for a task that trained none (`layer_norm`)."""
        return int(self.config.get("adapter_size") or 0)

    @property
    def fingerprint(self):
        return self.config["base_fingerprint"]


def read_bank_task(directory, name=None):
    """Reads and checks the artifact in `directory` (or its `task_artifact/`).

    Args:
        directory: a task artifact or a run's output directory.
        name: the task's name in the bank; default the artifact's `task`.

    Raises:
        BankError: the artifact is not a classification/regression task, was
            trained with a tuning that changes the base, or holds a weight a
            bank cannot share; the message names the artifact.
    """
    directory = artifact.resolve_artifact_dir(directory)
    config_path = io_utils.join(directory, artifact.CONFIG_FILE)
    try:
        config = artifact.read_task_config(directory)
    except (FileNotFoundError, ValueError) as err:
        raise BankError(str(err)) from None
    kind = config.get("kind", heads.CLASSIFICATION)
    if kind not in heads.KINDS:
        raise BankError(f"{config_path}: kind {kind!r}: the bank serves "
                        f"{' and '.join(repr(k) for k in heads.KINDS)} tasks")
    tuning = config.get("tuning")
    if tuning not in SHAREABLE_TUNING:
        raise BankError(
            f"{config_path}: trained with tuning={tuning!r}, which changes the base encoder's "
            f"own weights; a bank shares one frozen base between its tasks, so it takes only "
            f"{' or '.join(repr(t) for t in SHAREABLE_TUNING)} artifacts. Serve this task on its "
            f"own (run_classifier.py --task_dir {directory} --do_predict) or retrain it with "
            f"--tuning=adapters")
    required = ("task", "base_fingerprint") + (() if kind == heads.SPAN else ("num_outputs",))
    for field in required:
        if config.get(field) is None:
            raise BankError(f"{config_path}: field {field!r} is missing")
    labels = None if kind == heads.SPAN else (config.get("submission_labels")
                                             or config.get("label_names"))
    if kind == heads.SPAN:
        for field in SPAN_DEFAULTS:
            value = config.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise BankError(f"{config_path}: {field}={value!r}, expected a positive int")
    elif labels is not None:
        labels = tuple(str(label) for label in labels)
        if len(labels) != int(config["num_outputs"]):
            raise BankError(f"{config_path}: {len(labels)} submission labels for "
                            f"num_outputs={config['num_outputs']}")
    elif int(config["num_outputs"]) != 1:
        raise BankError(f"{config_path}: no label names, so a regression task, but "
                        f"num_outputs={config['num_outputs']} (expected 1)")
    weights_path = io_utils.join(directory, artifact.WEIGHTS_FILE)
    if not io_utils.exists(weights_path):
        raise BankError(f"{weights_path} not found: {directory} is not a complete task artifact")
    with io_utils.gfile_open(weights_path, "rb") as f:
        weights = safetensors.numpy.load(f.read())
    for weight_name in weights:
        if not _is_shareable(weight_name):
            raise BankError(
                f"{weights_path}: holds {weight_name!r}, a weight of the shared base; a bank "
                f"takes only adapters, LayerNorms and the head")
    name = config["task"] if name is None else name
    if not task_key(name):
        raise BankError(f"{config_path}: task name {name!r} has no letter or digit")
    return BankTask(name=str(name), source=str(directory), config=config, labels=labels,
                    text_mode=PAIR if kind == heads.SPAN else _text_mode(config["task"]),
                    weights={k: np.asarray(v, np.float32) for k, v in weights.items()},
                    kind=kind)


def check_texts(task_name, text_mode, text_a, text_b, where="example"):
    """Raises BankError unless `text_a` and `text_b` (None or "": absent) fit the task.

    `where` starts the message (`requests.jsonl:3`); the message names the
    field at fault and what was expected.
    """
    if not isinstance(text_a, str) or not text_a.strip():
        raise BankError(f'{where}: field "text_a" must be a non-empty string, found {text_a!r}')
    if text_b is not None and not isinstance(text_b, str):
        raise BankError(f'{where}: field "text_b" must be a string, found {text_b!r}')
    if text_mode == PAIR and not (text_b or "").strip():
        raise BankError(f'{where}: field "text_b" is missing: task {task_name} takes a pair of '
                        f'texts (text_a and text_b)')
    if text_mode == SINGLE and text_b:
        raise BankError(f'{where}: field "text_b" given, but task {task_name} takes one text '
                        f'(text_a only)')


def check_span_texts(task_name, question, context, where="example",
                     fields=("text_a", "text_b")):
    """Raises BankError unless a span task's `question` and `context` are non-empty strings.

    `fields` are the names the request gave them (`question`/`context` or
    `text_a`/`text_b`), quoted in the message.
    """
    for field, value, what in zip(fields, (question, context), ("question", "context")):
        if value is None:
            raise BankError(f'{where}: field "{field}" is missing: task {task_name} is a span '
                            f'task and takes a question and a context')
        if not isinstance(value, str) or not value.strip():
            raise BankError(f'{where}: field "{field}" (the {what}) must be a non-empty string, '
                            f'found {value!r}')


def _is_shareable(name):
    return name.startswith("head/") or is_adapter_weight(name) or "layer_norm/" in name


def _text_mode(task_name):
    """GLUE tasks say whether they take a pair; a custom task's artifact does not."""
    try:
        task = get_task(task_name)
    except ValueError:
        return PAIR_IF_GIVEN
    layouts = list(task.layouts.values())
    if not layouts:
        return PAIR_IF_GIVEN
    return PAIR if layouts[0].text_b is not None else SINGLE
