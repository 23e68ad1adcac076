#!/usr/bin/env bash
# The prepared GPU session of the fused core-set kernel (docs/coreset_kernel.md), in one call:
#   (a) the device and the jax version;
#   (b) exact agreement of the Pallas and XLA picks at every benchmark setting, on small-integer
#       coordinates (no float32 near-ties), with (d) the two kernels' times side by side;
#   (c) the Triton layout sweeps: warps per program, and points per program at the large setting
#       (several programs per set, met at a grid barrier), each checked against XLA as in (b);
#   (e) whether the picks also agree on Gaussian inputs (informational: near-ties may round apart).
# Every step is its own process under a time limit: a lowering error shows as that setting's row,
# and a hang (a grid barrier whose programs are not all resident) ends only its step. The NumPy
# and sklearn references are not timed here (their host-CPU times are in the README).
#
# Usage, from the repository root: bash benchmarks/gpu_coreset.sh [OUT_DIR]
# (default: $OUT, else /tmp/gpu_coreset). The log is OUT_DIR/gpu_coreset.log.
set -u
out="${1:-${OUT:-/tmp/gpu_coreset}}"
mkdir -p "$out"
log="$out/gpu_coreset.log"
: > "$log"
export PYTHONUNBUFFERED=1
no_refs=(--ref-repeats 0 --large-ref-repeats 0 --sklearn-large-repeats 0)

# step LIMIT_S TITLE ARGS...: one benchmarks/coreset_speed.py run, logged.
step() {
  local limit=$1 title=$2
  shift 2
  echo "=== $title" | tee -a "$log"
  timeout -k 10 "$limit" python benchmarks/coreset_speed.py --backends xla pallas "${no_refs[@]}" \
    "$@" 2>&1 | tee -a "$log"
  echo "=== exit status ${PIPESTATUS[0]}: $title" | tee -a "$log"
}

{
  echo "=== (a) device"
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python -c "import jax, jaxlib; d = jax.devices()[0]; print('jax', jax.__version__, 'jaxlib',
             jaxlib.__version__, '|', d.platform, d.device_kind, '| SMs:',
             getattr(d, 'core_count', None))"
} 2>&1 | tee -a "$log"

step 110 "(b)+(d) small-int inputs, xla and pallas (default layouts) side by side" \
  --inputs small-int --settings prior target target-x8 sngan-prior sngan-target paper-target \
  torch-fps
step 45 "(b)+(d) large, small-int inputs (default layout: several programs per set)" \
  --inputs small-int --settings large
step 60 "(c) warps per program" --inputs small-int --repeats 11 \
  --settings target prior sngan-prior --num-warps 4 8 16
step 45 "(c) large: points per program" --inputs small-int --repeats 5 \
  --settings large --block-n 64 128 256
step 25 "(e) Gaussian inputs" --repeats 5 --settings target prior
