"""The one trainer for every task kind: `trainer.run(config, output_dir)`.

  trainer.py         the run, top to bottom: strategy, data, model, checkpoint, train,
                     evaluate, predict, write
  settings.py        a run's settings: checked, merged with a reloaded artifact, recorded
  workers.py         what the workers of a multi-worker job agree on, where each writes
  train_loop.py      the training step and the loop that runs many steps per compiled call
  evaluation.py      model outputs over a split, eval results files
  input_pipeline.py  batches: order, length grouping, padding, tf.data
  packing.py         several examples per row
  optimization.py    BERT's AdamWeightDecay and its learning-rate schedule
  distribution.py    tf.distribute strategies from the flags
  trial_cache.py     what the trials of one sweep share
"""
