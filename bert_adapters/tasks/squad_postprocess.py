"""Start/end logits of every window -> one answer text per SQuAD question.

BERT's `write_predictions` (`run_squad.py`) for SQuAD v1.1: in each window the
`n_best_size` highest start and end logits are paired; a pair is a candidate
when both tokens lie in the window's context, the end is not before the start,
the span has at most `max_answer_length` tokens and the start token is scored
in this window (`token_is_max_context`: a token seen in two windows counts in
the one giving it more context). Candidates of all the question's windows are
ranked by start + end logit; the best `n_best_size` distinct texts form the
n-best list, with probabilities from a softmax over their scores.

The text is cut from the original context by the tokens' character spans, so
the answer is the original text ("Beyoncé's", not "beyonce ' s"), where BERT
re-aligns detokenized pieces with the text (`get_final_text`). A question
without any candidate gets "" (BERT writes "empty").

Example:
    predictions, nbest = postprocess(data.examples, features, start_logits, end_logits)
    predictions["56be4db0acb8001400a502ec"]  # "Denver Broncos"
"""

import numpy as np


def postprocess(examples, features, start_logits, end_logits, n_best_size=20,
                max_answer_length=30):
    """The answer of every question and its n-best list.

    Args:
        examples: the `SquadExample`s the features were made from.
        features: their `SquadFeatures` (`convert_examples`).
        start_logits: float array `[num_features, seq_length]`, one row per
            feature; `seq_length` may be shorter than the features' rows (the
            positions past it are never chosen).
        end_logits: float array of the same shape.
        n_best_size: int >= 1, start and end indexes tried per window, and
            answers kept per question.
        max_answer_length: int >= 1, the most tokens in an answer.

    Returns:
        `(predictions, nbest)`: `predictions` maps each question's `qas_id`
        to its answer text; `nbest` maps it to a list of dicts `text`,
        `probability`, `start_logit`, `end_logit`, best first.
    """
    examples = list(examples)
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    num_features, max_seq_length = features.token_to_char.shape[:2]
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2:
        raise ValueError(f"start_logits and end_logits must both be [num_features, seq_length], "
                         f"got {start_logits.shape} and {end_logits.shape}")
    if start_logits.shape[0] != num_features or start_logits.shape[1] > max_seq_length:
        raise ValueError(f"logits of shape {start_logits.shape} do not fit {num_features} "
                         f"features of length {max_seq_length}")
    if num_features and int(features.example_index.max()) >= len(examples):
        raise ValueError(f"features refer to example {int(features.example_index.max())} but "
                         f"only {len(examples)} examples were given")
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size and max_answer_length must be >= 1, got {n_best_size} "
                         f"and {max_answer_length}")

    features_of = [[] for _ in examples]
    for feature, index in enumerate(features.example_index):
        features_of[index].append(feature)
    predictions, nbest = {}, {}
    for example, feature_indices in zip(examples, features_of):
        candidates = [_candidates(features, f, start_logits[f], end_logits[f], n_best_size,
                                  max_answer_length) for f in feature_indices]
        entries = _nbest(example.context_text, features, candidates, n_best_size)
        predictions[example.qas_id] = entries[0]["text"]
        nbest[example.qas_id] = entries
    return predictions, nbest


def _best_indexes(logits, n_best_size):
    """The n highest logits' positions, highest first (ties: lower position first)."""
    return np.argsort(-logits, kind="stable")[:n_best_size]


def _candidates(features, feature, start_logits, end_logits, n_best_size, max_answer_length):
    """The valid spans of one window, in the order BERT appends them, with their logits.

    Returns `(feature, starts, ends, start_logits, end_logits)`, arrays with
    one entry per span, ordered by start rank, then end rank.
    """
    seq_length = start_logits.shape[0]
    in_context = features.token_to_char[feature, :seq_length, 0] >= 0
    max_context = features.token_is_max_context[feature, :seq_length]
    starts = _best_indexes(start_logits, n_best_size)[:, np.newaxis]
    ends = _best_indexes(end_logits, n_best_size)[np.newaxis, :]
    valid = (in_context[starts] & max_context[starts] & in_context[ends]
             & (ends >= starts) & (ends - starts + 1 <= max_answer_length))
    starts, ends = np.broadcast_arrays(starts, ends)
    starts, ends = starts[valid], ends[valid]  # Row-major: start rank, then end rank.
    return (np.full(len(starts), feature), starts, ends, start_logits[starts],
            end_logits[ends])


def _nbest(context, features, candidates, n_best_size):
    """The best distinct answer texts over all windows of a question."""
    if not any(len(c[0]) for c in candidates):
        return [{"text": "", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}]
    feature_ids, starts, ends, start_logits, end_logits = (
        np.concatenate([c[k] for c in candidates]) for k in range(5))
    entries, seen = [], set()
    # Stable, so equal scores keep BERT's order: window, start rank, end rank.
    for i in np.argsort(-(start_logits + end_logits), kind="stable"):
        char_start = features.token_to_char[feature_ids[i], starts[i], 0]
        char_end = features.token_to_char[feature_ids[i], ends[i], 1]
        text = context[char_start:char_end]
        if text in seen:
            continue
        seen.add(text)
        entries.append({"text": text, "start_logit": float(start_logits[i]),
                        "end_logit": float(end_logits[i])})
        if len(entries) == n_best_size:
            break
    scores = np.array([e["start_logit"] + e["end_logit"] for e in entries])
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    return [{"text": e["text"], "probability": float(p), "start_logit": e["start_logit"],
             "end_logit": e["end_logit"]} for e, p in zip(entries, probabilities)]
