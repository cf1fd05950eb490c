"""`--distribution_strategy` to a `tf.distribute.Strategy`, and what workers share.

Multi-worker and TPU strategies must be made before anything touches
TensorFlow's context (a device list, a seed, an op): MultiWorkerMirroredStrategy
configures collective ops and starts this worker's gRPC server, and a TPU is
connected and initialised, both of which only work on an uninitialised
context. `get_strategy` is therefore the first TensorFlow call of every entry
point, and touches nothing itself before it makes a multi-worker or TPU
strategy (tests/training/startup_order_test.py guards this).

With `multi_worker_mirrored` every worker runs the same program on the cluster
that `TF_CONFIG` describes; the chief (`chief` task, else `worker` 0) is the
one that writes outputs. `agree` lets workers compare what they loaded and
stop together when one of them fails before training, instead of leaving the
others waiting in a collective.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
# `--cpu_replicas=auto` trains a replica per core on CPUs with this many cores
# or fewer (measured on 2: docs/performance.md); larger CPUs keep one device
# unless asked, as nothing measured says how many replicas suit them.
AUTO_CPU_REPLICAS_MAX_CORES = 4
# How long a worker waits for every worker of TF_CONFIG to start (TF's own
# default is an hour); the environment variable overrides it.
WORKER_WAIT_ENV = "BERT_ADAPTERS_WORKER_WAIT_SECONDS"
DEFAULT_WORKER_WAIT_SECONDS = 600
# Bytes of one worker's message in `agree` (an error line, cut to fit).
MESSAGE_BYTES = 1024


def get_strategy(name="one_device", tpu=None, num_gpus=None, tpu_zone=None, gcp_project=None,
                 cpu_replicas=1):
    """Returns the strategy `name`.

    Args:
        name: one of STRATEGIES.
        tpu: TPU name or grpc:// address for `tpu` (`""`/None = the local TPU VM).
        num_gpus: GPUs to use per machine for `one_device`/`mirrored`/
            `multi_worker_mirrored`; None = all visible. Without GPUs,
            `mirrored` replicates over every logical CPU device (tests split
            the CPU into two).
        tpu_zone, gcp_project: where to find a Cloud TPU by name (BERT's
            `--tpu_zone`, `--gcp_project`); None = from the metadata server.
        cpu_replicas: with `one_device` or `mirrored` on a machine without
            GPUs, train this many replicas on the CPU (`split_cpu`), mirrored;
            1: the CPU as one device.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown distribution_strategy {name!r}: expected one of {STRATEGIES}")
    if cpu_replicas != 1:
        if name not in ("one_device", "mirrored"):
            raise ValueError(f"--cpu_replicas={cpu_replicas} splits one machine's CPU: it works "
                             f"with --distribution_strategy=one_device or mirrored, not {name}")
        if tf.config.list_physical_devices("GPU"):
            raise ValueError(f"--cpu_replicas={cpu_replicas} splits the CPU, but this machine "
                             f"has GPUs: train on them (--distribution_strategy=mirrored)")
        return new_mirrored_strategy(split_cpu(cpu_replicas))
    if name == "tpu":
        return _tpu_strategy(tpu, tpu_zone, gcp_project)
    if name == "multi_worker_mirrored":
        return _multi_worker_strategy(num_gpus)
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
        gpus = gpus[:num_gpus]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return new_mirrored_strategy(devices)


def new_mirrored_strategy(devices):
    """A MirroredStrategy whose collectives cannot collide with an earlier one's.

    Every MirroredStrategy of a process numbers its collective groups from
    the class's `_collective_key_base`; a second strategy on the same devices
    (a second run in a notebook or a test session) would reuse the first's
    keys for other collectives and fail with "Collective instance N expected
    type ...". Each one made here starts its keys apart.
    """
    tf.distribute.MirroredStrategy._collective_key_base += _KEY_SPACING  # pylint: disable=protected-access
    return tf.distribute.MirroredStrategy(devices)


# Group keys one MirroredStrategy may use before the next one's start.
_KEY_SPACING = 10_000


def strategy_from_config(config, also_for=()):
    """`get_strategy` with a `RunConfig`'s hardware settings; `also_for`: the
    other runs it will serve (a sweep's trials), whose batches must split too."""
    return get_strategy(config.distribution_strategy, config.tpu, config.num_gpus,
                        tpu_zone=getattr(config, "tpu_zone", None),
                        gcp_project=getattr(config, "gcp_project", None),
                        cpu_replicas=cpu_replicas_for(config, also_for))


