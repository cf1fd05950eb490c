"""Robustness to the adapters' init scale on the embedded MiniLM-L6 (figure 6, right).

  python run_classifier.py --hparams=hparams/minilm_init_scale.py --task_name=CoLA \
    --data_dir=$GLUE_DIR/CoLA --output_dir=runs/results/init_scale_cola
  python run_classifier.py --hparams=hparams/minilm_init_scale.py --task_name=STS-B \
    --data_dir=$GLUE_DIR/STS-B --output_dir=runs/results/init_scale_stsb
  python -m bert_adapters.analysis init_scale --runs_dir runs/results/init_scale_cola \
    runs/results/init_scale_stsb --output runs/results/init_scale/init_scale.png

Adapters of size 64 with the truncated-normal std of their weights in
{1e-7, 1e-6, ..., 1} (8 trials per task, seed 0), at the rate the GLUE study
picked for adapters of size 64 on both tasks (3e-4), with the GLUE study's
settings otherwise (`minilm_glue.get_config`). Measured: docs/results.md.
"""

from bert_adapters.sweep import grid
from hparams import minilm_glue as base

STDS = [10.0 ** -k for k in range(7, -1, -1)]


def get_config():
    return {**base.get_config(), "tuning": "adapters", "adapter_size": 64,
            "learning_rate": 3e-4, "seed": 0}


def get_sweep():
    return grid(adapter_init_scale=STDS)
