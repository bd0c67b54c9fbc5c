#!/usr/bin/env bash
# Reruns every benchmark of docs/BENCHMARKS.md on this machine, one after the other, into bench/out/.
# Takes about an hour on 2 CPU cores (more on CPUs without bf16). Keep the machine otherwise idle: the ratios are side by side,
# but the absolute seconds are not.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
python bench/bench_features.py --rounds 3 --out bench/out/features.json | tee bench/out/features.log
python bench/bench_train.py --lengths 1.5 5 --epochs 3 --augment --out bench/out/train.json | tee bench/out/train.log
python bench/bench_train.py --lengths 1.5 5 --epochs 3 --precision fp32 --workdir bench/out/train_fp32 \
    --out bench/out/train_fp32.json | tee bench/out/train_fp32.log
python bench/bench_cpu_path.py --mode frozen --pair --out bench/out/cpu_path.json | tee bench/out/cpu_path.log
python bench/bench_infer.py --size base --out bench/out/infer.json | tee bench/out/infer.log
python bench/bench_scaling.py --sizes 100 2000 10000 --out bench/out/scaling.json | tee bench/out/scaling.log
python bench/bench_onnx.py --size base --clips 200 --out bench/out/onnx.json | tee bench/out/onnx.log
python bench/bench_listen.py --sizes small base --out bench/out/listen.json | tee bench/out/listen.log
python bench/bench_int8.py --clips 160 --splits 40 --out bench/out/int8.json | tee bench/out/int8.log
python bench/bench_int8.py --clips 80 --emulate-avx2 --out bench/out/int8_avx2.json | tee bench/out/int8_avx2.log
python bench/bench_levers.py --rounds 5 --compile --out bench/out/levers.json | tee bench/out/levers.log
python bench/bench_processes.py --rounds 2 --out bench/out/processes.json | tee bench/out/processes.log
python bench/bench_noise.py --rounds 3 --out bench/out/noise.json | tee bench/out/noise.log
python bench/bench_cv.py --out bench/out/cv.json | tee bench/out/cv.log
python bench/bench_record.py | tee bench/out/record.log
python bench/bench_detect.py --out bench/out/detect.json | tee bench/out/detect.log
