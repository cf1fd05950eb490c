"""The GLUE submission bundle: best run per task, 11 checked files, zipped flat."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bert_adapters import data
from bert_adapters.cli import glue_submission
from bert_adapters.tasks import glue_files
from conftest import REPO_ROOT, require_data

FILES = ("AX.tsv", "CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "MRPC.tsv", "QNLI.tsv", "QQP.tsv",
         "RTE.tsv", "SST-2.tsv", "STS-B.tsv", "WNLI.tsv")
TRAINED = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")


def _indices(task, split):
    """A few test indices, deliberately not sorted (the order must be the file's)."""
    seed = sum(map(ord, task.name + split))
    return [str(i) for i in np.random.default_rng(seed).permutation(7) + 100]


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory):
    """Every GLUE test file in its layout (index and text columns only), 7 rows each."""
    root = tmp_path_factory.mktemp("glue")
    for task in data.GLUE_TASKS:
        for split in task.test_files:
            layout = task.layout(split)
            columns = [c for c in (layout.index, layout.text_a, layout.text_b) if c]
            os.makedirs(root / task.folder, exist_ok=True)
            rows = ["\t".join(columns)] + [
                "\t".join([i] + ["w1 w2"] * (len(columns) - 1)) for i in _indices(task, split)]
            (root / task.folder / layout.file_names[0]).write_text("\n".join(rows) + "\n")
    return str(root)


def _predictions(task, n, seed=0):
    rng = np.random.default_rng(seed)
    if task.is_regression:
        return rng.uniform(-1, 6, size=n)
    return rng.integers(0, task.num_outputs, size=n)


def _write_run(run_dir, task_name, score, loss=0.5):
    """A single run's output directory, as run_classifier.py writes it."""
    task = data.get_task(task_name)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "run_config.json"), "w") as f:
        json.dump({"task": task.name, "settings": {}}, f)
    with open(os.path.join(run_dir, "eval_results.json"), "w") as f:
        json.dump({task.primary_metric: score, "eval_loss": loss}, f)
    for owner in (task,) + data.tasks_predicted_by(task):
        for split, name in owner.test_files.items():
            indices = _indices(owner, split)
            glue_files.write_submission(os.path.join(run_dir, name), owner, split, indices,
                                        _predictions(owner, len(indices)))
    return str(run_dir)


def _write_sweep(sweep_dir, task_name, trials):
    """A sweep directory: trials/<name>/ runs and best.json naming the best."""
    for name, score in trials.items():
        _write_run(os.path.join(sweep_dir, "trials", name), task_name, score)
    best = max(trials, key=trials.get)
    task = data.get_task(task_name)
    with open(os.path.join(sweep_dir, "best.json"), "w") as f:
        json.dump({"task": task.name, "metric": task.primary_metric, "trial_id": best,
                   "trial_dir": f"trials/{best}",
                   "metrics": {task.primary_metric: trials[best], "eval_loss": 0.5}}, f)


@pytest.fixture
def runs(tmp_path):
    """Every task trained: RTE by a sweep and a worse single run, the rest single runs."""
    root = tmp_path / "runs"
    for task in TRAINED:
        if task != "RTE":
            _write_run(root / "single" / task, task, 0.8)
    _write_sweep(root / "sweeps" / "RTE", "RTE", {"lr=0.001,seed=0": 0.6, "lr=0.01,seed=0": 0.7})
    _write_run(root / "single" / "RTE", "RTE", 0.65)
    return root


def test_best_run_per_task(runs):
    best = glue_submission.best_per_task(glue_submission.find_candidates(str(runs)))
    assert sorted(best) == sorted(data.get_task(t).name for t in TRAINED)
    assert best["RTE"].run_dir.endswith("sweeps/RTE/trials/lr=0.01,seed=0")
    # A sweep's trials are not candidates themselves: only its best is.
    assert len(glue_submission.find_candidates(str(runs))) == len(TRAINED) + 1


def test_ties_go_to_lower_eval_loss_then_path(tmp_path):
    _write_run(tmp_path / "b", "CoLA", 0.5, loss=0.3)
    _write_run(tmp_path / "c", "CoLA", 0.5, loss=0.3)
    _write_run(tmp_path / "a", "CoLA", 0.5, loss=0.4)
    best = glue_submission.best_per_task(glue_submission.find_candidates(str(tmp_path)))
    assert best["CoLA"].run_dir.endswith("/b")


def test_good_bundle_zips_the_11_files_flat(runs, glue_root, tmp_path):
    output = tmp_path / "out" / "submission.zip"
    os.makedirs(output.parent)
    manifest, missing = glue_submission.build_bundle(str(runs), str(output), glue_root)
    assert missing == []
    assert sorted(m["file"] for m in manifest) == sorted(FILES)
    ax = next(m for m in manifest if m["file"] == "AX.tsv")
    assert ax["run_dir"].endswith("single/MNLI") and ax["rows"] == 7
    with zipfile.ZipFile(output) as bundle:
        assert sorted(bundle.namelist()) == sorted(FILES)  # Flat: no folders.
        rte = bundle.read("RTE.tsv").decode()
    with open(runs / "sweeps/RTE/trials/lr=0.01,seed=0/RTE.tsv") as f:
        assert rte == f.read()
    assert os.listdir(output.parent) == ["submission.zip"]  # No temporary file left.
    assert "RTE.tsv" in glue_submission.format_manifest(manifest, missing)


