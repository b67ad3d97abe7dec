// Locating Core ML models: Apple's compiled resource folders, Python package naming, zip archives,
// .mlpackage manifests, metadata.json, and the errors for incomplete or unsafe layouts.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/coreml/blob_refs.h"
#include "io/coreml/mil_text.h"
#include "io/coreml/model_folder.h"
#include "io/coreml/synthetic_weights.h"
#include "test_util.h"

namespace sdpal::coreml {
namespace {

using sdpal::testing::code_of;

namespace fs = std::filesystem;
const std::string kFixtures = std::string(SDPAL_SOURCE_DIR) + "/../shared/fixtures/coreml/sd21-base-palettized/";
const std::string kGoldens = std::string(SDPAL_SOURCE_DIR) + "/tests/goldens/coreml/";

// Removes this process's scratch folder when the tests end.
std::string scratch_root() { return ::testing::TempDir() + "/sdpal_coreml_folder_" + std::to_string(::getpid()); }
struct ScratchCleanup : ::testing::Environment {
  void TearDown() override { fs::remove_all(scratch_root()); }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);


std::string temp_dir(const std::string& name) {
  const std::string d = scratch_root() + "/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A zip of stored entries, enough for archive layouts.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, cd;
  auto u16 = [](std::string& s, uint32_t v) { s += char(v & 255), s += char(v >> 8 & 255); };
  auto u32 = [&](std::string& s, uint32_t v) { u16(s, v & 0xffff), u16(s, v >> 16); };
  for (const auto& [name, data] : files) {
    const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size())));
    const uint32_t at = uint32_t(out.size());
    u32(out, 0x04034b50), u16(out, 10), u16(out, 0), u16(out, 0), u16(out, 0), u16(out, 0);
    u32(out, crc), u32(out, uint32_t(data.size())), u32(out, uint32_t(data.size()));
    u16(out, uint32_t(name.size())), u16(out, 0);
    out += name + data;
    u32(cd, 0x02014b50), u16(cd, 20), u16(cd, 10), u16(cd, 0), u16(cd, 0), u16(cd, 0), u16(cd, 0);
    u32(cd, crc), u32(cd, uint32_t(data.size())), u32(cd, uint32_t(data.size()));
    u16(cd, uint32_t(name.size())), u16(cd, 0), u16(cd, 0), u16(cd, 0), u16(cd, 0), u32(cd, 0), u32(cd, at);
    cd += name;
  }
  const uint32_t cd_at = uint32_t(out.size());
  out += cd;
  u32(out, 0x06054b50), u16(out, 0), u16(out, 0), u16(out, uint32_t(files.size())), u16(out, uint32_t(files.size()));
  u32(out, uint32_t(cd.size())), u32(out, cd_at), u16(out, 0);
  return out;
}

TEST(ModelFolder, FindsApplesCompiledResources) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  const SDCoreMLResources r = find_sd_resources(kFixtures + "original/compiled");
  EXPECT_FALSE(r.python_packages);
  EXPECT_FALSE(r.tree->is_zip());
  ASSERT_TRUE(r.text_encoder && r.unet && r.vae_decoder && r.vae_encoder);
  EXPECT_FALSE(r.safety_checker);
  EXPECT_FALSE(r.text_encoder_2);
  EXPECT_TRUE(r.unet_chunks.empty());
  EXPECT_EQ(r.vocab, "vocab.json");
  EXPECT_EQ(r.merges, "merges.txt");
  EXPECT_EQ(r.unet->program, "Unet.mlmodelc/model.mil");
  EXPECT_EQ(r.unet->metadata, "Unet.mlmodelc/metadata.json");

  const CoreMLModel unet = load_model(r.tree, *r.unet);
  const ModelDescription& d = unet.description;
  ASSERT_EQ(d.inputs.size(), 3u);
  const ModelFeature* sample = d.input("sample");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->shape, (Shape{2, 4, 64, 64}));
  EXPECT_EQ(sample->dtype, "Float16");
  EXPECT_EQ(d.input("encoder_hidden_states")->shape, (Shape{2, 1024, 1, 77}));
  EXPECT_EQ(d.input("timestep")->shape, (Shape{2}));
  ASSERT_TRUE(d.output("noise_pred"));
  EXPECT_EQ(d.output("noise_pred")->dtype, "Float32");
  EXPECT_FALSE(d.op_histogram.empty());
  // The function signature agrees with metadata.json.
  for (const auto& in : unet.program.main().inputs) ASSERT_EQ(d.input(in.name)->shape, in.type.shape) << in.name;
  // Weights are not in the fixtures: opening them is an I/O error naming the file.
  std::string msg;
  EXPECT_EQ(code_of([&] { unet.weights->storage("@model_path/weights/weight.bin"); }, &msg), ErrorCode::kIo);
  EXPECT_NE(msg.find("Unet.mlmodelc/weights/weight.bin"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { unet.weights->storage("@model_path/../secret.bin"); }), ErrorCode::kFormat);
  EXPECT_EQ(code_of([&] { unet.weights->storage("/etc/passwd"); }), ErrorCode::kFormat);
}

