// libFuzzer target: protobuf Model / MIL program decoder (model.mlmodel of a .mlpackage) and the
// same AST walks as the text target. Any exception other than sdpal::Error is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_proto.h"

using namespace sdpal;
using namespace sdpal::coreml;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    MlModelSpec spec = parse_mlmodel(data, size, "fuzz.mlmodel");
    try {
      plan_blob_layouts(collect_blob_refs(spec.program));
    } catch (const Error&) {
    }
    for (const auto& f : spec.program.functions)
      for (const auto& op : f.block.ops) {
        (void)op.where();
        if (op.type == "constexpr_lut_to_dense") {
          try {
            const PalettizedView v = palettized_view(f.block, op, nullptr);
            float out[64];
            decode_palettized(v, 0, v.numel() < 64 ? v.numel() : 64, out);
          } catch (const Error&) {
          }
        }
        for (const auto& a : op.attributes) {
          try {
            (void)a.value.ints();
          } catch (const Error&) {
          }
        }
      }
  } catch (const Error&) {
  }
  return 0;
}
