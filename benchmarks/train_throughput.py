"""Training throughput and peak memory: adapters, full fine-tuning and the reference library.

  .venv/bin/python benchmarks/train_throughput.py --data=synthetic128 \
      [--reference_python=/tmp/refvenv/bin/python [--reference_tunings=adapters,full]] \
      [--rounds=3]
  .venv/bin/python benchmarks/train_throughput.py --data=mrpc \
      --paddings=fixed,grouped,packed [--reference_python=...]

Every setting runs in a fresh subprocess (so peak RSS and the dtype policy are
its own) through the trainer's own `make_train_step` and input pipeline, on
the embedded MiniLM-L6 encoder, batch 32:
  - synthetic128: every sequence 128 real tokens (the shape of the reference
    figures in shared/reference/performance.md);
  - mrpc / sst2 / rte / cola: the task's real training examples, padded to 128
    ("fixed", the reference library's usual padding), to each batch's longest
    ("dynamic"), batched by similar length ("grouped"), or packed several
    per row ("packed", `--pack_sequences`).
The reference library (`--reference_python`, reference_adapters_torch.py)
trains its adapters, on real data twice: random batches padded to 128
("fixed") and padded to each batch's longest ("dynamic", what its users get
from a padding collator; "x library" compares with this run), and with `--reference_tunings=adapters,full` also every
weight of the same model: its own adapters / full ratio beside ours ("x full
FT"); "x library" compares each of our runs with the library's run of the
same tuning padded per batch (on synthetic128, where every row is 128 tokens,
with its only run), "x library @128" with its run padded to 128.
`--options=default,fast_dropout` also runs each of our settings with
`--fast_dropout`'s 16-bit dropout masks (rows "adapters+fast_dropout"), or
`jit_compile` with the forward and backward pass compiled by XLA, or
`stock_dropout` with Keras' masks drawn by TensorFlow's stock kernels instead
of the compiled Philox loop (the same masks and values, slower), or
`bf16_kernels` / `fp32_kernels` with bf16 runs' dense matmuls in bfloat16 /
float32 kernels (`--bf16_matmuls`; the default "auto" takes float32 kernels
on Intel CPUs with AVX-512 BF16 and no AMX, `bert_adapters/ops/settings.py`),
or `full_top_layer` with the top layer computed at every position
(`--nocls_only_top_layer`; the default computes it at [CLS] only), or
`cpu_replicas` with a replica per core (MirroredStrategy over one logical
CPU device per core, each op on one thread; each replica draws the masks one
device would for its rows, `ops.dropout`; "matmul share" then divides by a
one-thread matmul rate); options
joined by "+" (`full_top_layer+fast_dropout`)
run together. The options select the ops' `settings` as the
trainer does.
`--adapter_layers=1-6,3-6,4-6,6-6` runs the adapters once per span of
adapted layers (rows "adapters[3-6]"; `--adapter_layers` of the runners).
Settings run in alternating order, one run each per round, the order
reversed every other round (A B, B A, A B, ...: `--rounds` rounds); every
figure is the median over rounds of each run's median step time. Each run
also times a TensorFlow matmul of the feed-forward shape (4096x384x1536) in
its own precision, in the same process, and the step's matmul FLOPs are
counted from the shapes it trained on: "matmul share" is the step's FLOP
rate over that matmul rate. Before the timed steps each run trains one
batch of every shape it will meet ("priming": XLA compiles the GELU
gradients once per shape, which a real run pays once in its first epoch).
"RSS before step 1" is the process's resident
memory with model, optimiser and data ready (the framework's own share of
the peak: TensorFlow's import alone is about 0.6 GB, PyTorch's 0.3 GB). The machine's CPU, its AMX / AVX-512 BF16
support and the load average are printed with the table, and for each run
"cores busy" (the process's CPU time over the timed steps' wall time) and
"steal" (the share of the machine's CPU time its hypervisor gave to others
meanwhile: on a shared VM the main source of run-to-run drift).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))
TASKS = {"mrpc": "MRPC", "sst2": "SST-2", "rte": "RTE", "cola": "CoLA"}
# MiniLM-L6: layers, width, feed-forward width; adapters of size 64.
LAYERS, HIDDEN, FF, ADAPTER = 6, 384, 1536, 64
MATMUL_SHAPE = (4096, 384, 1536)


def step_flops(tuning, rows, width, tokens, adapter_layers=None):
    """Matmul FLOPs of one training step on `rows` x `width` (`tokens` = rows x width).

    Forward: per token the four attention projections, the feed-forward
    pair and (adapters) two bottlenecks; per row the two attention products.
    Backward: the activation gradients (as much again) down to the lowest
    trained layer plus weight gradients of the trained matrices only
    (adapters: the bottlenecks; full: all). Adapters in layers i..j
    (`adapter_layers` "i-j"): bottlenecks in j - i + 1 layers, no backward
    pass below layer i. Embeddings, LayerNorms, the pooler and the head are
    left out; a [CLS]-only top layer is counted as a full one.
    """
    dense = 8 * HIDDEN ** 2 + 4 * HIDDEN * FF
    adapters = 8 * HIDDEN * ADAPTER if tuning == "adapters" else 0
    first, last = (int(n) for n in adapter_layers.split("-")) if adapter_layers else (1, LAYERS)
    adapted = last - first + 1
    per_layer = tokens * dense + rows * 4 * width ** 2 * HIDDEN
    forward = LAYERS * per_layer + adapted * tokens * adapters
    backward_layers = LAYERS - first + 1 if tuning == "adapters" else LAYERS
    backward = backward_layers * per_layer + adapted * tokens * adapters
    weight_grads = (adapted * tokens * adapters if tuning == "adapters"
                    else LAYERS * tokens * dense)
    return forward + backward + weight_grads


def matmul_gflops(precision, repeats=20):
    """GFLOP/s of a TensorFlow matmul of the feed-forward shape, in this process."""
    import tensorflow as tf

    m, k, n = MATMUL_SHAPE
    dtype = tf.bfloat16 if precision == "bf16" else tf.float32
    a = tf.cast(tf.random.normal((m, k)), dtype)
    b = tf.cast(tf.random.normal((k, n)), dtype)
    # One element comes back: copying the whole product to NumPy would be timed too.
    matmul = tf.function(lambda x, y: tf.matmul(x, y)[0, 0])
    for _ in range(3):
        matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - started)
    return 2 * m * k * n / statistics.median(times) / 1e9


def load_features(data, batch_size, total):
    """(features, labels) of `data`: synthetic 128-token rows or a task's training set."""
    import numpy as np

    if data == "synthetic128":
        rng = np.random.default_rng(0)
        n = batch_size * total
        features = {"input_word_ids": rng.integers(1000, 30000, (n, 128)).astype("int32"),
                    "input_mask": np.ones((n, 128), "int32"),
                    "input_type_ids": np.zeros((n, 128), "int32")}
        return features, rng.integers(0, 2, n).astype("int64")
    from bert_adapters import load_tokenizer
    from bert_adapters.data import get_task, load_split
    from bert_adapters.data.tokenization import encode

    task = get_task(TASKS[data])
    examples = load_split(task, "train", os.path.join(DATA_DIR, "glue", task.folder))
    features = encode(load_tokenizer("minilm_l6", max_seq_length=128),
                      examples.texts_a, examples.texts_b)
    return features, np.asarray(examples.labels)


