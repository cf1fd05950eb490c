"""The training step and loop: one compiled call runs many steps over the strategy's replicas.

`run_steps` drives a run from its start (or resumed) step to its last one,
`iterations_per_loop` steps per compiled call, saving checkpoints on exact
multiples of `save_checkpoints_steps`, so a resumed run repeats the
uninterrupted one step for step.
"""

import time

import keras
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.training import distribution

CHECKPOINT_DIR = "checkpoints"


def run_steps(config, output_dir, strategy, train_loop, iterator, manager, start, total_steps,
              step_callback=None, meter=None):
    """Runs steps `start + 1 .. total_steps`: logs, TensorBoard scalars, checkpoints.

    Steps run `iterations_per_loop` at a time inside one compiled call; a loop
    also ends at every checkpoint step, so checkpoints land exactly on
    multiples of `save_checkpoints_steps`. Losses come back per step: logs
    and `step_callback(step)` still see every step; `meter` (a
    `train_stats.TrainMeter`) times each loop.
    """
    chief = distribution.is_chief(strategy)
    writer = (tf.summary.create_file_writer(io_utils.join(output_dir, "logs", "train"))
              if chief else tf.summary.create_noop_writer())
    progress = keras.utils.Progbar(total_steps, stateful_metrics=["loss", "lr"],
                                   interval=5.0, verbose=1 if chief else 0)
    started, window_loss, window = time.time(), 0.0, 0
    step = start
    while step < total_steps:
        end = loop_end(step, total_steps, config.iterations_per_loop,
                       config.save_checkpoints_steps)
        loop_started = time.perf_counter()
        losses, rates = train_loop(iterator, tf.constant(end - step, tf.int32))
        losses, rates = losses.numpy(), rates.numpy()
        if meter is not None:
            meter.loop_done(end - step, time.perf_counter() - loop_started)
        first = step + 1
        for step, loss, lr in zip(range(first, end + 1), losses, rates):
            window_loss, window = window_loss + float(loss), window + 1
            if step % config.log_every_steps == 0 or step == total_steps:
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", window_loss / window)
                    tf.summary.scalar("learning_rate", float(lr))
                progress.update(step, [("loss", window_loss / window), ("lr", float(lr))])
                window_loss, window = 0.0, 0
            if step == end and (step % config.save_checkpoints_steps == 0
                                or step == total_steps):
                manager.save(checkpoint_number=step)
                if not chief:  # Saved because every worker must; only the chief's are kept.
                    tf.io.gfile.rmtree(manager.directory)
            if step_callback is not None:
                step_callback(step)
    writer.flush()
    elapsed = time.time() - started
    logging.info("Trained %d steps in %.1f s (%.1f examples/s)", total_steps - start, elapsed,
                 (total_steps - start) * config.train_batch_size / max(elapsed, 1e-9))


def loop_end(step, total_steps, iterations_per_loop, save_checkpoints_steps):
    """Where a training loop that starts after `step` ends.

    At the next multiple of `iterations_per_loop`, or earlier at the next
    checkpoint step or the last step: loop boundaries are the same whether a
    run started at 0 or resumed from a checkpoint.
    """
    def next_multiple(n):
        return (step // n + 1) * n

    return min(next_multiple(iterations_per_loop), next_multiple(save_checkpoints_steps),
               total_steps)


def make_train_step(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                    jit_compile=False):
    """A tf.function `train_step(iterator) -> mean loss` over the strategy's replicas.

    Each replica's loss is summed over its examples and divided by the global
    batch size, gradients are summed across replicas before the optimiser
    clips their global norm (see optimization._ReducedGradientsMixin), and
    `global_step` is incremented. `jit_compile` XLA-compiles the forward and
    backward pass (not the cross-replica update).
    """
    return tf.function(_step_fn(strategy, model, optimizer, loss_fn, global_batch_size,
                                global_step, jit_compile))


def make_train_loop(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                    jit_compile=False, learning_rate=None):
    """A tf.function `train_loop(iterator, num_steps) -> (losses, learning_rates)`.

    Runs `num_steps` steps of `make_train_step` inside one call (a
    `tf.while_loop`: BERT's `--iterations_per_loop`), so Python and the
    function call are paid once per loop, not once per step. Returns the
    mean loss and learning rate after each step, float32 `[num_steps]`.
    `num_steps` is a tensor: one trace serves every loop length.
    """
    step_fn = _step_fn(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                       jit_compile)
    if learning_rate is None:
        learning_rate = lambda: optimizer.learning_rate  # noqa: E731

    @tf.function
    def train_loop(iterator, num_steps):
        def body(i, losses, rates):
            losses = losses.write(i, tf.cast(step_fn(iterator), tf.float32))
            rates = rates.write(i, tf.cast(learning_rate(), tf.float32))
            return i + 1, losses, rates

        # An explicit while loop, not a `for` over tf.range: it does not depend
        # on AutoGraph reading this file's source (which fails where the source
        # is missing or was edited since it was imported).
        _, losses, rates = tf.while_loop(
            lambda i, losses, rates: i < num_steps, body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=num_steps),
             tf.TensorArray(tf.float32, size=num_steps)))
        return losses.stack(), rates.stack()

    return train_loop


def _step_fn(strategy, model, optimizer, loss_fn, global_batch_size, global_step, jit_compile):
    """One training step over the strategy's replicas (see `make_train_step`)."""
    trainable = model.trainable_variables
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def compute_grads(inputs, labels):
        with tf.GradientTape() as tape:
            out = tf.cast(model(inputs, training=True), tf.float32)
            loss = tf.reduce_sum(loss_fn(labels, out)) / global_batch_size
            scaled = optimizer.scale_loss(loss) if scale_loss else loss
        grads = tape.gradient(scaled, trainable)
        # Embedding gradients arrive as IndexedSlices: densify for clipping.
        return loss, [tf.convert_to_tensor(g) for g in grads]

    if jit_compile:
        compute_grads = tf.function(compute_grads, jit_compile=True)

    def replica_step(inputs, labels, valid):
        del valid  # Training batches are always full.
        loss, grads = compute_grads(inputs, labels)
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            # Sum over replicas before the optimiser clips the global norm.
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        optimizer.apply_gradients(zip(grads, trainable))
        return loss

    def train_step(iterator):
        loss = strategy.run(replica_step, args=next(iterator))
        global_step.assign_add(1)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    return train_step
