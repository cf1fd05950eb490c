"""bert-adapters: Houlsby et al. (2019) adapters for BERT in TensorFlow 2 / Keras 3.

Public entry points:
  load_encoder(source, *, adapter_size=None, adapter_init_scale=1e-2, **overrides)
  load_tokenizer(source, *, max_seq_length=128)
"""

from bert_adapters.adapter import Adapter
from bert_adapters.bert_encoder import BertConfig, BertEncoder
from bert_adapters.checkpoints import load_encoder, locate_vocab
from bert_adapters.tokenization import BertTokenizer

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
