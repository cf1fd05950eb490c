"""The embedded encoder (`minilm_l6`, sentence-transformers all-MiniLM-L6-v2).

Checked against a NumPy BERT that reads the safetensors file itself, and on
what the model was trained for: a paraphrase ranks above an unrelated
sentence under mean pooling.
"""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from safetensors.numpy import load_file

from bert_adapters import checkpoints

SENTENCES = ["A man is playing a guitar.",
             "Someone is playing an instrument.",
             "The stock market fell sharply on Monday."]


@pytest.fixture(scope="module")
def minilm():
    return checkpoints.load_encoder("minilm_l6")


@pytest.fixture(scope="module")
def batch():
    """Token ids of SENTENCES as `[CLS] ... [SEP]`, padded with [PAD]=0."""
    vocab_file, lower_case = checkpoints.locate_vocab("minilm_l6")
    tokenizer = tf_text.BertTokenizer(vocab_file, lower_case=lower_case,
                                      token_out_type=tf.int32)
    rows = [[101] + list(tokenizer.tokenize([s]).merge_dims(1, -1)[0].numpy()) + [102]
            for s in SENTENCES]
    length = max(map(len, rows))
    ids = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    mask = (ids != 0).astype("int32")
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


def _mean_pool(sequence, mask):
    mask = mask[..., None].astype("float64")
    return (np.asarray(sequence, "float64") * mask).sum(1) / mask.sum(1)


def _numpy_bert(model_dir, ids, mask, num_layers=6, num_heads=12, eps=1e-12):
    """BERT in NumPy straight from HF names: post-LN, exact (erf) GELU."""
    t = {k: v.astype("float64") for k, v in
         load_file(os.path.join(model_dir, "model.safetensors")).items()
         if k != "embeddings.position_ids"}
    erf = np.vectorize(math.erf)

    def norm(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * t[f"{name}.weight"] + t[f"{name}.bias"]

    def linear(x, name):  # torch Linear: y = x W^T + b
        return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]

    seq = ids.shape[1]
    x = (t["embeddings.word_embeddings.weight"][ids]
         + t["embeddings.position_embeddings.weight"][:seq]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = norm(x, "embeddings.LayerNorm")
    bias = (1.0 - mask[:, None, None, :]) * -1e9
    for i in range(num_layers):
        p = f"encoder.layer.{i}"

        def heads(y):
            return y.reshape(y.shape[0], seq, num_heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (heads(linear(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = norm(x + linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = norm(x + linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    return x


def test_minilm_config(minilm):
    c = minilm.config
    assert (c.num_layers, c.hidden_dim, c.num_heads, c.intermediate_dim) == (6, 384, 12, 1536)
    assert (c.vocab_size, c.max_sequence_length, c.activation) == (30522, 512, "gelu")
    assert minilm.source.startswith("hf:") and "minilm_l6" in minilm.source


def test_minilm_matches_numpy_reference(minilm, batch):
    _, model_dir = checkpoints.resolve("minilm_l6")
    ours = minilm(batch, training=False)["sequence_output"]
    reference = _numpy_bert(model_dir, batch["input_word_ids"], batch["input_mask"])
    np.testing.assert_allclose(_mean_pool(ours, batch["input_mask"]),
                               _mean_pool(reference, batch["input_mask"]), atol=1e-4)


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(minilm, batch):
    emb = _mean_pool(minilm(batch, training=False)["sequence_output"], batch["input_mask"])
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    paraphrase, unrelated = emb[0] @ emb[1], emb[0] @ emb[2]
    assert paraphrase > unrelated + 0.2, (paraphrase, unrelated)
