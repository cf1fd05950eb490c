"""Bad input a user meets ends in one line naming the file and what is wrong, exit 2.

First each error where it is raised (fast, in-process), then the command
lines: one line on stderr, no traceback, nothing written that looks complete.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bert_adapters import data, io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.cli import glue_submission
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.checkpoints import tf1
from bert_adapters.sweep.hparams_file import load_hparams
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer
from checkpoint_writers import write_tf1
from conftest import REPO_ROOT, random_canonical_weights, tiny_config
from tiny_runs import write_tiny_encoder, write_tiny_rte


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny encoder, RTE data, a TF1 checkpoint and a trained run."""
    root = tmp_path_factory.mktemp("errors")
    encoder = write_tiny_encoder(root / "encoder", max_sequence_length=64)
    rte = write_tiny_rte(root / "RTE")
    config = tiny_config()
    bert = write_tf1(str(root / "uncased_L-2_H-8_A-2"), config,
                     random_canonical_weights(BertEncoder(config), seed=3))
    run = str(root / "run")
    trainer.run(ClassifierConfig(task_name="RTE", data_dir=rte, encoder=encoder, adapter_size=2,
                                 max_seq_length=16, train_batch_size=4, max_train_steps=2,
                                 do_train=True, do_eval=True, do_predict=True), run)
    return {"root": root, "encoder": encoder, "rte": rte, "bert": bert, "run": run}


def _copy_run(tiny, tmp_path):
    copy = str(tmp_path / "run_copy")
    shutil.copytree(tiny["run"], copy)
    return copy, os.path.join(copy, "task_artifact")


# === Where each error is raised ===
def test_task_artifact_weights_missing_or_truncated(tiny, tmp_path):
    run, folder = _copy_run(tiny, tmp_path)
    weights = os.path.join(folder, "weights.safetensors")
    with open(weights, "rb") as f:
        head = f.read(100)
    with open(weights, "wb") as f:
        f.write(head)
    with pytest.raises(ValueError, match=r"weights\.safetensors: not a readable safetensors "
                                         r"file .*100 bytes.*damaged or was cut short"):
        artifact.read_weights(weights)
    os.remove(weights)
    with pytest.raises(FileNotFoundError, match=r"weights\.safetensors not found"):
        artifact.read_weights(weights)


def test_corrupt_task_config_names_the_file_and_line(tiny, tmp_path):
    run, folder = _copy_run(tiny, tmp_path)
    path = os.path.join(folder, "task_config.json")
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    lines[3] = lines[3].rstrip(",")  # A lost comma on line 4.
    with open(path, "w") as f:
        f.write("\n".join(lines))
    with pytest.raises(json.JSONDecodeError, match=r"task_config\.json:5: not valid JSON"):
        artifact.read_task_config(run)
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])  # Cut short.
    with pytest.raises(ValueError, match=r"task_config\.json:\d+: not valid JSON"):
        artifact.read_task_config(run)


