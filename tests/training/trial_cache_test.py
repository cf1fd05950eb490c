"""TrialCache: trials in one process share base weights, data, models and traces; same outputs."""


import keras
import numpy as np
import pytest

from bert_adapters.sweep import runner
from bert_adapters.sweep.hparams_file import load_hparams
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer, trial_cache
from bert_adapters.training.optimization import WarmupLinearDecay
from tiny_runs import write_hparams, write_tiny_encoder, write_tiny_rte
from resume import run_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"encoder": write_tiny_encoder(root / "encoder", max_sequence_length=32),
            "data_dir": write_tiny_rte(root / "RTE", num_train=32, num_dev=12)}


SETTINGS = {"max_seq_length": 16, "train_batch_size": 4, "eval_batch_size": 8,
            "max_train_steps": 5, "save_checkpoints_steps": 2, "log_every_steps": 1,
            "adapter_size": 2, "do_predict": False, "group_by_length": True}


def _sweep(tiny, tmp_path, sweep_expr, **settings):
    path = write_hparams(tmp_path / "sweep.py",
                         {**SETTINGS, "encoder": tiny["encoder"], **settings}, sweep_expr)
    hparams = load_hparams(path)
    base, trials = runner.resolve_trials(
        hparams, explicit={"task_name": "RTE", "data_dir": tiny["data_dir"]})
    sweep = runner.Sweep(hparams, base, trials, str(tmp_path / "sweep"))
    sweep.prepare()
    return sweep


def test_cached_trials_match_uncached_runs_and_share_one_trace(tiny, tmp_path):
    sweep = _sweep(tiny, tmp_path, "grid(learning_rate=[1e-2, 3e-3], seed=[0, 1])")
    records = [sweep.run_trial(t.name) for t in sweep.trials]
    stats = sweep.cache.stats
    assert stats == {"checkpoint_reads": 1, "split_loads": 1, "model_builds": 1,
                     "model_reuses": 3}
    shared = next(iter(sweep.cache._models.values()))  # pylint: disable=protected-access
    assert shared.train_loop.experimental_get_tracing_count() == 1
    for trial, record in zip(sweep.trials, records):
        alone = str(tmp_path / "alone" / trial.name)
        metrics = trainer.run(trial.config, alone)
        assert record["metrics"] == pytest.approx(metrics, rel=0, abs=0), trial.name
        cached = run_weights(sweep.trial_dir(trial.name))
        uncached = run_weights(alone)
        assert sorted(cached) == sorted(uncached)
        for name in cached:
            np.testing.assert_array_equal(cached[name], uncached[name], err_msg=name)


def test_other_shapes_build_their_own_model_and_resume_works(tiny, tmp_path):
    sweep = _sweep(tiny, tmp_path, "grid(adapter_size=[2, 4], learning_rate=[1e-2])")

    class Killed(BaseException):
        pass

    def kill(name, step):
        if name == sweep.trials[1].name and step == 3:
            raise Killed()

    sweep.run_trial(sweep.trials[0].name)
    sweep.step_callback = kill
    with pytest.raises(Killed):
        sweep.run_trial(sweep.trials[1].name)
    sweep.step_callback = None
    resumed = sweep.run_trial(sweep.trials[1].name)    # from its step-2 checkpoint
    assert resumed["resumed"]
    assert sweep.cache.stats["model_builds"] == 2
    alone = trainer.run(sweep.trials[1].config, str(tmp_path / "alone"))
    assert resumed["metrics"] == pytest.approx(alone, rel=1e-6, abs=1e-6)


def test_shared_splits_are_read_only_and_kind_state_is_copied(tiny):
    cache = trial_cache.TrialCache()
    config = ClassifierConfig(task_name="RTE", data_dir=tiny["data_dir"], encoder=tiny["encoder"],
                              do_train=True, max_seq_length=16)
    loads = []

    class Kind:
        loaded_artifact = None

        def load(self):
            loads.append(1)
            self.records = {"n": 1}
            return {"train": {"input_mask": np.ones((2, 3), np.int32)}}

    first, second = Kind(), Kind()
    splits = cache.splits(first, config, ["vocab", True], first.load)
    again = cache.splits(second, config, ["vocab", True], second.load)
    assert len(loads) == 1 and again == splits
    assert second.records == {"n": 1} and second.records is not first.records
    with pytest.raises(ValueError):
        splits["train"]["input_mask"][0, 0] = 0
    other = ClassifierConfig(task_name="RTE", data_dir=tiny["data_dir"], encoder=tiny["encoder"],
                             do_train=True, max_seq_length=32)
    cache.splits(Kind(), other, ["vocab", True], Kind().load)
    assert len(loads) == 2


@pytest.mark.parametrize("warmup", [0, 3])
def test_assignable_schedule_gives_the_same_rates(warmup):
    plain = WarmupLinearDecay(3e-4, 17, warmup)
    assignable = trial_cache.AssignableWarmupLinearDecay(1.0, 5, 1)
    assignable.assign(3e-4, 17, warmup)
    for step in range(20):
        assert float(assignable(step)) == float(plain(step)), step


def test_kernel_cache_is_kept_through_seeding_and_clear_session(monkeypatch):
    # A sweep's trials share traced steps: seeding a trial and clearing Keras'
    # session must not drop their instantiated kernels (2-3 s each to redo).
    import tensorflow as tf
    from tensorflow.python import pywrap_tfe

    tf.zeros(1).numpy()   # The eager context exists (else nothing is cleared at all).
    cleared = []
    monkeypatch.setattr(pywrap_tfe, "TFE_ContextClearCaches", lambda handle: cleared.append(1))
    with trial_cache.kernel_cache_kept():
        keras.utils.set_random_seed(3)
        keras.backend.clear_session(free_memory=False)
    assert cleared == []
    with trial_cache.kernel_cache_kept(keep=False):
        keras.utils.set_random_seed(3)
    keras.backend.clear_session(free_memory=False)
    assert len(cleared) == 2
