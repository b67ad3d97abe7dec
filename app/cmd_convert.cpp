// `sdpal convert`: a diffusers folder (or an sdpal file) -> one sdpal .safetensors file, with the
// weights optionally palettized as coremltools does it (docs/convert.md).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "args.h"
#include "core/error.h"
#include "model/ldm_checkpoint.h"
#include "model/sdpal_model.h"

namespace sdpal::app {
namespace fs = std::filesystem;

namespace {

const char* kConvertHelp = R"(usage: sdpal convert -m SRC -o OUT.safetensors [options]

  -m, --model PATH       the model to convert: a diffusers folder, an sdpal file, or an original
                         single-file checkpoint (.ckpt / .safetensors; see --config)
  -o, --output FILE      the sdpal file to write (written atomically: complete or not at all)
      --palettize N      palettize weights to N-bit look-up tables: 4, 6 or 8 (1, 2, 3 also work).
                         Every float weight of rank >= 2 with more than 2048 elements is clustered
                         as coremltools does (exact 1-D k-means over its float16 values); embedding
                         tables, norms and biases stay dense
      --group-size G     one table per G output channels instead of one per tensor (a tensor whose
                         output channels are not a multiple of G stays dense)
      --dtype T          fp16 | fp32 | bf16: how dense float tensors are stored (default fp16)
      --variant NAME     read *.NAME.safetensors weights of the folder first (e.g. fp16)
      --config DIR       checkpoints: diffusers config.json files per component (and tokenizer/)
      --no-safety-checker  leave the safety checker (and feature extractor) out
      --quiet            no per-tensor progress
)";

std::string mib(uint64_t b) {
  char buf[32];
  if (b < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
  else std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

int run_convert(int argc, char** argv) {
  Args a(argc, argv, 2, {"--model", "--output", "--palettize", "--group-size", "--dtype", "--variant", "--config"},
         {"--no-safety-checker", "--quiet", "--help"}, {{"-m", "--model"}, {"-o", "--output"}, {"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << kConvertHelp;
    return kExitOk;
  }
  check(a.positional().empty(), ErrorCode::kInvalidArgument,
        "unexpected argument '" + (a.positional().empty() ? std::string() : a.positional()[0]) + "'");
  check(a.has("--model"), ErrorCode::kInvalidArgument, "--model is required (see sdpal convert --help)");
  check(a.has("--output"), ErrorCode::kInvalidArgument, "--output is required (see sdpal convert --help)");
  ConvertOptions o;
  o.nbits = int(a.integer("--palettize", 0, 1, 8));
  check(!a.has("--palettize") || (o.nbits != 5 && o.nbits != 7), ErrorCode::kInvalidArgument,
        "--palettize must be 4, 6 or 8 (or 1, 2, 3), got " + a.str("--palettize"));
  o.group_size = a.integer("--group-size", 0, 1, int64_t(1) << 30);
  check(!a.has("--group-size") || a.has("--palettize"), ErrorCode::kInvalidArgument, "--group-size needs --palettize");
  const std::string dt = a.str("--dtype", "fp16");
  check(dt == "fp16" || dt == "fp32" || dt == "bf16", ErrorCode::kInvalidArgument,
        "--dtype must be fp16, fp32 or bf16, got '" + dt + "'");
  o.dtype = dt == "fp32" ? DType::F32 : dt == "bf16" ? DType::BF16 : DType::F16;

  const std::string src_path = a.str("--model");
  const std::string out = a.str("--output");
  check(!out.empty(), ErrorCode::kInvalidArgument, "--output must not be empty");
  fs::path out_dir = fs::path(out).parent_path();
  if (out_dir.empty()) out_dir = ".";
  check(fs::is_directory(out_dir), ErrorCode::kIo, "output folder does not exist: " + out_dir.string());
  check(access(out_dir.c_str(), W_OK) == 0, ErrorCode::kIo, "output folder is not writable: " + out_dir.string());
  check(!fs::is_directory(out), ErrorCode::kIo, "output path is a folder: " + out);
  check(fs::exists(src_path), ErrorCode::kIo, "model path does not exist: " + src_path);

  const bool safety = !a.flag("--no-safety-checker");
  ModelSource src;
  if (fs::is_directory(src_path)) {
    src = read_diffusers_source(src_path, a.str("--variant"), safety);
  } else if (is_sdpal_file(src_path)) {
    src = read_sdpal_source(src_path, safety);
  } else {
    check(looks_like_ldm_checkpoint(src_path), ErrorCode::kModel,
          src_path + " is neither a diffusers model folder, an sdpal file nor a .ckpt / .safetensors checkpoint");
    src = read_ldm_source(src_path, a.str("--config"));
  }

  const bool quiet = a.flag("--quiet");
  if (!quiet)
    std::cerr << "converting " << src_path << " -> " << out
              << (o.nbits ? " (" + std::to_string(o.nbits) + "-bit palettized" +
                                (o.group_size ? ", one table per " + std::to_string(o.group_size) + " channels" : "") +
                                ", dense " + dt + ")"
                          : " (dense " + dt + ")")
              << "\n";
  auto progress = [&](const ConvertTensorEvent& e) {
    if (quiet) return;
    char head[32];
    std::snprintf(head, sizeof head, "[%4zu/%zu] ", e.index, e.total);
    std::cerr << head << e.component << "." << e.name << " " << shape_str(e.shape) << " " << dtype_name(e.source_dtype)
              << " -> " << e.stored << ", " << mib(e.bytes_before) << " -> " << mib(e.bytes_after);
    if (e.stored.find("palettized") != std::string::npos && e.stored.find("(kept)") == std::string::npos) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ", SNR %.1f dB, %.2f s", e.snr_db, e.seconds);
      std::cerr << buf;
    }
    if (!e.note.empty()) std::cerr << " (dense: " << e.note << ")";
    std::cerr << "\n";
  };
  const ConvertSummary s = convert_to_sdpal(src, out, o, progress);
  char line[256];
  std::snprintf(line, sizeof line, "%zu tensors (%zu palettized, %zu large ones left dense) in %.1f s: %s -> %s",
                s.tensors, s.palettized, s.left_dense, s.seconds, mib(s.bytes_before).c_str(), mib(s.bytes_after).c_str());
  std::cout << "wrote " << out << " (" << mib(s.file_bytes) << ")\n" << line;
  if (s.bytes_after > 0) {
    std::snprintf(line, sizeof line, " (%.2fx smaller)", double(s.bytes_before) / double(s.bytes_after));
    std::cout << line;
  }
  std::cout << "\n";
  return kExitOk;
}

}  // namespace sdpal::app
