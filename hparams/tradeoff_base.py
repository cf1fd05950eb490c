"""Accuracy vs trained parameters on BERT-base (paper, section 3.6, figure 4).

  python run_classifier.py --hparams=hparams/tradeoff_base.py \
    --task_name=CoLA --data_dir=$GLUE_DIR/CoLA --output_dir=runs/tradeoff_base/CoLA

Three families, each at learning rates {3e-5, 3e-4, 3e-3}, 3 epochs:
  adapters of size 2^0 .. 2^9 (30 trials), fine-tuning the top k = 1 .. 12
  layers (36 trials), LayerNorm only (3 trials): 69 trials. Each point of the
  plot is the best learning rate of its family member (group summary.md's
  rows by everything but the learning rate); params.json has its size.

Expected (paper, figure 4, MNLI-m and CoLA): adapters stay within ~1 point of
full fine-tuning down to ~1e5 trained parameters per task, where top-k drops
sharply; not measured here.
"""

from bert_adapters.sweep import grid

LEARNING_RATES = [3e-5, 3e-4, 3e-3]


def get_config():
    return {
        "encoder": "bert_base_uncased",
        "num_train_epochs": 3,
        "max_seq_length": 128,
        "train_batch_size": 32,
        "warmup_proportion": 0.1,
    }


def get_sweep():
    adapters = grid(tuning=["adapters"], adapter_size=[2 ** i for i in range(10)],
                    learning_rate=LEARNING_RATES)
    top_k = grid(tuning=["top_k"], num_tuned_layers=list(range(1, 13)),
                 learning_rate=LEARNING_RATES)
    layer_norm = grid(tuning=["layer_norm"], learning_rate=LEARNING_RATES)
    return adapters + top_k + layer_norm
