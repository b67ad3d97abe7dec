// Networks prepared on first use and given back after their stage: the memory-saving mode of the
// pipeline (LoadOptions::reduce_memory, `sdpal generate --memory low`, Apple's `reduceMemory`).
//
// Preparing a network (binding its weights, reordering them into the kernels' layouts) is what
// costs memory; a text encoder that has done its work, or a UNet while the VAE decodes, need not
// hold theirs. A lazy network keeps only its config and a builder; forward() builds the real
// network when it is missing, release_weights() drops it. Peak memory becomes the largest stage
// instead of the sum of all of them, at the price of preparing each network once per generation.
// Thread-safe: a forward and a release of the same network never interleave.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "model/networks.h"
#include "model/weight_binder.h"

namespace sdpal {

// Hands free memory back to the system: this thread's kernel scratch (sized by the released network's
// largest layers), and the allocator's free blocks (glibc keeps even large ones for reuse once its mmap
// threshold has grown), so a released network would not still count in RSS.
void return_free_memory_to_os();

template <class Net>
class LazyHolder {
 public:
  using Builder = std::function<std::unique_ptr<Net>()>;
  explicit LazyHolder(Builder build) : build_(std::move(build)) {}

  // Runs fn(net) with the network built, holding the lock so that release() waits for it.
  template <class Fn>
  auto with(Fn&& fn) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!net_) net_ = build_();
    return fn(static_cast<const Net&>(*net_));
  }
  void release() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!net_) return;
    net_.reset();
    return_free_memory_to_os();
  }
  bool built() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return net_ != nullptr;
  }

 private:
  Builder build_;
  mutable std::mutex mutex_;
  mutable std::unique_ptr<Net> net_;
};

// What every lazy network shares: its config (answered without building) and the holder.
template <class Net, class Config>
class LazyNetwork : public Net {
 public:
  LazyNetwork(Config cfg, typename LazyHolder<Net>::Builder build) : cfg_(std::move(cfg)), net_(std::move(build)) {}
  const Config& config() const override { return cfg_; }
  void release_weights() const override { net_.release(); }
  bool prepared() const { return net_.built(); }

 protected:
  Config cfg_;
  LazyHolder<Net> net_;
};

class LazyTextEncoder final : public LazyNetwork<TextEncoderNetwork, ClipTextConfig> {
 public:
  using LazyNetwork::LazyNetwork;
  Tensor forward(const std::vector<int32_t>& ids, int64_t batch) const override {
    return net_.with([&](const TextEncoderNetwork& n) { return n.forward(ids, batch); });
  }
};

class LazyUNet final : public LazyNetwork<UNetNetwork, UNetConfig> {
 public:
  using LazyNetwork::LazyNetwork;
  Tensor forward(const Tensor& sample, float timestep, const Tensor& context) const override {
    return net_.with([&](const UNetNetwork& n) { return n.forward(sample, timestep, context); });
  }
};

class LazyVaeDecoder final : public LazyNetwork<VaeDecoderNetwork, VaeConfig> {
 public:
  using LazyNetwork::LazyNetwork;
  Tensor forward(const Tensor& z) const override {
    return net_.with([&](const VaeDecoderNetwork& n) { return n.forward(z); });
  }
};

class LazySafetyChecker final : public LazyNetwork<SafetyCheckerNetwork, ClipVisionConfig> {
 public:
  using LazyNetwork::LazyNetwork;
  Tensor image_embeds(const Tensor& pixels) const override {
    return net_.with([&](const SafetyCheckerNetwork& n) { return n.image_embeds(pixels); });
  }
  std::vector<SafetyResult> check(const Tensor& pixels) const override {
    return net_.with([&](const SafetyCheckerNetwork& n) { return n.check(pixels); });
  }
};

// A native module bound strictly: built from `w`, then every tensor of `w` must have been used.
template <class Module, class Net, class Config>
std::unique_ptr<Net> bind_module(const Config& cfg, WeightBinder w) {
  auto net = std::make_unique<Module>(cfg, w);
  w.finish();
  return net;
}

// Builds now (eager) or wraps the builder (lazy). The config comes from the caller because a lazy
// network must answer config() without building.
template <class Lazy, class Net, class Config>
std::unique_ptr<Net> make_network(bool lazy, const Config& cfg, std::function<std::unique_ptr<Net>()> build) {
  if (lazy) return std::make_unique<Lazy>(cfg, std::move(build));
  return build();
}

}  // namespace sdpal
