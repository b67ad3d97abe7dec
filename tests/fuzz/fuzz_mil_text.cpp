// libFuzzer target: textual MIL (model.mil) parser, validate(), and the walks an interpreter does
// over the AST (blob references, layouts, constant operands, palettized views without weights).
// Any exception other than sdpal::Error, and any sanitizer report, is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"

using namespace sdpal;
using namespace sdpal::coreml;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    MilProgram p = parse_mil_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.mil");
    validate(p);
    try {
      plan_blob_layouts(collect_blob_refs(p));
    } catch (const Error&) {
    }
    for (const auto& f : p.functions) {
      op_type_counts(f);
      for (const auto& op : f.block.ops) {
        for (const auto& a : op.attributes) (void)a.value.str();
        for (const auto& in : op.inputs)
          for (const auto& b : in.bindings)
            if (const MilValue* v = const_value(f.block, b)) {
              try {
                (void)v->floats();
              } catch (const Error&) {
              }
            }
        if (op.type == "constexpr_lut_to_dense") {
          try {
            const PalettizedView v = palettized_view(f.block, op, nullptr);
            float out[64];
            const int64_t n = v.numel() < 64 ? v.numel() : 64;
            decode_palettized(v, 0, n, out);
          } catch (const Error&) {
          }
        }
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
