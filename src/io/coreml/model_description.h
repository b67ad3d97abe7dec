// What a Core ML model declares about its interface: named, typed inputs and outputs. Read from
// metadata.json (.mlmodelc) or from the protobuf ModelDescription (.mlpackage).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sdpal::coreml {

struct ModelFeature {
  std::string name;
  std::string kind;   // "MultiArray", "Image", "Int64", "Double", "String", "Dictionary", "Sequence", "State"
  std::string dtype;  // MultiArray / State: "Float16", "Float32", "Float64", "Int32", "Int8"; else empty
  Shape shape;        // MultiArray / State; empty when not declared
  bool optional = false;
};

struct ModelDescription {
  std::vector<ModelFeature> inputs;
  std::vector<ModelFeature> outputs;
  std::vector<ModelFeature> states;
  std::vector<std::pair<std::string, std::string>> user_metadata;  // e.g. coremltools version
  std::string author, license, short_description, version;
  // metadata.json's mlProgramOperationTypeHistogram, e.g. {"Ios16.conv", 282} (compiled models only)
  std::vector<std::pair<std::string, int>> op_histogram;

  const ModelFeature* input(const std::string& name) const {
    for (const auto& f : inputs)
      if (f.name == name) return &f;
    return nullptr;
  }
  const ModelFeature* output(const std::string& name) const {
    for (const auto& f : outputs)
      if (f.name == name) return &f;
    return nullptr;
  }
};

}  // namespace sdpal::coreml
