"""Robustness to the adapters' initialisation scale on BERT-base (paper, section 3.6, figure 6).

  python run_classifier.py --hparams=hparams/init_scale_base.py \
    --task_name=MNLI --data_dir=$GLUE_DIR/MNLI --output_dir=runs/init_scale_base/MNLI

Adapters of size 64 with the truncated-normal std in {1e-7, 1e-6, ..., 1}
(8 trials), learning rate 3e-4, 3 epochs.

Expected (paper, figure 6, MNLI and CoLA): flat for std up to 1e-2,
degrading above (CoLA most); not measured here.
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "bert_base_uncased",
        "tuning": "adapters",
        "adapter_size": 64,
        "learning_rate": 3e-4,
        "num_train_epochs": 3,
        "max_seq_length": 128,
        "train_batch_size": 32,
    }


def get_sweep():
    return grid(adapter_init_scale=[10.0 ** -k for k in range(7, -1, -1)])
