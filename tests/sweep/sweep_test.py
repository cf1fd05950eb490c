"""The sweep runner: selection, reports, resume after a kill, KerasTuner chief and workers."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types

import pytest

from bert_adapters.sweep import runner, selection
from bert_adapters.training import trainer
from bert_adapters.sweep.tuner import TRIAL_HP, SweepOracle
from conftest import REPO_ROOT
from tiny_runs import TINY_RUN, write_hparams, write_tiny_encoder, write_tiny_rte


class Killed(BaseException):
    """A kill: KerasTuner catches `Exception` (and marks the trial failed), not this."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"encoder": write_tiny_encoder(root / "encoder"),
            "data_dir": write_tiny_rte(root / "RTE")}


def _hparams(tmp_path, tiny, sweep, name="sweep.py", **config):
    settings = {**TINY_RUN, "encoder": tiny["encoder"], "do_predict": False, **config}
    return write_hparams(tmp_path / name, settings, sweep)


def _flags(tiny):
    return {"task_name": "RTE", "data_dir": tiny["data_dir"]}


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _keras_tuner_trials(sweep_dir):
    """{trial name: [status]} from KerasTuner's own trial.json files."""
    trials = {}
    tuner_dir = os.path.join(sweep_dir, runner.TUNER_DIR)
    for entry in sorted(os.listdir(tuner_dir)):
        path = os.path.join(tuner_dir, entry, "trial.json")
        if os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            name = state["hyperparameters"]["values"]["trial"]
            trials.setdefault(name, []).append(state["status"])
    return trials


@pytest.fixture
def counted_runs(monkeypatch):
    """Counts `trainer.run` calls per trial; `kill_after` kills right after one returns."""
    real_run = runner.trainer.run
    log = {"calls": [], "kill_after": None}

    def run(config, output_dir, step_callback=None, strategy=None):
        name = os.path.basename(output_dir)
        log["calls"].append(name)
        results = real_run(config, output_dir, step_callback=step_callback, strategy=strategy)
        if log["kill_after"] == name:
            raise Killed(f"after {name} trained, before its result was recorded")
        return results

    monkeypatch.setattr(runner.trainer, "run", run)
    return log


# === Selection ===
def _record(trial_id, accuracy, loss=0.5):
    return {"trial_id": trial_id, "hparams": {"seed": 0},
            "metrics": {"accuracy": accuracy, "eval_loss": loss}}


def test_best_trial_metric_then_eval_loss_then_sweep_order():
    records = [_record("a", 0.6, 0.1), _record("b", 0.7, 0.9), _record("c", 0.7, 0.8),
               _record("d", 0.7, 0.8), _record("e", None), _record("f", float("nan"))]
    assert selection.select_best(records, "accuracy")["trial_id"] == "c"
    assert selection.select_best(records[::-1], "accuracy")["trial_id"] == "d"
    full_tie = [_record("x", 0.5, 0.6), _record("y", 0.5, 0.6)]
    assert selection.select_best(full_tie, "accuracy")["trial_id"] == "x"
    no_loss = [_record("x", 0.5, None), _record("y", 0.5, 0.6)]
    assert selection.select_best(no_loss, "accuracy")["trial_id"] == "y"
    assert selection.select_best(records[4:], "accuracy") is None
    assert selection.select_best([], "accuracy") is None


def test_seed_spread_groups_everything_but_the_seed():
    records = [{"hparams": {"learning_rate": lr, "seed": s}, "metrics": {"f1": v}}
               for lr, s, v in ((1e-3, 0, 0.5), (1e-3, 1, 0.7), (1e-2, 0, 0.4),
                                (1e-2, 1, float("nan")))]
    rows = selection.seed_spread(records, "f1")
    assert [r["setting"] for r in rows] == [{"learning_rate": 1e-3}, {"learning_rate": 1e-2}]
    assert rows[0]["n"] == 2 and rows[0]["mean"] == pytest.approx(0.6)
    assert rows[0]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[1] == {"setting": {"learning_rate": 1e-2}, "n": 1, "mean": 0.4, "std": 0.0,
                       "min": 0.4, "max": 0.4}


# === The oracle (KerasTuner's hooks) ===
def _oracle(directory, names):
    oracle = SweepOracle(names, "accuracy")
    oracle._set_project_dir(str(directory), "keras_tuner")
    oracle.verbose = 0
    return oracle