OPTIONS = ("default", "fast_dropout", "jit_compile", "stock_dropout", "bf16_kernels",
           "fp32_kernels", "full_top_layer", "cpu_replicas")


def worker(tuning, precision, padding, data, steps, warmup, batch_size, option="default",
           adapter_layers=""):
    """One run, with the ops' settings its option selects (as `trainer.run` would)."""
    sys.path.insert(0, REPO)
    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    from bert_adapters.ops import settings

    chosen = set(option.split("+"))   # names checked by main()
    if "cpu_replicas" in chosen:
        _one_replica_per_core()
    kernels = [k for k in ("bf16_kernels", "fp32_kernels") if k in chosen]
    op_settings = settings.Settings(
        fast_dropout="fast_dropout" in chosen, compiled_masks="stock_dropout" not in chosen,
        bf16_matmuls={"bf16_kernels": "bfloat16", "fp32_kernels": "float32"}.get(
            kernels[0] if kernels else None, "auto"))
    with settings.use(op_settings):
        return _measure(tuning, precision, padding, data, steps, warmup, batch_size, option,
                        adapter_layers or None)


def _one_replica_per_core():
    """The CPU as one logical device per core, each op on one thread (`--cpu_replicas`
    of the runners): `_measure` then trains a replica per core (MirroredStrategy),
    each on its share of the batch. Before TensorFlow has made its devices."""
    from bert_adapters.training import distribution

    distribution.split_cpu(distribution.cpu_cores())


