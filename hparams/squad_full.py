"""SQuAD v1.1 full fine-tuning of BERT-large: the baseline (paper, section 3.5).

  python run_squad.py --hparams=hparams/squad_full.py \
    --train_file=$SQUAD_DIR/train-v1.1.json --predict_file=$SQUAD_DIR/dev-v1.1.json \
    --output_dir=runs/squad_full

For `run_squad.py`. learning rate {3e-5, 5e-5, 1e-4} x
epochs {2, 3, 5} = 9 trials.

Expected (paper): validation F1 90.7; not measured here.
"""

from bert_adapters.sweep import grid
from hparams import squad_adapters as base

RUNNER = base.RUNNER


def get_config():
    config = {**base.get_config(), "tuning": "full"}
    del config["adapter_size"], config["adapter_init_scale"]
    return config


def get_sweep():
    return grid(learning_rate=[3e-5, 5e-5, 1e-4], num_train_epochs=[2, 3, 5])
