"""GLUE with adapters on BERT-large, one adapter size for every task (m = 64).

  python run_classifier.py --hparams=hparams/glue_adapters_large_64.py \
    --task_name=RTE --data_dir=$GLUE_DIR/RTE --output_dir=runs/glue_adapters_large_64/RTE

learning rate {3e-5, 3e-4, 3e-3} x epochs {3, 20} x 5 seeds = 30 trials per task.

Expected (paper, table 1, GLUE test): 79.6 average with 2.1% trained
parameters per task; not measured here.
"""

from bert_adapters.sweep import grid
from hparams import glue_adapters_large as base


def get_config():
    return {**base.get_config(), "adapter_size": 64}


def get_sweep():
    return grid(learning_rate=[3e-5, 3e-4, 3e-3], num_train_epochs=[3, 20],
                seed=[0, 1, 2, 3, 4])
