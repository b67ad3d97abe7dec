// Apple's real Stable Diffusion programs against synthetic weight files: every BLOBFILE the program
// references resolves to a blob of the declared type and size, no two blobs overlap, every
// palettized op and dense const yields a view; plus the generator itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_consts.h"
#include "io/coreml/mil_proto.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/synthetic_weights.h"
#include "test_util.h"

namespace sdpal::coreml {
namespace {

using sdpal::testing::code_of;

namespace fs = std::filesystem;
const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";
const std::string kGoldens = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/coreml/";

// Removes this process's scratch folder when the tests end.
std::string scratch_root() { return ::testing::TempDir() + "/sdpal_coreml_" + std::to_string(::getpid()); }
struct ScratchCleanup : ::testing::Environment {
  void TearDown() override { fs::remove_all(scratch_root()); }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);


std::string temp_dir(const std::string& name) {
  const std::string d = scratch_root() + "/" + name;
  fs::create_directories(d);
  return d;
}

uint64_t lfs_pointer_size(const std::string& path) {
  std::ifstream f(path);
  std::string key;
  uint64_t v = 0;
  while (f >> key)
    if (key == "size" && f >> v) return v;
  return 0;
}

TEST(RealPrograms, EveryBlobResolvesInASyntheticWeightFile) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const char* programs[] = {
      "original/compiled/TextEncoder.mlmodelc", "original/compiled/Unet.mlmodelc", "original/compiled/VAEDecoder.mlmodelc",
      "original/compiled/VAEEncoder.mlmodelc",  "split_einsum_v2/compiled/Unet.mlmodelc",
  };
  for (const char* dir : programs) {
    const struct { const char* dir; } rp{dir};
    SCOPED_TRACE(rp.dir);
    const MilProgram p = read_mil_text_file(kFixtures + rp.dir + "/model.mil");
    const std::vector<BlobRef> refs = collect_blob_refs(p);
    const std::vector<BlobLayout> layouts = plan_blob_layouts(refs);  // throws on overlap or conflict
    ASSERT_EQ(layouts.size(), 1u);
    const BlobLayout& l = layouts[0];
    EXPECT_EQ(l.path, "@model_path/weights/weight.bin");
    const std::string model_dir = temp_dir(fs::path(rp.dir).parent_path().parent_path().string() + "_" +
                                           fs::path(rp.dir).filename().string());
    const std::string bin = model_dir + "/weights/weight.bin";
    fs::create_directories(model_dir + "/weights");
    const SyntheticWeightsInfo info = write_synthetic_weight_bin(l, bin);
    const uint64_t real = lfs_pointer_size(kFixtures + rp.dir + "/weights/weight.bin.lfs-pointer");
    std::printf("[ weights  ] %s: %zu references, %zu blobs, generated %llu bytes, real %llu bytes (%s)\n", rp.dir,
                refs.size(), l.slots.size(), static_cast<unsigned long long>(info.file_size),
                static_cast<unsigned long long>(real), info.file_size == real ? "equal" : "DIFFERENT");
    EXPECT_EQ(info.file_size, real);  // every byte of the real file is accounted for

    auto weights = WeightFiles::in_directory(model_dir);
    const BlobStorage& s = weights->storage(l.path);
    const std::vector<uint64_t> walk = s.offsets();  // the file reads back the way MILBlob walks it
    ASSERT_EQ(walk.size(), l.slots.size());
    for (size_t i = 0; i < walk.size(); ++i) ASSERT_EQ(walk[i], l.slots[i].offset);
    for (const BlobRef& r : refs) ASSERT_NO_THROW(s.blob_for(r.offset, r.dtype, r.numel, r.what)) << r.what;

    // Every palettized op and every dense weight yields a view over the file.
    const MilFunction& f = p.main();
    int palettized = 0, dense = 0;
    for (const MilOp& op : f.block.ops) {
      if (op.type == "constexpr_lut_to_dense") {
        const PalettizedView v = palettized_view(f.block, op, weights.get());
        EXPECT_EQ(v.nbits, 6) << op.name();
        EXPECT_EQ(v.lut_shape, Shape{64}) << op.name();
        float out[64];
        const int64_t n = std::min<int64_t>(64, v.numel());
        decode_palettized(v, v.numel() - n, v.numel(), out);
        ++palettized;
      } else if (op.type == "const" && op.attribute("val")->kind == MilValue::Kind::kBlob) {
        const TensorView t = const_tensor_view(*op.attribute("val"), weights.get(), op.name());
        EXPECT_EQ(t.nbytes, size_t(t.numel()) * dtype_size(t.dtype)) << op.name();
        ++dense;
      }
    }
    std::printf("[ weights  ] %s: %d palettized views, %d dense views\n", rp.dir, palettized, dense);
    EXPECT_EQ(size_t(palettized * 2 + dense), refs.size());
    fs::remove_all(model_dir);
  }
}

TEST(SyntheticWeights, ReproducesCoremltoolsLayout) {
  const std::string pkg = kGoldens + "tiny_ios18.mlpackage/Data/com.apple.CoreML/";
  const MlModelSpec spec = read_mlmodel_file(pkg + "model.mlmodel");
  const auto layouts = plan_blob_layouts(collect_blob_refs(spec.program));
  ASSERT_EQ(layouts.size(), 1u);
  const auto real = BlobStorage::open(pkg + "weights/weight.bin");
  EXPECT_EQ(layouts[0].min_file_size, real->size());
  const auto walk = real->offsets();
  ASSERT_EQ(walk.size(), layouts[0].slots.size());
  for (size_t i = 0; i < walk.size(); ++i) {
    EXPECT_EQ(walk[i], layouts[0].slots[i].offset);
    EXPECT_EQ(real->blob(walk[i]).nbytes, layouts[0].slots[i].nbytes);
  }
  // Regenerate it: same records (sentinel, type, size, offset, padding bits), same size.
  const std::string out = temp_dir("regen") + "/weight.bin";
  write_synthetic_weight_bin(layouts[0], out, SyntheticFill::kRandom, 42);
  const auto gen = BlobStorage::open(out);
  ASSERT_EQ(gen->size(), real->size());
  ASSERT_EQ(gen->count(), real->count());
  for (uint64_t o : walk) {
    const BlobView a = real->blob(o), b = gen->blob(o);
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(a.data_offset, b.data_offset);
    EXPECT_EQ(a.padding_bits, b.padding_bits);
  }
}

TEST(SyntheticWeights, RandomFillIsDeterministicAndValid) {
  const char* text = R"(program(1.3)
{
    func main<ios18>() {
        tensor<fp16, [3, 5]> a = const()[name = string("a"), val = tensor<fp16, [3, 5]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
        tensor<fp32, [7]> b = const()[name = string("b"), val = tensor<fp32, [7]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(192)))];
        tensor<uint3, [11]> c = const()[name = string("c"), val = tensor<uint3, [11]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(320)))];
        tensor<int32, [4]> d = const()[name = string("d"), val = tensor<int32, [4]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(448)))];
    } -> (a);
}
)";
  MilProgram p = parse_mil_text(text, "synthetic.mil");
  validate(p);
  const auto layouts = plan_blob_layouts(collect_blob_refs(p));
  ASSERT_EQ(layouts.size(), 1u);
  const std::string dir = temp_dir("random");
  auto bytes = [&](const std::string& name, uint64_t seed) {
    write_synthetic_weight_bin(layouts[0], dir + "/" + name, SyntheticFill::kRandom, seed);
    std::ifstream f(dir + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string a = bytes("a.bin", 1), b = bytes("b.bin", 1), c = bytes("c.bin", 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 448u + 64 + 16);
  const auto s = BlobStorage::open(dir + "/a.bin");
  const BlobView u3 = s->blob_for(320, MilDType::kUInt3, 11, "c");  // 33 bits in 5 bytes
  EXPECT_EQ(u3.padding_bits, 7u);
  EXPECT_EQ(u3.data[4] & 0xFE, 0);  // padding bits stay zero
  const BlobView fp = s->blob_for(64, MilDType::kFp16, 15, "a");
  for (int i = 0; i < 15; ++i) {
    uint16_t h;
    std::memcpy(&h, fp.data + 2 * i, 2);
    const float v = f16_to_f32(h);
    EXPECT_TRUE(std::isfinite(v) && std::fabs(v) <= 0.125f) << v;
  }
  fs::remove_all(dir);
}

TEST(SyntheticWeights, RejectsOverlappingOrConflictingReferences) {
  auto refs_of = [](uint64_t off2, MilDType dt2, uint64_t n2) {
    BlobRef a{"@model_path/weights/weight.bin", 64, MilDType::kFp16, 100, 200, "op 'a' (const).val"};
    BlobRef b{"@model_path/weights/weight.bin", off2, dt2, n2, mil_packed_nbytes(dt2, n2), "op 'b' (const).val"};
    return std::vector<BlobRef>{a, b};
  };
  std::string msg;
  EXPECT_NO_THROW(plan_blob_layouts(refs_of(64 + 64 + 200, MilDType::kFp16, 1)));  // back to back
  EXPECT_EQ(code_of([&] { plan_blob_layouts(refs_of(64 + 64 + 199, MilDType::kFp16, 1)); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("op 'b' (const).val at offset 327 overlaps op 'a' (const).val"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { plan_blob_layouts(refs_of(64, MilDType::kFp32, 50)); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("reads 100 fp16 but op 'b' (const).val reads 50 fp32"), std::string::npos) << msg;
  EXPECT_EQ(plan_blob_layouts(refs_of(64, MilDType::kFp16, 100))[0].slots[0].refs, 2);  // shared blob
  EXPECT_EQ(code_of([&] { plan_blob_layouts(refs_of(32, MilDType::kFp16, 1)); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("header"), std::string::npos) << msg;
  // A type a weight file cannot hold.
  BlobLayout l;
  l.path = "x";
  l.slots.push_back({64, MilDType::kInt64, 1, 8, 1, "op 'i' (const).val"});
  l.min_file_size = 64 + 64 + 8;
  EXPECT_EQ(code_of([&] { write_synthetic_weight_bin(l, temp_dir("bad") + "/w.bin"); }), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace sdpal::coreml
