#include "model/weight_binder.h"

#include "core/error.h"

namespace sdpal {

WeightBinder::WeightBinder(std::string component, std::vector<std::shared_ptr<TensorFile>> files)
    : component_(std::move(component)), files_(std::move(files)) {
  for (const auto& f : files_) {
    for (const auto& v : f->tensors()) {
      auto [it, inserted] = index_.emplace(v.name, &v);
      if (!inserted)
        fail(ErrorCode::kModel, component_ + ": tensor '" + v.name + "' appears in both " + origin_[v.name] +
                                    " and " + f->path());
      origin_[v.name] = f->path();
    }
  }
}

bool WeightBinder::has(const std::string& name) const { return index_.count(key(name)) != 0; }

std::string WeightBinder::describe(const std::string& name) const {
  std::string k = key(name);
  return k == name ? "'" + name + "'" : "'" + name + "' (stored as '" + k + "')";
}

const TensorView& WeightBinder::lookup(const std::string& name) const {
  auto it = index_.find(key(name));
  if (it == index_.end()) {
    std::string where = files_.empty() ? std::string("(no weight files)") : files_.front()->path();
    fail(ErrorCode::kModel, component_ + ": missing tensor " + describe(name) + " in " + where);
  }
  return *it->second;
}

const TensorView& WeightBinder::get(const std::string& name, const Shape& shape) {
  const TensorView& v = lookup(name);
  const std::string k = key(name);
  if (v.shape != shape)
    fail(ErrorCode::kModel, component_ + ": tensor " + describe(name) + " in " + origin_.at(k) + " has shape " +
                                shape_str(v.shape) + ", expected " + shape_str(shape));
  used_.insert(k);
  return v;
}

const TensorView& WeightBinder::get_compatible(const std::string& name, const Shape& shape) {
  const TensorView& v = lookup(name);
  const std::string k = key(name);
  bool ok = v.numel() == shape_numel(shape) && !v.shape.empty() && !shape.empty() && v.shape[0] == shape[0];
  if (!ok)
    fail(ErrorCode::kModel, component_ + ": tensor " + describe(name) + " in " + origin_.at(k) + " has shape " +
                                shape_str(v.shape) + ", expected " + shape_str(shape));
  used_.insert(k);
  return v;
}

Tensor WeightBinder::get_f32(const std::string& name, const Shape& shape) { return to_f32(get(name, shape)); }

void WeightBinder::finish() const {
  std::vector<std::string> extra;
  for (const auto& [name, view] : index_) {
    if (used_.count(name)) continue;
    bool ignorable = false;
    for (const auto& p : ignorable_) ignorable |= name.rfind(p, 0) == 0;
    if (!ignorable) extra.push_back(name);
  }
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 5; ++i) list += (i ? ", " : "") + extra[i];
    if (extra.size() > 5) list += ", ... (" + std::to_string(extra.size()) + " in all)";
    fail(ErrorCode::kModel, component_ + ": unexpected tensors in " + origin_.at(extra.front()) + ": " + list);
  }
}

}  // namespace sdpal
