"""`--distribution_strategy` to a `tf.distribute.Strategy`."""

import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


def get_strategy(name="one_device", tpu=None, num_gpus=None):
    """Returns the strategy `name`.

    Args:
        name: one of STRATEGIES.
        tpu: TPU name or address for `tpu` (`""`/None = the local TPU VM).
        num_gpus: GPUs to use for `one_device`/`mirrored`; None = all visible.
            Without GPUs, `mirrored` replicates over every logical CPU device
            (tests split the CPU into two).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution_strategy {name!r}: expected one of {STRATEGIES}")
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
        gpus = gpus[:num_gpus]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        # Cluster from TF_CONFIG, as every multi-worker TF job.
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def needs_static_shapes(strategy):
    """TPUs compile one program per shape: pad every batch to max_seq_length."""
    return isinstance(strategy, (tf.distribute.TPUStrategy,))