def test_truncated_tf1_data_file_names_it(tiny, tmp_path):
    bert = shutil.copytree(tiny["bert"], tmp_path / "bert")
    data_file = bert / "bert_model.ckpt.data-00000-of-00001"
    os.truncate(data_file, os.path.getsize(data_file) // 2)
    with pytest.raises(ValueError, match=r"bert_model\.ckpt\.data-00000-of-00001: cannot read "
                                         r"tensor bert/.* cut short"):
        tf1.read_tensors(str(bert / "bert_model.ckpt"))
    with open(bert / "bert_config.json", "w") as f:
        f.write('{"vocab_size": 64,\n "hidden_size": }')
    with pytest.raises(ValueError, match=r"bert_config\.json:2: not valid JSON"):
        tf1.read_config_file(str(bert / "bert_config.json"))


@pytest.mark.parametrize("body, message", [
    ("def get_config():\n    return {\n\ndef get_sweep():\n    return [{}]\n",
     r"bad\.py:2: syntax error: '\{' was never closed"),
    ("def get_config():\n    return {}\n\ndef get_sweep():\n    return grid(seed=[1])\n",
     r"bad\.py:5: NameError: name 'grid' is not defined"),
    ("import no_such_module\n", r"bad\.py:1: ModuleNotFoundError: No module named"),
])
def test_hparams_file_errors_name_the_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.py"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_hparams(str(path))


def test_non_utf8_data_names_the_file_and_line(tiny, tmp_path):
    folder = shutil.copytree(tiny["rte"], tmp_path / "RTE")
    with open(folder / "dev.tsv", "ab") as f:
        f.write(b"99\tw1 w2 \xe9t\xe9\tw3\tentailment\n")
    lines = (folder / "dev.tsv").read_bytes().count(b"\n")
    with pytest.raises(ValueError, match=rf"dev\.tsv:{lines}: byte 0xe9 at column 10 is not "
                                         r"UTF-8"):
        data.load_split("rte", "dev", str(folder))
    csv_file = tmp_path / "train.csv"
    csv_file.write_bytes(b"text,label\nok,a\nbad \xff,b\n")
    with pytest.raises(ValueError, match=r"train\.csv:3: byte 0xff at column 5 is not UTF-8"):
        data.load_custom_split(str(csv_file), ("text",), labels=("a", "b"))
    json_file = tmp_path / "x.json"
    json_file.write_bytes(b'{\n"a": "\xff"}')
    with pytest.raises(ValueError, match=r"x\.json:2: byte 0xff at column 7"):
        io_utils.read_json(str(json_file))


def test_glue_submission_output_folder(tiny, tmp_path):
    output = str(tmp_path / "new" / "folder" / "submission.zip")
    manifest, _ = glue_submission.build_bundle(tiny["run"], output, os.path.dirname(tiny["rte"]),
                                               allow_missing=True)
    assert [m["file"] for m in manifest] == ["RTE.tsv"] and os.path.exists(output)
    with pytest.raises(ValueError, match="is a directory"):
        glue_submission.build_bundle(tiny["run"], str(tmp_path), os.path.dirname(tiny["rte"]),
                                     allow_missing=True)


# === The command lines ===
def _cli(*args, module=None):
    command = [sys.executable] + (["-m", module] if module else
                                  [os.path.join(REPO_ROOT, "run_classifier.py")]) + list(args)
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _assert_one_line(done, *fragments):
    """Exit 2 and the error in one line, printed once; before it at most the settings line."""
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, done.stderr[-3000:]
    if len(lines) == 2:  # The run's settings, printed as it starts (flags.describe).
        assert " | -> " in lines[0], lines
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    assert "Traceback" not in done.stdout + done.stderr


def _case(tiny, tmp_path, name):
    """(extra argv, fragments of the expected line) for each bad input."""
    base = ["--task_name=RTE", f"--data_dir={tiny['rte']}", "--max_seq_length=16",
            "--train_batch_size=4", "--max_train_steps=2"]
    if name == "missing_weights":
        run, folder = _copy_run(tiny, tmp_path)
        os.remove(os.path.join(folder, "weights.safetensors"))
        return base + [f"--task_dir={run}", "--do_eval"], ["weights.safetensors not found"]
    if name == "corrupt_task_config":
        run, folder = _copy_run(tiny, tmp_path)
        with open(os.path.join(folder, "task_config.json"), "a") as f:
            f.write("}")
        return base + [f"--task_dir={run}", "--do_eval"], ["task_config.json:", "not valid JSON"]
    if name == "truncated_tf1":
        bert = shutil.copytree(tiny["bert"], tmp_path / "uncased_bert")
        data_file = bert / "bert_model.ckpt.data-00000-of-00001"
        os.truncate(data_file, os.path.getsize(data_file) // 2)
        return base + [f"--init_checkpoint={bert}/bert_model.ckpt",
                       f"--bert_config_file={bert}/bert_config.json",
                       f"--vocab_file={bert}/vocab.txt", "--do_train"], [
            "bert_model.ckpt.data-00000-of-00001: cannot read tensor"]
    if name == "hparams_syntax":
        path = tmp_path / "sweep.py"
        path.write_text("def get_config(:\n")
        return base + [f"--encoder={tiny['encoder']}", f"--hparams={path}"], [
            f"{path}:1: syntax error"]
    if name == "output_dir_is_a_file":
        return base + [f"--encoder={tiny['encoder']}", "--do_train",
                       f"--output_dir={tiny['rte']}/train.tsv"], ["is an existing file"]
    if name == "non_utf8":
        folder = shutil.copytree(tiny["rte"], tmp_path / "RTE")
        with open(folder / "train.tsv", "ab") as f:
            f.write(b"99\tw1 \xff\tw3\tentailment\n")
        return ["--task_name=RTE", f"--data_dir={folder}", f"--encoder={tiny['encoder']}",
                "--do_train"], ["train.tsv:26: byte 0xff"]
    if name == "adapter_layers_form":
        return base + [f"--encoder={tiny['encoder']}", "--do_train", "--adapter_layers=5-2"], [
            "flag --adapter_layers=5-2: the first layer 5 is above the last 2: expected i-j "
            "with 1 <= i <= j"]
    if name == "unknown_flag":
        return ["--task_name=RTE", "--do_tarin"], ["Unknown command line flag 'do_tarin'"]
    if name == "missing_output_dir":
        return None, ["--output_dir is required"]
    raise AssertionError(name)


# A process each (TensorFlow's import alone takes seconds): two cases in the
# fast suite, the others with the slow tests.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("name", [
    "missing_weights", "unknown_flag",
    pytest.param("corrupt_task_config", marks=_SLOW), pytest.param("truncated_tf1", marks=_SLOW),
    pytest.param("hparams_syntax", marks=_SLOW), pytest.param("output_dir_is_a_file", marks=_SLOW),
    pytest.param("non_utf8", marks=_SLOW), pytest.param("missing_output_dir", marks=_SLOW),
    # (A span past the encoder's layers: trainer_test, in-process.)
    pytest.param("adapter_layers_form", marks=_SLOW)])
def test_command_line_bad_input_is_one_line_and_exit_2(tiny, tmp_path, name):
    args, fragments = _case(tiny, tmp_path, name)
    out = tmp_path / "out"
    if args is None:
        args = ["--task_name=RTE", "--do_train"]
    elif not any(a.startswith("--output_dir=") for a in args):
        args = args + [f"--output_dir={out}"]
    done = _cli(*args)
    _assert_one_line(done, "run_classifier.py: error: ", *fragments)
    # Nothing that looks complete.
    for name in ("eval_results.json", "run_config.json", "task_artifact"):
        assert not (out / name).exists()


@pytest.mark.slow
def test_glue_submission_command_line_errors(tmp_path):
    done = _cli(f"--runs_dir={tmp_path / 'none'}", f"--output={tmp_path / 'x.zip'}",
                module="bert_adapters.cli.glue_submission")
    _assert_one_line(done, "glue_submission: error: ", "is not a directory")
    done = _cli(f"--runs_dir={tmp_path}", module="bert_adapters.cli.glue_submission")
    _assert_one_line(done, "error: ", "--output")
