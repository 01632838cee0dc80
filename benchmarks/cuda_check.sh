#!/usr/bin/env bash
# Issue 6's CUDA checks in one run, for a session lent a GPU (they need one; nothing here runs in CI).
# Most important first, each log written as it goes, so a run stopped at its time limit still
# returns what finished. Logs in $OUT (default runs/cuda-check):
#   nvidia-smi.txt     the device
#   pytest-cuda.txt    the CUDA tests (CPU/CUDA agreement of training and of both lookup paths, no host
#                      sync in a step, compression on the device)
#   full-eager.txt     the published sizes (NVP-S, 600 frames of 1080p, batch 1,245,184): step time,
#                      the 144,700-step estimate, 1080p render time, peak memory
#   full-compile.txt   the same with TrainConfig.compile (torch.compile'd decoder)
#   full-sample.txt    the same, eager, with grid_sample per level instead of the one gather
#   tf32.txt           the clip-sized step with TF32 matmuls against the float32 port: loss drift
#   plan.txt           nvpkit.plan of codec_guide at the published settings (NVP-S, batch 1,245,184,
#                      144,700 steps, HEVC every 10,000) on the sample clip at full size
#   stage-memory.txt   host and device peak of every stage at two clip lengths (benchmarks/stage_memory.py)
#   rehearsal.txt      benchmarks/scale_rehearsal.py on CUDA: NVP-S, 1080x1920, 30 and 60 frames, to 600
# Usage (repository root, an environment with nvpkit's dependencies): bash benchmarks/cuda_check.sh
set -u
out=${OUT:-runs/cuda-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
$py -m pytest -q -rs -m cuda tests > "$out/pytest-cuda.txt" 2>&1
$py benchmarks/train_step.py --device cuda --full-size --rounds 3 --repeat 3 > "$out/full-eager.txt" 2>&1
$py benchmarks/train_step.py --device cuda --full-size --rounds 3 --repeat 3 --compile > "$out/full-compile.txt" 2>&1
$py benchmarks/train_step.py --device cuda --full-size --rounds 3 --repeat 3 --lookup sample --compare 0 \
    > "$out/full-sample.txt" 2>&1
$py benchmarks/train_step.py --device cuda --compare 200 --rounds 3 --tf32 > "$out/tf32.txt" 2>&1
$py -c "import nvpkit; print(nvpkit.plan(nvpkit.GuideConfig(config='nvp_s', num_frames=64, downscale=1,
    steps=144_700, period=10_000, batch=1_245_184, device='cuda', out_dir='$out/guide', cache_dir='$out/cache')))" \
    > "$out/plan.txt" 2>&1
$py benchmarks/stage_memory.py --device cuda --frames 8 24 --size 288x512 > "$out/stage-memory.txt" 2>&1
timeout 300 $py benchmarks/scale_rehearsal.py --device cuda --json "$out/rehearsal.json" > "$out/rehearsal.txt" 2>&1
tail -n 3 "$out"/*.txt