TEST(ModelFolder, ReportsAmbiguousAndIncompleteFolders) {
  if (!fs::exists(kFixtures)) GTEST_SKIP() << "fixtures not found at " << kFixtures;
  std::string msg;
  EXPECT_EQ(code_of([&] { find_sd_resources(kFixtures); }, &msg), ErrorCode::kModel);  // original/ and split_einsum_v2/
  EXPECT_NE(msg.find("several Core ML resource folders"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { find_sd_resources(kFixtures + "split_einsum_v2/compiled"); }, &msg), ErrorCode::kModel);
  EXPECT_NE(msg.find("missing the text encoder (TextEncoder.mlmodelc)"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { find_sd_resources(temp_dir("empty")); }, &msg), ErrorCode::kModel);
  EXPECT_NE(msg.find("no Core ML Stable Diffusion resources"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { find_sd_resources(kFixtures + "nope"); }), ErrorCode::kIo);
}

TEST(ModelFolder, FindsPythonPackagesAndLoadsThem) {
  const std::string root = temp_dir("packages");
  const std::string base = root + "/packages/Stable_Diffusion_version_stabilityai_stable-diffusion-2-1-base";
  fs::create_directories(root + "/packages");
  for (const char* role : {"_text_encoder", "_unet", "_vae_decoder"})
    fs::copy(kGoldens + "tiny_ios16.mlpackage", base + role + ".mlpackage", fs::copy_options::recursive);
  const SDCoreMLResources r = find_sd_resources(root);  // one folder down
  EXPECT_TRUE(r.python_packages);
  EXPECT_EQ(r.base, "packages");
  ASSERT_TRUE(r.unet);
  EXPECT_EQ(r.unet->format, ModelFormat::kPackage);
  EXPECT_EQ(r.unet->model_path, r.unet->dir + "/Data/com.apple.CoreML");
  EXPECT_FALSE(r.vae_encoder);
  const CoreMLModel m = load_model(r.tree, *r.unet);
  EXPECT_EQ(m.program.main().opset, "ios16");
  EXPECT_EQ(m.weights->storage("@model_path/weights/weight.bin").count(), 8u);
  // Two UNet packages of different model versions are ambiguous.
  fs::copy(kGoldens + "tiny_ios16.mlpackage", root + "/packages/Stable_Diffusion_version_other_unet.mlpackage",
           fs::copy_options::recursive);
  std::string msg;
  EXPECT_EQ(code_of([&] { find_sd_resources(root); }, &msg), ErrorCode::kModel);
  EXPECT_NE(msg.find("are unet packages"), std::string::npos) << msg;
}

TEST(ModelFolder, ReadsResourcesAndWeightsInsideAZip) {
  // A release-style zip: one top folder with compiled models; weights made by the synthetic generator.
  const std::string mil = R"(program(1.0)
{
    func main<ios16>(tensor<fp16, [2]> x) {
            tensor<fp16, [2]> w = const()[name = tensor<string, []>("w"), val = tensor<fp16, [2]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64)))];
            tensor<fp16, [2]> y = add(x = x, y = w)[name = tensor<string, []>("y")];
        } -> (y);
}
)";
  const std::string dir = temp_dir("zip");
  MilProgram p = parse_mil_text(mil, "zip.mil");
  validate(p);
  write_synthetic_weight_bin(plan_blob_layouts(collect_blob_refs(p))[0], dir + "/weight.bin", SyntheticFill::kRandom, 9);
  const std::string weights = read(dir + "/weight.bin");
  const std::string meta = R"([{"inputSchema": [{"name": "x", "dataType": "Float16", "shape": "[2]", "type": "MultiArray", "isOptional": "0"}],
                                "outputSchema": [{"name": "y", "dataType": "Float16", "shape": "[2]", "type": "MultiArray"}]}])";
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* m : {"TextEncoder", "Unet", "VAEDecoder"}) {
    const std::string d = std::string("release/") + m + ".mlmodelc/";
    files.push_back({d + "model.mil", mil});
    files.push_back({d + "metadata.json", meta});
    files.push_back({d + "weights/weight.bin", weights});
  }
  files.push_back({"release/vocab.json", "{}"});
  files.push_back({"release/merges.txt", "#version: 0.2\n"});
  write(dir + "/release.zip", make_zip(files));

  const SDCoreMLResources r = find_sd_resources(dir + "/release.zip");
  EXPECT_TRUE(r.tree->is_zip());
  EXPECT_EQ(r.base, "release");
  EXPECT_EQ(r.vocab, "release/vocab.json");
  ASSERT_TRUE(r.unet);
  const CoreMLModel m = load_model(r.tree, *r.unet);
  EXPECT_EQ(m.location, dir + "/release.zip:release/Unet.mlmodelc");
  EXPECT_EQ(m.description.input("x")->shape, Shape{2});
  const MilOp& w = m.program.main().block.ops[0];
  const TensorView t = const_tensor_view(*w.attribute("val"), m.weights.get(), "w");
  ASSERT_EQ(t.nbytes, 4u);
  EXPECT_EQ(std::memcmp(t.data, weights.data() + 128, 4), 0);  // the bytes inside the archive
}