# === Replicas on one CPU ===
def cpu_cores():
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # Not Linux.
        return os.cpu_count() or 1


def cpu_replicas_for(config, also_for=()):
    """How many CPU replicas `config.cpu_replicas` asks for: "auto" resolved here.

    auto: a replica per core where that is known to help and can be done:
    the run would otherwise train on one device, it trains a small part of
    the model (adapters or LayerNorms: replicas summing the gradients of
    every weight made full fine-tuning's bf16 steps slower), the machine has
    no GPU, it has 2 to AUTO_CPU_REPLICAS_MAX_CORES cores, every batch the run uses (in
    `config` and in the configs `also_for`) splits evenly over them, and
    TensorFlow has not made its devices yet (a notebook or a test that
    already ran TensorFlow keeps them). Else 1.
    """
    asked = getattr(config, "cpu_replicas", 1)
    if asked != "auto":
        return asked
    cores = cpu_cores()
    batches = []
    for each in (config, *also_for):
        batches += [each.train_batch_size] if each.do_train else []
        batches += [each.eval_batch_size] if each.do_eval or each.do_predict else []
    if (config.distribution_strategy != "one_device"
            or any(each.tuning in ("full", "top_k") for each in (config, *also_for))
            or not 2 <= cores <= AUTO_CPU_REPLICAS_MAX_CORES
            or any(b % cores for b in batches)
            or tf.config.list_physical_devices("GPU")
            or _devices_made()):
        return 1
    return cores


def split_cpu(replicas):
    """The CPU as `replicas` logical devices, each op on cores/replicas threads; their names.

    Must run before TensorFlow makes its devices: each replica then runs its
    share of a step on its own core(s), with ops that stay on one thread
    instead of every small op fanning out over all cores and waiting for
    them. A process whose CPU is already split into `replicas` devices (the
    tests split it in two) keeps that split.
    """
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"--cpu_replicas={replicas!r}: expected a positive number or auto")
    cpu = tf.config.list_physical_devices("CPU")[0]
    cores = cpu_cores()
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // replicas))
        tf.config.threading.set_inter_op_parallelism_threads(max(cores, replicas))
    except RuntimeError:
        made = tf.config.list_logical_devices("CPU")
        if len(made) != replicas:
            raise ValueError(f"--cpu_replicas={replicas}: TensorFlow already made this "
                             f"process's devices ({len(made)} CPU device(s)); the CPU can only "
                             f"be split before TensorFlow's first op (a fresh process)") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _devices_made():
    """Whether TensorFlow has made this process's devices (they can no longer be split)."""
    from tensorflow.python.eager import context  # pylint: disable=import-outside-toplevel

    return context.context()._context_handle is not None  # pylint: disable=protected-access


def _multi_worker_strategy(num_gpus):
    """MultiWorkerMirroredStrategy on the cluster of TF_CONFIG, as every multi-worker TF job.

    Without TF_CONFIG: one worker on its local devices, as in TF.
    """
    cluster = _read_tf_config()
    if num_gpus is not None:
        # Physical devices can be listed without starting the context.
        gpus = tf.config.list_physical_devices("GPU")
        if num_gpus > len(gpus):
            raise ValueError(f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
        tf.config.set_visible_devices(gpus[:num_gpus], "GPU")
    if not cluster:
        return tf.distribute.MultiWorkerMirroredStrategy()
    # Making the strategy waits, inside TensorFlow and for up to an hour,
    # until every worker of TF_CONFIG has started: a worker that died before
    # (a typo in its flags, a missing file) would leave the others waiting.
    # That wait holds the interpreter and ignores SIGTERM, so a small watchdog
    # process ends this one after a bounded wait instead.
    wait = _worker_wait_seconds()
    message = (f"error: the workers of TF_CONFIG ({cluster}) did not all start within "
               f"{wait:.0f} s: start the same command on every worker (or wait longer with "
               f"{WORKER_WAIT_ENV})")
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(wait),
                                 message], stdin=subprocess.PIPE)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        watchdog.stdin.close()  # Stands the watchdog down.
        watchdog.wait()


