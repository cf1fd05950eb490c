"""MRPC on the embedded MiniLM-L6: the GLUE row and the trade-off of figures 3 and 4.

  python run_classifier.py --hparams=hparams/minilm_glue_mrpc.py --task_name=MRPC \
    --data_dir=$GLUE_DIR/MRPC --output_dir=runs/results/glue_mrpc
  python -m bert_adapters.analysis tradeoff --runs_dir runs/results/glue_mrpc \
    --output_dir runs/results/tradeoff_mrpc --select first_seed

Every point of the trade-off is a method of `minilm_glue.METHODS`: adapters of
size 2, 8, 64 and 256, fine-tuning the top k = 1..6 layers, LayerNorm only,
full fine-tuning. Stage 1 (each method's rate grid, seed 0) picks the rate on
dev; stage 2 (`CHOSEN`) adds seeds 1 and 2 at it. Measured: docs/results.md.
"""

from hparams import minilm_glue as base

# The GLUE table's methods first, then the rest of the trade-off.
METHODS = ["adapters64", "full", "adapters8", "adapters2", "adapters256", "layer_norm",
           "top1", "top2", "top3", "top4", "top5", "top6"]
# Filled from stage 1's dev results (F1 at seed 0), the GLUE table's methods first.
CHOSEN = {"adapters64": 3e-4, "full": 3e-5, "adapters8": 3e-4,
          "adapters2": 3e-4, "adapters256": 3e-4, "layer_norm": 1e-3,
          "top1": 1e-4, "top2": 3e-4, "top3": 1e-4, "top4": 3e-5, "top5": 3e-5, "top6": 3e-5}

get_config = base.get_config


def get_sweep():
    return base.stage1(METHODS) + base.stage2(CHOSEN)
