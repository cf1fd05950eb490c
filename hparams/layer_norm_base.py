"""LayerNorm-only tuning of BERT-base (paper, section 3.6, figure 4's baseline).

  python run_classifier.py --hparams=hparams/layer_norm_base.py \
    --task_name=MNLI --data_dir=$GLUE_DIR/MNLI --output_dir=runs/layer_norm_base/MNLI

Trains only the 2L+1 LayerNorms and the head (about 40k parameters). The
GLUE grid, learning rate {3e-5, 3e-4, 3e-3} x epochs {3, 20} = 6 trials;
LayerNorms need the large rates.

Expected (paper, figure 4): far below adapters of comparable size (MNLI-m
drops by several points, CoLA more); not measured here.
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "bert_base_uncased",
        "tuning": "layer_norm",
        "max_seq_length": 128,
        "train_batch_size": 32,
        "warmup_proportion": 0.1,
    }


def get_sweep():
    return grid(learning_rate=[3e-5, 3e-4, 3e-3], num_train_epochs=[3, 20])
