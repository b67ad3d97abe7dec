// make_synthetic_weight_bin: writes a valid weights/weight.bin for a Core ML model whose real weights
// are not available (e.g. Apple's released graphs with LFS pointers), with a blob of the declared
// type and size at every offset the program references, and reports it against the real size.
//
// Built with the project (tools/*.cpp), as build/make_synthetic_weight_bin.
// Use:
//   build/make_synthetic_weight_bin MODEL OUT_WEIGHT_BIN [--random SEED]
// MODEL is a model.mil, a model.mlmodel, or a .mlmodelc / .mlpackage folder. Without --random the data
// is left zero (a sparse file: instant, little disk); with it, seeded small values.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_proto.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/model_folder.h"
#include "io/coreml/synthetic_weights.h"

using namespace sdpal;
using namespace sdpal::coreml;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 3 && argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL OUT_WEIGHT_BIN [--random SEED]\n", argv[0]);
    return 2;
  }
  try {
    const std::string model = argv[1], out = argv[2];
    SyntheticFill fill = SyntheticFill::kZeros;
    uint64_t seed = 0;
    if (argc == 5) {
      if (std::string(argv[3]) != "--random") throw Error(ErrorCode::kInvalidArgument, "unknown option " + std::string(argv[3]));
      fill = SyntheticFill::kRandom;
      seed = std::strtoull(argv[4], nullptr, 10);
    }
    MilProgram program;
    std::string lfs;  // the LFS pointer of the real weights, when next to the model
    if (fs::is_directory(model)) {
      program = load_model(model).program;
      lfs = model + "/weights/weight.bin.lfs-pointer";
    } else if (fs::path(model).extension() == ".mlmodel") {
      program = read_mlmodel_file(model).program;
    } else {
      program = read_mil_text_file(model);
      lfs = (fs::path(model).parent_path() / "weights/weight.bin.lfs-pointer").string();
    }
    const auto refs = collect_blob_refs(program);
    const auto layouts = plan_blob_layouts(refs);
    if (layouts.empty()) throw Error(ErrorCode::kInvalidArgument, model + " references no weight file");
    if (layouts.size() > 1) std::fprintf(stderr, "note: %zu weight files referenced; writing the first (%s)\n", layouts.size(), layouts[0].path.c_str());
    const SyntheticWeightsInfo info = write_synthetic_weight_bin(layouts[0], out, fill, seed);
    std::printf("%s: %zu references, %u blobs, %llu bytes\n", out.c_str(), refs.size(), info.blobs,
                static_cast<unsigned long long>(info.file_size));
    std::ifstream p(lfs);
    std::string key;
    unsigned long long real = 0;
    while (p >> key)
      if (key == "size" && p >> real) std::printf("real weight.bin (LFS pointer): %llu bytes (%s)\n", real, real == info.file_size ? "equal" : "different");
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
