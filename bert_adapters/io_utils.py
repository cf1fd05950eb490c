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


class JSONFileError(json.JSONDecodeError):
    """Invalid JSON in a file; the message names the file and the line."""

    def __init__(self, path, err):
        super().__init__(err.msg, err.doc, err.pos)
        self.path = path

    def __str__(self):
        return (f"{self.path}:{self.lineno}: not valid JSON ({self.msg} at column {self.colno}); "
                f"the file is damaged or was cut short")


class NotUTF8Error(UnicodeDecodeError):
    """A byte that is not UTF-8 in a text file; the message names the file and the line."""

    def __init__(self, path, line, column, err):
        super().__init__(err.encoding, err.object, err.start, err.end, err.reason)
        self.path, self.line, self.column = path, line, column

    def __str__(self):
        return (f"{self.path}:{self.line}: byte 0x{self.object[self.start]:02x} at column "
                f"{self.column} is not UTF-8 ({self.reason}); save the file as UTF-8")


def read_json(path):
    """The JSON value in `path`; a damaged file raises JSONFileError (file and line)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(path, err) from None


def read_text(path):
    """The UTF-8 text in `path`; a non-UTF-8 byte raises NotUTF8Error (file and line)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise NotUTF8Error(path, line, column, err) from None


def decoded_lines(f, path):
    """The lines of a file opened in binary mode, as UTF-8 text.

    A byte that is not UTF-8 raises NotUTF8Error, naming the file, the line
    and the byte (Python's own error names neither the file nor the line).
    """
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise NotUTF8Error(path, number, err.start + 1, err) from None


def join(*parts):
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def exists(path):
    return tf.io.gfile.exists(path)


def listdir(path):
    return tf.io.gfile.listdir(path)


def isdir(path):
    return tf.io.gfile.isdir(path)


def makedirs(path):
    tf.io.gfile.makedirs(path)


def gfile_open(path, mode="r"):
    return tf.io.gfile.GFile(path, mode)
