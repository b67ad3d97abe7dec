#!/usr/bin/env bash
# Regenerates every reference fixture and golden file (tests/fixtures/tiny-sd-v1, tests/goldens/**).
#
#   tests/reference/regen.sh            # creates/uses .venv-ref (pinned requirements.txt)
#   SDPAL_REF_PYTHON=/path/to/python tests/reference/regen.sh   # use that interpreter instead
#
# Runs tests/reference/make_*.py: the CLIP vocabulary check and the tiny model first (other goldens
# read it), then the model/pipeline goldens, then every other make_*.py present, in name order.
# CPU only, single-threaded torch; takes well under a minute after the venv exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

if [[ -n "${SDPAL_REF_PYTHON:-}" ]]; then
  py="$SDPAL_REF_PYTHON"
else
  venv="$repo/.venv-ref"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --upgrade pip
  fi
  "$venv/bin/python" -m pip install -r "$here/requirements.txt"
  py="$venv/bin/python"
fi
"$py" -c "import torch, diffusers, transformers, safetensors, numpy, PIL" \
  || { echo "regen.sh: $py lacks the reference stack (tests/reference/requirements.txt)" >&2; exit 1; }

export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_VERBOSITY=error

# The Core ML scripts need coremltools (tests/reference/requirements-coreml.txt): they re-run
# themselves under $SDPAL_COREML_PYTHON, or print "skipped". The chunked UNet is cut from the
# packages make_coreml_tiny.py writes (and that script clears its folder), so it runs last, as does the
# safety checker, which writes into that folder; the ANE-layout UNet's folder copies both scripts' packages.
first=(make_clip_vocab.py make_tiny_model.py make_model_goldens.py)
last=(make_coreml_tiny_chunks.py make_coreml_safety_checker.py make_coreml_ane.py)
scripts=()
for s in "${first[@]}"; do [[ -f "$here/$s" ]] && scripts+=("$s"); done
for f in "$here"/make_*.py; do
  s="$(basename "$f")"
  [[ " ${first[*]} ${last[*]} " == *" $s "* ]] || scripts+=("$s")
done
for s in "${last[@]}"; do [[ -f "$here/$s" ]] && scripts+=("$s"); done

for s in "${scripts[@]}"; do
  echo "== $s"
  "$py" "$here/$s"
done
echo "regen.sh: done (${#scripts[@]} scripts)"
