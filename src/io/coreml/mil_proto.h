// Reader of the protobuf Core ML model (`Data/com.apple.CoreML/model.mlmodel` of a .mlpackage):
// Model.description (inputs, outputs, metadata) and Model.mlProgram (MIL.proto Program) decoded into
// the same AST as the text reader. Only ML programs are supported (not neural-network models).
//
// Field numbers (Model.proto / MIL.proto): Model{1 specificationVersion, 2 description, 502 mlProgram};
// Program{1 version, 2 functions (map), 4 attributes}; Function{1 inputs, 2 opset, 3 block_specializations};
// Block{1 inputs, 2 outputs, 3 operations}; Operation{1 type, 2 inputs (map of Argument), 3 outputs,
// 4 blocks, 5 attributes}; Argument{1 Binding{1 name | 2 value}}; Value{2 type, 3 immediateValue,
// 5 blobFileValue{1 fileName, 2 offset}}; TensorValue{1 floats, 2 ints, 3 bools, 4 strings,
// 5 longInts, 6 doubles, 7 bytes}.
#pragma once
#include <cstdint>
#include <string>

#include "io/coreml/mil_ast.h"
#include "io/coreml/model_description.h"

namespace sdpal::coreml {

struct MlModelSpec {
  int32_t specification_version = 0;
  ModelDescription description;
  MilProgram program;  // validated
};

// Decodes and validates a serialized Model. Throws Error(kFormat) naming `source` and the byte offset
// for malformed protobuf (bad lengths, truncated varints, wrong wire types, nesting deeper than 64),
// values that do not fit their declared types, and invalid programs; Error(kUnsupported) for a model
// that is not an ML program.
MlModelSpec parse_mlmodel(const uint8_t* data, size_t size, const std::string& source);

// Maps and parses a model.mlmodel file.
MlModelSpec read_mlmodel_file(const std::string& path);

// Core ML's opset names in protobuf ("CoreML6") as the text spelling ("ios16"); others unchanged.
std::string opset_text_name(const std::string& proto_opset);

}  // namespace sdpal::coreml
