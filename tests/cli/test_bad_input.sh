#!/usr/bin/env bash
# Bad input through the `sdpal` command: each case must print one clear error line naming the
# culprit, exit with the documented non-zero code, not crash, and leave no output file.
# usage: test_bad_input.sh path/to/sdpal
set -uo pipefail
SDPAL="$1"
MODEL="$(pwd)/tests/fixtures/tiny-sd-v1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failures=0; passed=0

# expect CODE NEEDLE -- args...: runs sdpal, checks exit code, message and that no PNG appeared.
expect() {
  local code="$1" needle="$2"; shift 3
  local out="$WORK/out.png"
  rm -f "$WORK"/out*.png
  "$SDPAL" "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  local rc=$?
  local msg; msg="$(grep -m1 'error' "$WORK/stderr")"
  if [ "$rc" -ne "$code" ]; then
    echo "FAIL [$*]: exit $rc, want $code"; cat "$WORK/stderr"; failures=$((failures+1)); return
  fi
  if ! grep -qF -- "$needle" "$WORK/stderr"; then
    echo "FAIL [$*]: error does not mention '$needle': $msg"; failures=$((failures+1)); return
  fi
  if ls "$WORK"/out*.png "$WORK"/.out* >/dev/null 2>&1; then
    echo "FAIL [$*]: an output file was left behind"; failures=$((failures+1)); return
  fi
  passed=$((passed+1))
}

G=(generate --quiet --steps 2 -o "$WORK/out.png")
# Arguments.
expect 2 "--steps" -- "${G[@]}" -m "$MODEL" -p x --steps 0
expect 2 "--steps" -- "${G[@]}" -m "$MODEL" -p x --steps=-3
expect 2 "--cfg" -- "${G[@]}" -m "$MODEL" -p x --cfg nan
expect 2 "--cfg" -- "${G[@]}" -m "$MODEL" -p x --cfg inf
expect 2 "--cfg" -- "${G[@]}" -m "$MODEL" -p x --cfg abc
expect 2 "multiples of 8" -- "${G[@]}" -m "$MODEL" -p x -W 100
expect 2 "--width" -- "${G[@]}" -m "$MODEL" -p x -W 1000000
expect 2 "--height" -- "${G[@]}" -m "$MODEL" -p x -H 0
expect 2 "--batch" -- "${G[@]}" -m "$MODEL" -p x --batch 0
expect 2 "--seed" -- "${G[@]}" -m "$MODEL" -p x --seed -1
expect 2 "--prompt" -- "${G[@]}" -m "$MODEL"
expect 2 "sampler 'foo'" -- "${G[@]}" -m "$MODEL" -p x --sampler foo
expect 2 "unknown option" -- "${G[@]}" -m "$MODEL" -p x --frobnicate
expect 2 "needs a value" -- "${G[@]}" -m "$MODEL" -p
# Paths.
expect 3 "does not exist" -- "${G[@]}" -m "$WORK/no-such-model" -p x
expect 3 "/no/such/dir" -- generate --quiet --steps 2 -m "$MODEL" -p x -o /no/such/dir/out.png
expect 3 "is a folder" -- generate --quiet --steps 2 -m "$MODEL" -p x -o "$WORK"

# Broken model folders (copies of the tiny fixture, one defect each).
broken() {  # broken NAME: a fresh copy of the fixture at $WORK/NAME
  rm -rf "$WORK/$1"; cp -r "$MODEL" "$WORK/$1"; rm -f "$WORK/$1"/*/*.fp16.safetensors
}
broken no_unet; rm -rf "$WORK/no_unet/unet"
expect 4 "unet" -- "${G[@]}" -m "$WORK/no_unet" -p x
broken no_index; rm "$WORK/no_index/model_index.json"
expect 4 "model_index.json" -- "${G[@]}" -m "$WORK/no_index" -p x
broken truncated; f="$WORK/truncated/unet/diffusion_pytorch_model.safetensors"; head -c 100000 "$f" >"$f.tmp"; mv "$f.tmp" "$f"
expect 4 "diffusion_pytorch_model.safetensors" -- "${G[@]}" -m "$WORK/truncated" -p x
broken badoffset; f="$WORK/badoffset/vae/diffusion_pytorch_model.safetensors"
# Push one tensor's end offset far past the file (perl is part of every Debian system; python may not be).
perl -e 'open F, "<:raw", $ARGV[0] or die; local $/; my $d = <F>; my $n = unpack("Q<", substr($d, 0, 8));
  my $h = substr($d, 8, $n); $h =~ s/("data_offsets":\[\d+,)\d+\]/${1}999999999999]/ or die "no offsets";
  $h .= " " x ((8 - length($h) % 8) % 8); open G, ">:raw", $ARGV[0] or die;
  print G pack("Q<", length $h) . $h . substr($d, 8 + $n);' "$f"
expect 4 "diffusion_pytorch_model.safetensors" -- "${G[@]}" -m "$WORK/badoffset" -p x
broken badshape; f="$WORK/badshape/unet/config.json"; sed -i 's/"cross_attention_dim": 32/"cross_attention_dim": 48/' "$f"
expect 4 "shape" -- "${G[@]}" -m "$WORK/badshape" -p x
broken badjson; echo "{ not json" >"$WORK/badjson/vae/config.json"
expect 4 "config.json" -- "${G[@]}" -m "$WORK/badjson" -p x
broken badvocab; echo "[1,2" >"$WORK/badvocab/tokenizer/vocab.json"
expect 4 "vocab.json" -- "${G[@]}" -m "$WORK/badvocab" -p x
# Other commands.
expect 3 "does not exist" -- inspect "$WORK/no-such-model"
expect 2 "no prompt" -- tokenize -m "$MODEL"
expect 2 "unknown command" -- frobnicate

# A good run still works and writes exactly one file.
"$SDPAL" generate --quiet --steps 2 -m "$MODEL" -p "a red circle" -o "$WORK/good.png" >/dev/null 2>&1 \
  && [ -s "$WORK/good.png" ] && passed=$((passed+1)) || { echo "FAIL: good run"; failures=$((failures+1)); }

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