def test_missing_tasks_are_named_unless_allowed(runs, glue_root, tmp_path):
    for task in ("QQP", "MNLI"):
        for name in os.listdir(runs / "single" / task):
            os.remove(runs / "single" / task / name)
    output = str(tmp_path / "submission.zip")
    with pytest.raises(ValueError, match=r"4 of 11 GLUE files are missing") as error:
        glue_submission.build_bundle(str(runs), output, glue_root)
    for name in ("QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"):
        assert name in str(error.value)
    assert not os.path.exists(output)
    manifest, missing = glue_submission.build_bundle(str(runs), output, glue_root,
                                                     allow_missing=True)
    assert len(manifest) == 7 and len(missing) == 4
    with zipfile.ZipFile(output) as bundle:
        assert len(bundle.namelist()) == 7


def _rewrite(path, edit):
    with open(path) as f:
        lines = f.read().splitlines()
    with open(path, "w") as f:
        f.write("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:-1], r"short file: 6 prediction rows, expected 7"),
    (lambda lines: [lines[0], lines[2], lines[1]] + lines[3:], r"RTE\.tsv:2: index .* expected"),
    (lambda lines: lines[:3] + [lines[3].split("\t")[0] + "\tcontradiction"] + lines[4:],
     r"RTE\.tsv:4: prediction 'contradiction' is not a RTE label"),
    (lambda lines: ["idx\tlabel"] + lines[1:], r"RTE\.tsv:1: header must be"),
])
def test_a_bad_file_is_rejected(runs, glue_root, tmp_path, edit, message):
    _rewrite(runs / "sweeps/RTE/trials/lr=0.01,seed=0/RTE.tsv", edit)
    output = str(tmp_path / "submission.zip")
    with pytest.raises(ValueError, match=r"1 submission file\(s\) failed their check:\n.*"
                                         + message):
        glue_submission.build_bundle(str(runs), output, glue_root)
    assert not os.path.exists(output)


def test_a_real_rte_submission_checks_against_the_real_test_file(tmp_path):
    rte = require_data("glue", "RTE")
    test = data.load_split("rte", "test", str(rte))
    path = str(tmp_path / "RTE.tsv")
    glue_files.write_submission(path, "RTE", "test", test.indices,
                                _predictions(data.get_task("RTE"), test.num_examples))
    assert glue_files.validate_submission(path, "RTE", "test", test.indices) == 3000


def test_command_line(runs, glue_root, tmp_path):
    output = tmp_path / "submission.zip"
    command = [sys.executable, "-m", "bert_adapters.cli.glue_submission", f"--runs_dir={runs}",
               f"--data_dir={glue_root}", f"--output={output}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Wrote" in done.stdout and output.exists()
    os.remove(runs / "single" / "WNLI" / "WNLI.tsv")
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "glue_submission: error: 1 of 11 GLUE files are missing" in done.stderr
    assert "WNLI.tsv (the best WNLI run" in done.stderr


def test_without_data_dir_each_run_is_checked_against_the_data_it_read(runs, glue_root,
                                                                        tmp_path, monkeypatch):
    for path in runs.rglob("run_config.json"):
        record = json.loads(path.read_text())
        folder = data.get_task(record["task"]).folder
        record["settings"] = {"data_dir": os.path.join(glue_root, folder), "tfds_data_dir": None}
        path.write_text(json.dumps(record))
    real_load_split, read = data.load_split, []

    def load_split(task, split, data_dir=None, tfds_data_dir=None):
        read.append((task.name, data_dir))
        if data_dir is None:
            raise FileNotFoundError(f"TFDS is offline ({task.name})")
        return real_load_split(task, split, data_dir, tfds_data_dir)

    monkeypatch.setattr(data, "load_split", load_split)
    output = tmp_path / "submission.zip"
    manifest, missing = glue_submission.build_bundle(str(runs), str(output))
    assert missing == [] and len(manifest) == 11 and output.exists()
    assert all(data_dir is not None for _, data_dir in read)
    # AX is found beside the folder the MNLI run read.
    assert ("AX", os.path.join(glue_root, "diagnostic")) in read

    # The best RTE trial read TFDS: only its file goes to TFDS (offline here).
    best_trial = runs / "sweeps/RTE/trials/lr=0.01,seed=0/run_config.json"
    best_trial.write_text(json.dumps({"task": "RTE", "settings": {"data_dir": None}}))
    read.clear()
    with pytest.raises(ValueError, match=r"1 submission file\(s\) failed their check:\n  "
                                         r"RTE\.tsv: .*TFDS is offline \(RTE\)"):
        glue_submission.build_bundle(str(runs), str(tmp_path / "other.zip"))
    assert [name for name, data_dir in read if data_dir is None] == ["RTE"]
