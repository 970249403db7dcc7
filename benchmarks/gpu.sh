#!/usr/bin/env bash
# The GPU check of issue 12, in one command that ends within 8 minutes on one H100/H200 and prints
# a Markdown table (for BENCHMARKS.md): the CUDA tests; resnet20_cifar10_fast at alpha -1, 0, +1
# (test accuracy, mean SI, training seconds); 16 ResNet20s stacked against one after another; the
# regularizer's overhead (alpha -1 vs 0); SelectivityMeter throughput against plain inference.
#
# Data: the device machine gets the working tree only (<= 64 MiB in all). Before the run, here:
#     python3 benchmarks/pack_gpu_data.py        # -> .cache/gpu-data/cifar10-gpu.zip (~45 MiB of JPEGs)
# then run this script there with carry [".cache/gpu-data"]; the JPEGs are decoded there on its CPUs.
# It needs only the machine's own python3 (torch, numpy, pillow, pyyaml, safetensors, tqdm, pandas):
# PYTHONPATH=src, no install, no submitit.
#
# Usage: benchmarks/gpu.sh [--dry-run] [--data ZIP]
#   --dry-run   the same steps on the CPU, on the bundled demo set at a tiny size (tests run this)
#   PYTHON=...  the interpreter (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_report.py "$@"
