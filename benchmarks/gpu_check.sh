#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (its python3 has torch with CUDA but not our other
# dependencies, and no network): the CUDA tests, SASRec's speed and memory on Amazon Beauty, and the knowledge
# table from semantic tables exported here (`kirec embed --export .devkit/tables/TEXT.npy --half`).
#
#   benchmarks/gpu_check.sh OUT_DIR tests engine
#   METHODS="id kirec-add" JOBS=9 NAME=knowledge EXTRA="train.max_train_seconds=120" \
#       benchmarks/gpu_check.sh OUT_DIR knowledge raw attributes
#
# Expects, carried beside the repository: .whl/ (wheels of sqlmodel, SQLAlchemy, pydantic, textual and their needs) and
# .devkit/data/amazon-beauty (the dataset, never committed). Runs side by side (JOBS) share the machine: their
# quality figures stand, their times do not.
set -uo pipefail
out=${1:?output folder}; shift
mkdir -p "$out"
if [ -d .whl ] && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1
mkdir -p /tmp/runs  # runs.db and checkpoints stay there: only 8 files come back from OUT_DIR
root=$PWD/.devkit/data  # the benchmarks take flags only, not the environment
while [ $# -gt 0 ]; do
  step=$1; shift
  case $step in
    tests) KIREC_GPU_SCREENSHOTS=$out python3 -m pytest -q -p no:cacheprovider tests/unit/test_cuda.py tests/tui/test_tui_cuda.py \
             2>&1 | tee "$out/tests.log" ;;
    engine) python3 benchmarks/bench_engine.py --variant sasrec-cuda=model.backbone=sasrec,train.device=cuda,data.data_root=$root \
              --seeds 42 --db /tmp/runs/bench-runs.db --out "$out/engine-sasrec-cuda.json" 2>&1 | grep --line-buffered -v '^  epoch' | tee "$out/engine.log" ;;
    knowledge)
      texts=("$@"); tables=(); for t in "${texts[@]}"; do tables+=("$t=.devkit/tables/$t.npy"); done; set --
      name=${NAME:-knowledge-cuda}
      python3 benchmarks/bench_knowledge.py --dataset amazon-beauty --seeds 1 2 3 --text "${texts[@]}" --table "${tables[@]}" \
        --methods ${METHODS:-id init kirec-add kirec-concat kirec-gate} \
        --set data.data_root=$root train.device=cuda train.num_threads=1 train.patience=5 ${EXTRA:-} \
        --jobs ${JOBS:-6} --db /tmp/runs/bench-runs.db --out "$out/$name.json" 2>&1 | grep --line-buffered -v '^  epoch' | tee "$out/$name.log" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
