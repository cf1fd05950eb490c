"""`iterations_per_loop`: N training steps inside one compiled call, same run as N = 1."""

import glob
import os

import pytest
import tensorflow as tf

from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer
from tiny_runs import write_tiny_encoder, write_tiny_rte
from resume import assert_same_weights, interrupt_and_resume, run_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_loops")
    return {"encoder": write_tiny_encoder(root / "encoder", max_sequence_length=64),
            "data": write_tiny_rte(root / "RTE", num_train=48, num_dev=20, num_test=12)}


def _config(tiny, **overrides):
    # Dropout stays on: a loop must also carry the dropout RNG state along.
    fields = dict(task_name="rte", data_dir=tiny["data"], encoder=tiny["encoder"],
                  adapter_size=4, adapter_init_scale=0.1, max_seq_length=32, train_batch_size=8,
                  learning_rate=1e-2, num_train_epochs=2.0, do_train=True,   # 12 steps
                  save_checkpoints_steps=4, log_every_steps=2)
    fields.update(overrides)
    return ClassifierConfig(**fields)


def _logged_losses(output_dir):
    """{step: loss} of the run's TensorBoard training log."""
    losses = {}
    for path in glob.glob(os.path.join(output_dir, "logs", "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss":
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
    return losses


def _checkpoints(output_dir):
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0])
                  for p in glob.glob(os.path.join(output_dir, "checkpoints", "ckpt-*.index")))


@pytest.mark.parametrize("start,expected", [
    (0, [4, 5, 8, 10, 12]),   # loops of 5, cut at every checkpoint step (4, 8, 12)
    (4, [5, 8, 10, 12]),      # resumed at a checkpoint: the same boundaries
    (8, [10, 12]),
])
def test_loop_boundaries_fall_on_multiples_and_checkpoint_steps(start, expected):
    ends, step = [], start
    while step < 12:
        step = trainer.loop_end(step, 12, iterations_per_loop=5, save_checkpoints_steps=4)
        ends.append(step)
    assert ends == expected
    assert trainer.loop_end(0, 7, 10, 500) == 7   # the last loop is cut to the total


def test_loops_of_five_train_log_and_checkpoint_as_single_steps(tiny, tmp_path):
    steps = {1: [], 5: []}
    for n in (1, 5):
        trainer.run(_config(tiny, iterations_per_loop=n), str(tmp_path / f"n{n}"),
                    step_callback=steps[n].append)
    assert steps[1] == steps[5] == list(range(1, 13))   # the callback sees every step
    assert_same_weights(run_weights(tmp_path / "n1"), run_weights(tmp_path / "n5"))
    logged = _logged_losses(tmp_path / "n5")
    assert sorted(logged) == [2, 4, 6, 8, 10, 12]
    assert logged == pytest.approx(_logged_losses(tmp_path / "n1"), rel=1e-5)
    assert _checkpoints(tmp_path / "n5") == [8, 12]   # max_to_keep=2

    # Interrupted inside a loop (step 7 of the loop 5..8), resumed from step 4.
    out = str(tmp_path / "resumed")
    resumed = interrupt_and_resume(
        lambda callback: trainer.run(_config(tiny, iterations_per_loop=5), out,
                                     step_callback=callback), 7)
    assert resumed == list(range(5, 13))
    assert_same_weights(run_weights(tmp_path / "n1"), run_weights(out))


def test_a_total_not_divisible_by_the_loop_stops_exactly(tiny, tmp_path):
    results = trainer.run(_config(tiny, iterations_per_loop=5, max_train_steps=7, do_eval=True,
                                  save_checkpoints_steps=500), str(tmp_path / "run"))
    assert results["global_step"] == 7
    assert _checkpoints(tmp_path / "run") == [7]


def test_iterations_per_loop_must_be_positive(tiny, tmp_path):
    with pytest.raises(ValueError, match="iterations_per_loop"):
        trainer.run(_config(tiny, iterations_per_loop=0), str(tmp_path / "run"))