def _end(oracle, trial, score):
    oracle.update_trial(trial.trial_id, {"accuracy": score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_oracle_serves_every_free_worker_and_resumes_after_a_crash(tmp_path):
    names = [f"seed={s}" for s in range(6)]
    oracle = _oracle(tmp_path, names)
    # KerasTuner's GridSearch would answer IDLE from the third worker on.
    trials = [oracle.create_trial(f"tuner{i}") for i in range(4)]
    assert [t.status for t in trials] == ["RUNNING"] * 4
    assert [t.hyperparameters.get(TRIAL_HP) for t in trials] == names[:4]
    _end(oracle, trials[1], 0.5)
    _end(oracle, trials[3], 0.5)

    # The process dies; a new oracle reloads KerasTuner's files.
    reloaded = _oracle(tmp_path, names)
    reloaded.reload()
    order = [reloaded.create_trial(f"tuner{i}") for i in range(5)]
    # The interrupted trials first (earliest first), then the untried ones;
    # the completed seed=3, still "ongoing" in oracle.json, is not run again.
    assert [t.hyperparameters.get(TRIAL_HP) for t in order[:4]] == [
        "seed=0", "seed=2", "seed=4", "seed=5"]
    assert order[4].status == "STOPPED"  # Nothing left: this worker may exit.
    for trial in order[:4]:
        _end(reloaded, trial, 0.6)
    done = {t.hyperparameters.get(TRIAL_HP) for t in reloaded.trials.values()
            if t.status == "COMPLETED"}
    assert done == set(names) and len(reloaded.trials) == 6


# === Errors before and during a sweep ===
def test_squad_hparams_refused_and_bad_input_stops_the_sweep(tmp_path, tiny):
    with pytest.raises(ValueError, match=r"is a sweep for run_squad\.py"):
        runner.run_sweep(str(REPO_ROOT / "hparams" / "squad_full.py"), str(tmp_path / "squad"),
                         explicit=_flags(tiny))
    hp = _hparams(tmp_path, tiny, "grid(seed=[0, 1])")
    with pytest.raises(ValueError, match=r"trial seed=0: "):
        runner.run_sweep(hp, str(tmp_path / "bad"),
                         explicit={"task_name": "RTE", "data_dir": str(tmp_path / "nowhere")})


# === A sweep end to end, killed twice and restarted ===
@pytest.mark.slow
def test_killed_sweep_resumes_losing_and_repeating_no_trial(tmp_path, tiny, counted_runs):
    hp = _hparams(tmp_path, tiny, "grid(seed=[0, 1, 2])", do_predict=True)
    out = str(tmp_path / "sweep")
    steps, kill = {}, {}

    def on_step(name, step):
        steps.setdefault(name, []).append(step)
        if kill.get("at_step") == (name, step):
            raise Killed(f"{name} at step {step}")

    def sweep():
        return runner.run_sweep(hp, out, explicit=_flags(tiny), step_callback=on_step)

    kill["at_step"] = ("seed=1", 1)  # Mid-trial, after its step-1 checkpoint.
    with pytest.raises(Killed):
        sweep()
    kill.clear()
    counted_runs["kill_after"] = "seed=2"  # Trained, but its result not yet recorded.
    with pytest.raises(Killed):
        sweep()
    counted_runs["kill_after"] = None
    best = sweep()

    # seed=0 ran once; seed=1 resumed from its checkpoint (step 2 only); seed=2
    # was run again but did not train again (it had finished training).
    assert counted_runs["calls"] == ["seed=0", "seed=1", "seed=1", "seed=2", "seed=2"]
    assert steps == {"seed=0": [1, 2], "seed=1": [1, 2], "seed=2": [1, 2]}
    results = _read_jsonl(os.path.join(out, runner.RESULTS_FILE))
    assert [r["trial_id"] for r in results] == ["seed=0", "seed=1", "seed=2"]
    assert all(sorted(r) == sorted(runner.RESULT_KEYS) for r in results)
    assert [r["hparams"] for r in results] == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert all(r["metrics"]["global_step"] == 2 and r["trained_params"] > 0 for r in results)
    assert _keras_tuner_trials(out) == {f"seed={s}": ["COMPLETED"] for s in range(3)}
    with open(os.path.join(out, runner.TRIALS_DIR, "seed=1", runner.TRIAL_RESULT_FILE)) as f:
        assert json.load(f)["resumed"] is True

    # best.json: the selection rule over results.jsonl, with the trial's files.
    chosen = selection.select_best(results, "accuracy")
    with open(os.path.join(out, runner.BEST_FILE)) as f:
        assert json.load(f) == best
    assert best["trial_id"] == chosen["trial_id"] and best["task"] == "RTE"
    assert best["complete"] and best["finished_trials"] == 3
    assert best["predictions"] == {name: f"trials/{chosen['trial_id']}/{name}"
                                   for name in ("RTE.tsv", "test_results.tsv")}
    for key in ("artifact", "trial_dir"):
        assert os.path.isdir(os.path.join(out, best[key]))
    # Only the task's trained weights are stored, never the frozen base.
    weights = os.path.getsize(os.path.join(out, best["artifact"], "weights.safetensors"))
    assert weights < 4 * best["trained_params"] + 4096
    with open(os.path.join(out, runner.SUMMARY_FILE)) as f:
        summary = f.read()
    assert f"| * | `{chosen['trial_id']}` |" in summary and "across seeds" in summary

    sweep()  # A finished sweep restarted runs nothing.
    assert len(counted_runs["calls"]) == 5


@pytest.mark.slow
def test_changed_sweep_is_refused_unless_overwrite(tmp_path, tiny, counted_runs, monkeypatch):
    out = str(tmp_path / "sweep")
    one = _hparams(tmp_path, tiny, "grid(seed=[0])", name="one.py", max_train_steps=1)
    two = _hparams(tmp_path, tiny, "grid(seed=[0, 1])", name="two.py", max_train_steps=1)
    longer = _hparams(tmp_path, tiny, "grid(seed=[0, 1])", name="longer.py", max_train_steps=2)
    runner.run_sweep(one, out, explicit=_flags(tiny))
    with pytest.raises(ValueError, match=r"holds another sweep .*trials added: seed=1.*"
                                         r"--overwrite"):
        runner.run_sweep(two, out, explicit=_flags(tiny))
    with pytest.raises(ValueError, match=r"max_train_steps: 1 -> 2"):
        runner.run_sweep(longer, out, explicit=_flags(tiny))
    with pytest.raises(ValueError, match=r"learning_rate: 0.0003 -> 0.001"):
        runner.run_sweep(one, out, explicit={**_flags(tiny), "learning_rate": 1e-3})
    best = runner.run_sweep(two, out, explicit=_flags(tiny), overwrite=True)
    # The unchanged trial was kept, not rerun; only the new one ran.
    assert counted_runs["calls"] == ["seed=0", "seed=1"]
    assert best["finished_trials"] == 2 and best["complete"]
    results = _read_jsonl(os.path.join(out, runner.RESULTS_FILE))
    assert [r["trial_id"] for r in results] == ["seed=0", "seed=1"]

    # Runs recorded before a setting existed ran as its default: the same sweep
    # is not another sweep, and a grown sweep keeps them.
    _forget_setting(out, "adapter_layers")
    runner.run_sweep(two, out, explicit=_flags(tiny))
    three = _hparams(tmp_path, tiny, "grid(seed=[0, 1, 2])", name="three.py", max_train_steps=1)
    runner.run_sweep(three, out, explicit=_flags(tiny), overwrite=True)
    assert counted_runs["calls"] == ["seed=0", "seed=1", "seed=2"]

    # The same data by another spelling of its path is the same sweep: nothing
    # is refused or deleted. Other data is another sweep.
    monkeypatch.chdir(os.path.dirname(tiny["data_dir"]))
    relative = {**_flags(tiny), "data_dir": os.path.join(".", os.path.basename(tiny["data_dir"]))}
    runner.run_sweep(three, out, explicit=relative)
    runner.run_sweep(three, out, explicit=relative, overwrite=True)
    assert counted_runs["calls"] == ["seed=0", "seed=1", "seed=2"]
    other = shutil.copytree(tiny["data_dir"], tmp_path / "other_rte")
    with pytest.raises(ValueError, match=r"data_dir: .* -> .*other_rte"):
        runner.run_sweep(three, out, explicit={**_flags(tiny), "data_dir": str(other)})


def _forget_setting(out, name):
    """Rewrites a sweep's records as a version of the package without `name` wrote them."""
    paths = [os.path.join(out, runner.SWEEP_FILE)] + [
        os.path.join(out, runner.TRIALS_DIR, trial, trainer.RUN_CONFIG_FILE)
        for trial in os.listdir(os.path.join(out, runner.TRIALS_DIR))]
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        settings = record["base_settings" if path.endswith(runner.SWEEP_FILE) else "settings"]
        assert name in settings, path
        del settings[name]
        with open(path, "w") as f:
            json.dump(record, f)


# === KerasTuner's distributed mode ===
def test_worker_waits_for_the_chiefs_sweep_and_writes_nothing_before(tmp_path, tiny,
                                                                     monkeypatch):
    hparams = runner.load_hparams(_hparams(tmp_path, tiny, "grid(seed=[0, 1])"))
    other = runner.load_hparams(_hparams(tmp_path, tiny, "grid(seed=[0])", name="other.py"))
    out = tmp_path / "sweep"

    def sweep(hp):
        return runner.Sweep(hp, *runner.resolve_trials(hp, explicit=_flags(tiny)), str(out))

    # No chief: a clear error, and the output directory untouched (an early
    # worker's files made the chief refuse the directory).
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(_free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setattr(runner, "WORKER_WAIT_SECONDS", 0.3)
    with pytest.raises(ValueError, match=r"sweep.json not found: .*is the chief running"):
        runner.run_sweep(hparams.path, str(out), explicit=_flags(tiny))
    assert not out.exists()

    # The chief records the sweep while the worker waits: the worker goes on.
    # No clock: the worker's second wait is when the chief writes sweep.json.
    waits = []

    def chief_records_the_sweep_during_a_wait(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            sweep(hparams).prepare()

    monkeypatch.setattr(runner, "time", types.SimpleNamespace(
        monotonic=time.monotonic, time=time.time, sleep=chief_records_the_sweep_during_a_wait))
    sweep(hparams).wait_for_definition(timeout_seconds=600, poll_seconds=0.05)
    assert waits == [0.05, 0.05] and (out / runner.SWEEP_FILE).exists()
    # A worker running another sweep than the chief's stops.
    with pytest.raises(ValueError, match="differs from the chief's"):
        sweep(other).wait_for_definition(timeout_seconds=0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A worker's first trial starts only once the other worker has started one,
# so both work whatever the start-up order (a fast worker could otherwise take
# every trial). Files, not clocks, order them.
_WORKER = """
import os, runpy, sys, time
from bert_adapters.sweep import runner

marks, me = os.environ["WORKER_MARKS"], os.environ["KERASTUNER_TUNER_ID"]
other = {"tuner0": "tuner1", "tuner1": "tuner0"}[me]
real_run = runner.trainer.run

def run(*args, **kwargs):
    open(os.path.join(marks, me), "w").close()
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(marks, other)):
        if time.monotonic() > deadline:
            raise SystemExit(f"{me}: {other} started no trial in 600 s")
        time.sleep(0.2)
    return real_run(*args, **kwargs)

runner.trainer.run = run
sys.argv = ["run_classifier.py"] + sys.argv[1:]
runpy.run_path("run_classifier.py", run_name="__main__")
"""


@pytest.mark.slow
def test_chief_and_two_workers_share_one_sweep(tmp_path, tiny):
    hp = _hparams(tmp_path, tiny, "grid(seed=[0, 1, 2, 3])")
    out = tmp_path / "sweep"
    flags = [f"--hparams={hp}", "--task_name=RTE", f"--data_dir={tiny['data_dir']}",
             f"--output_dir={out}"]
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "WORKER_MARKS": str(marks),
           "KERASTUNER_ORACLE_PORT": str(_free_port()), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs, logs = {}, {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        command = [sys.executable] + (
            [str(REPO_ROOT / "run_classifier.py")] if tuner_id == "chief" else ["-c", _WORKER])
        logs[tuner_id] = tmp_path / f"{tuner_id}.log"
        with open(logs[tuner_id], "w") as log:
            procs[tuner_id] = subprocess.Popen(
                command + flags, env={**env, "KERASTUNER_TUNER_ID": tuner_id}, cwd=REPO_ROOT,
                stdout=log, stderr=subprocess.STDOUT)
    # Polling with a generous limit: three processes share two cores, and the
    # chief looks for finished workers every 20 s.
    deadline = time.monotonic() + 1200
    try:
        while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
            time.sleep(1.0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    codes = {t: p.returncode for t, p in procs.items()}
    tails = {t: logs[t].read_text()[-3000:] for t in logs}
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, tails

    names = [f"seed={s}" for s in range(4)]
    results = _read_jsonl(out / runner.RESULTS_FILE)
    assert [r["trial_id"] for r in results] == names  # Each trial once, in sweep order.
    # Each trial ran exactly once, by one of the two workers, and both worked.
    assert _keras_tuner_trials(str(out)) == {name: ["COMPLETED"] for name in names}
    with open(out / runner.TUNER_DIR / "oracle.json") as f:
        assert sorted(json.load(f)["run_times"].values()) == [1, 1, 1, 1]
    ran_by = {}
    for name in names:
        with open(out / runner.TRIALS_DIR / name / runner.TRIAL_RESULT_FILE) as f:
            ran_by[name] = json.load(f)["tuner_id"]
    assert set(ran_by.values()) == {"tuner0", "tuner1"}, ran_by
    with open(out / runner.BEST_FILE) as f:
        best = json.load(f)
    assert best["complete"] and best["trial_id"] in names
