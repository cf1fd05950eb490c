"""Where a training step's time goes, by TensorFlow op, and which oneDNN fusions ran.

  .venv/bin/python benchmarks/profile_step.py [--precision=fp32|bf16] [--tuning=adapters] \
      [--seq_length=128]

Builds the training step of benchmarks/train_throughput.py (embedded
MiniLM-L6, batch 32 x `--seq_length` tokens, default 128, the trainer's own
`make_train_step`), runs
it a few times, then traces `--steps` steps with `tf.profiler` and sums the
executed kernels' time by op type (from the trace's XPlane: the ops the
runtime actually executed, after Grappler's remapper and oneDNN's layout
pass, so fused kernels show as such). Prints a table of op types with their
share of kernel time, grouped into matmuls, elementwise (GELU parts,
LayerNorm parts, softmax, dropout, casts, ...) and the rest, plus which
fusions are present: `_MklFusedMatMul`/`_FusedMatMul` (dense + bias
[+ activation]), `_MklLayerNorm`/`_FusedBatchNormEx`, `Softmax`, and how
many `Cast` kernels ran per step. Loops XLA compiled (`bert_adapters/ops/fused.py`)
appear in the trace under XLA's fusion names, counted as op type `XlaFusion`.
With `--sequential` the runtime runs one op at a time (inter-op threads 1,
each op still on every core): kernel times then add up to the step (two ops
running at once on two cores inflate each other's times), which is the view
for splitting a step into matmuls and the rest.
"""

import argparse
import collections
import glob
import os
import re
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

XLA_OP_TYPE = "XlaFusion"
# XLA's thunks: fusions named after their ops ("multiply_convert_fusion",
# "shift-left_or_fusion", "ynn_fusion") and single ops it wraps
# ("wrapped_reduce-window"). Hyphens included: a pattern without them missed
# the dropout masks' packing loops and the softmax gradients' row sums.
XLA_FUSION = re.compile(r"[a-z0-9_.\-]*_fusion(\.[0-9]+)?|wrapped_[a-z0-9_.\-]+")
MATMUL_TYPES = ("MatMul", "BatchMatMul", "Einsum", "FusedMatMul", "Conv")
GROUPS = (
    ("matmul", lambda t: any(m in t for m in MATMUL_TYPES)),
    ("XLA-compiled loops (GELU gradients, dropout masks and selects, attention-probability "
     "gradients)", lambda t: t == XLA_OP_TYPE),
    ("cast", lambda t: t.endswith("Cast")),
    ("softmax", lambda t: "Softmax" in t),
    ("layer norm (fused)", lambda t: "LayerNorm" in t or "FusedBatchNorm" in t),
    ("dropout masks (Philox uniforms, compare)",
     lambda t: "Random" in t or "Stateless" in t or t == "GreaterEqual"),
    ("GELU, exact (Erfc, its Exp gradient, fused unary chains)",
     lambda t: t in ("Erfc", "Erf", "Exp", "_UnaryOpsComposition")),
    ("selects (dropout, adapter gate)", lambda t: t in ("SelectV2", "Select")),
    ("reduce (LayerNorm moments, bias grads, ...)",
     lambda t: t.endswith(("Mean", "Sum", "Max", "BiasAddGrad")) or "Reduction" in t),
    ("transpose / reshape / copy", lambda t: t.endswith(("Transpose", "Reshape", "Identity",
                                                          "ConcatV2", "Slice", "StridedSlice",
                                                          "Pack", "Tile", "Select", "SelectV2",
                                                          "_MklToTf", "Fill", "ZerosLike"))),
    ("elementwise (GELU, residual, LayerNorm math, Adam, ...)",
     lambda t: t.endswith(("Mul", "AddV2", "Add", "Sub", "Tanh", "TanhGrad", "Pow", "Rsqrt",
                           "RsqrtGrad", "Sqrt", "RealDiv", "Square", "SquaredDifference",
                           "Erf", "Exp", "Neg", "Maximum", "Minimum", "Greater", "GreaterEqual",
                           "Less", "Cast", "BiasAdd", "AddN", "_MklAddN", "Relu", "Sign",
                           "Reciprocal", "DivNoNan", "Equal", "LogicalAnd", "Floor",
                           "AssignSubVariableOp", "AssignVariableOp", "ResourceApplyAdam",
                           "_MklSwish", "Gelu"))),
)


def _group(op_type):
    for name, test in GROUPS:
        if test(op_type):
            return name
    return "other (gather, control flow, framework)"


