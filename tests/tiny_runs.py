"""Shared by the trainer, sweep and submission tests: a tiny HF BERT and tiny GLUE data."""

import json
import os
import textwrap

import numpy as np

from checkpoint_writers import VOCAB, write_tiny_hf_encoder
from conftest import tiny_config

WORDS = VOCAB[5:]  # w0 .. w58: every word is one WordPiece of the tiny vocabulary.
RTE_LABELS = ("entailment", "not_entailment")


def write_tiny_encoder(directory, seed=4, **config_overrides):
    """A 2-layer, hidden-8 BERT as a Hugging Face directory; returns its path."""
    return write_tiny_hf_encoder(str(directory), tiny_config(**config_overrides), seed=seed,
                                 hidden_act="gelu")


def _sentence(rng):
    return " ".join(rng.choice(WORDS, size=rng.integers(3, 8)))


def write_tiny_rte(directory, num_train=24, num_dev=10, num_test=12, seed=0):
    """RTE's GLUE TSV layout (index, sentence1, sentence2[, label]); returns the folder."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for split, count, labelled in (("train", num_train, True), ("dev", num_dev, True),
                                   ("test", num_test, False)):
        header = "index\tsentence1\tsentence2" + ("\tlabel" if labelled else "")
        rows = [header]
        for i in range(count):
            row = f"{i}\t{_sentence(rng)}\t{_sentence(rng)}"
            if labelled:
                row += f"\t{RTE_LABELS[i % 2]}"
            rows.append(row)
        with open(os.path.join(directory, f"{split}.tsv"), "w") as f:
            f.write("\n".join(rows) + "\n")
    return str(directory)


def write_hparams(path, config, sweep_expr, runner=None):
    """An hparams file with `get_config()` = config and `get_sweep()` = sweep_expr."""
    text = f'''\
        """A test sweep."""

        from bert_adapters.sweep import grid
        {"RUNNER = " + repr(runner) if runner else ""}

        def get_config():
            return {config!r}


        def get_sweep():
            return {sweep_expr}
        '''
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return str(path)


# Settings of a trial that trains in a second or two on the tiny encoder.
TINY_RUN = {"max_seq_length": 16, "train_batch_size": 4, "eval_batch_size": 8,
            "max_train_steps": 2, "save_checkpoints_steps": 1, "log_every_steps": 1,
            "adapter_size": 2}


def write_tiny_squad(path, num_articles=3, questions_per_paragraph=4, seed=0):
    """A SQuAD v1.1 file of tiny-vocabulary words; answers are spans of the context."""
    rng = np.random.default_rng(seed)
    articles = []
    for a in range(num_articles):
        paragraphs = []
        for p in range(2):
            words = list(rng.choice(WORDS, size=int(rng.integers(20, 40))))
            context = " ".join(words)
            qas = []
            for q in range(questions_per_paragraph):
                start = int(rng.integers(0, len(words) - 3))
                length = int(rng.integers(1, 4))
                text = " ".join(words[start:start + length])
                char_start = len(" ".join(words[:start])) + (1 if start else 0)
                assert context[char_start:char_start + len(text)] == text
                qas.append({"id": f"a{a}p{p}q{q}", "question": " ".join(rng.choice(WORDS, 5)),
                            "answers": [{"text": text, "answer_start": char_start}]})
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": f"article {a}", "paragraphs": paragraphs})
    with open(path, "w") as f:
        json.dump({"version": "1.1", "data": articles}, f)
    return str(path)
