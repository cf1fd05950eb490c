"""What a command line shows: our messages, a plain progress bar, one line per error.

TensorFlow prints about a dozen native lines as it loads (oneDNN notices,
"Could not find cuda drivers", an E-level `failed call to cuInit` on a
machine without a GPU), even for `--help`. They say nothing a user of this
package acts on, so they are hidden unless asked for:

  - `quiet_tensorflow()` runs when `bert_adapters` is imported: it sets
    `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it, and imports TensorFlow
    with the process's stderr (file descriptor 2) sent aside, because the
    lines printed while TensorFlow's libraries load ignore that variable.
    Whatever the import printed comes back if the import fails.
  - `--verbosity=1` (absl's flag, also `-v 1`) or `TF_CPP_MIN_LOG_LEVEL=0`
    shows TensorFlow's own logs again; any level the user sets is kept.
  - `setup_cli(verbosity)`, called by every command once its flags are
    parsed, prints our absl log lines as plain messages (`warning: ...` for
    warnings), keeps the libraries' Python INFO logs out, and, when stdout is
    not a terminal, strips the progress bar's ANSI colours and carriage
    returns so a log file holds one readable line per update.

This module imports no TensorFlow at module level: it runs before it.
"""

import logging
import os
import re
import sys
import tempfile

# TensorFlow's C++ log levels: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR.
QUIET_LEVEL = "3"
_VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2, "fatal": -3}


def argv_verbosity(argv=None):
    """absl's `--verbosity` (`-v`) as given on the command line, or None.

    Read before absl parses the flags: TensorFlow's log level must be chosen
    before TensorFlow is imported, and commands import it to define flags.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name not in ("--verbosity", "-verbosity", "--v", "-v"):
            continue
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        value = value.strip().lower()
        if value in _VERBOSITY_NAMES:
            found = _VERBOSITY_NAMES[value]
        elif re.fullmatch(r"-?\d+", value):
            found = int(value)
    return found


def wants_tensorflow_logs(argv=None):
    """True with `--verbosity>=1` or a TF_CPP_MIN_LOG_LEVEL of 0 set by the user."""
    verbosity = argv_verbosity(argv)
    return ((verbosity is not None and verbosity >= 1)
            or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0")


def quiet_tensorflow(argv=None):
    """Imports TensorFlow without its native start-up lines (see the module docstring).

    A TF_CPP_MIN_LOG_LEVEL the user set is kept; the start-up lines (INFO
    level, printed whatever the variable says) are shown only with level 0.
    """
    if "tensorflow" in sys.modules or wants_tensorflow_logs(argv):
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # No usable stderr: nothing to hide.
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            aside.seek(0)
            sys.stderr.write(aside.read().decode("utf-8", "replace"))
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _PlainFormatter(logging.Formatter):
    """Our log lines as the user reads them: the message, `warning: ` before warnings."""

    def format(self, record):
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


class _OwnInfoOnly(logging.Filter):
    """Keeps INFO (and DEBUG) lines of this package; libraries' INFO lines go.

    TensorFlow and Keras log through absl too ("Sharding callback duration"),
    so they cannot be told apart by logger name, only by the file that logs.
    TFDS's warnings about dataset folders go too: when TFDS data is missing,
    the error that follows says what to do.
    """

    _LIBRARIES = re.compile(r"[/\\](tensorflow|tensorflow_datasets|tensorflow_text|"
                            r"tensorflow_hub|keras|keras_hub|keras_tuner|tf_keras)[/\\]")
    _TFDS = re.compile(r"[/\\]tensorflow_datasets[/\\]")

    def filter(self, record):
        path = record.pathname or ""
        if self._TFDS.search(path):
            return record.levelno >= logging.ERROR
        return record.levelno >= logging.WARNING or not self._LIBRARIES.search(path)


class PlainTextStream:
    """A text stream that drops ANSI escapes and turns in-place redraws into lines.

    Keras' progress bar colours its text and redraws one line with `\\b` and
    `\\r` whenever it believes it writes to a console (on every POSIX system).
    Written to a file, that is one unreadable line; through this stream each
    redraw becomes its own line.
    """

    _ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

    def __init__(self, stream):
        self._stream = stream
        self._at_line_start = True

    def write(self, text):
        text = self._ANSI.sub("", text).replace("\b", "")
        out = []
        for char in text:
            if char == "\r":
                if not self._at_line_start:
                    out.append("\n")
                    self._at_line_start = True
                continue
            out.append(char)
            self._at_line_start = char == "\n"
        self._stream.write("".join(out))
        return len(text)

    def isatty(self):
        return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def setup_cli(verbosity=None):
    """A command's terminal once its flags are parsed (see the module docstring).

    Args:
        verbosity: absl's `--verbosity`; 1 or more keeps absl's full log
            format and TensorFlow's Python INFO logs.
    """
    from absl import logging as absl_logging

    verbose = verbosity is not None and verbosity >= 1
    if not verbose:
        handler = absl_logging.get_absl_handler()
        handler.setFormatter(_PlainFormatter())
        if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
            handler.addFilter(_OwnInfoOnly())
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    if not _isatty(sys.stdout) and not isinstance(sys.stdout, PlainTextStream):
        sys.stdout = PlainTextStream(sys.stdout)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def fail(program, message):
    """A user error: one line on stderr, exit code 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)
