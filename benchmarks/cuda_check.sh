#!/usr/bin/env bash
# The CUDA checks in one run, for a machine lent a GPU (most important first; each step under its own
# time limit, 520 s in all with the install; each log written as it goes, so a run stopped early returns what finished).
# Logs in $OUT (default runs/cuda-check), at most 8 files:
#   env.txt            the device (nvidia-smi), Python, torch, what was installed from the wheelhouse
#   pytest-cuda.txt    the CUDA tests (CPU/CUDA agreement of training and of both lookup paths, no host
#                      sync in a step, compression on the device, pinned staging)
#   full-eager.txt     the published sizes (NVP-S, 600 frames of 1080p, batch 1,245,184): step time,
#                      the 144,700-step estimate, 1080p render time, peak memory
#   full-compile.txt   the same with TrainConfig.compile (torch.compile'd decoder)
#   full-sample.txt    the same, eager, with grid_sample per level instead of the one gather
#   tf32.txt           the clip-sized step with TF32 matmuls against the float32 port: loss drift
#   plan.txt           `nvpkit plan guide` at the published settings (NVP-S, batch "auto", 144,700 steps,
#                      HEVC every 10,000) on 64 frames of the sample clip at full size
#   memory.txt         host and device peak of every stage at two clip lengths (benchmarks/stage_memory.py),
#                      then benchmarks/scale_rehearsal.py on CUDA: NVP-S, 1080x1920, 30 and 60 frames, to 600
#
# Usage, from the repository root, with torch installed:
#   bash benchmarks/cuda_check.sh
# Packages the node's Python lacks (tensorly, imageio-ffmpeg, ...) are installed from $NVPKIT_WHEELS
# (default: wheelhouse/, made by benchmarks/wheelhouse.sh where there is internet) with `pip --no-index`
# into a temporary virtual environment that sees the node's own packages (torch among them); nothing
# is installed into the node's environment.
# NVPKIT_CHECK_DEVICE=cpu runs the same steps on the CPU at tiny sizes (what the test suite does, so
# that this script cannot rot).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-runs/cuda-check}
device=${NVPKIT_CHECK_DEVICE:-cuda}
wheels=${NVPKIT_WHEELS:-wheelhouse}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$SECONDS

step() {  # step SECONDS LOG COMMAND...: one step under its time limit, appended to its log
    local limit=$1 log=$2
    shift 2
    echo "\$ $*" >> "$out/$log"
    timeout --kill-after=10 "$limit" "$@" >> "$out/$log" 2>&1
    local code=$?
    [ $code = 124 ] && echo "(stopped at its limit of $limit s)" >> "$out/$log"
    echo "(exit $code, $((SECONDS - started)) s since the start)" >> "$out/$log"
}

{
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$py" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$out/env.txt" 2>&1
missing=$("$py" - <<'PY'
import importlib.util
needed = {"numpy": "numpy", "tqdm": "tqdm", "imageio": "imageio", "imageio_ffmpeg": "imageio-ffmpeg",
          "PIL": "pillow", "pytorch_msssim": "pytorch-msssim", "tensorly": "tensorly", "bjontegaard": "bjontegaard",
          "scipy": "scipy", "platformdirs": "platformdirs", "py7zr": "py7zr", "pytest": "pytest"}
print(" ".join(package for module, package in needed.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
    env=$(mktemp -d)/env
    echo "installing from $wheels into $env: $missing" >> "$out/env.txt"
    "$py" -m venv --without-pip --system-site-packages "$env"
    step 40 env.txt "$py" -m pip --python "$env/bin/python" install -q --no-index --find-links "$wheels" $missing
    py=$env/bin/python
fi

if [ "$device" = cuda ]; then
    full=(--device cuda --full-size --rounds 3 --repeat 3)
    clip=(--device cuda --compare 200 --rounds 3)
    plan=(--dataset sample --num-frames 64 --downscale 1 --config nvp_s --steps 144700 --period 10000)
    memory=(--device cuda --frames 8 24 --size 288x512)
    rehearsal=(--device cuda)
else  # the dry run: every step at a size a CPU does in seconds
    full=(--device cpu --frames 2 --downscale 8 --batch 1024 --rounds 1 --repeat 1 --compare 0 --render-size 36x64)
    clip=(--device cpu --frames 2 --downscale 8 --batch 1024 --rounds 1 --repeat 1 --compare 2 --render-size 36x64)
    plan=(--dataset sample --num-frames 4 --downscale 8 --steps 100 --period 50 --anchor-crfs "")
    memory=(--device cpu --frames 2 4 --size 48x64 --sweep-crfs 30)
    rehearsal=(--device cpu --frames 2 4 --size 72x128 --config cpu_s --batch 1024 --preset ultrafast
               --tucker-iter 1 --target 8)
fi
step 90 pytest-cuda.txt "$py" -m pytest -q -rs -m cuda tests
step 60 full-eager.txt "$py" benchmarks/train_step.py "${full[@]}"
step 85 full-compile.txt "$py" benchmarks/train_step.py "${full[@]}" --compile
step 45 full-sample.txt "$py" benchmarks/train_step.py "${full[@]}" --lookup sample --compare 0
step 30 tf32.txt "$py" benchmarks/train_step.py "${clip[@]}" --tf32
step 60 plan.txt "$py" -m nvpkit plan guide "${plan[@]}" --device "$device" --out-dir "$out/guide" \
    --cache-dir "$out/cache"
step 45 memory.txt "$py" benchmarks/stage_memory.py "${memory[@]}"
step 65 memory.txt "$py" benchmarks/scale_rehearsal.py "${rehearsal[@]}"
echo "cuda_check: $((SECONDS - started)) s; logs in $out"
tail -n 3 "$out"/*.txt
