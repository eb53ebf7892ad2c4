#!/usr/bin/env bash
# The GPU checks of issues 18/19 in one run, on a machine with a CUDA GPU whose python3 has torch + transformers:
#
#   bash benchmarks/device_check.sh            # writes its logs to $OUT (default /tmp/echobench-device)
#
# Packages that machine lacks travel as wheels in .whl/ (monai, platformdirs, sqlalchemy, alembic, mako, greenlet,
# clean-fid): installed into /tmp/site first. Every step has its own time limit, so one slow step never hides the rest.
# Nothing here downloads anything: the full-size DINOv2/CLIP architectures are built from their configurations with
# RANDOM weights, so their figures are throughput and code-path checks only, never feature-space results.
set -uo pipefail
OUT=${OUT:-/tmp/echobench-device}
mkdir -p "$OUT" /tmp/eb
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
export ECHOBENCH_HOME=/tmp/eb/runs ECHOBENCH_CACHE=/tmp/eb/cache ECHOBENCH_DB=sqlite:////tmp/eb/echobench.db
step() { local name=$1 limit=$2; shift 2; echo "== $name (limit ${limit}s)"; local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; echo "== $name: exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s"; }

step env 30 bash -c 'nvidia-smi -L; nproc; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name(0))"'
# 1. full-size DINOv2-L/14 and CLIP-L/14@336 forward throughput (random weights)
step gpu_features 230 python3 benchmarks/gpu_features.py --batch-sizes 64,128 --iters 5 --repeats 1
# 2. the real dinov2 extractor code path at full size on the GPU, through `harness run --weights DIR`
step dinov2_full 110 bash -c 'python3 - <<EOF
from transformers import Dinov2Config, Dinov2Model
Dinov2Model(Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, patch_size=14, image_size=518,
                         layerscale_value=1.0)).save_pretrained("/tmp/dinov2-large-random")
EOF
t0=$(date +%s.%N); python3 -m harness run --generator real --task fid --features dinov2 --weights /tmp/dinov2-large-random \
  --device cuda --n 400 --batch-size 64 --task-option fid.metrics=fid --json; t1=$(date +%s.%N)
python3 -c "print(f\"harness run (generate 400 + 400 reference images, extract 800 with full-size DINOv2 on cuda, FD): {$t1-$t0:.1f} s\")"'
# 3. the stand-in spaces end to end on the GPU (two spaces, fid + cmmd)
step standins_cuda 60 python3 -m harness run --generator labelmap --task fid --task cmmd --features random-dinov2,random-clip \
  --device cuda --n 200 --json
# 4. default seg-utility (800 train, 200 test, 128 px, 3 seeds) on the GPU
step seg_utility_cuda 150 python3 benchmarks/seg_utility.py --device cuda --json "$OUT/seg_utility_cuda.json"
# 5. CPU benchmarks on this machine's idle cores (ratios against the reference implementations)
step cmmd_cpu 60 python3 benchmarks/cmmd.py --n 10000 --boot 0
# (benchmarks/fid.py's clean-fid reference calls scipy's sqrtm(disp=False), which SciPy >= 1.18 no longer has: run it
# where scipy < 1.18, e.g. the project's own environment)
echo "== done"
