"""The shared test harness: tiny configs, a data location, helpers."""

import os
import pathlib

import numpy as np
import pytest

import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
import tensorflow as tf

# Two logical CPU devices, so MirroredStrategy can be tested without GPUs.
# This must run before TensorFlow initialises its devices.
try:
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # Devices already initialised (e.g. imported elsewhere first).
    pass

from bert_adapters.model.bert_encoder import BertConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Real GLUE / SQuAD files; never copied into the repository.
DATA_DIR = pathlib.Path(os.environ.get("BERT_ADAPTERS_DATA", REPO_ROOT.parent / "shared" / "data"))


def tiny_config(**overrides):
    """2 layers, hidden 8: every unit test's encoder."""
    fields = dict(vocab_size=64, hidden_dim=8, num_layers=2, num_heads=2, intermediate_dim=16,
                  max_sequence_length=32, type_vocab_size=2, dropout=0.0, attention_dropout=0.0)
    fields.update(overrides)
    return BertConfig(**fields)


def random_inputs(batch_size=3, seq_length=7, vocab_size=64, seed=0, pad_last=2):
    """A random encoder input dict; the last `pad_last` positions of row 0 are padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab_size, size=(batch_size, seq_length)).astype("int32")
    mask = np.ones_like(ids)
    if pad_last:
        mask[0, -pad_last:] = 0
        ids[0, -pad_last:] = 0
    types = np.zeros_like(ids)
    types[:, seq_length // 2:] = 1
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


def random_canonical_weights(encoder, seed=0, scale=0.2):
    """Random values for every canonical base weight (adapters excluded)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, var in encoder.base_weight_map().items():
        shape = tuple(var.shape)
        if name.endswith("/gamma"):
            weights[name] = (1.0 + scale * rng.standard_normal(shape)).astype("float32")
        else:
            weights[name] = (scale * rng.standard_normal(shape)).astype("float32")
    return weights


def require_data(*parts):
    """Returns DATA_DIR/parts, skipping the test when the real data is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set BERT_ADAPTERS_DATA)")
    return path


@pytest.fixture(autouse=True)
def _separate_collective_keys():
    """Tests that build their own MirroredStrategy get collective keys apart from earlier tests'.

    (One process runs every test: see distribution.new_mirrored_strategy.)
    """
    from bert_adapters.training import distribution
    tf.distribute.MirroredStrategy._collective_key_base += distribution._KEY_SPACING


@pytest.fixture
def cpu_numerics():
    """The ops' CPU kernels, run on the CPU: the tests of those kernels select
    them on any machine (where a GPU is present they would step aside)."""
    from bert_adapters.ops import settings
    with tf.device("/CPU:0"), settings.use(devices="cpu"):
        yield
