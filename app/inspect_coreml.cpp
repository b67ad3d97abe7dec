// `sdpal inspect` for Apple's Core ML resources: per model, its interface, ops, and constants with
// their storage: palettized bits, LUT shape and packed bytes next to what fp16 would take.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "args.h"
#include "core/error.h"
#include "io/coreml/model_folder.h"
#include "model/coreml_weights.h"

namespace sdpal::app {

namespace {

std::string mib(double b) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << b / (1024.0 * 1024.0) << " MiB";
  return o.str();
}

std::string features(const std::vector<coreml::ModelFeature>& fs) {
  std::ostringstream o;
  for (size_t i = 0; i < fs.size(); ++i) {
    if (i) o << ", ";
    o << fs[i].name << " " << fs[i].dtype;
    if (!fs[i].shape.empty()) o << " " << shape_str(fs[i].shape);
  }
  return fs.empty() ? "-" : o.str();
}

void inspect_one(const coreml::SDCoreMLResources& r, const std::string& role, const coreml::ModelFiles& files,
                 bool list_tensors) {
  auto model = std::make_shared<const coreml::CoreMLModel>(coreml::load_model(r.tree, files));
  auto wf = CoreMLWeightFile::open(model);
  std::cout << "\n" << role << ": " << r.tree->display(files.dir) << " ("
            << (files.format == coreml::ModelFormat::kCompiled ? "compiled .mlmodelc" : ".mlpackage") << ", "
            << model->program.main().opset << ")\n";
  std::cout << "  inputs  " << features(model->description.inputs) << "\n";
  std::cout << "  outputs " << features(model->description.outputs) << "\n";
  std::cout << "  ops " << model->program.main().block.ops.size() << "\n";
  std::map<int, std::pair<int64_t, double>> by_bits;  // bits -> (tensors, packed bytes); 16/32 for dense
  int64_t params = 0;
  double bytes = 0, fp16_bytes = 0;
  for (const TensorView& t : wf->tensors()) {
    params += t.numel();
    fp16_bytes += 2.0 * double(t.numel());
    const bool derived = wf->is_derived(t.name);
    int bits = t.palettized ? t.palettized->nbits : int(dtype_size(t.dtype) * 8);
    double nb = double(t.nbytes);
    if (derived) bits = 0;  // computed from the graph's constants (counted where they are stored)
    else bytes += nb;
    auto& e = by_bits[bits];
    e.first++;
    e.second += derived ? 0 : nb;
    if (list_tensors) {
      std::cout << "    " << t.name << " " << shape_str(t.shape) << " ";
      if (t.palettized)
        std::cout << t.palettized->nbits << "-bit palettized, LUT " << dtype_name(t.palettized->lut_dtype) << " "
                  << shape_str(t.palettized->lut_shape) << ", " << t.nbytes << " bytes\n";
      else if (derived)
        std::cout << "norm parameter found through the graph\n";
      else
        std::cout << dtype_name(t.dtype) << ", " << t.nbytes << " bytes\n";
    }
  }
  std::cout << "  parameters " << params << " (" << std::fixed << std::setprecision(1) << params / 1e6 << " M) in "
            << mib(bytes) << " (fp16 would be " << mib(fp16_bytes) << ")\n";
  for (const auto& [bits, e] : by_bits) {
    if (bits == 0)
      std::cout << "    " << e.first << " norm parameters derived from unnamed graph constants\n";
    else
      std::cout << "    " << (bits <= 8 ? std::to_string(bits) + "-bit palettized" : std::to_string(bits) + "-bit dense")
                << ": " << e.first << " tensors, " << mib(e.second) << "\n";
  }
  if (!wf->anonymous().empty()) std::cout << "    " << wf->anonymous().size() << " other constants (buffers)\n";
}

}  // namespace

int inspect_coreml(const std::string& path, bool list_tensors) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".mlmodelc" || ext == ".mlpackage") {  // one model
    coreml::SDCoreMLResources one;
    one.tree = coreml::ResourceTree::open(path);
    std::cout << "model " << path << "\n";
    inspect_one(one, "model", coreml::locate_model(*one.tree, ""), list_tensors);
    return kExitOk;
  }
  coreml::SDCoreMLResources r = coreml::find_sd_resources(path, /*require_complete=*/false);
  if (!r.text_encoder && !r.unet && r.unet_chunks.empty() && !r.vae_decoder)
    fail(ErrorCode::kModel, path + ": no Stable Diffusion models found");
  std::cout << "model " << path << "\nformat Core ML resources (" << (r.python_packages ? "Python packages" : "Swift layout")
            << (r.tree->is_zip() ? ", zip archive" : "") << ")\n";
  if (r.text_encoder) inspect_one(r, "text_encoder", *r.text_encoder, list_tensors);
  if (r.unet) inspect_one(r, "unet", *r.unet, list_tensors);
  for (size_t i = 0; i < r.unet_chunks.size(); ++i)
    inspect_one(r, "unet chunk " + std::to_string(i + 1), r.unet_chunks[i], list_tensors);
  if (r.vae_decoder) inspect_one(r, "vae_decoder", *r.vae_decoder, list_tensors);
  if (r.vae_encoder) inspect_one(r, "vae_encoder", *r.vae_encoder, list_tensors);
  if (r.safety_checker) inspect_one(r, "safety_checker", *r.safety_checker, list_tensors);
  std::cout << "\ntokenizer: " << (r.vocab.empty() ? "absent" : r.tree->display(r.vocab) + ", " + r.tree->display(r.merges))
            << "\n";
  return kExitOk;
}

}  // namespace sdpal::app
