#include "coreml_synthetic.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/dtype.h"
#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/blob_storage.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"

namespace sdpal::testing {

namespace fs = std::filesystem;
using coreml::MilOp;
using coreml::MilValue;

void write_plausible_weights(const coreml::MilProgram& p, const std::string& model_dir, uint64_t seed) {
  fs::create_directories(model_dir + "/weights");
  coreml::write_plausible_weight_bin(p, model_dir + "/weights/weight.bin", seed);
}

void make_sd_resources(const std::string& compiled_dir, const std::string& out_dir,
                       const std::vector<std::string>& models, uint64_t seed) {
  fs::create_directories(out_dir);
  for (const std::string& name : models) {
    const std::string src = compiled_dir + "/" + name + ".mlmodelc", dst = out_dir + "/" + name + ".mlmodelc";
    fs::create_directories(dst);
    fs::copy_file(src + "/model.mil", dst + "/model.mil", fs::copy_options::overwrite_existing);
    if (fs::exists(src + "/metadata.json"))
      fs::copy_file(src + "/metadata.json", dst + "/metadata.json", fs::copy_options::overwrite_existing);
    write_plausible_weights(coreml::read_mil_text_file(dst + "/model.mil"), dst, seed);
  }
  for (const char* f : {"vocab.json", "merges.txt"})
    if (fs::exists(compiled_dir + "/" + f))
      fs::copy_file(compiled_dir + "/" + f, out_dir + "/" + f, fs::copy_options::overwrite_existing);
}

}  // namespace sdpal::testing
