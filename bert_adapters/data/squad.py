"""SQuAD v1.1 questions, from the official JSON files or from TFDS `squad/v1.1`.

The JSON layout (`train-v1.1.json`, `dev-v1.1.json`):
`{"version": "1.1", "data": [{"title", "paragraphs": [{"context", "qas":
[{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}`, where
`answer_start` counts characters (not bytes) of `context`.

A question keeps every gold answer, in file order: training uses the first
(as BERT's `run_squad.py`), evaluation takes the best over all of them. An
answer whose `answer_start` does not point at its `text` would train on a
wrong span, so a training read drops that question and says so
(`SquadData.skipped`); an evaluation read keeps it, its gold texts being what
the metric compares against. BERT's reader instead checks the answer against
the context split on whitespace, a looser test; the dev file passes both.

A SQuAD v2.0 file (`"version": "v2.0"`, or a question with `"is_impossible":
true`) is refused with one error naming the file, as `--version_2_with_negative`
is: read as v1.1 it would silently train without its unanswerable questions
and predict an answer for every one of them.

Example:
    data = read_squad_json("dev-v1.1.json", is_training=False)
    len(data.examples), data.examples[0].answers[0]  # 10570, ("Denver Broncos", 177)
"""

import dataclasses
import json
import os

import tensorflow as tf
from absl import logging

