"""`make demo`: the paper's method on MRPC with the embedded encoder.

Trains adapters (size 64) plus the LayerNorms and a classifier head on MRPC,
leaving the 22.7M-parameter base frozen, then prints dev accuracy and F1 and
the parameter report. GLUE files come from `--glue_dir` (the Makefile passes
`$GLUE_DIR`, by default ../shared/data/glue when it exists); without it the
data is read from TFDS.
"""

import json
import os
import sys
import time

from absl import app, flags

from bert_adapters import io_utils
from bert_adapters.training import trainer
from bert_adapters.training.run_config import RunConfig

flags.DEFINE_string("glue_dir", None, "GLUE root (holding MRPC/) or MRPC folder; empty: TFDS.")
flags.DEFINE_string("output_dir", "runs/demo_mrpc", "Where the run is written.")
flags.DEFINE_float("num_train_epochs", 3.0, "Epochs.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (small encoders want ~1e-3).")
flags.DEFINE_integer("max_train_steps", None, "Cap on steps (smoke runs).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = RunConfig(
        task_name="MRPC", data_dir=FLAGS.glue_dir or None, encoder="minilm_l6",
        tuning="adapters", adapter_size=64, learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.num_train_epochs, max_train_steps=FLAGS.max_train_steps,
        group_by_length=True, do_train=True, do_eval=True, do_predict=True)
    started = time.time()
    try:
        results = trainer.run(config, FLAGS.output_dir)
    except (ValueError, FileNotFoundError) as err:
        print(f"demo: error: {err}", file=sys.stderr)
        sys.exit(2)
    params = io_utils.read_json(os.path.join(FLAGS.output_dir, trainer.PARAMS_FILE))
    print()
    print("MRPC dev, adapters (size 64) on the embedded MiniLM-L6 encoder")
    print(f"  accuracy {100 * results['accuracy']:.1f}   F1 {100 * results['f1']:.1f}"
          f"   ({results['global_step']} steps, {time.time() - started:.0f} s)")
    print(f"  parameters: {json.dumps(params)}")
    print(f"  trained: {params['trained_params']:,} of {params['base_params']:,} base parameters "
          f"({params['trained_percent_of_base']:.2f}%)")
    print(f"  outputs in {FLAGS.output_dir}: eval_results.json, MRPC.tsv, task_artifact/")


if __name__ == "__main__":
    app.run(main)