def _measure(tuning, precision, padding, data, steps, warmup, batch_size, option,
             adapter_layers):
    import keras
    import numpy as np
    import tensorflow as tf

    from bert_adapters import checkpoints
    from bert_adapters.ops import settings
    from bert_adapters.model import trainable
    from bert_adapters.model.heads import build_classifier_model
    from bert_adapters.training import input_pipeline, packing, trainer
    from bert_adapters.training.optimization import create_optimizer

    keras.config.set_dtype_policy({"fp32": "float32", "bf16": "mixed_bfloat16"}[precision])
    keras.utils.set_random_seed(0)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = (tf.distribute.MirroredStrategy(cpus) if len(cpus) > 1 else
                tf.distribute.OneDeviceStrategy("/cpu:0"))
    total = warmup + steps
    features, labels = load_features(data, batch_size, total)
    lengths = input_pipeline.sequence_lengths(features)
    rows = input_pipeline.train_index_matrix(
        len(labels), batch_size, total, seed=0,
        lengths=lengths if padding == "grouped" else None)
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            "minilm_l6", adapter_size=ADAPTER if tuning == "adapters" else None,
            adapter_layers=adapter_layers)
        trainable.apply_tuning(encoder, tuning)
        chosen = set(option.split("+"))
        model = build_classifier_model(encoder, 2,
                                       cls_only_top_layer="full_top_layer" not in chosen)
        jit_compile = "jit_compile" in chosen
        optimizer = create_optimizer("bert_adam", 1e-4, total, gradients_reduced_by_caller=True)
        optimizer.build(model.trainable_variables)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    train_model = model
    if padding == "packed":
        from bert_adapters.model.packed_models import PackedClassifier

        train_model = PackedClassifier(model, encoder)
        make = lambda r: packing.make_packed_dataset(strategy, features, labels, r)  # noqa: E731
        shapes = [packing.pack_examples(features, r, 128)["input_mask"].shape for r in rows]
    else:
        make = lambda r: input_pipeline.make_dataset(  # noqa: E731
            strategy, features, labels, r, static_shapes=padding == "fixed")
        widths = (np.full(len(rows), 128) if padding == "fixed" else
                  input_pipeline.batch_widths(rows, lengths, 128))
        shapes = [(batch_size, int(w)) for w in widths]
    dataset = make(rows)
    # One step on a batch of each shape the run will see, before any is timed:
    # XLA compiles the GELU gradients once per shape (a long run pays that
    # once, in its first epoch), reported as "priming" time.
    first_of_shape = {tuple(shape): i for i, shape in reversed(list(enumerate(shapes)))}
    priming_rows = rows[sorted(first_of_shape.values())]
    setup_rss = current_rss_gb()   # Model, optimiser and data ready; no step yet.
    iterator = iter(dataset)
    train_step = trainer.make_train_step(strategy, train_model, optimizer, _cross_entropy,
                                         batch_size, global_step, jit_compile=jit_compile)
    started = time.perf_counter()
    priming = iter(make(priming_rows))
    for _ in range(len(priming_rows)):
        float(train_step(priming))
    priming_seconds = time.perf_counter() - started
    times, cpu = [], []
    for i in range(total):
        if i == warmup:
            machine_started = _machine_cpu_ticks()
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        float(train_step(iterator))
        if i >= warmup:
            times.append(time.perf_counter() - started)
            cpu.append(_cpu_seconds() - cpu_started)
    steal = _steal_share(machine_started, _machine_cpu_ticks())
    step = statistics.median(times)
    timed = shapes[warmup:]
    flops = statistics.mean(step_flops(tuning, r, w, r * w, adapter_layers) for r, w in timed)
    # The matmul rate after training, in the same process, of the kernels the
    # dense layers ran (float32 ones for bf16 with float32 kernels).
    float32_kernels = precision == "bf16" and settings.float32_matmuls(tf.bfloat16)
    rate = matmul_gflops("fp32" if float32_kernels else precision)
    return {"tuning": tuning, "precision": precision, "padding": padding, "data": data,
            "option": option, "adapter_layers": adapter_layers,
            "step_seconds": step, "examples_per_second": batch_size / step,
            "cores_busy": sum(cpu) / sum(times), "steal": steal,
            "float32_kernels": float32_kernels,
            "padded_tokens_per_step": float(np.mean([r * w for r, w in timed])),
            "real_tokens_per_step": float(np.mean([lengths[r].sum() for r in rows[warmup:]])),
            "step_gflop": flops / 1e9, "matmul_gflops": rate,
            "matmul_share": flops / step / 1e9 / rate,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "setup_rss_gb": setup_rss,
            "priming_steps": len(priming_rows), "priming_seconds": priming_seconds,
            "trained_params": int(sum(np.prod(v.shape) for v in model.trainable_weights))}


