"""`make demo`: the paper's method on MRPC with the embedded encoder.

Trains adapters (size 64) plus the LayerNorms and a classifier head on MRPC,
leaving the 22.7M-parameter base frozen, then prints dev accuracy and F1 and
the parameter report. Three epochs at a peak rate of 5e-4, in bfloat16 where
the CPU runs it faster than float32, a replica per core on small CPUs
(`--cpu_replicas`): the first command a user runs should
finish in a few minutes (docs/performance.md has its time per CPU). GLUE
files come from `--glue_dir` (the Makefile passes `$GLUE_DIR`, by default
../shared/data/glue when it exists); without it the data is read from TFDS.
"""

import json
import os
import time

import numpy as np
from absl import app, flags

import bert_adapters
from bert_adapters import io_utils
from bert_adapters.cli import terminal
from bert_adapters.model import trainable
from bert_adapters.ops import host
from bert_adapters.cli.flags import parse_flags
from bert_adapters.training import distribution, trainer
from bert_adapters.tasks.classification import ClassifierConfig as RunConfig

flags.DEFINE_string("glue_dir", None, "GLUE root (holding MRPC/) or MRPC folder; empty: TFDS.")
flags.DEFINE_string("output_dir", "runs/demo_mrpc", "Where the run is written.")
flags.DEFINE_float("num_train_epochs", 3.0, "Epochs.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.")
flags.DEFINE_enum("precision", "auto", ["auto", "bf16", "fp32"], "auto: bf16 where this CPU "
                  "runs it faster than fp32 (AMX, or AVX-512 BF16 on AMD), else fp32.")
flags.DEFINE_integer("max_train_steps", None, "Cap on steps (smoke runs).")
flags.DEFINE_string("cpu_replicas", "auto", "Replicas on the CPU (run_classifier.py's flag): "
                    "auto: one per core on CPUs of 2 to 4 cores.")
FLAGS = flags.FLAGS


PAIRS = [
    ("A man is playing a guitar.", "Someone plays an acoustic guitar."),
    ("A man is playing a guitar.", "The stock market fell sharply today."),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
    ("The cat sleeps on the sofa.", "Parliament passed the budget bill."),
]


def show_encoder():
    """The embedded encoder with fresh adapters: parameters and sentence similarity.

    Adapters start near the identity (section 2.1), so the pre-trained
    sentence embeddings are intact: paraphrases score above unrelated pairs.
    """
    encoder = bert_adapters.load_encoder("minilm_l6", adapter_size=64)
    tokenizer = bert_adapters.load_tokenizer("minilm_l6", max_seq_length=64)
    trainable.apply_tuning(encoder, "adapters")
    report = trainable.parameter_report(encoder, encoder)
    print(f"Embedded encoder {encoder.source}: {report['base_params']:,} base parameters; "
          f"adapters (m=64) + LayerNorms train {report['trained_params']:,} "
          f"({report['trained_percent_of_base']:.2f}%)")
    texts = [t for pair in PAIRS for t in pair]
    inputs = tokenizer(texts)
    out = encoder(inputs, training=False)["sequence_output"].numpy()
    mask = inputs["input_mask"].numpy()[..., None]
    emb = (out * mask).sum(1) / mask.sum(1)  # Mean pooling, as the model was trained.
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    for i, (a, b) in enumerate(PAIRS):
        print(f"  cosine {emb[2 * i] @ emb[2 * i + 1]:+.3f}  {a!r} ~ {b!r}")
    print()


def main(argv):
    del argv
    terminal.setup_cli(FLAGS.verbosity)
    precision = FLAGS.precision
    if precision == "auto":
        precision = "bf16" if host.bf16_faster_than_fp32() else "fp32"
    try:
        config = RunConfig(
            task_name="MRPC", data_dir=FLAGS.glue_dir or None, encoder="minilm_l6",
            tuning="adapters", adapter_size=64, learning_rate=FLAGS.learning_rate,
            num_train_epochs=FLAGS.num_train_epochs, max_train_steps=FLAGS.max_train_steps,
            mixed_precision="bf16" if precision == "bf16" else None,
            group_by_length=True, do_train=True, do_eval=True, cpu_replicas=FLAGS.cpu_replicas)
        # Before the encoder's first op: the CPU can only be split before it.
        strategy = distribution.strategy_from_config(config)
    except ValueError as err:
        terminal.fail("demo", err)
    show_encoder()
    how = "chosen for this CPU" if FLAGS.precision == "auto" else "as asked"
    replicas = strategy.num_replicas_in_sync
    print(f"Training in {precision} ({how}: {host.cpu_description()})"
          + (f", {replicas} replicas, one per core" if replicas > 1 else ""))
    started = time.time()
    try:
        results = trainer.run(config, FLAGS.output_dir, strategy=strategy)
    except (ValueError, OSError) as err:
        terminal.fail("demo", err)
    params = io_utils.read_json(os.path.join(FLAGS.output_dir, trainer.PARAMS_FILE))
    print()
    print("MRPC dev, adapters (size 64) on the embedded MiniLM-L6 encoder")
    print(f"  accuracy {100 * results['accuracy']:.1f}   F1 {100 * results['f1']:.1f}"
          f"   ({results['global_step']} steps, {time.time() - started:.0f} s)")
    print(f"  parameters: {json.dumps(params)}")
    print(f"  trained: {params['trained_params']:,} of {params['base_params']:,} base parameters "
          f"({params['trained_percent_of_base']:.2f}%)")
    print(f"  outputs in {FLAGS.output_dir}: eval_results.json, params.json, task_artifact/ "
          f"(add --do_predict to run_classifier.py for the GLUE file MRPC.tsv)")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
