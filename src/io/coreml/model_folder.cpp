#include "io/coreml/model_folder.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "io/coreml/mil_proto.h"
#include "io/coreml/mil_text.h"
#include "io/zip_archive.h"

namespace sdpal::coreml {

namespace {

using Json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string parent_of(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

Json parse_json(const ResourceTree::Bytes& b, const std::string& source) {
  try {
    return Json::parse(reinterpret_cast<const char*>(b.data), reinterpret_cast<const char*>(b.data) + b.size);
  } catch (const Json::exception& e) {
    fail(ErrorCode::kFormat, source + ": invalid JSON: " + e.what());
  }
}

Shape parse_shape_string(const std::string& s, const std::string& source) {
  Shape r;
  std::string body = s;
  if (body.size() < 2 || body.front() != '[' || body.back() != ']') fail(ErrorCode::kFormat, source + ": bad shape '" + s + "'");
  body = body.substr(1, body.size() - 2);
  size_t start = 0;
  while (start < body.size()) {
    size_t comma = body.find(',', start);
    if (comma == std::string::npos) comma = body.size();
    std::string part = body.substr(start, comma - start);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (part.empty() || part.size() > 15 || part.find_first_not_of("0123456789") != std::string::npos)
      fail(ErrorCode::kFormat, source + ": bad shape '" + s + "'");
    r.push_back(std::stoll(part));
    start = comma + 1;
  }
  return r;
}

std::vector<ModelFeature> schema(const Json& obj, const char* key, const std::string& source) {
  std::vector<ModelFeature> r;
  if (!obj.contains(key)) return r;
  const Json& arr = obj.at(key);
  if (!arr.is_array()) fail(ErrorCode::kFormat, source + ": '" + key + "' is not an array");
  for (const Json& e : arr) {
    if (!e.is_object() || !e.contains("name") || !e.at("name").is_string())
      fail(ErrorCode::kFormat, source + ": an entry of '" + key + "' has no name");
    ModelFeature f;
    f.name = e.at("name").get<std::string>();
    auto str = [&](const char* k) { return e.contains(k) && e.at(k).is_string() ? e.at(k).get<std::string>() : std::string(); };
    f.kind = str("type");
    f.dtype = str("dataType");
    f.optional = str("isOptional") == "1";
    const std::string shape = str("shape");
    if (!shape.empty()) f.shape = parse_shape_string(shape, source + " (" + f.name + ")");
    r.push_back(std::move(f));
  }
  return r;
}

}  // namespace

ModelDescription parse_metadata_json(const uint8_t* data, size_t size, const std::string& source) {
  const Json j = parse_json({data, size, nullptr}, source);
  const Json* obj = &j;
  if (j.is_array()) {
    if (j.empty()) fail(ErrorCode::kFormat, source + ": empty metadata array");
    obj = &j[0];
  }
  if (!obj->is_object()) fail(ErrorCode::kFormat, source + ": metadata is not an object");
  ModelDescription d;
  d.inputs = schema(*obj, "inputSchema", source);
  d.outputs = schema(*obj, "outputSchema", source);
  d.states = schema(*obj, "stateSchema", source);
  auto str = [&](const char* k) { return obj->contains(k) && obj->at(k).is_string() ? obj->at(k).get<std::string>() : std::string(); };
  d.author = str("author");
  d.license = str("license");
  d.short_description = str("shortDescription");
  d.version = str("version");
  if (obj->contains("userDefinedMetadata") && obj->at("userDefinedMetadata").is_object())
    for (const auto& [k, v] : obj->at("userDefinedMetadata").items())
      if (v.is_string()) d.user_metadata.emplace_back(k, v.get<std::string>());
  if (obj->contains("mlProgramOperationTypeHistogram") && obj->at("mlProgramOperationTypeHistogram").is_object())
    for (const auto& [k, v] : obj->at("mlProgramOperationTypeHistogram").items())
      if (v.is_number_integer()) d.op_histogram.emplace_back(k, v.get<int>());
  return d;
}

ModelFiles locate_model(const ResourceTree& tree, const std::string& dir) {
  ModelFiles m;
  m.dir = dir;
  const std::string mil = ResourceTree::join(dir, "model.mil");
  if (tree.is_file(mil)) {
    m.format = ModelFormat::kCompiled;
    m.program = mil;
    m.model_path = dir;
    const std::string meta = ResourceTree::join(dir, "metadata.json");
    if (tree.is_file(meta)) m.metadata = meta;
    return m;
  }
  m.format = ModelFormat::kPackage;
  std::string item = "com.apple.CoreML/model.mlmodel";  // coremltools' default root item
  const std::string manifest = ResourceTree::join(dir, "Manifest.json");
  if (tree.is_file(manifest)) {
    const std::string src = tree.display(manifest);
    const Json j = parse_json(tree.read(manifest), src);
    try {
      const std::string root = j.at("rootModelIdentifier").get<std::string>();
      item = j.at("itemInfoEntries").at(root).at("path").get<std::string>();
    } catch (const Json::exception& e) {
      fail(ErrorCode::kFormat, src + ": no root model item: " + e.what());
    }
    if (!ZipArchive::is_safe_path(item)) fail(ErrorCode::kFormat, src + ": unsafe root model path '" + item + "'");
  }
  m.program = ResourceTree::join(ResourceTree::join(dir, "Data"), item);
  m.model_path = parent_of(m.program);
  if (!tree.is_file(m.program))
    fail(ErrorCode::kModel, tree.display(dir) + " is not a Core ML model: it has neither model.mil nor " +
                                (tree.is_file(manifest) ? "the Manifest's " + m.program : std::string("Manifest.json")));
  return m;
}

CoreMLModel load_model(std::shared_ptr<const ResourceTree> tree, const ModelFiles& files) {
  CoreMLModel m;
  m.location = tree->display(files.dir);
  m.files = files;
  const ResourceTree::Bytes prog = tree->read(files.program);
  const std::string src = tree->display(files.program);
  if (files.format == ModelFormat::kCompiled) {
    m.program = parse_mil_text(std::string_view(reinterpret_cast<const char*>(prog.data), prog.size), src);
    validate(m.program);
    if (!files.metadata.empty()) {
      const ResourceTree::Bytes meta = tree->read(files.metadata);
      m.description = parse_metadata_json(meta.data, meta.size, tree->display(files.metadata));
    }
  } else {
    MlModelSpec spec = parse_mlmodel(prog.data, prog.size, src);
    m.program = std::move(spec.program);
    m.description = std::move(spec.description);
  }
  const std::string base = files.model_path;
  m.weights = std::make_shared<WeightFiles>([tree, base](const std::string& rel) {
    const std::string p = ResourceTree::join(base, rel);
    const ResourceTree::Bytes b = tree->read(p);
    return std::make_shared<const BlobStorage>(b.data, b.size, b.owner, tree->display(p));
  });
  m.tree = std::move(tree);
  return m;
}

CoreMLModel load_model(const std::string& path) {
  auto tree = ResourceTree::open(path);
  std::string dir;
  if (tree->is_zip() && !tree->is_file("model.mil") && !tree->is_file("Manifest.json")) {
    std::vector<std::string> models;
    for (const auto& c : tree->list(""))
      if (ends_with(c, ".mlmodelc") || ends_with(c, ".mlpackage")) models.push_back(c);
    if (models.size() != 1) fail(ErrorCode::kModel, path + ": expected one .mlmodelc or .mlpackage at the root of the archive");
    dir = models[0];
  }
  const ModelFiles files = locate_model(*tree, dir);
  return load_model(tree, files);
}

namespace {

struct Roles {
  const char* compiled;  // Apple resource name
  const char* package;   // Python package suffix (before .mlpackage)
};
constexpr Roles kTextEncoder{"TextEncoder.mlmodelc", "_text_encoder"};
constexpr Roles kTextEncoder2{"TextEncoder2.mlmodelc", "_text_encoder_2"};
constexpr Roles kUnet{"Unet.mlmodelc", "_unet"};
constexpr Roles kUnetChunk1{"UnetChunk1.mlmodelc", "_unet_chunk1"};
constexpr Roles kUnetChunk2{"UnetChunk2.mlmodelc", "_unet_chunk2"};
constexpr Roles kVaeDecoder{"VAEDecoder.mlmodelc", "_vae_decoder"};
constexpr Roles kVaeEncoder{"VAEEncoder.mlmodelc", "_vae_encoder"};
constexpr Roles kSafetyChecker{"SafetyChecker.mlmodelc", "_safety_checker"};

// The child of `children` playing `role`, or "" if none. Error(kModel) if several packages match.
std::string find_role(const std::vector<std::string>& children, const Roles& role, bool packages, const std::string& where) {
  if (!packages) return std::count(children.begin(), children.end(), role.compiled) ? role.compiled : "";
  std::string found;
  const std::string suffix = std::string(role.package) + ".mlpackage";
  for (const auto& c : children) {
    if (!ends_with(c, suffix)) continue;
    if (!found.empty()) fail(ErrorCode::kModel, where + ": both " + found + " and " + c + " are " + (role.package + 1) + " packages");
    found = c;
  }
  return found;
}

bool has_unet(const std::vector<std::string>& children, bool packages) {
  for (const auto& c : children) {
    if (!packages && (c == kUnet.compiled || c == kUnetChunk1.compiled)) return true;
    if (packages && (ends_with(c, "_unet.mlpackage") || ends_with(c, "_unet_chunk1.mlpackage"))) return true;
  }
  return false;
}

}  // namespace

SDCoreMLResources find_sd_resources(const std::string& path, bool require_complete) {
  SDCoreMLResources r;
  r.tree = ResourceTree::open(path);
  const ResourceTree& t = *r.tree;
  auto qualifies = [&](const std::string& dir) {
    const auto children = t.list(dir);
    return has_unet(children, false) || has_unet(children, true);
  };
  std::vector<std::string> level{""}, found;
  for (int depth = 0; depth <= 2 && found.empty(); ++depth) {
    std::vector<std::string> next;
    for (const auto& d : level) {
      if (qualifies(d)) found.push_back(d);
      for (const auto& c : t.list(d)) {
        const std::string sub = ResourceTree::join(d, c);
        if (c == "__MACOSX" || ends_with(c, ".mlmodelc") || ends_with(c, ".mlpackage") || !t.is_dir(sub)) continue;
        next.push_back(sub);
      }
    }
    level = std::move(next);
  }
  if (found.empty())
    fail(ErrorCode::kModel, path + ": no Core ML Stable Diffusion resources (Unet.mlmodelc, UnetChunk1.mlmodelc or "
                                   "*_unet.mlpackage) here or up to two folders down");
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found) list += (list.empty() ? "" : ", ") + t.display(f);
    fail(ErrorCode::kModel, path + ": several Core ML resource folders (" + list + "); pass one of them");
  }
  r.base = found[0];
  const auto children = t.list(r.base);
  r.python_packages = !has_unet(children, false);
  const std::string where = t.display(r.base);
  auto model = [&](const Roles& role) -> std::optional<ModelFiles> {
    const std::string name = find_role(children, role, r.python_packages, where);
    if (name.empty()) return std::nullopt;
    return locate_model(t, ResourceTree::join(r.base, name));
  };
  r.text_encoder = model(kTextEncoder);
  r.text_encoder_2 = model(kTextEncoder2);
  r.unet = model(kUnet);
  r.vae_decoder = model(kVaeDecoder);
  r.vae_encoder = model(kVaeEncoder);
  r.safety_checker = model(kSafetyChecker);
  auto c1 = model(kUnetChunk1), c2 = model(kUnetChunk2);
  if (c1 && c2) r.unet_chunks = {*c1, *c2};
  if (t.is_file(ResourceTree::join(r.base, "vocab.json"))) r.vocab = ResourceTree::join(r.base, "vocab.json");
  if (t.is_file(ResourceTree::join(r.base, "merges.txt"))) r.merges = ResourceTree::join(r.base, "merges.txt");
  if (!require_complete) return r;
  if (!r.text_encoder) fail(ErrorCode::kModel, where + ": missing the text encoder (" + std::string(r.python_packages ? "*_text_encoder.mlpackage" : kTextEncoder.compiled) + ")");
  if (!r.unet && r.unet_chunks.empty()) fail(ErrorCode::kModel, where + ": missing the UNet (Unet, or both UnetChunk1 and UnetChunk2)");
  if (!r.vae_decoder) fail(ErrorCode::kModel, where + ": missing the VAE decoder (" + std::string(r.python_packages ? "*_vae_decoder.mlpackage" : kVaeDecoder.compiled) + ")");
  return r;
}

}  // namespace sdpal::coreml
