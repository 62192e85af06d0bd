#!/usr/bin/env bash
# The one GPU check: the embedding benchmark and the demo matrix with every encoder on CUDA
# (bf16 autocast, decoding workers = the job's threads), printing the figures for
# docs/performance.md. Takes a few minutes on one GPU.
#
#   benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU
#   DEVICE=cpu benchmarks/gpu_check.sh      # the same steps on CPU: checks the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
THREADS=${THREADS:-$(nproc)}
BIN=${BIN:-.venv/bin}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== machine"
date -u
uptime
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$BIN/python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# The default config with every encoder and the heads on $DEVICE.
"$BIN/python" - "$WORK/config.yaml" "$DEVICE" "$THREADS" <<'PY'
import sys
from pathlib import Path

import yaml

out, device, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = yaml.safe_load(open("config.yaml"))
for entry in config["encoders"].values():
    entry.update(device=device, precision="bf16" if device == "cuda" else "fp32")
    if entry.get("build_from"):  # the workflow runs in a temporary folder
        entry["build_from"] = str(Path(entry["build_from"]).resolve())
    entry["num_workers"] = "auto"
config["embedding"]["threads"] = threads
config["training"]["device"] = device
config["sentiment"]["enabled"] = False
yaml.safe_dump(config, open(out, "w"))
PY

echo "== embedding throughput ($DEVICE)"
# on CPU (the script's own check) ViT-B/16 and the 4,000-image memory run would take long
quick=(); [ "$DEVICE" = cuda ] || quick=(--skip-vit --memory-sizes 100 200)
"$BIN/python" benchmarks/embed_throughput.py --config "$WORK/config.yaml" "${quick[@]}"

echo "== demo matrix ($DEVICE): pretraining, caches, probe runs, report"
start=$(date +%s)
HF_HUB_OFFLINE=1 "$BIN/snakemake" -s Snakefile --directory "$WORK" --configfile "$WORK/config.yaml" \
    --cores "$THREADS" report --quiet rules > "$WORK/snakemake.log" 2>&1 \
    || { tail -40 "$WORK/snakemake.log"; exit 1; }
echo "demo matrix: $(( $(date +%s) - start )) s wall"
for tsv in "$WORK"/results/demo/benchmarks/{make_demo_encoder,embed_images,train_probe}/*.tsv; do
    printf '%s\t%s s\n' "${tsv#"$WORK"/results/demo/benchmarks/}" "$(tail -1 "$tsv" | cut -f1)"
done
sed -n '/^## Headline/,/^## Macro AUROC/p' "$WORK/results/demo/report/summary.md" | head -25
uptime
