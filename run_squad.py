"""BERT-style SQuAD v1.1 runner with adapters (Houlsby et al., 2019, section 3.5).

  python run_squad.py --encoder=minilm_l6 --tuning=adapters --adapter_size=64 \
    --train_file=$SQUAD_DIR/train-v1.1.json --predict_file=$SQUAD_DIR/dev-v1.1.json \
    --learning_rate=1e-3 --num_train_epochs=3 --max_seq_length=384 --doc_stride=128 \
    --do_train --do_predict --output_dir=/tmp/squad

Writes run_config.json, params.json, predictions.json (question id ->
answer), nbest_predictions.json, eval_results.json/.txt (exact_match and f1,
when the predicted file has answers), the task artifact and TensorBoard
logs. Without --train_file/--predict_file it reads TFDS squad/v1.1.
With --hparams=hparams/squad_<file>.py it runs that sweep instead.
"""

from absl import app, flags

from bert_adapters.cli import flags as ba_flags

ba_flags.define_squad_flags()
flags.adopt_module_key_flags(ba_flags)  # --help lists them.
FLAGS = flags.FLAGS


def main(argv):
    del argv
    ba_flags.main(FLAGS, "run_squad.py")


if __name__ == "__main__":
    app.run(main, flags_parser=ba_flags.parse_flags)
