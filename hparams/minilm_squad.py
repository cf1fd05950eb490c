"""SQuAD v1.1 on the embedded MiniLM-L6, trained to convergence: adapters (64, 2) vs full FT.

Only SQuAD's dev file is here: train on its articles 1-40 (8,981 questions),
evaluate on articles 41-48 (1,589 questions):

  python -m bert_adapters.data.squad_split --input=$SQUAD_DIR/dev-v1.1.json \
    --train_articles=40 --output_dir=runs/results/squad_data
  python run_squad.py --hparams=hparams/minilm_squad.py \
    --train_file=runs/results/squad_data/train.json \
    --predict_file=runs/results/squad_data/dev.json --output_dir=runs/results/squad

BERT's SQuAD setting (windows of 384 tokens every 128, questions of at most
64), batch 32, BERT's optimiser, bfloat16 for every method. A pilot of 150
steps (about half an epoch) per learning rate picks each method's rate on
the evaluation articles; the main runs (`CHOSEN`) train 2 epochs at it, with
seeds 0, 1 and 2.
Measured: docs/results.md.
"""

from bert_adapters.sweep import grid

RUNNER = "run_squad.py"

METHODS = {
    "adapters64": {"tuning": "adapters", "adapter_size": 64},
    "adapters2": {"tuning": "adapters", "adapter_size": 2},
    "full": {"tuning": "full"},
}
PILOT_RATES = {
    "adapters64": [3e-4, 1e-3, 3e-3],
    "adapters2": [1e-3, 3e-3],
    "full": [3e-5, 1e-4, 3e-4],
}
PILOT_STEPS = 150
CHOSEN = {"adapters64": 1e-3, "adapters2": 1e-3, "full": 1e-4}  # {method: rate}: the pilot's best F1.
SEEDS = [1, 2]   # the main runs' seeds besides the config's 0


def get_config():
    return {
        "encoder": "minilm_l6",
        "max_seq_length": 384,
        "doc_stride": 128,
        "max_query_length": 64,
        "train_batch_size": 32,
        "eval_batch_size": 64,
        "num_train_epochs": 2,
        "warmup_proportion": 0.1,
        "optimizer": "bert_adam",
        "group_by_length": True,
        "mixed_precision": "bf16",
        "seed": 0,
    }


def _trials(method, rates, **extra):
    settings = METHODS[method]
    return grid(**{k: [v] for k, v in settings.items()}, learning_rate=rates,
                **{k: [v] for k, v in extra.items()})


def get_sweep():
    """Per method: its pilot, then its main run once `CHOSEN` names its rate;
    then the main runs again with seeds `SEEDS` (adapters of size 64 and full
    fine-tuning first)."""
    trials = []
    for method, rates in PILOT_RATES.items():
        trials += _trials(method, rates, max_train_steps=PILOT_STEPS)
        if method in CHOSEN:
            trials += _trials(method, [CHOSEN[method]])
    for seed in SEEDS:
        for method in ("adapters64", "full"):
            trials += _trials(method, [CHOSEN[method]], seed=seed)
    for seed in SEEDS:
        trials += _trials("adapters2", [CHOSEN["adapters2"]], seed=seed)
    return trials
