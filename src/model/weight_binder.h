// Strict weight binding: a module asks for each parameter by name with the shape it expects.
// Missing or wrong-shaped tensors are errors at once; tensors nobody asked for are reported by
// finish(), so a checkpoint for another architecture can never half-load.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/precision.h"
#include "io/tensor_file.h"

namespace sdpal {

class WeightBinder {
 public:
  // `component` names the model part in error messages (e.g. "unet").
  WeightBinder(std::string component, std::vector<std::shared_ptr<TensorFile>> files);

  // Tensors matching one of these prefixes (e.g. buffers such as "text_model.embeddings.position_ids")
  // may stay unused.
  void allow_unused_prefix(const std::string& prefix) { ignorable_.push_back(prefix); }

  // Looks each requested name up under mapper(name) (e.g. coreml_name_mapper() for a Core ML
  // program, whose constants carry mangled names); errors name both. Identity when unset.
  void set_name_mapper(std::function<std::string(const std::string&)> mapper) { mapper_ = std::move(mapper); }

  bool has(const std::string& name) const;
  // The tensor `name`, which must have exactly `shape`. Trailing/inner size-1 axes are NOT squeezed.
  const TensorView& get(const std::string& name, const Shape& shape);
  // As get(), but any shape with the same element count and the same leading dim is accepted
  // (e.g. a linear weight stored as [out, in, 1, 1]).
  const TensorView& get_compatible(const std::string& name, const Shape& shape);
  Tensor get_f32(const std::string& name, const Shape& shape);

  // Throws if any tensor was never bound.
  void finish() const;
  const std::string& component() const { return component_; }
  // Compute precision the bound GEMM-like kernels are prepared for.
  Precision precision() const { return precision_; }
  void set_precision(Precision p) { precision_ = p; }
  size_t bound_count() const { return used_.size(); }

 private:
  // The stored key of a requested name (mapper_ applied).
  std::string key(const std::string& name) const { return mapper_ ? mapper_(name) : name; }
  std::string describe(const std::string& name) const;
  const TensorView& lookup(const std::string& name) const;
  std::function<std::string(const std::string&)> mapper_;
  std::string component_;
  std::vector<std::shared_ptr<TensorFile>> files_;
  std::map<std::string, const TensorView*> index_;
  std::map<std::string, std::string> origin_;  // name -> file path
  std::set<std::string> used_;
  std::vector<std::string> ignorable_;
  Precision precision_ = Precision::F32;
};

}  // namespace sdpal
