#!/usr/bin/env bash
# Builds the libFuzzer targets for the Core ML readers with ASan + UBSan (clang 14 on Debian 12),
# and prepares seed corpora from the committed goldens and the fixtures (if present).
#   tests/fuzz/build.sh [out_dir]        (default: build-fuzz)
# See tests/fuzz/README.md for running them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/build-fuzz}"
mkdir -p "$OUT"
CXX="${CXX:-clang++}"
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter
       -I"$ROOT/src" -DSDPAL_SOURCE_DIR="\"$ROOT\"")
SOURCES=("$ROOT"/src/io/coreml/*.cpp "$ROOT"/src/core/palettized.cpp "$ROOT"/src/core/dtype.cpp
         "$ROOT"/src/core/tensor.cpp "$ROOT"/src/io/mapped_file.cpp "$ROOT"/src/io/zip_archive.cpp
         "$ROOT"/src/io/atomic_file.cpp "$ROOT"/src/io/tensor_file.cpp)

# Library objects (instrumented, without the fuzzer main), rebuilt every time so that a changed
# header can never leave a stale object behind; then one link per target.
OBJ="$OUT/obj"
rm -rf "$OBJ"
mkdir -p "$OBJ"
LIB_FLAGS=("${FLAGS[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}")
objs=()
for s in "${SOURCES[@]}"; do
  o="$OBJ/$(echo "${s#$ROOT/}" | tr / _).o"
  "$CXX" "${LIB_FLAGS[@]}" -c "$s" -o "$o"
  objs+=("$o")
done
for t in fuzz_mil_text fuzz_mil_proto fuzz_blob_storage; do
  "$CXX" "${FLAGS[@]}" "$ROOT/tests/fuzz/$t.cpp" "${objs[@]}" -lz -o "$OUT/$t"
done

# Seed corpora.
G="$ROOT/tests/goldens/coreml"
F="$ROOT/../shared/fixtures/coreml/sd21-base-palettized"
mkdir -p "$OUT/corpus/mil_text" "$OUT/corpus/mil_proto" "$OUT/corpus/blob_storage"
cp "$G"/tiny_ios16.mlpackage/Data/com.apple.CoreML/model.mlmodel "$OUT/corpus/mil_proto/ios16.mlmodel"
cp "$G"/tiny_ios18.mlpackage/Data/com.apple.CoreML/model.mlmodel "$OUT/corpus/mil_proto/ios18.mlmodel"
cp "$G"/tiny_ios16.mlpackage/Data/com.apple.CoreML/weights/weight.bin "$OUT/corpus/blob_storage/ios16.bin"
cp "$G"/tiny_ios18.mlpackage/Data/com.apple.CoreML/weights/weight.bin "$OUT/corpus/blob_storage/ios18.bin"
cp "$ROOT"/tests/fuzz/seeds/*.mil "$OUT/corpus/mil_text/"
if [[ -d "$F" ]]; then  # the first ~60 lines of a real program: every construct coremlc writes
  head -c 16000 "$F/original/compiled/TextEncoder.mlmodelc/model.mil" > "$OUT/corpus/mil_text/text_encoder_head.mil"
  tail -c 3000 "$F/original/compiled/Unet.mlmodelc/model.mil" > "$OUT/corpus/mil_text/unet_tail.mil"
fi
echo "built: $OUT/fuzz_mil_text $OUT/fuzz_mil_proto $OUT/fuzz_blob_storage"
