"""The official SQuAD v1.1 metric, against hand-worked cases."""

import logging

import pytest

from bert_adapters.tasks.squad_metric import evaluate, exact_match_score, f1_score, normalize_answer


@pytest.mark.parametrize("text, normalized", [
    ("The Denver Broncos", "denver broncos"),
    ("  an   Apple, a day! ", "apple day"),
    ("theater of the absurd", "theater of absurd"),  # "the" only as a word
    ("A.M. (ante meridiem)", "am ante meridiem"),  # ASCII punctuation only
    ("Beyoncé’s “Halo”", "beyoncé’s “halo”"),  # typographic quotes are not ASCII
    ("the", ""),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match():
    assert exact_match_score("the Denver Broncos.", "Denver Broncos")
    assert exact_match_score("An Apple", "apple")
    assert not exact_match_score("Denver", "Denver Broncos")
    assert not exact_match_score("", "Denver")


def test_f1_by_hand():
    # "the big red dog" -> [big, red, dog]; "red dog barks" -> [red, dog, barks]:
    # 2 common tokens, precision 2/3, recall 2/3, F1 2/3.
    assert f1_score("the big red dog", "red dog barks") == pytest.approx(2 / 3)
    # [x, x, y] vs [x, y, y]: common min counts x 1 + y 1 = 2, P = R = 2/3.
    assert f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    # [denver] vs [denver, broncos]: P = 1, R = 1/2, F1 = 2 * 0.5 / 1.5 = 2/3.
    assert f1_score("Denver", "the Denver Broncos") == pytest.approx(2 / 3)
    # [1981] vs [born, in, 1981, in, houston]: P = 1, R = 1/5, F1 = 2 * 0.2 / 1.2 = 1/3.
    assert f1_score("1981", "born in 1981 in Houston") == pytest.approx(1 / 3)
    assert f1_score("cat", "dog") == 0.0
    assert f1_score("", "dog") == 0.0
    assert f1_score("the", "a") == 0.0  # Both normalise to nothing.
    assert f1_score("Denver Broncos!", "denver broncos") == 1.0


def test_evaluate_max_over_gold_and_missing(caplog):
    gold = {
        "q1": ["Denver Broncos", "The Broncos"],  # "broncos" matches the second exactly
        "q2": ["red dog barks", "dog"],  # "the big red dog": F1 2/3 and (P 1/3, R 1) 1/2: max 2/3
        "q3": ["Houston"],  # no prediction: 0
        "q4": ["Santa Clara", "Levi's Stadium"],  # wrong: 0
    }
    predictions = {"q1": "Broncos", "q2": "the big red dog", "q4": "Denver",
                   "unknown": "ignored"}
    with caplog.at_level(logging.WARNING):
        result = evaluate(gold, predictions)
    # Exact match: q1 only -> 1 / 4. F1: (1 + 2/3 + 0 + 0) / 4.
    assert result["exact_match"] == pytest.approx(25.0)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 4)
    assert result["num_questions"] == 4
    assert "1 of 4 question(s) have no prediction" in caplog.text


def test_evaluate_perfect_and_empty():
    gold = {"a": ["x y"], "b": ["z"]}
    assert evaluate(gold, {"a": "X  y.", "b": "the z"}) == {"exact_match": 100.0, "f1": 100.0,
                                                            "num_questions": 2}
    assert evaluate({}, {"a": "x"}) == {"exact_match": 0.0, "f1": 0.0, "num_questions": 0}
    with pytest.raises(ValueError, match="must be a list of texts"):
        evaluate({"a": "x y"}, {"a": "x"})
