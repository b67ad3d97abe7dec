#!/usr/bin/env bash
# Core ML resources through the `sdpal` command: the tiny model's coremltools packages
# (tests/fixtures/tiny-sd-v1-coreml) generate with both executors, `inspect` shows the palettized
# storage, and bad Core ML input gives a clear error with the documented exit code.
# usage: test_coreml.sh path/to/sdpal
set -uo pipefail
SDPAL="$1"
FIX="$(pwd)/tests/fixtures/tiny-sd-v1-coreml"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() { echo "FAIL: $*"; failures=$((failures+1)); }

# Both executors on the 6-bit palettized packages (numpy noise, Apple's default).
for ex in native mil; do
  if ! "$SDPAL" generate --quiet -m "$FIX/palettized6" -p "a red circle" --steps 3 --seed 5 --executor "$ex" \
       -o "$WORK/$ex.png" >"$WORK/out" 2>"$WORK/err"; then
    fail "generate --executor $ex: $(cat "$WORK/err")"
  fi
  [ -s "$WORK/$ex.png" ] || fail "no image from --executor $ex"
done
grep -q "RNG: numpy" "$WORK/native.png" || fail "the PNG parameters do not record the numpy noise"
grep -q "Executor: mil" "$WORK/mil.png" || fail "the PNG parameters do not record the mil executor"
# torch noise on request gives a different picture than numpy noise.
"$SDPAL" generate --quiet -m "$FIX/palettized6" -p "a red circle" --steps 3 --seed 5 --rng torch \
  -o "$WORK/torch.png" >/dev/null 2>"$WORK/err" || fail "generate --rng torch: $(cat "$WORK/err")"
cmp -s "$WORK/native.png" "$WORK/torch.png" && fail "--rng torch made the same file as numpy noise"
# Apple's `nvidia` source is a third picture, and the PNG says so.
"$SDPAL" generate --quiet -m "$FIX/palettized6" -p "a red circle" --steps 3 --seed 5 --rng nvidia \
  -o "$WORK/nvidia.png" >/dev/null 2>"$WORK/err" || fail "generate --rng nvidia: $(cat "$WORK/err")"
grep -q "RNG: nvidia" "$WORK/nvidia.png" || fail "the PNG parameters do not record the nvidia noise"
cmp -s "$WORK/native.png" "$WORK/nvidia.png" && fail "--rng nvidia made the same file as numpy noise"

# A zip of the resources opens the same way.
if command -v python3 >/dev/null; then
  (cd "$FIX/palettized6" && python3 -c "
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:
    for root, _, files in os.walk('.'):
        for f in files: z.write(os.path.join(root, f), os.path.join('res', root, f))
" "$WORK/res.zip")
  "$SDPAL" generate --quiet -m "$WORK/res.zip" -p "a red circle" --steps 3 --seed 5 -o "$WORK/zip.png" \
    >/dev/null 2>"$WORK/err" || fail "generate from a zip: $(cat "$WORK/err")"
  # Same pixels (the PNG text differs: model name and hash).
  python3 - "$WORK/native.png" "$WORK/zip.png" <<'PY' || fail "the zip gave a different image than the folder"
import struct, sys, zlib
def pixels(path):
    data, pos, idat = open(path, "rb").read(), 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT": idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY
fi

# inspect: bits and LUTs per model.
"$SDPAL" inspect "$FIX/palettized6" >"$WORK/inspect" 2>&1 || fail "inspect: $(cat "$WORK/inspect")"
grep -q "6-bit palettized" "$WORK/inspect" || fail "inspect does not show 6-bit palettized tensors"
grep -q "norm parameters derived" "$WORK/inspect" || fail "inspect does not count the graph's norm parameters"
grep -q "^safety_checker: " "$WORK/inspect" || fail "inspect does not show the safety checker program"
grep -q "^tokenizer: .*vocab.json" "$WORK/inspect" || fail "inspect does not show the tokenizer files"
"$SDPAL" inspect --tensors "$FIX/palettized4" >"$WORK/inspect4" 2>&1 || fail "inspect palettized4"
grep -q "4-bit palettized, LUT F16 \[16\]" "$WORK/inspect4" || fail "inspect --tensors does not show a 4-bit LUT"

# Bad input: exit code and a message naming the culprit; no output file.
expect() {
  local code="$1" needle="$2"; shift 2
  rm -f "$WORK/bad.png"
  "$SDPAL" "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  local rc=$?
  [ "$rc" -eq "$code" ] || { fail "[$*] exit $rc, want $code: $(cat "$WORK/stderr")"; return; }
  grep -qF -- "$needle" "$WORK/stderr" || fail "[$*] error does not mention '$needle': $(cat "$WORK/stderr")"
  [ -e "$WORK/bad.png" ] && fail "[$*] left an output file"
  return 0
}
G=(generate --quiet --steps 2 -o "$WORK/bad.png" -p x)
expect 2 "--executor" "${G[@]}" -m "$FIX/palettized6" --executor gpu
expect 2 "--rng" "${G[@]}" -m "$FIX/palettized6" --rng philox
expect 2 "--executor mil" "${G[@]}" -m "$(pwd)/tests/fixtures/tiny-sd-v1" --executor mil
expect 2 "converted for 8x8" "${G[@]}" -m "$FIX/palettized6" -W 128 -H 128 --executor mil
# A resources folder without a tokenizer.
mkdir -p "$WORK/notok" && cp -r "$FIX/palettized6/"*.mlpackage "$WORK/notok/"
expect 4 "vocab.json" "${G[@]}" -m "$WORK/notok"
# A truncated weight file.
cp -r "$FIX/palettized6" "$WORK/trunc"
wb="$(find "$WORK/trunc" -path '*unet.mlpackage*' -name weight.bin)"
truncate -s 1000 "$wb"
expect 4 "weight.bin" "${G[@]}" -m "$WORK/trunc"

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "test_coreml: all passed"
