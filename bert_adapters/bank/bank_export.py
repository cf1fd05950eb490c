"""Writing a bank directory: the SavedModel, `bank.json` and a copy of each task's artifact.

The SavedModel (`saved_model.pb`, `variables/`) is all a server needs.
`bank.json` (the base, the tasks in index order, their settings) and
`tasks/<key>/` (each artifact) are what `bank add` rebuilds the bank from,
without the original run directories. The directory is written beside its
target and renamed into place at the end, so an interrupted export leaves no
half-written bank.
"""

import uuid

import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.bank.bank_builder import BANK_FILE, FORMAT_VERSION, TASKS_DIR
from bert_adapters.bank.bank_task import SPAN_DEFAULTS, BankError
from bert_adapters.checkpoints import artifact


def export_bank(server, serve, record, output_dir, overwrite=False):
    """Writes the bank served by `server` to `output_dir`; returns `output_dir`.

    Args:
        server: the `BankServer`, the SavedModel's root.
        serve: its `serve_function()`, traced once for every signature.
        record: {"base", "fingerprint", "max_seq_length", "tasks"}: the
            `bank.json` fields the bank knows (`tasks`: its `BankTask`s).
        output_dir: the bank directory; replaced only with `overwrite`.
    """
    output_dir = output_dir.rstrip("/")
    if io_utils.exists(output_dir) and not overwrite:
        raise BankError(f"{output_dir} already exists: choose a new --output_dir, or add "
                        f"tasks to that bank with `bank add --bank {output_dir}`")
    tmp = f"{output_dir}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        signatures = server.signatures(serve)
        tf.saved_model.save(server, tmp, signatures=signatures)
        tasks = []
        for index, task in enumerate(record["tasks"]):
            folder = io_utils.join(TASKS_DIR, task.key)
            _copy_artifact(task.source, io_utils.join(tmp, folder))
            tasks.append(_task_record(task, index, folder))
        io_utils.write_json(io_utils.join(tmp, BANK_FILE), {
            "format_version": FORMAT_VERSION, "base": record["base"],
            "fingerprint": record["fingerprint"], "max_seq_length": record["max_seq_length"],
            "signatures": list(signatures), "tasks": tasks})
        _replace_dir(tmp, output_dir)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
    return output_dir


def _task_record(task, index, folder):
    """One task's entry in `bank.json`."""
    entry = {"name": task.name, "index": index, "artifact": folder,
             "labels": list(task.labels) if task.labels else None, "kind": task.kind,
             "regression": task.is_regression, "text_mode": task.text_mode,
             "adapter_size": task.adapter_size, "tuning": task.config.get("tuning"),
             "source": task.source}
    if task.is_span:
        entry["span"] = {field: task.max_seq_length if field == "max_seq_length"
                         else task.span_setting(field) for field in SPAN_DEFAULTS}
    return entry


def _copy_artifact(source, target):
    io_utils.makedirs(target)
    for name in (artifact.WEIGHTS_FILE, artifact.CONFIG_FILE):
        with io_utils.gfile_open(io_utils.join(source, name), "rb") as f:
            io_utils.write_bytes(io_utils.join(target, name), f.read())


def _replace_dir(tmp, target):
    """Renames `tmp` to `target`, replacing an existing `target` (moved aside, then removed)."""
    old = None
    if tf.io.gfile.exists(target):
        old = f"{target}.old-{uuid.uuid4().hex[:8]}"
        tf.io.gfile.rename(target, old)
    tf.io.gfile.rename(tmp, target)
    if old:
        tf.io.gfile.rmtree(old)
