#!/usr/bin/env bash
# One short GPU check (at most 8 minutes): FM inference from slides vs the bare forward (ViT-L/16 bf16),
# GPU JPEG decoding vs CPU, and LoRA fine-tuning tiles/s per GPU, written to one markdown file.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--wheels DIR] [--python PY]
#   bash benchmarks/gpu_check.sh --fetch-wheels DIR     # here, with a package index: what a GPU machine
#                                                       # without one needs, for --wheels DIR there
# A lent GPU machine (Python 3.12 with PyTorch, no package index): fetch the wheels into an ignored
# folder of the checkout (`--fetch-wheels .whl`, about 57 MB for cp312 x86-64, under the 64 MiB a
# call may carry), carry it, and run `bash benchmarks/gpu_check.sh --wheels .whl --python python3`.
#
# Each part runs in its own process under its own time box (benchmarks/gpu_check.py PART), so one that
# fails or hangs costs only its own section. GPU machines lent here have PyTorch but no package index:
# --wheels DIR installs the wheels fetched beforehand (pip --no-index) into a private target folder;
# raypath itself is used from this checkout (PYTHONPATH), none of its Ray / MLflow dependencies are
# needed. --dry-run: tiny models, few tiles, CPU; GPU parts are reported as skipped with the reason
# (CI runs it: tests/benchmarks/test_gpu_check.py). It writes two files: <out>/gpu_check.md (the
# results) and <out>/gpu_check.log (every part's output); out: --out, else $OUT, else
# benchmarks/results (where run_all.py assembles RESULTS.md from). Slides and parts go to a temp dir.
set -uo pipefail
arguments="$*"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
dry_run=0 out="${OUT:-}" wheels="" python="" fetch=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --out) out="$2"; shift ;;
    --wheels) wheels="$2"; shift ;;
    --python) python="$2"; shift ;;
    --fetch-wheels) fetch="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
# What the GPU parts import beyond PyTorch, timm, peft, numpy, pandas, scipy, pyarrow, PIL and
# tifffile (all in the lent machines' image): raypath's config models, the JPEG decoders, OpenSlide.
NEEDED="pydantic pydantic-core annotated-types typing-inspection simplejpeg imagecodecs openslide-python
openslide-bin nvidia-nvimgcodec-cu13"
if [ -n "$fetch" ]; then
  mkdir -p "$fetch"
  # shellcheck disable=SC2086
  "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$fetch" $NEEDED || exit 1
  du -sh "$fetch"
  exit 0
fi
out="${out:-$root/benchmarks/results}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$out" "$scratch/parts"
result="$out/gpu_check.md"
: >"$out/gpu_check.log"
started=$(date +%s)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
install_note="nothing installed (dry run)"
if [ "$dry_run" = 0 ]; then
  if [ -n "$wheels" ]; then
    site=$(mktemp -d)
    if timeout 120 "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl; then
      export PYTHONPATH="$PYTHONPATH:$site"
      install_note="installed $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $site"
    else
      install_note="installing the wheels of $wheels FAILED"
    fi
  else
    # shellcheck disable=SC2086
    if timeout 180 "$python" -m pip install -q $NEEDED; then install_note="installed from the package index: $NEEDED"
    else install_note="pip install of $NEEDED FAILED (no package index? fetch wheels with --fetch-wheels)"; fi
  fi
fi
mode=$([ "$dry_run" = 1 ] && echo "--dry-run" || echo "")
# part: time box in seconds (env + inference + decode + lora + install <= 8 minutes)
status=0
for spec in env:30 inference:180 decode:90 lora:120; do
  part=${spec%%:*} box=${spec##*:}
  [ "$dry_run" = 1 ] && box=900  # the boxes fit the real run into 8 minutes; a dry run may share a busy CPU
  # shellcheck disable=SC2086
  timeout --kill-after=10 "$box" "$python" "$here/gpu_check.py" "$part" --out "$scratch/parts" $mode \
    >"$scratch/parts/$part.log" 2>&1
  code=$?
  { echo "===== $part (exit $code)"; cat "$scratch/parts/$part.log"; } >>"$out/gpu_check.log"
  if [ "$code" != 0 ]; then
    status=1
    reason=$([ "$code" = 124 ] && echo "stopped at its ${box} s time box" || echo "failed with exit code $code")
    { echo "### $part"; echo; echo "FAILED: $reason. Last lines of its log:"; echo; echo '```';
      tail -n 15 "$scratch/parts/$part.log"; echo '```'; echo; } >"$scratch/parts/$part.md"
  fi
done
{
  echo "## GPU check ($([ "$dry_run" = 1 ] && echo "dry run: tiny models on the CPU" || echo "real"))"
  echo
  echo "- command: \`bash benchmarks/gpu_check.sh $arguments\`"
  gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
  echo "- machine: $(nproc) cores, ${gpu:-no GPU (nvidia-smi found none)}"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M') UTC; total $(( $(date +%s) - started )) s"
  echo "- set-up: $install_note"
  echo
  for part in env inference decode lora; do cat "$scratch/parts/$part.md"; echo; done
} >"$result"
echo "wrote $result"
exit $status
