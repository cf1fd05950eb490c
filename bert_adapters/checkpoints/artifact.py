"""Task artifacts: only what a task trained, plus what is needed to reuse it.

A task artifact is a directory holding
  - `weights.safetensors`: the weights the task trained (adapters, every
    LayerNorm and the head for `adapters`; the whole encoder for `full`), in
    the package's canonical names plus `head/kernel`, `head/bias`;
  - `task_config.json`: the task kind (`classification` or `span`) and what
    its head needs (labels, outputs), tuning and adapter settings (the
    layers holding adapters: `adapter_layers`, absent or null for all), the base
    encoder's source and fingerprint. Written last, so a directory without it
    is incomplete.
Loading it onto a base whose fingerprint differs is refused: the adapters
were trained against that base's exact weights.

Only model code is needed to use an artifact (`load_task_model`): the bank
and the analysis commands never import the trainer.
"""

import numpy as np
import safetensors.numpy

from bert_adapters import checkpoints, io_utils
from bert_adapters.model import heads
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from bert_adapters.model.heads import head_weight_map

FORMAT_VERSION = 1
CONFIG_FILE = "task_config.json"
WEIGHTS_FILE = "weights.safetensors"


def trained_weight_map(model, encoder):
    """{canonical name: variable} of every trainable weight of the task model."""
    all_weights = {**encoder.weight_map(), **head_weight_map(model)}
    trainable = {id(v) for v in model.trainable_weights}
    return {name: v for name, v in all_weights.items() if id(v) in trainable}


def save_artifact(directory, model, encoder, task_config, fingerprint):
    """Writes the trained weights and `task_config` (a dict) to `directory`.

    `fingerprint` is the base's `base_fingerprint` taken before training:
    training changes the LayerNorms, which belong to the base.
    """
    io_utils.makedirs(directory)
    weights = {name: np.asarray(v.numpy(), dtype=np.float32)
               for name, v in trained_weight_map(model, encoder).items()}
    io_utils.write_bytes(io_utils.join(directory, WEIGHTS_FILE), safetensors.numpy.save(weights))
    config = dict(task_config)
    config.update({
        "format_version": FORMAT_VERSION,
        "base_fingerprint": fingerprint,
        "trained_weights": sorted(weights),
        "trained_params": int(sum(w.size for w in weights.values())),
    })
    io_utils.write_json(io_utils.join(directory, CONFIG_FILE), config)
    return config


def resolve_artifact_dir(directory):
    """An artifact dir, or a run's output dir holding one in `task_artifact/`."""
    nested = io_utils.join(directory, "task_artifact")
    if not io_utils.exists(io_utils.join(directory, CONFIG_FILE)) and io_utils.exists(nested):
        return nested
    return directory


def read_task_config(directory):
    directory = resolve_artifact_dir(directory)
    path = io_utils.join(directory, CONFIG_FILE)
    if not io_utils.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a complete task artifact "
            f"(expected {CONFIG_FILE} and {WEIGHTS_FILE}, written at the end of training)")
    config = io_utils.read_json(path)  # A damaged file: ValueError naming the line.
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(config).__name__}")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {config.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION}")
    return config


def load_artifact_weights(model, encoder, directory):
    """Assigns an artifact's weights to `model`, refusing a different base.

    Returns the artifact's task config.
    """
    directory = resolve_artifact_dir(directory)
    config = read_task_config(directory)
    fingerprint = base_fingerprint(encoder)
    if config["base_fingerprint"] != fingerprint:
        raise ValueError(
            f"{io_utils.join(directory, CONFIG_FILE)} was trained on base "
            f"{config.get('encoder_source')!r} with fingerprint {config['base_fingerprint']}, "
            f"but the encoder given has fingerprint {fingerprint}: adapters only work on the "
            f"exact base they were trained with")
    path = io_utils.join(directory, WEIGHTS_FILE)
    weights = read_weights(path)
    targets = {**encoder.weight_map(), **head_weight_map(model)}
    problems = [f"{n}: missing" for n in config.get("trained_weights", ()) if n not in weights]
    problems += [f"{n}: not in this model" for n in weights if n not in targets]
    problems += [f"{n}: expected {tuple(targets[n].shape)}, found {weights[n].shape}"
                 for n in weights if n in targets and tuple(targets[n].shape) != weights[n].shape]
    if problems:
        raise ValueError(f"{path} does not fit the task model: {problems}")
    for name, value in weights.items():
        targets[name].assign(value.astype(targets[name].dtype))
    return config


def read_weights(path):
    """{name: array} of a weights.safetensors file; a damaged file is a ValueError."""
    if not io_utils.exists(path):
        raise FileNotFoundError(f"{path} not found: the task artifact's trained weights are "
                                f"missing")
    with io_utils.gfile_open(path, "rb") as f:
        data = f.read()
    try:
        return safetensors.numpy.load(data)
    except Exception as err:  # pylint: disable=broad-except  (SafetensorError, ...)
        raise ValueError(f"{path}: not a readable safetensors file ({err}; {len(data)} "
                         f"bytes): the task artifact is damaged or was cut short") from None


def load_base_encoder(task_config, **overrides):
    """The base encoder an artifact was trained on, with its adapter slots."""
    return checkpoints.load_encoder(
        task_config.get("encoder_source"), adapter_size=task_config.get("adapter_size"),
        adapter_init_scale=task_config.get("adapter_init_scale", 1e-2),
        adapter_layers=task_config.get("adapter_layers"),
        init_checkpoint=task_config.get("init_checkpoint"),
        bert_config_file=task_config.get("bert_config_file"), **overrides)


def load_task_model(directory, encoder=None):
    """A task model with an artifact's trained weights, ready to predict.

    Args:
        directory: a task artifact, or a run's output directory holding one.
        encoder: the base to put it on; default: the base the artifact names
            (read again from its source). Its fingerprint must match.

    Returns:
        (model, encoder, task_config).
    """
    config = read_task_config(directory)
    if encoder is None:
        encoder = load_base_encoder(config)
    model = heads.build_task_model(encoder, config)
    load_artifact_weights(model, encoder, directory)
    return model, encoder, config
