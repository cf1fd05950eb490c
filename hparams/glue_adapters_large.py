"""GLUE with adapters on BERT-large: the paper's sweep (Houlsby et al. 2019, section 3.2).

  python run_classifier.py --hparams=hparams/glue_adapters_large.py \
    --task_name=RTE --data_dir=$GLUE_DIR/RTE --output_dir=runs/glue_adapters_large/RTE

One directory per task under runs/glue_adapters_large/, then
`python -m bert_adapters.cli.glue_submission --runs_dir=runs/glue_adapters_large ...`.
learning rate {3e-5, 3e-4, 3e-3} x epochs {3, 20} x adapter size {8, 64, 256}
x 5 seeds = 90 trials per task, best on the validation set. Trials that
predict the test set carry their GLUE submission files.

Expected (paper, table 1, GLUE test): 80.0 average with 3.6% trained
parameters per task (sizes 8-256); not measured here (no TPU/GPU).
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "bert_large_uncased",  # TF Hub, as in the paper.
        "tuning": "adapters",
        "adapter_init_scale": 1e-2,       # The paper's std (its code: 1e-3).
        "max_seq_length": 128,
        "train_batch_size": 32,
        "warmup_proportion": 0.1,
    }


def get_sweep():
    return grid(learning_rate=[3e-5, 3e-4, 3e-3], num_train_epochs=[3, 20],
                adapter_size=[8, 64, 256], seed=[0, 1, 2, 3, 4])
