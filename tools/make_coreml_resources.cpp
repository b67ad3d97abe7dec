// make_coreml_resources: a runnable Core ML Stable Diffusion resources folder from programs whose
// real weights are not available (Apple's released model.mil files, e.g. the shared fixtures'
// SD 2.1-base), with plausible synthetic weights (coreml::write_plausible_weight_bin). For
// benchmarks (memory of a full-size 6-bit palettized model) and the interpreter/native checks.
//
//   build/make_coreml_resources SRC_COMPILED_DIR OUT_DIR [MODEL ...] [--unet-from DIR]
//
// SRC_COMPILED_DIR holds NAME.mlmodelc folders (model.mil, metadata.json, weights/weight.bin or its
// LFS pointer) and vocab.json / merges.txt; MODEL defaults to TextEncoder Unet VAEDecoder.
// --unet-from DIR takes Unet.mlmodelc from another compiled folder (e.g. split_einsum_v2).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"

namespace fs = std::filesystem;
using namespace sdpal;

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string unet_from;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--unet-from" && i + 1 < argc) unet_from = argv[++i];
    else pos.push_back(a);
  }
  if (pos.size() < 2) {
    std::fprintf(stderr, "usage: %s SRC_COMPILED_DIR OUT_DIR [MODEL ...] [--unet-from DIR]\n", argv[0]);
    return 2;
  }
  try {
    const std::string src = pos[0], out = pos[1];
    std::vector<std::string> models(pos.begin() + 2, pos.end());
    if (models.empty()) models = {"TextEncoder", "Unet", "VAEDecoder"};
    fs::create_directories(out);
    for (const std::string& name : models) {
      const std::string from = (name == "Unet" && !unet_from.empty() ? unet_from : src) + "/" + name + ".mlmodelc";
      const std::string to = out + "/" + name + ".mlmodelc";
      check(fs::is_regular_file(from + "/model.mil"), ErrorCode::kIo, "no " + from + "/model.mil");
      fs::create_directories(to + "/weights");
      fs::copy_file(from + "/model.mil", to + "/model.mil", fs::copy_options::overwrite_existing);
      if (fs::exists(from + "/metadata.json"))
        fs::copy_file(from + "/metadata.json", to + "/metadata.json", fs::copy_options::overwrite_existing);
      const auto info = coreml::write_plausible_weight_bin(coreml::read_mil_text_file(to + "/model.mil"),
                                                           to + "/weights/weight.bin");
      std::printf("%s: %u blobs, %llu bytes\n", to.c_str(), info.blobs, static_cast<unsigned long long>(info.file_size));
    }
    for (const char* f : {"vocab.json", "merges.txt"})
      if (fs::exists(src + "/" + f)) fs::copy_file(src + "/" + f, out + "/" + f, fs::copy_options::overwrite_existing);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "make_coreml_resources: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_coreml_resources: error: %s\n", e.what());
    return 1;
  }
}
