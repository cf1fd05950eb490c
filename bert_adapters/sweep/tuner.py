"""KerasTuner as the sweep's engine: a grid oracle and a tuner around `trainer.run`.

KerasTuner runs the sweep, alone or across machines: one process holds the
oracle (alone, or the chief with `KERASTUNER_TUNER_ID=chief` and
`KERASTUNER_ORACLE_IP`/`_PORT`), the others ask it for trials over gRPC and
report back. The search space is one categorical hyperparameter, `trial`,
whose values are the sweep's trial names in `get_sweep()` order; each trial
runs `trainer.run` in its own directory, so only the task's trained weights
are ever stored (the trainer's checkpoints and task artifact), never a model
saved by KerasTuner.

Two of KerasTuner 1.4.8's GridSearch behaviours block a sweep's needs; both
are worked around by overriding the oracle's hooks, not by a new scheduler:
  - `GridSearchOracle.populate_space` derives each new grid point from a
    *finished* trial (its successor), so at most two trials ever run at once,
    however many workers ask. `SweepOracle.populate_space` hands the next
    grid point not yet handed out to whichever worker asks.
  - GridSearch keeps its position in the grid in memory only (not in
    `oracle.json`): a reloaded oracle crashes (`KeyError`) or stops with
    trials never run. `SweepOracle` derives the next point from the trials
    KerasTuner reloads from their `trial.json` files, and on reload queues
    for a retry exactly the trials that did not complete (KerasTuner queues
    those `oracle.json` lists as ongoing, which can miss an interrupted trial
    and, on a chief, includes the last completed one), so an interrupted
    trial is handed out again and the trainer resumes it from its checkpoint.
"""

import keras_tuner
from keras_tuner.engine import trial as trial_module

TRIAL_HP = "trial"


class SweepOracle(keras_tuner.oracles.GridSearchOracle):
    """A grid over the sweep's trial names that any number of workers share.

    Args:
        trial_names: the sweep's trial names, in order.
        metric: the objective (maximised).
        on_end_trial: `fn(oracle)` called after every trial ends, under the
            oracle's lock: the one place the sweep's reports are written.
    """

    def __init__(self, trial_names, metric, on_end_trial=None):
        space = keras_tuner.HyperParameters()
        space.Choice(TRIAL_HP, list(trial_names))
        # A failed trial is recorded and the sweep goes on (a diverged run's
        # NaN score is a failure), so no limit on consecutive failures.
        super().__init__(objective=keras_tuner.Objective(metric, "max"),
                         max_trials=len(trial_names), hyperparameters=space,
                         allow_new_entries=False, tune_new_entries=False,
                         max_consecutive_failed_trials=None)
        self.trial_names = list(trial_names)
        self.on_end_trial = on_end_trial

    def populate_space(self, trial_id):
        # With `max_trials` = the number of grid points, KerasTuner itself
        # answers STOPPED once every point is handed out: a worker with
        # nothing left exits while the others finish.
        handed_out = {t.hyperparameters.get(TRIAL_HP) for t in self.trials.values()}
        for name in self.trial_names:
            if name not in handed_out:
                return {"status": trial_module.TrialStatus.RUNNING, "values": {TRIAL_HP: name}}
        if self.ongoing_trials:
            return {"status": trial_module.TrialStatus.IDLE, "values": None}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        if self.on_end_trial is not None:
            self.on_end_trial(self)

    def reload(self):
        super().reload()
        # Retry exactly the trials that did not complete. KerasTuner queues
        # those `oracle.json` lists as ongoing, which misses a trial whose
        # trial.json was written just before a crash and, since `end_trial`
        # saves before it clears the ongoing entry, includes the last trial
        # that completed on a chief.
        unfinished = [trial_id for trial_id, trial in self.trials.items()
                      if trial.status != trial_module.TrialStatus.COMPLETED]
        # `create_trial` pops from the end: the earliest trial goes first.
        self._retry_queue = sorted(unfinished, reverse=True)

    def trial_statuses(self):
        """{trial name: (KerasTuner status, message)} of every trial handed out."""
        return {t.hyperparameters.get(TRIAL_HP): (t.status, t.message)
                for t in self.trials.values()}


class SweepTuner(keras_tuner.Tuner):
    """Runs each trial KerasTuner hands out through `run_trial_fn`.

    Args:
        oracle: a `SweepOracle` (on a worker KerasTuner wraps it in its gRPC
            client).
        run_trial_fn: `fn(name, tuner_id=..., keras_tuner_trial_id=...)` runs
            a trial (or returns its recorded result) and returns its record.
        metric: the record's primary metric, reported to the oracle.
        directory, project_name: KerasTuner's own files (oracle.json, one
            trial.json per trial).
        distribution_strategy: the trials' strategy; KerasTuner reads it to
            let only one process of a multi-worker cluster report.
    """

    def __init__(self, oracle, run_trial_fn, metric, directory, project_name,
                 distribution_strategy=None):
        super().__init__(oracle=oracle, directory=directory, project_name=project_name,
                         distribution_strategy=distribution_strategy, overwrite=False)
        self.run_trial_fn = run_trial_fn
        self.metric = metric

    def run_trial(self, trial, *args, **kwargs):
        del args, kwargs  # `search(verbose=...)` passes its arguments on.
        name = trial.hyperparameters.get(TRIAL_HP)
        record = self.run_trial_fn(name, tuner_id=self.tuner_id,
                                   keras_tuner_trial_id=trial.trial_id)
        score = record["metrics"].get(self.metric)
        # A missing or NaN score makes KerasTuner mark the trial failed.
        return {self.metric: float("nan") if score is None else float(score)}

    def save_model(self, trial_id, model, step=0):
        """Nothing: the trainer already wrote the trial's checkpoints and artifact."""

    def load_model(self, trial):
        raise NotImplementedError(
            "A sweep keeps each trial's trained weights in <output_dir>/trials/<trial>/"
            "task_artifact; load one with run_classifier.py --task_dir")