TEST(ModelFolder, RejectsBrokenModelFolders) {
  std::string msg;
  const std::string dir = temp_dir("broken");
  fs::create_directories(dir + "/Empty.mlmodelc");
  auto tree = ResourceTree::open(dir);
  EXPECT_EQ(code_of([&] { locate_model(*tree, "Empty.mlmodelc"); }, &msg), ErrorCode::kModel);
  EXPECT_NE(msg.find("is not a Core ML model"), std::string::npos) << msg;

  write(dir + "/Bad.mlpackage/Manifest.json", R"({"rootModelIdentifier": "A", "itemInfoEntries": {"A": {"path": "../../x"}}})");
  EXPECT_EQ(code_of([&] { locate_model(*tree, "Bad.mlpackage"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("unsafe root model path"), std::string::npos) << msg;
  write(dir + "/Bad.mlpackage/Manifest.json", "{ not json");
  EXPECT_EQ(code_of([&] { locate_model(*tree, "Bad.mlpackage"); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
  write(dir + "/Bad.mlpackage/Manifest.json", R"({"rootModelIdentifier": "A", "itemInfoEntries": {}})");
  EXPECT_EQ(code_of([&] { locate_model(*tree, "Bad.mlpackage"); }, &msg), ErrorCode::kFormat);

  const std::string bad_shape = R"([{"inputSchema": [{"name": "x", "shape": "[1, -2]"}]}])";
  EXPECT_EQ(code_of([&] { parse_metadata_json(reinterpret_cast<const uint8_t*>(bad_shape.data()), bad_shape.size(), "m.json"); }, &msg),
            ErrorCode::kFormat);
  EXPECT_NE(msg.find("bad shape '[1, -2]'"), std::string::npos) << msg;
  const std::string no_name = R"([{"outputSchema": [{"shape": "[1]"}]}])";
  EXPECT_EQ(code_of([&] { parse_metadata_json(reinterpret_cast<const uint8_t*>(no_name.data()), no_name.size(), "m.json"); }),
            ErrorCode::kFormat);

  // A model.mil that does not parse is reported with its location in the tree.
  write(dir + "/Broken.mlmodelc/model.mil", "program(1.0)\n{\n  func main( {\n");
  EXPECT_EQ(code_of([&] { load_model(tree, locate_model(*tree, "Broken.mlmodelc")); }, &msg), ErrorCode::kFormat);
  EXPECT_NE(msg.find("Broken.mlmodelc/model.mil:3:"), std::string::npos) << msg;
  // A zip path entry with "..": never addressable.
  write(dir + "/evil.zip", make_zip({{"../Unet.mlmodelc/model.mil", "x"}, {"ok/a.txt", "y"}}));
  auto z = ResourceTree::open(dir + "/evil.zip");
  EXPECT_FALSE(z->is_file("../Unet.mlmodelc/model.mil"));
  EXPECT_EQ(z->list(""), std::vector<std::string>{"ok"});
  EXPECT_EQ(code_of([&] { z->read("../Unet.mlmodelc/model.mil"); }), ErrorCode::kIo);
  EXPECT_EQ(code_of([&] { ResourceTree::open(dir + "/Bad.mlpackage/Manifest.json"); }), ErrorCode::kIo);
}

}  // namespace
}  // namespace sdpal::coreml
