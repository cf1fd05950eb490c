"""The paper's analysis (section 3.6, figures 3, 4 and 6) as commands.

  python -m bert_adapters.analysis ablate --task_dir RUN --output_dir OUT [--data_dir DIR]
  python -m bert_adapters.analysis init_scale --runs_dir SWEEP [SWEEP ...] --output OUT.png
  python -m bert_adapters.analysis tradeoff --runs_dir SWEEP [SWEEP ...] --output_dir OUT
  python -m bert_adapters.analysis adapter_layers --runs_dir SWEEP [SWEEP ...] --output_dir OUT

  ablation.py       switch off the trained adapters of every span of layers
                    [i, j] and re-evaluate the dev split (figure 6, left and
                    centre): ablation.json + ablation.png
  sweep_results.py  a sweep directory's finished trials, with their settings
  init_scale.py     dev metric against the adapters' init std (figure 6,
                    right): PNG + CSV
  tradeoff.py       best dev metric of each method against trained parameters
                    (figures 3 and 4): PNG + CSV
  adapter_layers.py dev metric and step time against the lowest adapted layer
                    (`--adapter_layers` sweeps): PNG + CSV
  figures.py        what every figure shares: the Agg canvas, sizes, units

Model code only: nothing here imports `bert_adapters.training`.
"""


class AnalysisError(ValueError):
    """Bad input to an analysis command (a file, a field), explained for the user."""