def op_times(logdir, names_of=None):
    """{op type: (total microseconds, count)} of the kernels in the trace under `logdir`.

    With `names_of` (an op type), also {op name with digits dropped: [us, count]}
    of that type's kernels, to see which layers' ops they are.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.defaultdict(lambda: [0.0, 0])
    by_name = collections.defaultdict(lambda: [0.0, 0])
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if XLA_FUSION.fullmatch(name):
                    # A loop XLA compiled (fused.py), on each thread it ran.
                    name = f"{name}:{XLA_OP_TYPE}"
                # Kernel events are "op_name:OpType"; the rest are framework spans.
                if ":" not in name or name.count(":") > 1 or " " in name:
                    continue
                op_type = name.rsplit(":", 1)[1]
                if not op_type or not op_type[0].isupper() and not op_type.startswith("_"):
                    continue
                totals[op_type][0] += event.duration_ps / 1e6
                totals[op_type][1] += 1
                if op_type == names_of:
                    key = "".join(c for c in name.rsplit(":", 1)[0] if not c.isdigit())
                    by_name[key][0] += event.duration_ps / 1e6
                    by_name[key][1] += 1
    return (totals, by_name) if names_of else totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--tuning", choices=["adapters", "full"], default="adapters")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seq_length", type=int, default=128,
                        help="Tokens per row (at most 128): short texts' shapes")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--names_of", default=None,
                        help="An op type (e.g. Mul): also list its kernels by op name.")
    parser.add_argument("--stock_dropout", action="store_true",
                        help="Keras' masks from TensorFlow's stock kernels, not the compiled "
                             "Philox loop (the ops' setting compiled_masks=False)")
    parser.add_argument("--bf16_matmuls", choices=["auto", "bfloat16", "float32"],
                        default="auto", help="bf16: the dense layers' matmul kernels "
                                             "(bert_adapters/ops/settings.py)")
    parser.add_argument("--sequential", action="store_true",
                        help="One op at a time (inter-op threads 1; each op still uses every "
                             "core): kernel times then add up to the step, without two "
                             "concurrent ops inflating each other's time")
    args = parser.parse_args()

    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    import keras
    import tensorflow as tf

    if args.sequential:
        tf.config.threading.set_inter_op_parallelism_threads(1)

    from bert_adapters.ops import settings

    keras.config.set_dtype_policy({"fp32": "float32", "bf16": "mixed_bfloat16"}[args.precision])
    keras.utils.set_random_seed(0)
    # Read when the step is traced (`_profile`).
    with settings.use(compiled_masks=not args.stock_dropout, bf16_matmuls=args.bf16_matmuls):
        _profile(args)


def _profile(args):
    import tensorflow as tf

    from bert_adapters import checkpoints
    from bert_adapters.model import trainable
    from bert_adapters.model.heads import build_classifier_model
    from bert_adapters.training import input_pipeline, trainer
    from bert_adapters.training.optimization import create_optimizer
    from train_throughput import _cross_entropy, load_features

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    total = 3 + 2 * args.steps
    features, labels = load_features("synthetic128", 32, total)
    features = {k: v[:, :args.seq_length] for k, v in features.items()}
    rows = input_pipeline.train_index_matrix(len(labels), 32, total, seed=0)
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            "minilm_l6", adapter_size=64 if args.tuning == "adapters" else None)
        trainable.apply_tuning(encoder, args.tuning)
        model = build_classifier_model(encoder, 2, cls_only_top_layer=True)   # the runs' default
        optimizer = create_optimizer("bert_adam", 1e-4, total, gradients_reduced_by_caller=True)
        optimizer.build(model.trainable_variables)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    iterator = iter(input_pipeline.make_dataset(strategy, features, labels, rows,
                                                static_shapes=True))
    train_step = trainer.make_train_step(strategy, model, optimizer, _cross_entropy, 32,
                                         global_step)
    for _ in range(3):
        float(train_step(iterator))
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        float(train_step(iterator))
        times.append(time.perf_counter() - started)
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        float(train_step(iterator))
    tf.profiler.experimental.stop()
    totals, by_name = op_times(logdir, args.names_of or "-")
    kernel = sum(t for t, _ in totals.values())
    step = statistics.median(times)
    print(f"\n{args.tuning} {args.precision}, batch 32 x {args.seq_length}"
          f"{', one op at a time' if args.sequential else ''}: step {step:.3f} s untraced; "
          f"kernel time {kernel / 1e6 / args.steps:.3f} s per step (summed over both cores' "
          f"threads, so it can exceed the step)\n")
    groups = collections.defaultdict(float)
    for op_type, (t, _) in totals.items():
        groups[_group(op_type)] += t
    print(f"matmul kernels {groups['matmul'] / 1e3 / args.steps:.1f} ms per step, "
          f"the rest {(kernel - groups['matmul']) / 1e3 / args.steps:.1f} ms; "
          f"kernels ran {sum(n for _, n in totals.values()) / args.steps:.0f} per step\n")
    print("| group | share of kernel time |\n|---|---|")
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {t / kernel:.1%} |")
    print(f"\n| op type | kernels per step | ms per step | share |\n|---|---|---|---|")
    for op_type, (t, n) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"| {op_type} | {n / args.steps:.0f} | {t / 1e3 / args.steps:.1f} | "
              f"{t / kernel:.1%} |")
    if args.names_of:
        print(f"\n| {args.names_of} kernels by op name (digits dropped) | per step | ms per step |"
              f"\n|---|---|---|")
        for key, (t, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:args.top]:
            print(f"| {key} | {n / args.steps:.0f} | {t / 1e3 / args.steps:.1f} |")
    present = lambda *names: sum(totals[n][1] for n in names if n in totals) // args.steps  # noqa
    print("\nFusions per step: dense+bias(+activation) "
          f"{present('_MklFusedMatMul', '_FusedMatMul', '_MklNativeFusedMatMul')}, "
          f"plain matmuls {present('MatMul', '_MklMatMul', '_MklNativeMatMul')}, "
          f"fused LayerNorm {present('_MklLayerNorm', '_FusedBatchNormEx', 'FusedBatchNormV3')}, "
          f"Softmax {present('Softmax', '_MklSoftmax')}, Tanh (unfused GELU) {present('Tanh')}, "
          f"Cast {present('Cast', '_MklCast')}")


if __name__ == "__main__":
    main()
