"""What the command lines print: no native TensorFlow lines, plain progress, our messages."""

import io
import logging
import os
import re
import subprocess
import sys

import keras
import pytest

from bert_adapters.cli import terminal
from conftest import REPO_ROOT
from tiny_runs import write_tiny_encoder, write_tiny_rte

# absl C++ log lines (TensorFlow's native logs) and absl's Python prefix.
NATIVE_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} ")


@pytest.mark.parametrize("argv, expected", [
    ([], None), (["--verbosity=1"], 1), (["--verbosity", "2"], 2), (["-v", "1"], 1),
    (["-v=0"], 0), (["--v=-1"], -1), (["--verbosity=debug"], 1),
    (["-v", "tests/x.py"], None),  # pytest's -v is not absl's
    (["--", "--verbosity=1"], None), (["--task_name=RTE"], None)])
def test_verbosity_is_read_from_the_command_line(argv, expected):
    assert terminal.argv_verbosity(argv) == expected


def test_progress_bar_off_a_terminal_is_plain_lines():
    sink = io.StringIO()
    saved = sys.stdout
    sys.stdout = terminal.PlainTextStream(sink)
    try:
        bar = keras.utils.Progbar(3, stateful_metrics=["loss"], interval=0.0)
        for step in (1, 2, 3):
            bar.update(step, [("loss", 0.5)])
    finally:
        sys.stdout = saved
    text = sink.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\b" not in text
    lines = text.splitlines()
    assert [line.split()[0] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("loss: 0.5000" in line for line in lines)


def test_log_lines_are_plain_and_library_info_is_dropped():
    formatter, keep = terminal._PlainFormatter(), terminal._OwnInfoOnly()

    def record(level, path, message):
        return logging.LogRecord("absl", level, path, 1, message, (), None)

    ours = record(logging.INFO, os.path.join(REPO_ROOT, "bert_adapters", "flags.py"), "hello")
    theirs = record(logging.INFO, "/x/site-packages/tensorflow/python/checkpoint/f.py", "noise")
    warning = record(logging.WARNING, "/x/site-packages/keras/src/a.py", "careful")
    tfds = record(logging.WARNING, "/x/site-packages/tensorflow_datasets/core/a.py", "no info")
    assert keep.filter(ours) and not keep.filter(theirs) and keep.filter(warning)
    assert not keep.filter(tfds)  # The error that follows says what to do.
    assert formatter.format(ours) == "hello"
    assert formatter.format(warning) == "warning: careful"


def _run(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "run_classifier.py"), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items()
                               if v is not None})


def test_help_prints_the_flags_and_nothing_from_tensorflow():
    done = _run("--help", env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert done.returncode in (0, 1)  # absl's --help exits with 1.
    assert done.stderr == ""
    for flag in ("--task_name", "--[no]use_tpu", "--iterations_per_loop", "--[no]do_lower_case",
                 "--predict_batch_size", "--init_checkpoint", "--tpu_zone"):
        assert flag in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args, env", [(["--verbosity=1"], {}),
                                       ([], {"TF_CPP_MIN_LOG_LEVEL": "0"})])
def test_tensorflow_logs_come_back_when_asked(args, env):
    done = _run("--help", *args, env={"TF_CPP_MIN_LOG_LEVEL": None, **env})
    assert done.returncode in (0, 1) and "--tpu_zone" in done.stdout
    assert [line for line in done.stderr.splitlines() if NATIVE_LINE.match(line)], done.stderr


def test_a_run_prints_only_its_own_lines(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder")
    data = write_tiny_rte(tmp_path / "RTE")
    out = tmp_path / "out"
    done = _run("--task_name=RTE", f"--data_dir={data}", f"--encoder={encoder}",
                "--max_seq_length=16", "--train_batch_size=4", "--max_train_steps=3",
                "--do_train", "--do_eval", f"--output_dir={out}",
                env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert done.returncode == 0, done.stderr[-3000:]
    # Progress on stdout (a pipe here): readable lines, no escapes.
    assert "\x1b" not in done.stdout and "\r" not in done.stdout and "\b" not in done.stdout
    assert "3/3" in done.stdout
    lines = done.stderr.splitlines()
    assert not [line for line in lines if NATIVE_LINE.match(line) or ABSL_PREFIX.match(line)]
    assert lines[0].startswith("RTE: train+eval | adapters")  # The settings.
    assert "***** Eval results *****" in lines and lines[-1].startswith(f"Outputs in {out}:")
    assert len(lines) <= 14, done.stderr
