#!/usr/bin/env bash
# One prepared round for a session that is lent a GPU (docs/development.md, "A lent GPU"): both benchmarks, then
# the GPU preset of the directions still held back (issue 20), each evaluated on the held-out images and exported
# with its model card. It fits one device call of 10 minutes; every step has its own time limit, so a hung or
# failed step costs its own minutes only and the round goes on to the next.
#
#   bash bench/gpu_round.sh OUT DATA_ROOT
#
# OUT: where the results land (the device tool's $OUT: at most 8 files come back, so the reports, logs and benchmark
# JSON go into round.tar.gz, renewed after each stage, beside the exported weights and the two benchmark tables).
# DATA_ROOT: a folder holding data/photos and data/more (the training images, 7 of each held out) and vae/taesd
# (the tiny autoencoders); neither is in the repository. Settings (environment):
#   DEVICE=cuda  PRESET=gpu  MINUTES=3.5 (training, each run; the runs share the GPU)  DIRECTIONS="f2-to-xl ..."
#   CROPS=64 (crops per image)  MAX_SIDE=768  BENCH=1  TAG=gpu (the exported files' tag)  PY=python3
#   WORK=(a temporary folder)  DATA_NOTE=(the cards' words on the data; by default the project's two folders)
# A CPU smoke run of the plumbing (minutes): DEVICE=cpu PRESET=tiny MINUTES=0.3 CROPS=2 MAX_SIDE=256 BENCH=0
set -uo pipefail
cd "$(dirname "$0")/.."

USAGE="usage: bash bench/gpu_round.sh OUT DATA_ROOT (a folder with data/photos, data/more and vae/taesd)"
OUT="${1:?$USAGE}"
DATA_ROOT="${2:?$USAGE}"
DEVICE="${DEVICE:-cuda}"
PRESET="${PRESET:-gpu}"
MINUTES="${MINUTES:-3.5}"
DIRECTIONS="${DIRECTIONS:-f2-to-xl xl-to-f2 v1-to-f2}"
CROPS="${CROPS:-64}"
MAX_SIDE="${MAX_SIDE:-768}"
BENCH="${BENCH:-1}"
TAG="${TAG:-gpu}"
PY="${PY:-python3}"
WORK="${WORK:-$(mktemp -d)}"
TAESD="$DATA_ROOT/vae/taesd"
NOTE="${DATA_NOTE:-Two folders, 7 images of each held out: photos whose origin is not recorded (used for training \
only, never published) and Debian wallpapers, photos and illustrations (mate-backgrounds, lomiri-wallpapers, \
ukui-wallpapers; GPL-2+, CC-BY-SA-3.0/4.0 or CC-BY-4.0, recorded per file).}"

for need in "$DATA_ROOT/data/photos" "$DATA_ROOT/data/more" "$TAESD"; do
  [ -d "$need" ] && continue
  echo "gpu_round: no folder $need (DATA_ROOT must hold data/photos, data/more, vae/taesd)"
  exit 2
done
mkdir -p "$OUT" "$WORK/runs" "$WORK/eval" "$WORK/logs"
export PYTHONUNBUFFERED=1
started=$(date +%s)
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $WORK/logs/NAME.log, say how it went
  local name=$1 limit=$2 rc t0=$(date +%s)
  shift 2
  timeout "$limit" "$@" > "$WORK/logs/$name.log" 2>&1
  rc=$?
  echo "[$(( $(date +%s) - started ))s] $name: rc $rc in $(( $(date +%s) - t0 ))s"
  tail -n 3 "$WORK/logs/$name.log"
  return $rc
}

pack() {  # everything small in one file, again after each stage (a round cut off still brings back what it did)
  (cd "$WORK" && find logs eval runs -type f \( -name '*.log' -o -name '*.json' -o -name '*.md' -o -name '*.csv' \
    -o -name 'grid.png' \) -print0 | tar --null -czf "$OUT/round.tar.gz.part" -T - && mv "$OUT/round.tar.gz.part" \
    "$OUT/round.tar.gz")
}

"$PY" - <<'EOF' 2>&1 | tee "$WORK/logs/machine.log"
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"python {platform.python_version()}, torch {torch.__version__}, {gpu}")
EOF

if [ "$BENCH" = 1 ]; then
  step bench_conversion 150 "$PY" bench/bench_conversion.py --device "$DEVICE" --sizes 1024 2048 --taesd-dir "$TAESD" \
    --json "$WORK/logs/bench_conversion.json" && cp "$WORK/logs/bench_conversion.log" "$OUT/bench_conversion.txt"
  step bench_upscale 120 "$PY" bench/bench_upscale.py --device "$DEVICE" --sizes 1024 \
    --json "$WORK/logs/bench_upscale.json" && cp "$WORK/logs/bench_upscale.log" "$OUT/bench_upscale.txt"
  pack
fi

# The families the directions need, encoded as the CPU rounds' data was (the same 14 held-out images).
families=$(for d in $DIRECTIONS; do echo "${d%%-to-*} ${d##*-to-}"; done | tr ' ' '\n' | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086  # $families: one word per family
step encode 180 "$PY" -m training encode "$DATA_ROOT/data/photos" "$DATA_ROOT/data/more" "$WORK/data" \
  --families $families --crop 240 --crops-per-image "$CROPS" --max-side "$MAX_SIDE" --min-scale 0.4 --holdout 7 --rgb \
  --taesd-dir "$TAESD" --no-download --device "$DEVICE" -q || { echo "gpu_round: encoding failed"; exit 1; }

# The runs share the device; each fits its minutes (torch.compile and the evaluations included).
limit=$(awk "BEGIN { print int($MINUTES * 60 + 150) }")
for d in $DIRECTIONS; do
  step "train-$d" "$limit" "$PY" -m training train --preset "$PRESET" --minutes "$MINUTES" --data "$WORK/data" \
    --src "${d%%-to-*}" --dst "${d##*-to-}" --set crop=30 --out "$WORK/runs/$d" -q &
done
wait
pack

for d in $DIRECTIONS; do
  [ -d "$WORK/runs/$d/checkpoints" ] || { echo "gpu_round: $d has no checkpoint"; continue; }
  step "eval-$d" 120 "$PY" -m training eval "$WORK/runs/$d" --data "$WORK/data" --device "$DEVICE" \
    --out "$WORK/eval/$d" --no-download &&
  step "export-$d" 60 "$PY" -m training export "$WORK/runs/$d" --tag "$TAG" --half --card "$WORK/eval/$d/report.json" \
    --data-note "$NOTE" --out-dir "$OUT"
  grep -m 1 "interposer − VAE bridge" "$WORK/eval/$d/report.md" 2>/dev/null
  pack
done
echo "[$(( $(date +%s) - started ))s] done: $(ls "$OUT" | tr '\n' ' ')"
