"""bert-adapters: Houlsby et al. (2019) adapters for BERT in TensorFlow 2 / Keras 3.

Public entry points:
  load_encoder(source, *, adapter_size=None, adapter_init_scale=1e-2, **overrides)
  load_tokenizer(source, *, max_seq_length=128)
"""

import os

# TensorFlow turns its oneDNN kernels on by default only on Intel CPUs. On the
# AMD EPYC machines this was developed on they make a training step about 2x
# faster (benchmarks/train_throughput.py), so they are on here too unless the
# user says otherwise. Only effective if TensorFlow is not imported yet.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# TensorFlow without its native start-up lines (cuInit, oneDNN notices):
# they come back with --verbosity=1 or TF_CPP_MIN_LOG_LEVEL=0 (terminal.py).
from bert_adapters.cli import terminal  # noqa: E402

terminal.quiet_tensorflow()

from bert_adapters.model.adapter import Adapter  # noqa: E402
from bert_adapters.model.bert_encoder import BertConfig, BertEncoder  # noqa: E402
from bert_adapters.checkpoints import load_encoder, locate_vocab  # noqa: E402
from bert_adapters.data.tokenization import BertTokenizer  # noqa: E402

__all__ = ["Adapter", "BertConfig", "BertEncoder", "BertTokenizer", "load_encoder",
           "load_tokenizer", "locate_vocab"]


def load_tokenizer(source=None, *, max_seq_length=128, vocab_file=None, init_checkpoint=None):
    """The WordPiece tokenizer of `source`, with its own vocabulary and casing.

    `source` is anything `load_encoder` accepts. Returns a `BertTokenizer`:
    `tokenizer(texts_a, texts_b=None)` gives the encoder's input dict,
    `[CLS] a [SEP] (b [SEP])`, padded to `max_seq_length`.
    """
    vocab, lower_case = locate_vocab(source, vocab_file=vocab_file,
                                     init_checkpoint=init_checkpoint)
    return BertTokenizer(vocab, lower_case=lower_case, max_seq_length=max_seq_length)
