#!/usr/bin/env bash
# `sdpal convert`, `sdpal inspect` and `sdpal quality` on the tiny fixture: a 6-bit palettized
# sdpal file is written, listed and compared with its source; bad input gives the documented exit
# code, one error line naming the culprit, and no output file (nor a temporary one).
# usage: test_convert.sh path/to/sdpal
set -uo pipefail
SDPAL="$1"
MODEL="$(pwd)/tests/fixtures/tiny-sd-v1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failures=0; passed=0
fail() { echo "FAIL: $*"; failures=$((failures+1)); }
ok() { passed=$((passed+1)); }

# expect CODE NEEDLE -- args...: runs sdpal, checks exit code, message and that no .safetensors appeared.
expect() {
  local code="$1" needle="$2"; shift 3
  rm -f "$WORK"/bad*
  "$SDPAL" "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  local rc=$?
  if [ "$rc" -ne "$code" ]; then
    fail "[$*]: exit $rc, want $code"; cat "$WORK/stderr"; return
  fi
  if ! grep -qF -- "$needle" "$WORK/stderr"; then
    fail "[$*]: error does not mention '$needle': $(grep -m1 error "$WORK/stderr")"; return
  fi
  if ls "$WORK"/bad* >/dev/null 2>&1; then
    fail "[$*]: an output file was left behind: $(ls "$WORK"/bad*)"; return
  fi
  ok
}

# 1. Convert to 6-bit.
OUT="$WORK/tiny-6bit.safetensors"
if "$SDPAL" convert -m "$MODEL" -o "$OUT" --palettize 6 >"$WORK/convert.out" 2>"$WORK/convert.err" && [ -s "$OUT" ]; then
  ok
  grep -q "6-bit palettized, LUT \[64\]" "$WORK/convert.err" || fail "convert progress shows no palettized tensor"
  grep -q "palettized" "$WORK/convert.out" || fail "convert summary: $(cat "$WORK/convert.out")"
else
  fail "convert: $(tail -3 "$WORK/convert.err")"
fi
ls "$WORK"/*.tmp.* >/dev/null 2>&1 && fail "convert left a temporary file"

# 2. Inspect lists every tensor's storage.
if "$SDPAL" inspect "$OUT" >"$WORK/inspect.out" 2>&1; then
  ok
  for needle in "format sdpal, version 1" "  .*6-bit palettized, LUT \[64\], " "token_embedding.weight \[49408, 32\] F16" \
                "bytes by storage" "6-bit palettized: " "scheduler: PNDMScheduler"; do
    grep -q -- "$needle" "$WORK/inspect.out" || fail "inspect output lacks '$needle'"
  done
  # Components are headers, tensors listed without their component prefix.
  grep -q "^unet: " "$WORK/inspect.out" && grep -q "^  down_blocks.2.resnets.0.conv1.weight \[64, 32, 3, 3\] 6-bit" "$WORK/inspect.out" \
    || fail "inspect: no unet section with down_blocks.2.resnets.0.conv1.weight"
else
  fail "inspect: $(tail -3 "$WORK/inspect.out")"
fi

# 3. Quality: per-layer SNR and the end-to-end PSNR, through the sdpal loader.
if "$SDPAL" quality -m "$MODEL" --against "$OUT" --steps 1 --top 5 >"$WORK/quality.out" 2>"$WORK/quality.err"; then
  ok
  grep -q "^weight SNR: min .* dB, median .* dB" "$WORK/quality.out" || fail "quality: no SNR summary"
  [ "$(grep -c ' dB\| (6-bit' "$WORK/quality.out")" -ge 5 ] || fail "quality: fewer than 5 layers listed"
  psnr="$(sed -n 's/^end-to-end PSNR \([0-9.]*\) dB.*/\1/p' "$WORK/quality.out")"
  if [ -z "$psnr" ] || ! awk -v p="$psnr" 'BEGIN { exit !(p > 30) }'; then
    fail "quality: end-to-end PSNR '$psnr' (want > 30 dB): $(cat "$WORK/quality.out")"
  fi
else
  fail "quality: $(tail -3 "$WORK/quality.err")"
fi

