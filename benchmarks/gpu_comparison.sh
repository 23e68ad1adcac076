#!/usr/bin/env bash
# The Fashion-MNIST comparison of docs/image_gans.md at a GPU's budget, in one device call of at
# most 8 minutes: the plain GAN at batch 16 and 64, Small-GAN, and Small-GAN with target- and
# cells-weighted core-sets, each on seeds 0, 1 and 2 (benchmarks/fashion_mnist_comparison.py
# --study=gpu: 15 runs at once on the one GPU; the config's uniform prior, picked on
# `classifier2`), with wider networks and more steps than the CPU table; each run's last
# checkpoint scored on 10,000 samples on `classifier2` and `classifier`, the tables printed with
# the device and jax version above them.
#
# The GPU image has jax, flax, optax, orbax and tensorboard, but no ml_collections, TensorFlow,
# clu or tfds. Training needs none of the last three (reporting.py writes the TensorBoard files
# itself, Debian's idx files are read without tfds); ml_collections travels as a wheel, the
# Fashion-MNIST files in the working tree. Once, here, from the repository root:
#   pip download --no-deps --only-binary=:all: -d .whl ml_collections==1.1.0
#   mkdir -p .fmnist && cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
# then on the device (carry .whl and .fmnist): bash benchmarks/gpu_comparison.sh
# At tiny size on the CPU, with TensorFlow, clu and tfds unimportable (NO_TF: stub packages that
# raise ImportError), before any GPU call:
#   PYTHONPATH=$NO_TF PYTHON=.venv/bin/python STEPS=40 WIDTH=8 JOBS=2 \
#     LIMIT_S=1500 bash benchmarks/gpu_comparison.sh /tmp/gpu_tiny
#
# Settings (environment): STEPS, steps of every run (default 20000; the CPU table's 5,000);
# WIDTH, the DCGAN's channels (64; the CPU table's 32); JOBS, runs at once (15); LIMIT_S, seconds the
# training and scoring may take (330, so that the call ends inside 8 minutes with the preparation);
# PYTHON (python3). Usage: bash benchmarks/gpu_comparison.sh [OUT_DIR] (default: $OUT, else
# /tmp/gpu_comparison); the log is OUT_DIR/gpu_comparison.log, the table OUT_DIR/table.md.
set -u
out="${1:-${OUT:-/tmp/gpu_comparison}}"
steps="${STEPS:-20000}" width="${WIDTH:-64}" jobs="${JOBS:-15}"
limit="${LIMIT_S:-330}" python="${PYTHON:-python3}"
root="$(mktemp -d)"
mkdir -p "$out"
log="$out/gpu_comparison.log"
: > "$log"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    >> "$log" 2>&1 && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
idx_dir="$(pwd)/.fmnist"
[ -d "$idx_dir" ] || idx_dir=/usr/share/datasets/fashion-mnist
every=$(( steps / 4 > 0 ? steps / 4 : 1 ))
settings=(--set "data.idx_dir=$idx_dir" --set "coreset.cache_dir=$root/cache"
          --set "dcgan.g_channels=$width" --set "dcgan.d_channels=$width"
          --set "eval_every_steps=$every" --set "checkpoint_every_steps=$every")
{
  echo "== device"; nvidia-smi -L 2>&1 || echo "no nvidia-smi"
  "$python" -c "import jax; print('jax', jax.__version__, jax.devices())"
  echo "== $steps steps, width $width, $jobs runs at once, runs in $root"
} >> "$log" 2>&1
start=$(date +%s)
# One run first builds what all runs share (the classifiers, the FID statistics and features of
# both scoring networks, the embeddings): processes building the same cache at once would race.
"$python" -m smallgan_jax.main --config=configs/fashion_mnist_dcgan.py --workdir="$root/prepare" \
  --config.num_train_steps=1 "--config.fid.features=('classifier2','classifier')" \
  --config.data.idx_dir="$idx_dir" \
  --config.coreset.cache_dir="$root/cache" --config.dcgan.g_channels="$width" \
  --config.dcgan.d_channels="$width" >> "$root/prepare.log" 2>&1 \
  || { tail -n 30 "$root/prepare.log" >> "$log"; echo "preparation failed" >> "$log"; exit 1; }
echo "== prepared in $(( $(date +%s) - start )) s" >> "$log"
timeout "$limit" "$python" benchmarks/fashion_mnist_comparison.py --root="$root/runs" --study=gpu \
  --jobs="$jobs" --steps="$steps" --last=1 "${settings[@]}" >> "$log" 2>&1
status=$?
echo "== training and scoring: exit $status after $(( $(date +%s) - start )) s" >> "$log"
if [ "$status" -ne 0 ]; then
  for run_log in "$root"/runs/*/log.txt; do
    { echo "-- $run_log"; tail -n 5 "$run_log"; } >> "$log"
  done
fi
"$python" benchmarks/fashion_mnist_comparison.py --root="$root/runs" --study=gpu --last=1 \
  --summarize_only --export="$out/runs.json" > "$out/table.md" 2>> "$log"
cat "$out/table.md" >> "$log"