# argv: pid, seconds, message. Kills pid unless stdin closes first (it also
# closes if the watched process dies).
_WATCHDOG = """
import os, select, signal, sys
ready, _, _ = select.select([sys.stdin], [], [], float(sys.argv[2]))
if not ready:
    sys.stderr.write(sys.argv[3] + "\\n")
    sys.stderr.flush()
    os.kill(int(sys.argv[1]), signal.SIGKILL)
"""


def _worker_wait_seconds():
    text = os.environ.get(WORKER_WAIT_ENV)
    if not text:
        return DEFAULT_WORKER_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise ValueError(f"{WORKER_WAIT_ENV}={text!r}: expected a positive number of seconds")
    return seconds


def _read_tf_config():
    """TF_CONFIG's cluster, or None without TF_CONFIG; ValueError if malformed."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"TF_CONFIG is not valid: {err!r}; expected "
                         '{"cluster": {"worker": ["host:port", ...]}, '
                         '"task": {"type": "worker", "index": 0}}') from None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError("TF_CONFIG: 'cluster' must map job names to lists of host:port")
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise ValueError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster "
                         f"{ {k: len(v) for k, v in cluster.items()} }")
    return cluster


def _tpu_strategy(tpu, tpu_zone, gcp_project):
    # Connect and initialise before any op: the TPU system is set up on a
    # fresh context, and every later op is placed through that connection.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu or "", zone=tpu_zone, project=gcp_project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def needs_static_shapes(strategy):
    """TPUs compile one program per shape: pad every batch to max_seq_length."""
    return isinstance(strategy, (tf.distribute.TPUStrategy,))


# === Workers ===
def is_multi_worker(strategy):
    """Whether `strategy` spans several worker processes (each runs this program)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and worker_count(strategy) > 1)


def worker_count(strategy):
    """How many processes run this job (1 but for a multi-worker cluster)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker"))


def worker_index(strategy):
    """This process's place among the workers: 0 is the chief."""
    if not is_multi_worker(strategy):
        return 0
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return 0
    return resolver.task_id + (1 if "chief" in spec else 0)


def is_chief(strategy):
    """Whether this process writes the job's outputs (TF: `should_checkpoint`)."""
    return bool(strategy.extended.should_checkpoint)


def agree(strategy, error=None, note=""):
    """Workers compare notes at the same point of the program; returns them.

    Every worker calls this with the exception it met since the last call
    (None if none) and a short `note` (a digest of what it loaded, a step).
    The notes travel in one collective, so a worker that failed does not
    leave the others waiting for it in the next one.

    Returns:
        [note of worker 0, note of worker 1, ...] (`[note]` on one worker);
        the caller decides what a difference means.

    Raises:
        the worker's own `error`, if any; else ValueError naming the worker
        that failed and its message.
    """
    if not is_multi_worker(strategy):
        if error is not None:
            raise error
        return [note]
    mine = f"E{type(error).__name__}: {error}" if error is not None else f"N{note}"
    notes = _all_gather_text(strategy, mine)
    if error is not None:
        raise error
    for i, text in enumerate(notes):
        if text.startswith("E"):
            raise ValueError(f"worker {i} of {len(notes)} stopped the job: {text[1:]}")
    return [text[1:] for text in notes]


def _all_gather_text(strategy, text):
    """Each worker's `text` (cut to MESSAGE_BYTES of UTF-8), in worker order."""
    raw = text.encode("utf-8")[:MESSAGE_BYTES]
    row = np.zeros(MESSAGE_BYTES + 1, np.int32)
    row[0] = len(raw)
    row[1:1 + len(raw)] = np.frombuffer(raw, np.uint8)
    num_replicas = strategy.num_replicas_in_sync

    def value_fn(context):
        # Each replica fills its own row; the sum is then every row at once.
        table = np.zeros((num_replicas, MESSAGE_BYTES + 1), np.int32)
        table[context.replica_id_in_sync_group] = row
        return tf.constant(table)

    values = strategy.experimental_distribute_values_from_function(value_fn)
    table = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    per_worker = num_replicas // worker_count(strategy)
    rows = table[::per_worker]
    return [bytes(r[1:1 + r[0]].astype(np.uint8)).decode("utf-8", "replace") for r in rows]


def digest_arrays(*items):
    """A sha256 hex digest of JSON-able objects and numpy arrays, in order."""
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            digest.update(f"{item.dtype}{item.shape}".encode())
            digest.update(np.ascontiguousarray(item).tobytes())
        else:
            digest.update(json.dumps(item, sort_keys=True, default=str).encode())
    return digest.hexdigest()