def _cpu_seconds():
    """CPU time this process has used so far, all threads, user and system."""
    t = os.times()
    return t.user + t.system


def _machine_cpu_ticks():
    """(steal, total) CPU ticks of the whole machine so far (Linux); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: in user]
    return ticks[7] if len(ticks) > 7 else 0, sum(ticks[:8])


def _steal_share(before, after):
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def current_rss_gb():
    """This process's resident memory now (Linux), in GiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 2**20
    except (OSError, StopIteration):
        return None


def _cross_entropy(labels, logits):
    import tensorflow as tf
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def cpu_description():
    """The CPU model and which of AMX / AVX-512 BF16 / AVX-512 it has (`bert_adapters.ops.host`)."""
    sys.path.insert(0, REPO)
    from bert_adapters.ops import host
    return host.cpu_description()


def parse_result(stdout):
    """A worker's measurement from its output (the `RESULT {...}` line), or None."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[0][len("RESULT "):]) if lines else None


def _run(cmd):
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    result = parse_result(proc.stdout)
    if proc.returncode or result is None:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    result["load_average"] = max(load, os.getloadavg()[0])
    return result


def main():
    parser = _parser()
    args = parser.parse_args()
    if args.worker:
        tuning, precision, padding, *option = args.worker.split(":")
        print("RESULT " + json.dumps(worker(tuning, precision, padding, args.data, args.steps,
                                            args.warmup, args.batch_size, *option)))
        return
    for option in args.options.split(","):
        unknown = set(option.split("+")) - set(OPTIONS)
        if unknown:
            parser.error(f"--options: unknown {', '.join(sorted(unknown))} in {option!r}; "
                         f"expected {', '.join(OPTIONS)} (several joined by '+')")
    bad = set(args.reference_paddings.split(",")) - {"dynamic", "fixed"}
    if bad:
        parser.error(f"--reference_paddings: unknown {', '.join(sorted(bad))}; "
                     f"expected dynamic and/or fixed")
    runs = _run_rounds(_commands(args), args.rounds)
    _print_table({key: summarise(results) for key, results in runs.items()}, args)
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"cpu": cpu_description(), "runs": {" ".join(k): v for k, v in runs.items()}},
                      f, indent=2)


def _parser():
    """The command line (`--worker` runs one setting in this process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["synthetic128"] + sorted(TASKS),
                        default="synthetic128")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each setting once per round, alternating order")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--tunings", default="full,adapters")
    parser.add_argument("--paddings", default=None,
                        help="fixed,dynamic,grouped,packed (default: fixed for synthetic128, "
                             "fixed,grouped,packed for a task)")
    parser.add_argument("--options", default="default",
                        help="default,fast_dropout,jit_compile,stock_dropout,bf16_kernels,"
                             "fp32_kernels,full_top_layer: also run each of our settings with "
                             "--fast_dropout's masks / XLA (--jit_compile) / TensorFlow's stock "
                             "dropout kernels / bf16 matmuls in bfloat16 or float32 kernels "
                             "(--bf16_matmuls) / the top layer at every position "
                             "(--nocls_only_top_layer); options joined by '+' run together "
                             "(full_top_layer+fast_dropout)")
    parser.add_argument("--adapter_layers", default=None,
                        help="Spans of adapted layers, e.g. 1-6,3-6,4-6,6-6: the adapters run "
                             "once per span (--adapter_layers of the runners), beside the "
                             "other --tunings")
    parser.add_argument("--output", default=None, help="Also write the results as JSON here.")
    parser.add_argument("--reference_python", default=None,
                        help="A Python with torch + adapters: also run "
                             "reference_adapters_torch.py for each precision (real data: "
                             "padded to 128 and to each batch's longest).")
    parser.add_argument("--reference_tunings", default="adapters",
                        help="adapters,full: the reference library's runs (full: PyTorch "
                             "fine-tuning every weight of the same model, for its own "
                             "adapters / full ratio)")
    parser.add_argument("--reference_paddings", default="dynamic,fixed",
                        help="The reference library's paddings on real data: dynamic (each "
                             "batch to its longest) and/or fixed (to 128)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def _commands(args):
    """Each setting's command line, keyed by (tuning[+options], precision, padding)."""
    commands = {}
    paddings = (args.paddings or ("fixed" if args.data == "synthetic128"
                                  else "fixed,grouped,packed")).split(",")
    for precision in args.precisions.split(","):
        for padding in paddings:
            runs_of = [(t, "") for t in args.tunings.split(",") if t]
            runs_of += [("adapters", span) for span in (args.adapter_layers or "").split(",")
                        if span]
            for tuning, span in runs_of:
                for option in args.options.split(","):
                    label = f"{tuning}[{span}]" if span else tuning
                    key = (label if option == "default" else f"{label}+{option}",
                           precision, padding)
                    commands[key] = [
                        sys.executable, os.path.abspath(__file__), f"--data={args.data}",
                        f"--steps={args.steps}", f"--warmup={args.warmup}",
                        f"--batch_size={args.batch_size}",
                        f"--worker={tuning}:{precision}:{padding}:{option}:{span}"]
        if args.reference_python:
            script = os.path.join(REPO, "benchmarks", "reference_adapters_torch.py")
            ref_paddings = (["fixed"] if args.data == "synthetic128"
                            else args.reference_paddings.split(","))
            for tuning in args.reference_tunings.split(","):
                key = "reference" if tuning == "adapters" else f"reference_{tuning}"
                for padding in ref_paddings:
                    commands[(key, precision, padding)] = [
                        args.reference_python, script, f"--precision={precision}",
                        f"--tuning={tuning}", f"--steps={args.steps}",
                        f"--warmup={args.warmup}", f"--batch_size={args.batch_size}",
                        f"--data={args.data}", f"--padding={padding}"]
    return commands


def _run_rounds(commands, rounds):
    """Every command once per round, the order reversed every other round: results per key."""
    order = list(commands)
    runs = {key: [] for key in order}
    for round_index in range(rounds):
        for key in (order if round_index % 2 == 0 else order[::-1]):   # A B, B A, ...
            result = _run(commands[key])
            runs[key].append(result)
            print(f"  round {round_index + 1} {' '.join(key):28s} "
                  f"{result['examples_per_second']:6.1f} ex/s  {result['peak_rss_gb']:.2f} GB  "
                  f"load {result['load_average']:.1f}  steal {_num(result, 'steal', '.0%')}",
                  file=sys.stderr)
    return runs


def _print_table(summary, args):
    """The markdown table of `summary` (medians per key), with the ratios between runs."""
    print(f"\nTraining throughput, MiniLM-L6 (22.7M), batch {args.batch_size}, data {args.data}; "
          f"medians over {args.rounds} alternating rounds (A B, B A, ...) of each run's median "
          f"of {args.steps} "
          f"steps\nCPU: {cpu_description()}\n")
    print("| system | tuning | precision | padding | tokens/step (real) | examples/s | "
          "x full FT | x library | x library @128 | step GFLOP | matmul GFLOP/s | "
          "matmul share | "
          "peak RSS GB | RSS before step 1 GB | priming s (shapes) | cores busy | steal | "
          "load avg |")
    print("|---" * 18 + "|")
    for (tuning, precision, padding), s in summary.items():
        suffix = tuning[tuning.index("+"):] if "+" in tuning else ""
        ours = not tuning.startswith("reference")
        full = summary.get(("full" + suffix, precision, padding)) or summary.get(
            ("full", precision, padding))
        # The library's runs of the same tuning: padded per batch, and to 128.
        base = tuning.split("+")[0]
        ref_key = "reference" if base == "adapters" else f"reference_{base}"
        ref_fixed = summary.get((ref_key, precision, "fixed"))
        ref = summary.get((ref_key, precision, "dynamic")) or ref_fixed
        if not ours:
            full = summary.get(("reference_full", precision, padding))
            ref, ref_fixed = None, None
        label = tuning if ours else {"reference": "adapters"}.get(
            tuning, tuning[len("reference_"):])
        kernels = " (fp32 matmuls)" if s.get("float32_kernels") else ""
        print(f"| {'ours' if ours else s['system']} | {label} | "
              f"{precision}{kernels} | {padding} | {s['padded_tokens_per_step']:.0f} "
              f"({s['real_tokens_per_step']:.0f}) | {s['examples_per_second']:.1f} | "
              f"{_ratio(s, full)} | {_ratio(s, ref)} | {_ratio(s, ref_fixed)} | "
              f"{_num(s, 'step_gflop', '.0f')} | "
              f"{_num(s, 'matmul_gflops', '.0f')} | {_num(s, 'matmul_share', '.0%')} | "
              f"{s['peak_rss_gb']:.2f} | {_num(s, 'setup_rss_gb', '.2f')} | "
              f"{_priming(s)} | {_num(s, 'cores_busy', '.2f')} | {_num(s, 'steal', '.0%')} | "
              f"{s['load_average']:.1f} |")


def summarise(results):
    """Medians over rounds; the highest load average seen."""
    out = dict(results[0])
    for key in ("examples_per_second", "step_seconds", "peak_rss_gb", "setup_rss_gb",
                "priming_seconds",
                "padded_tokens_per_step",
                "real_tokens_per_step", "step_gflop", "matmul_gflops", "matmul_share",
                "cores_busy", "steal"):
        values = [r[key] for r in results if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["load_average"] = max(r["load_average"] for r in results)
    out["system"] = results[0]["tuning"]
    return out


def _priming(s):
    if s.get("priming_seconds") is None:
        return "-"
    return f"{s['priming_seconds']:.1f} ({s['priming_steps']})"


def _ratio(s, other):
    if other is None or other is s:
        return "-"
    return f"{s['examples_per_second'] / other['examples_per_second']:.2f}"


def _num(s, key, fmt):
    return "-" if s.get(key) is None else format(s[key], fmt)


if __name__ == "__main__":
    main()
