// Reader of textual MIL, the `model.mil` of a compiled Core ML model (.mlmodelc), in the
// program(1.0) form coremlc writes for iOS15-17 (`tensor<string, []>("x")`, `tensor<uint64, []>(64)`)
// and the program(1.3) form of iOS18 (`string("x")`, `uint64(64)`, sub-byte `tensor<uint6, ...>`,
// inline literal arguments, `state<...>` inputs).
#pragma once
#include <string>
#include <string_view>

#include "io/coreml/mil_ast.h"

namespace sdpal::coreml {

// Parses `text` into an AST (no scoping checks: call validate()). Throws Error(kFormat) with
// "source:line:col: message" for any syntax error, a literal that does not fit its type (element
// count, range), or an immediate tensor without a static shape; Error(kUnsupported) for valid
// syntax this reader does not model (nested blocks in text, fp8 literals).
MilProgram parse_mil_text(std::string_view text, const std::string& source);

// Reads, parses and validates a model.mil file (Error(kIo) if it cannot be read).
MilProgram read_mil_text_file(const std::string& path);

}  // namespace sdpal::coreml
