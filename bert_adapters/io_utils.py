"""File IO through `tf.io.gfile`, so local paths and `gs://` both work.

Every writer here is atomic: it writes `<path>.tmp-<random>` and renames it
over `path`, so a crash never leaves a half-written file that looks complete.
"""

import json
import uuid

import tensorflow as tf


def _tmp_path(path):
    return f"{path}.tmp-{uuid.uuid4().hex[:8]}"


def write_text(path, text):
    """Writes `text` to `path` atomically (UTF-8)."""
    tmp = _tmp_path(path)
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    tmp = _tmp_path(path)
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json(path, obj):
    """Writes `obj` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def read_text(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def join(*parts):
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def exists(path):
    return tf.io.gfile.exists(path)


def makedirs(path):
    tf.io.gfile.makedirs(path)


def gfile_open(path, mode="r"):
    return tf.io.gfile.GFile(path, mode)
