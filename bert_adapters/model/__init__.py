"""The paper's model: BERT with two bottleneck adapters per layer, its heads, what trains.

  adapter.py            `Adapter`: x + W_up(gelu(W_down x)) (section 2.1)
  self_attention.py     multi-head self-attention
  transformer_layer.py  `TransformerLayer`: the two adapter slots of figure 2
  embeddings.py         word, position and segment embeddings
  bert_encoder.py       `BertEncoder`, `BertConfig`: the TF Hub encoder's interface
  layer_span.py         `--adapter_layers=i-j`: the layers that hold adapters
  heads.py              classifier / regression and span heads on the encoder
                        (`ClsPooledOutput`: the top layer at [CLS] only)
  packed_models.py      the same heads over rows that hold several examples
  trainable.py          which weights each tuning mode trains (section 3)

Layers here call the CPU numerics of `bert_adapters.ops` by name (how those
run is `ops.settings`' choice, never the model's); they never import the
trainer, the data or the checkpoint readers.
"""
