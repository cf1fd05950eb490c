"""MRPC on the embedded MiniLM-L6: adapters (size 64) in the top layers only.

  python run_classifier.py --hparams=hparams/minilm_adapter_layers.py --task_name=MRPC \
    --data_dir=$GLUE_DIR/MRPC --output_dir=runs/adapter_layers_mrpc
  python -m bert_adapters.analysis adapter_layers --runs_dir runs/adapter_layers_mrpc \
    --output_dir runs/adapter_layers_mrpc/figure

Adapters and their LayerNorms in layers i..6 for i = 1, 3, 4, 6
(`--adapter_layers`): below layer i the encoder is frozen, the embedding
LayerNorm included, and a training step keeps no activations there, so it
costs less the higher i is. The figure sets the dev accuracy (mean and std
over seeds 0-2) against that cost (each trial's train_stats.json). The
settings are `minilm_glue.get_config()`'s, learning rate 3e-4 for every span
(the adapters' middle rate there; a span's own rate is not tuned yet).
Measured: docs/results.md ("Adapters in the top layers only"). Step time and
peak memory of each span at 32 x 128, measured with
benchmarks/train_throughput.py --adapter_layers: docs/performance.md.
"""

from bert_adapters.sweep import grid
from hparams import minilm_glue as base

SPANS = ["1-6", "3-6", "4-6", "6-6"]
SEEDS = [0, 1, 2]


def get_config():
    return {**base.get_config(), "tuning": "adapters", "adapter_size": 64,
            "learning_rate": 3e-4}


def get_sweep():
    return grid(adapter_layers=SPANS, seed=SEEDS)
