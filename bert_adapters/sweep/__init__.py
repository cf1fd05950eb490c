"""Sweeps and model selection: hparams files, a resumable runner on KerasTuner.

  hparams_file.py  load and check an hparams file; `grid()`; trial names
  runner.py        run a sweep into one directory; resume; reports; best.json
  tuner.py         KerasTuner's oracle and tuner around `trainer.run`
  selection.py     the best trial (and its tie-break); the summary table

`run_classifier.py --hparams=hparams/<file>.py` calls `run_sweep_from_flags`.
"""

from bert_adapters.sweep.hparams_file import grid, load_hparams, trial_name

__all__ = ["grid", "load_hparams", "run_sweep", "run_sweep_from_flags", "trial_name"]


def run_sweep(*args, **kwargs):
    """See `runner.run_sweep` (imported on use: it brings KerasTuner and the trainer)."""
    from bert_adapters.sweep import runner
    return runner.run_sweep(*args, **kwargs)


def run_sweep_from_flags(values, runner_script="run_classifier.py"):
    """See `runner.run_sweep_from_flags`."""
    from bert_adapters.sweep import runner
    return runner.run_sweep_from_flags(values, runner_script)
