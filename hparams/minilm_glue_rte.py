"""RTE on the embedded MiniLM-L6: adapters (sizes 64, 8) vs full fine-tuning.

  python run_classifier.py --hparams=hparams/minilm_glue_rte.py --task_name=RTE \
    --data_dir=$GLUE_DIR/RTE --output_dir=runs/results/glue_rte

Stage 1 (every rate of `minilm_glue.LEARNING_RATES`, seed 0) picks each
method's rate on dev; stage 2 (`CHOSEN`) adds seeds 1 and 2 at it. Adapters
of size 8: stage 1 only. After 3 epochs every adapter run was still at chance
(52-55%), so stage 1 also trains adapters (64) and full fine-tuning for 10
epochs (the paper's grid has 3 and 20): each method's rate and epochs are
picked together. Measured: docs/results.md.
"""

from hparams import minilm_glue as base

CHOSEN = {}  # Filled from stage 1's dev results.

get_config = base.get_config


EPOCHS = 10
CHOSEN_EPOCHS = None  # 10 if the picked runs trained 10 epochs, None for 3.


def get_sweep():
    return (base.stage1(["adapters64", "full", "adapters8"])
            + base.stage1(["adapters64", "full"], epochs=EPOCHS)
            + base.stage2(CHOSEN, epochs=CHOSEN_EPOCHS))