_TFDS_NAME = "squad/v1.1"
_TFDS_BATCH_SIZE = 1024  # Examples per batch when reading TFDS: far faster than one by one.
_MAX_LISTED = 10  # Skipped question ids quoted in a warning.
_V2_REFUSED = ("SQuAD v2.0 is not supported; this project reproduces the paper's SQuAD v1.1 "
               "(pass v1.1 files)")


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question about one paragraph.

    Args:
        qas_id: the question's `id`, the key of `predictions.json`.
        question_text: the question.
        context_text: the paragraph, verbatim.
        answers: every gold answer as `(text, answer_start)`, in file order;
            `answer_start` is a character offset into `context_text`. Empty
            when the file gives none (a file to predict on).
        title: the article's title ("" when the file has none).
    """

    qas_id: str
    question_text: str
    context_text: str
    answers: tuple
    title: str


@dataclasses.dataclass
class SquadData:
    """The questions of one file or split.

    Args:
        examples: the questions kept, in file order.
        source: where they were read from (a path or `tfds:squad/v1.1/<split>`).
        num_skipped: questions dropped (training reads only).
        skipped: one short reason per dropped question, naming its id.
    """

    examples: list
    source: str
    num_skipped: int = 0
    skipped: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.examples)


def read_squad_json(path, is_training):
    """Reads a SQuAD v1.1 JSON file (local or `gs://`, through `tf.io.gfile`).

    Args:
        path: the JSON file.
        is_training: drop (and count) questions whose `answer_start` does not
            point at their answer text, or that have no answer; otherwise they
            are kept.

    Returns:
        `SquadData`.

    Raises:
        ValueError: malformed JSON (with its line and column), no `data`
            list, a paragraph without `context`, a question without `id` or
            `question`, a malformed answer, a question id used twice, or a
            SQuAD v2.0 file; the message names the file and the article /
            paragraph / question.
    """
    path = os.fspath(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 at byte {e.start}: {e.reason}") from None
    try:
        dataset = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                         ) from None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        found = (f"keys {sorted(dataset)}" if isinstance(dataset, dict) else _describe(dataset))
        raise ValueError(f"{path}: expected a JSON object with a \"data\" list of articles "
                         f"(SQuAD v1.1: {{\"version\", \"data\": [...]}}), found {found}")
    version = str(dataset.get("version", ""))
    if version.lower().lstrip("v").startswith("2"):
        raise ValueError(f"{path}: \"version\": {version!r}: {_V2_REFUSED}")

    examples, skipped = [], []
    first_seen = {}  # qas_id -> where it first appeared
    for a, article in enumerate(dataset["data"], start=1):
        if not isinstance(article, dict):
            raise ValueError(f"{path}: article {a}: expected an object, got {_describe(article)}")
        title = str(article.get("title", ""))
        article_at = f"article {a} ({title!r})" if title else f"article {a}"
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise ValueError(f"{path}: {article_at}: no \"paragraphs\" list")
        for p, paragraph in enumerate(paragraphs, start=1):
            paragraph_at = f"{article_at}, paragraph {p}"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise ValueError(f"{path}: {paragraph_at}: no \"context\" string")
            context = paragraph["context"]
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise ValueError(f"{path}: {paragraph_at}: no \"qas\" list")
            for q, qa in enumerate(qas, start=1):
                question_at = f"{paragraph_at}, question {q}"
                if not isinstance(qa, dict):
                    raise ValueError(f"{path}: {question_at}: expected an object, got "
                                     f"{_describe(qa)}")
                for field in ("id", "question"):
                    if not isinstance(qa.get(field), str):
                        raise ValueError(f"{path}: {question_at}: no \"{field}\" string")
                qas_id = qa["id"]
                if qa.get("is_impossible"):
                    raise ValueError(f"{path}: {question_at} ({qas_id!r}) has \"is_impossible\": "
                                     f"true, a SQuAD v2.0 question: {_V2_REFUSED}")
                if qas_id in first_seen:
                    raise ValueError(f"{path}: question id {qas_id!r} appears twice: at "
                                     f"{first_seen[qas_id]} and at {question_at}")
                first_seen[qas_id] = question_at
                answers = _read_answers(qa.get("answers", []), f"{path}: {question_at}")
                if is_training:
                    reason = _training_problem(qas_id, context, answers)
                    if reason:
                        skipped.append(reason)
                        continue
                examples.append(SquadExample(qas_id=qas_id, question_text=qa["question"],
                                             context_text=context, answers=answers,
                                             title=title))
    _warn_skipped(path, skipped)
    return SquadData(examples=examples, source=path, num_skipped=len(skipped),
                     skipped=skipped)


def load_squad_tfds(split, data_dir=None):
    """Reads a split of TFDS `squad/v1.1` (`"train"` or `"validation"`).

    The dataset must already be prepared in `data_dir` (or TFDS's default
    directory): nothing is downloaded. Every question is kept, as read.

    Args:
        split: a TFDS split (slicing such as `"train[:10%]"` works too).
        data_dir: TFDS's data directory; `None` for TFDS's default.

    Returns:
        `SquadData` with `source` `tfds:squad/v1.1/<split>`.

    Raises:
        FileNotFoundError: the dataset is not prepared there.
    """
    import tensorflow_datasets as tfds  # Slow to import: only when used.

    source = f"tfds:{_TFDS_NAME}/{split}" + (f" in {data_dir}" if data_dir else "")
    try:
        dataset = tfds.load(_TFDS_NAME, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 - TFDS raises AssertionError, OSError, ...
        raise FileNotFoundError(
            f"could not read {source}: {type(e).__name__}: {e}\n"
            f"TFDS datasets are never downloaded here. Either pass the SQuAD v1.1 JSON files "
            f"(--train_file / --predict_file), or prepare the dataset (`tfds build "
            f"{_TFDS_NAME}` on a machine with network access) and pass its directory.") from e

    examples = []
    # ragged_batch: questions have different numbers of answers.
    for batch in tfds.as_numpy(dataset.ragged_batch(_TFDS_BATCH_SIZE)):
        texts = _rows(batch["answers"]["text"])
        starts = _rows(batch["answers"]["answer_start"])
        for i in range(len(batch["id"])):
            answers = tuple((_str(t), int(s)) for t, s in zip(texts[i], starts[i]))
            examples.append(SquadExample(
                qas_id=_str(batch["id"][i]), question_text=_str(batch["question"][i]),
                context_text=_str(batch["context"][i]), answers=answers,
                title=_str(batch["title"][i])))
    return SquadData(examples=examples, source=source)


def _read_answers(answers, where):
    """The `(text, answer_start)` pairs of a question's `answers` list."""
    if not isinstance(answers, list):
        raise ValueError(f"{where}: \"answers\" must be a list, got {_describe(answers)}")
    pairs = []
    for n, answer in enumerate(answers, start=1):
        if (not isinstance(answer, dict) or not isinstance(answer.get("text"), str)
                or isinstance(answer.get("answer_start"), bool)
                or not isinstance(answer.get("answer_start"), int)):
            raise ValueError(f"{where}, answer {n}: expected {{\"text\": str, "
                             f"\"answer_start\": int}}, got {answer!r}")
        pairs.append((answer["text"], answer["answer_start"]))
    return tuple(pairs)


def _training_problem(qas_id, context, answers):
    """Why a question cannot be trained on, or None."""
    if not answers:
        return f"{qas_id}: no answer"
    for n, (text, start) in enumerate(answers, start=1):
        if start < 0 or context[start:start + len(text)] != text:
            found = context[max(start, 0):max(start, 0) + len(text)]
            return (f"{qas_id}: answer {n} {text!r} is not at answer_start {start} "
                    f"(the context has {found!r} there)")
    return None


def _warn_skipped(path, skipped):
    if skipped:
        listed = "; ".join(skipped[:_MAX_LISTED])
        more = f"; and {len(skipped) - _MAX_LISTED} more" if len(skipped) > _MAX_LISTED else ""
        logging.warning("%s: skipped %d training question(s) whose answer is not where "
                        "answer_start says (or that have none): %s%s",
                        path, len(skipped), listed, more)


def _describe(value):
    return f"{type(value).__name__} {str(value)[:40]!r}"


def _rows(values):
    """A batch column as a list of rows (a ragged tensor or an array)."""
    return values.to_list() if hasattr(values, "to_list") else list(values)


def _str(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