# 4. Grouped tables, no safety checker, fp32 dense tensors.
G="$WORK/tiny-4bit-g8.safetensors"
if "$SDPAL" convert --quiet -m "$MODEL" -o "$G" --palettize 4 --group-size 8 --dtype fp32 --no-safety-checker >/dev/null 2>&1 \
   && "$SDPAL" inspect "$G" >"$WORK/inspect2.out" 2>&1; then
  ok
  grep -q "4-bit palettized, LUT \[8, 1, 1, 1, 16, 1\]" "$WORK/inspect2.out" || fail "inspect: no grouped table"
  grep -q "^safety_checker" "$WORK/inspect2.out" && fail "inspect: safety checker was not left out"
  grep -q " F32, " "$WORK/inspect2.out" || fail "inspect: dense tensors are not F32"
else
  fail "grouped convert or inspect"
fi

# 5. Bad input.
B="$WORK/bad.safetensors"
expect 2 "--palettize" -- convert -m "$MODEL" -o "$B" --palettize 5
expect 2 "--palettize" -- convert -m "$MODEL" -o "$B" --palettize 16
expect 2 "--group-size" -- convert -m "$MODEL" -o "$B" --palettize 6 --group-size 0
expect 2 "--group-size needs --palettize" -- convert -m "$MODEL" -o "$B" --group-size 8
expect 2 "--dtype" -- convert -m "$MODEL" -o "$B" --dtype fp8
expect 2 "--output" -- convert -m "$MODEL"
expect 2 "--model" -- convert -o "$B"
expect 3 "does not exist" -- convert -m "$WORK/no-such-model" -o "$B"
expect 3 "/no/such/dir" -- convert -m "$MODEL" -o /no/such/dir/out.safetensors
expect 4 "model_index.json" -- convert -m "$WORK" -o "$B"
echo "not a model" >"$WORK/junk.bin"
expect 4 "is neither a diffusers model folder, an sdpal file nor a .ckpt" -- convert -m "$WORK/junk.bin" -o "$B"
expect 4 "not an sdpal file" -- quality -m "$MODEL" --against "$MODEL"
expect 2 "--against" -- quality -m "$MODEL"
# A truncated sdpal file: every command names it.
T="$WORK/trunc.safetensors"
head -c "$(( $(stat -c %s "$OUT") - 100 ))" "$OUT" >"$T"
expect 4 "$T" -- inspect "$T"
expect 4 "$T" -- quality -m "$MODEL" --against "$T"
expect 4 "$T" -- convert -m "$T" -o "$B"
# A corrupted palettized entry (the table shape no longer matches its .lut tensor).
C="$WORK/corrupt.safetensors"
perl -e 'open F, "<:raw", $ARGV[0] or die; local $/; my $d = <F>; my $n = unpack("Q<", substr($d, 0, 8));
  my $h = substr($d, 8, $n); $h =~ s/\\"lut_shape\\":\[64\]/\\"lut_shape\\":[65]/ or die "no lut_shape";
  $h .= " " x ((8 - length($h) % 8) % 8); open G, ">:raw", $ARGV[1] or die;
  print G pack("Q<", length $h) . $h . substr($d, 8 + $n);' "$OUT" "$C" || fail "could not corrupt the file"
expect 4 "lut_shape [65]" -- inspect "$C"
# An original single-file checkpoint converts too, and `generate -m` runs the result.
L="$WORK/ldm6.safetensors"
if "$SDPAL" convert --quiet -m "$(pwd)/tests/fixtures/tiny-sd-v1-ldm/tiny-sd-v1.ckpt" --config "$MODEL" \
     --palettize 6 -o "$L" >/dev/null 2>"$WORK/err"; then ok; else fail "convert from a .ckpt: $(cat "$WORK/err")"; fi
if "$SDPAL" generate --quiet -m "$L" -p "a red circle" --steps 2 --no-safety-checker -o "$WORK/ldm6.png" \
     >/dev/null 2>"$WORK/err" && [ -s "$WORK/ldm6.png" ]; then ok; else fail "generate from the converted checkpoint: $(cat "$WORK/err")"; fi
ls "$WORK"/*.tmp.* >/dev/null 2>&1 && fail "a temporary file was left behind"

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
