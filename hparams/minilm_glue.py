"""GLUE on the embedded MiniLM-L6: the settings every study of docs/results.md shares.

Not run on its own: each task's file (`minilm_glue_rte.py`, ...) imports it and
names its learning rates. The paper's procedure (section 3.1) in small:

  - every method is trained with BERT's recipe: AdamWeightDecay, warm-up over
    10% of the steps then linear decay, batch 32, sequences of at most 128
    tokens, 3 epochs, batches grouped by length (less padding; the same
    examples per epoch);
  - stage 1: a learning-rate grid per method, seed 0, picked on dev;
  - stage 2: seeds 1 and 2 at the picked rate. The tables report the mean and
    standard deviation over seeds 0-2 at that rate (seed 0 took part in the
    choice, as the paper's best-on-validation runs do);
  - bfloat16 mixed precision for every method (float32 weights and
    optimiser; the same precision for every method compared).
"""

from bert_adapters.sweep import grid

# What each method trains (section 3; the trade-off of figure 4 adds more points).
METHODS = {
    "adapters64": {"tuning": "adapters", "adapter_size": 64},
    "adapters8": {"tuning": "adapters", "adapter_size": 8},
    "full": {"tuning": "full"},
    "layer_norm": {"tuning": "layer_norm"},
}
for _size in (2, 256):
    METHODS[f"adapters{_size}"] = {"tuning": "adapters", "adapter_size": _size}
for _k in range(1, 7):
    METHODS[f"top{_k}"] = {"tuning": "top_k", "num_tuned_layers": _k}

# Stage 1's grids: a decade around what works for each family on a small BERT
# (adapters train fresh weights and want larger rates than fine-tuning).
LEARNING_RATES = {
    "adapters": [1e-4, 3e-4, 1e-3],
    "full": [3e-5, 1e-4, 3e-4],
    "top_k": [3e-5, 1e-4, 3e-4],
    "layer_norm": [1e-3, 3e-3, 1e-2],
}
STAGE2_SEEDS = [1, 2]


def get_config():
    return {
        "encoder": "minilm_l6",
        "max_seq_length": 128,
        "train_batch_size": 32,
        "eval_batch_size": 64,
        "num_train_epochs": 3,
        "warmup_proportion": 0.1,
        "optimizer": "bert_adam",
        "group_by_length": True,
        "mixed_precision": "bf16",
        "do_predict": False,
    }


def stage1(methods, epochs=None):
    """Each method's learning-rate grid at seed 0 (for `epochs` instead of 3, if given)."""
    trials = []
    for method in methods:
        settings = METHODS[method]
        trials += grid(**{k: [v] for k, v in settings.items()},
                       learning_rate=LEARNING_RATES[settings["tuning"]],
                       **({"num_train_epochs": [epochs]} if epochs else {}), seed=[0])
    return trials


def stage2(chosen, epochs=None, seeds=STAGE2_SEEDS):
    """Seeds 1 and 2 (or `seeds`) at each method's picked rate: `chosen` = {method: rate}."""
    trials = []
    for method, rate in chosen.items():
        settings = METHODS[method]
        trials += grid(**{k: [v] for k, v in settings.items()}, learning_rate=[rate],
                       **({"num_train_epochs": [epochs]} if epochs else {}),
                       seed=seeds)
    return trials
