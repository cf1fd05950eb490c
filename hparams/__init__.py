"""Sweeps as plain Python: each file has `get_config()` and `get_sweep()`.

Run one with `run_classifier.py --hparams=hparams/<file>.py` (see
`bert_adapters/sweep/`). A variant imports its base from this package.
"""
