"""The official SQuAD v1.1 metric: exact match and token F1, in percent.

As the official `evaluate-v1.1.py`: both texts are normalised (lower case,
punctuation removed, the articles a / an / the removed, whitespace collapsed);
exact match asks for equal normalised strings, F1 compares their
whitespace tokens as multisets. Each question scores the best over its gold
answers; a question without a prediction scores 0 and is counted (the
official script prints a message for each, here one warning gives the
count); predictions for unknown ids are ignored.

Example:
    gold = {e.qas_id: [text for text, _ in e.answers] for e in data.examples}
    evaluate(gold, predictions)  # {"exact_match": 81.2, "f1": 88.5, "num_questions": 10570}
"""

import collections
import re
import string

from absl import logging

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text):
    """Lower case, no punctuation, no articles, single spaces (in that order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction, ground_truth):
    """True when both texts are equal after `normalize_answer`."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction, ground_truth):
    """Harmonic mean of token precision and recall after `normalize_answer` (0..1)."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    overlap = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted)
    recall = overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def evaluate(gold, predictions):
    """Exact match and F1 over every question of `gold`, in percent.

    Args:
        gold: `{qas_id: [gold answer texts]}`, every question to score.
        predictions: `{qas_id: predicted text}`.

    Returns:
        `{"exact_match": float, "f1": float, "num_questions": int}`, the
        scores in percent (0..100) as the official script prints them.
    """
    exact = f1 = 0.0
    missing = 0
    for qas_id, answers in gold.items():
        if qas_id not in predictions:
            missing += 1
            continue
        if isinstance(answers, str):
            raise ValueError(f"gold answers of {qas_id!r} must be a list of texts, got the "
                             f"string {answers!r}")
        prediction = predictions[qas_id]
        exact += max((exact_match_score(prediction, a) for a in answers), default=0.0)
        f1 += max((f1_score(prediction, a) for a in answers), default=0.0)
    if missing:
        logging.warning("SQuAD evaluation: %d of %d question(s) have no prediction and score 0",
                        missing, len(gold))
    total = len(gold)
    return {"exact_match": 100.0 * exact / total if total else 0.0,
            "f1": 100.0 * f1 / total if total else 0.0,
            "num_questions": total}
