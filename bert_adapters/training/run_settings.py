"""A run's settings: checked before anything runs, merged with a reloaded artifact, recorded.

`run_config.json` records what a run trained with; a run resumed in the same
output directory must not change any setting that changes what training
computes (`RunConfig.TRAINING_FIELDS`), nor the base weights.
"""

import contextlib
import dataclasses

import keras
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.model import trainable
from bert_adapters.ops import settings as op_settings
from bert_adapters.tasks.run_config import same_setting

RUN_CONFIG_FILE = "run_config.json"
PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# What merge_artifact_settings and the fingerprint check read from task_config.json.
ARTIFACT_KEYS = ("tuning", "num_tuned_layers", "adapter_size", "adapter_init_scale",
                 "encoder_source", "base_fingerprint")


class RunError(ValueError):
    """A problem with the run's settings or inputs, explained for the user."""


def check_config(config):
    """RunError for settings no run can start with."""
    if not (config.do_train or config.do_eval or config.do_predict):
        raise RunError("At least one of --do_train, --do_eval or --do_predict must be set")
    if not (config.encoder or config.init_checkpoint or config.task_dir):
        raise RunError("Give the base encoder: --encoder (e.g. minilm_l6, a TF Hub handle or a "
                       "checkpoint directory) or --init_checkpoint with --bert_config_file")
    if (config.do_eval or config.do_predict) and not config.do_train and not config.task_dir:
        raise RunError("--do_eval/--do_predict without --do_train needs --task_dir, the output "
                       "directory (or its task_artifact) of an earlier training run")
    if config.mixed_precision not in PRECISION_POLICIES:
        raise RunError(f"--mixed_precision={config.mixed_precision!r}: expected bf16 or fp16")
    if config.bf16_matmuls not in op_settings.BF16_MATMULS:
        raise RunError(f"--bf16_matmuls={config.bf16_matmuls!r}: expected one of "
                       f"{', '.join(op_settings.BF16_MATMULS)}")
    for field in ("max_seq_length", "train_batch_size", "eval_batch_size",
                  "iterations_per_loop", "save_checkpoints_steps"):
        if getattr(config, field) < 1:
            raise RunError(f"--{field} must be positive, got {getattr(config, field)}")
    if config.learning_rate <= 0 or config.num_train_epochs <= 0:
        raise RunError("--learning_rate and --num_train_epochs must be positive")
    if not config.task_dir:
        trainable.check_tuning(config.tuning, config.adapter_size, 10**6, config.num_tuned_layers,
                               config.adapter_layers)


def check_batch_sizes(config, replicas):
    """RunError unless every batch the run uses splits evenly over the replicas."""
    for field, used in (("train_batch_size", config.do_train),
                        ("eval_batch_size", config.do_eval or config.do_predict)):
        if used and getattr(config, field) % replicas:
            raise RunError(f"--{field}={getattr(config, field)} does not split evenly over the "
                           f"{replicas} replicas (workers x devices) that each take an equal "
                           f"share of every batch")


def merge_artifact_settings(config, artifact_config):
    """With --task_dir, the model's shape (and, unless given, its base) come from the artifact."""
    if artifact_config is None:
        return config
    missing = [k for k in ARTIFACT_KEYS if k not in artifact_config]
    if missing:
        path = io_utils.join(artifact.resolve_artifact_dir(config.task_dir), artifact.CONFIG_FILE)
        raise RunError(f"{path} lacks {missing}: not a complete task artifact (written by a "
                       f"training run's end)")
    if not (config.encoder or config.init_checkpoint):
        config = dataclasses.replace(
            config, encoder=artifact_config["encoder_source"],
            init_checkpoint=artifact_config.get("init_checkpoint"),
            bert_config_file=artifact_config.get("bert_config_file"),
            vocab_file=config.vocab_file or artifact_config.get("vocab_file"))
    return dataclasses.replace(
        config, tuning=artifact_config["tuning"],
        num_tuned_layers=artifact_config["num_tuned_layers"],
        adapter_size=artifact_config["adapter_size"],
        adapter_init_scale=artifact_config["adapter_init_scale"],
        # Artifacts written before adapter spans existed have adapters in every layer.
        adapter_layers=artifact_config.get("adapter_layers"))


def write_run_config(output_dir, config, encoder, fingerprint, kind, write=True, replicas=1):
    """Writes run_config.json (if `write`); a resumed run must not change training settings.

    A run that does not train keeps the record of a training run already in
    `output_dir` (BERT's README predicts into the training folder): sweeps and
    glue_submission read what was trained from it.
    """
    path = io_utils.join(output_dir, RUN_CONFIG_FILE)
    if write and not config.do_train and io_utils.exists(path):
        old = io_utils.read_json(path)
        if old.get("settings", {}).get("do_train"):
            logging.info("Keeping %s: it records the training run of this directory", path)
            write = False
    record = {"settings": config.to_json(), "encoder_source": getattr(encoder, "source", None),
              "base_fingerprint": fingerprint, "task_kind": kind.name, **kind.record(),
              "encoder_config": encoder.config.architecture()}
    if config.mixed_precision == "bf16":
        # What --bf16_matmuls=auto chose on this machine.
        record["bf16_matmul_kernels"] = ("float32" if op_settings.float32_matmuls(tf.bfloat16)
                                         else "bfloat16")
    record["op_settings"] = op_settings.describe()  # What the ops chose for these devices.
    record["replicas_in_sync"] = replicas  # What --cpu_replicas=auto chose, for one.
    if io_utils.exists(path) and config.do_train:
        _check_unchanged(path, io_utils.read_json(path), record, type(config).TRAINING_FIELDS)
    if write:
        io_utils.write_json(path, record)


def _check_unchanged(path, old, new, fields):
    changed = [f"{f}: {old['settings'].get(f)!r} -> {new['settings'].get(f)!r}"
               for f in fields
               if not same_setting(f, old["settings"].get(f), new["settings"].get(f))]
    if old.get("base_fingerprint") != new["base_fingerprint"]:
        changed.append("base encoder weights (fingerprint)")
    if changed:
        raise RunError(f"{path} records a run with other settings ({'; '.join(changed)}); "
                       f"use a new --output_dir or delete the old one")


@contextlib.contextmanager
def precision_policy(name):
    """Keras' dtype policy for `--mixed_precision`, for the run."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[name])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def op_settings_for(config, strategy):
    """The ops' settings for this run: its flags and its strategy's devices."""
    return op_settings.Settings(fast_dropout=config.fast_dropout,
                                bf16_matmuls=config.bf16_matmuls,
                                devices=op_settings.devices_of(strategy.extended.worker_devices))
