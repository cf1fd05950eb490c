"""How the model's ops run on a CPU: kernels that keep Keras' values, chosen in one place.

  settings.py         `Settings`: the one switchboard the ops read (set per run; the CPU
                      devices step aside on GPUs and TPUs)
  dense.py            `TokenDense`: per-token matmuls, bf16 operands through float32 kernels
  dropout.py          `Dropout`: Keras' masks drawn by one compiled Philox loop
  attention_probs.py  attention's softmax, dropout and context, its backward pass one compiled loop
  layer_norm.py       `LayerNorm`: Keras' values, a backward pass that keeps only its input
  activations.py      GELU (exact and tanh) with compiled gradients and 16-bit tables
  fused.py            the XLA-compiled loops the ops above share
  host.py             what this machine's CPU has (AMX, AVX-512 BF16)
"""
