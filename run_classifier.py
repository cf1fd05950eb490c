"""BERT-style classification runner with adapters (Houlsby et al., 2019).

  python run_classifier.py --task_name=MRPC --data_dir=$GLUE_DIR/MRPC \
    --encoder=minilm_l6 --tuning=adapters --adapter_size=64 \
    --learning_rate=3e-4 --num_train_epochs=5 \
    --do_train --do_eval --do_predict --output_dir=/tmp/mrpc

Writes run_config.json, params.json, eval_results.json/.txt, the GLUE
submission file (MRPC.tsv), the task artifact and TensorBoard logs.
With --hparams=hparams/<file>.py it runs that sweep instead.
"""

import sys

from absl import app, flags, logging

from bert_adapters import flags as ba_flags

ba_flags.define_classifier_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    if not FLAGS.task_name:
        raise app.UsageError("--task_name is required")
    try:
        if FLAGS.hparams:
            from bert_adapters import sweep
            sweep.run_sweep_from_flags(FLAGS)
            return
        from bert_adapters.training import trainer
        config = ba_flags.run_config_from_flags(FLAGS)
        trainer.run(config, FLAGS.output_dir)
    except (ValueError, FileNotFoundError) as err:
        # Bad input: one readable line and a non-zero exit, no traceback.
        logging.error("%s", err)
        print(f"run_classifier.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
