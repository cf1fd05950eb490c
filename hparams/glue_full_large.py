"""GLUE full fine-tuning of BERT-large: the paper's baseline.

  python run_classifier.py --hparams=hparams/glue_full_large.py \
    --task_name=RTE --data_dir=$GLUE_DIR/RTE --output_dir=runs/glue_full_large/RTE

The paper reports BERT's own GLUE fine-tuning (Devlin et al. 2019): batch 32,
3 epochs, the best learning rate of {5e-5, 4e-5, 3e-5, 2e-5} on the
validation set, with random restarts for BERT-large (here 5 seeds): 20 trials
per task.

Expected (paper, table 1, GLUE test): 80.4 average, 100% trained parameters
per task; not measured here.
"""

from bert_adapters.sweep import grid
from hparams import glue_adapters_large as base


def get_config():
    config = {**base.get_config(), "tuning": "full", "num_train_epochs": 3}
    del config["adapter_init_scale"]  # No adapters.
    return config


def get_sweep():
    return grid(learning_rate=[5e-5, 4e-5, 3e-5, 2e-5], seed=[0, 1, 2, 3, 4])
