r"""BERT-style classification runner with adapters (Houlsby et al., 2019).

  python run_classifier.py --task_name=MRPC --data_dir=$GLUE_DIR/MRPC \
    --encoder=minilm_l6 --tuning=adapters --adapter_size=64 \
    --learning_rate=3e-4 --num_train_epochs=5 \
    --do_train --do_eval --do_predict --output_dir=/tmp/mrpc

Writes run_config.json, params.json, eval_results.json/.txt, the GLUE
submission file (MRPC.tsv) and BERT's test_results.tsv, the task artifact
and TensorBoard logs. With --hparams=hparams/<file>.py it runs that sweep
instead. BERT's and adapter-bert's own command lines run unchanged
(--init_checkpoint, --bert_config_file, --vocab_file, --use_tpu, ...).
"""

from absl import app, flags

from bert_adapters.cli import flags as ba_flags

ba_flags.define_classifier_flags()
flags.adopt_module_key_flags(ba_flags)  # --help lists them.
FLAGS = flags.FLAGS


def main(argv):
    del argv
    ba_flags.main(FLAGS, "run_classifier.py", required=("output_dir", "task_name"))


if __name__ == "__main__":
    app.run(main, flags_parser=ba_flags.parse_flags)
