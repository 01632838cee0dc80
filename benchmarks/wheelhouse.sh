#!/usr/bin/env bash
# The wheels of nvpkit's dependencies other than torch, for a GPU node without internet: its image
# has torch; this folder has everything else `benchmarks/cuda_check.sh` and nvpkit's core need.
#
#   bash benchmarks/wheelhouse.sh [PYTHON_VERSION] [PLATFORM] [FOLDER]
#       PYTHON_VERSION  of the node's Python, e.g. 3.12 (default) or 3.11
#       PLATFORM        pip's platform tag of the node (default: manylinux_2_28_x86_64, which also
#                       takes manylinux2014 wheels); aarch64 nodes: manylinux_2_28_aarch64
#       FOLDER          where the wheels go (default: wheelhouse)
#
# The requirements are read from pyproject.toml (the core dependencies, which the experiments and
# benchmarks need, and the build backend, so that `pip install --no-index` can build nvpkit) plus
# pytest for the CUDA tests; torch is left out, and so is everything only torch
# needs (pytorch-msssim is taken without its dependencies). Copy FOLDER to the node beside the
# repository; cuda_check.sh installs what the node's Python lacks from it (NVPKIT_WHEELS=FOLDER).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
platform=${2:-manylinux_2_28_x86_64}
folder=${3:-wheelhouse}
py=${PYTHON:-python3}
case "$platform" in
    manylinux_2_28_x86_64) platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
                                      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64) ;;
    manylinux_2_28_aarch64) platforms=(--platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64
                                       --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64) ;;
    *) platforms=(--platform "$platform") ;;
esac
mapfile -t requirements < <("$py" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
deps = project["project"]["dependencies"] + project["build-system"]["requires"]  # `pip install .` builds
for dep in deps + ["pytest>=7.4"]:
    if re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() != "torch":
        print(dep)
PY
)
without_deps=()
with_deps=()
for requirement in "${requirements[@]}"; do
    case "$requirement" in
        pytorch-msssim*) without_deps+=("$requirement") ;;  # it needs only torch
        *) with_deps+=("$requirement") ;;
    esac
done
mkdir -p "$folder"
common=(--only-binary=:all: --python-version "$version" --implementation cp "${platforms[@]}" --dest "$folder" -q)
"$py" -m pip download "${common[@]}" "${with_deps[@]}"
"$py" -m pip download "${common[@]}" --no-deps "${without_deps[@]}"
if ls "$folder" | grep -qiE '^(torch|nvidia_|triton)'; then
    echo "wheelhouse: torch or a CUDA library got in: $(ls "$folder" | grep -iE '^(torch|nvidia_|triton)')" >&2
    exit 1
fi
echo "wheelhouse: $(ls "$folder" | wc -l) wheels, $(du -sh "$folder" | cut -f1) in $folder (Python $version, $platform)"
