#!/usr/bin/env bash
# The CPU speed devices step aside on a GPU, and what training costs there.
#
#   benchmarks/accelerator_check.sh [STEPS]        (default 300 steps per run)
#
# On a machine with a GPU, in under 8 minutes:
#   1. the device-sensitive tests: the ops' CPU kernels (forced onto the CPU),
#      the switchboard's choice on the real GPU (tests/ops/settings_test.py),
#      attention, adapter spans and the [CLS]-only top layer on the GPU
#      (TF32 off, so float32 comparisons keep their tolerances);
#   2. run_classifier.py --encoder=minilm_l6 on MRPC for STEPS steps: adapters
#      (size 64) and full fine-tuning, bf16 and fp16, without and with
#      --jit_compile, each in a fresh process;
#   3. a table of examples/s over the timed steps (train_stats.json: all but
#      the first loop, which traces and compiles), peak GPU memory
#      (tf.config.experimental.get_memory_info), the adapters / full ratio,
#      and what the ops chose (run_config.json's op_settings).
# Without a GPU it says so, then runs the same on the CPU (give a small STEPS:
# the figures are the CPU's), bf16 only: CPUs have no fast float16 kernels.
# Runs that would start past the time budget (BUDGET_SECONDS, default 450)
# are skipped and named; a run is stopped when the budget plus a minute is
# spent.
#
# Environment: PYTHON (default .venv/bin/python, else python3),
# BERT_ADAPTERS_DATA (default ../shared/data: glue/MRPC), OUT (where the runs
# and summary.json go; default a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${1:-300}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=${BERT_ADAPTERS_DATA:-../shared/data}
OUT_ROOT=${OUT:-$(mktemp -d -t accelerator_check.XXXXXX)}
BUDGET=${BUDGET_SECONDS:-450}
START=$SECONDS

mkdir -p "$OUT_ROOT"
if ! [[ "$STEPS" =~ ^[1-9][0-9]*$ ]]; then
  echo "accelerator_check.sh: STEPS must be a positive integer, got '$STEPS'" >&2
  exit 2
fi
if [ ! -f "$DATA/glue/MRPC/train.tsv" ]; then
  echo "accelerator_check.sh: $DATA/glue/MRPC/train.tsv not found (set BERT_ADAPTERS_DATA)" >&2
  exit 2
fi

GPUS=$("$PY" -c "import bert_adapters, tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null | tail -1)
echo "== accelerator_check: $STEPS steps per run, outputs in $OUT_ROOT"
if [ "${GPUS:-0}" = "0" ]; then
  echo "== NO GPU on this machine: TensorFlow sees none. The checks below run on the CPU;"
  echo "   their figures are the CPU's and say nothing about a GPU."
  DEVICE=cpu
else
  echo "== $GPUS GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
  DEVICE=gpu
fi

echo "== 1. device-sensitive tests"
if ! NVIDIA_TF32_OVERRIDE=0 "$PY" -m pytest -q -p no:cacheprovider -rfs tests/ops \
    tests/model/self_attention_test.py tests/model/adapter_layers_test.py \
    tests/model/cls_pooled_output_test.py > "$OUT_ROOT/tests.log" 2>&1; then
  echo "   TESTS FAILED (the runs go on):"
fi
grep -E "^(FAILED|SKIPPED|ERROR)|passed|failed" "$OUT_ROOT/tests.log" | tail -15 | sed 's/^/   /'

echo "== 2. MRPC, $STEPS steps per run"
PRECISIONS="bf16 fp16"
[ "$DEVICE" = cpu ] && PRECISIONS=bf16
RUNS=()
for precision in $PRECISIONS; do
  for jit in nojit jit; do
    for tuning in adapters full; do
      RUNS+=("$tuning:$precision:$jit")
    done
  done
done
SKIPPED=()
for run in "${RUNS[@]}"; do
  IFS=: read -r tuning precision jit <<< "$run"
  if (( SECONDS - START > BUDGET )); then
    SKIPPED+=("$run")
    continue
  fi
  out="$OUT_ROOT/$tuning-$precision-$jit"
  rm -rf "$out"
  extra=()
  [ "$tuning" = adapters ] && extra+=(--adapter_size=64 --learning_rate=3e-4)
  [ "$tuning" = full ] && extra+=(--learning_rate=5e-5)
  [ "$jit" = jit ] && extra+=(--jit_compile)
  began=$SECONDS
  if ! timeout $((BUDGET + 60 - (SECONDS - START))) "$PY" run_classifier.py --task_name=MRPC --data_dir="$DATA/glue/MRPC" \
      --encoder=minilm_l6 --tuning="$tuning" --mixed_precision="$precision" \
      --max_train_steps="$STEPS" --save_checkpoints_steps="$STEPS" --iterations_per_loop=25 \
      --train_batch_size=32 --max_seq_length=128 --do_train --output_dir="$out" \
      "${extra[@]}" > "$out.log" 2>&1; then
    echo "   $run FAILED (log: $out.log):"
    tail -3 "$out.log" | sed 's/^/     /'
    continue
  fi
  echo "   $run done in $((SECONDS - began)) s"
done

echo "== 3. summary ($DEVICE)"
"$PY" - "$OUT_ROOT" "$DEVICE" "${SKIPPED[@]+"${SKIPPED[@]}"}" <<'EOF'
import json, os, sys

root, device, skipped = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
for name in sorted(os.listdir(root)):
    stats_path = os.path.join(root, name, "train_stats.json")
    if not os.path.isfile(stats_path):
        continue
    with open(stats_path) as f:
        stats = json.load(f)
    with open(os.path.join(root, name, "run_config.json")) as f:
        record = json.load(f)
    tuning, precision, jit = name.split("-")
    rows[(tuning, precision, jit)] = {**stats, "op_settings": record.get("op_settings")}

print(f"| tuning | precision | jit_compile | examples/s | step ms | timed steps | "
      f"peak {'GPU memory' if device == 'gpu' else 'RSS (no GPU)'} GB | adapters / full |")
print("|---|---|---|---|---|---|---|---|")
for (tuning, precision, jit), s in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    full = rows.get(("full", precision, jit))
    ratio = (f"{s['examples_per_second'] / full['examples_per_second']:.2f}x"
             if tuning == "adapters" and full and full.get("examples_per_second") else "")
    memory = s["peak_device_memory_bytes"] if device == "gpu" else s["peak_rss_bytes"]
    print(f"| {tuning} | {precision} | {jit == 'jit'} | {s['examples_per_second']:.1f} | "
          f"{s['step_seconds'] * 1e3:.1f} | {s['timed_steps']} | "
          f"{(memory or 0) / 2 ** 30:.2f} | {ratio} |")
choices = {json.dumps(s["op_settings"], sort_keys=True) for s in rows.values()}
for choice in choices:
    print(f"ops chose: {choice}")
if skipped:
    print(f"skipped (time budget): {', '.join(skipped)}")
with open(os.path.join(root, "summary.json"), "w") as f:
    json.dump({"device": device, "skipped": skipped,
               "runs": {"-".join(k): v for k, v in rows.items()}}, f, indent=2)
print(f"{len(rows)} runs; summary.json in {root}")
EOF
echo "== done in $((SECONDS - START)) s"
