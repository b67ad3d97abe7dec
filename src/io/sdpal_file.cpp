#include "io/sdpal_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sdpal {

namespace {

using json = nlohmann::json;

constexpr const char* kFormatKey = "format";
constexpr const char* kVersionKey = "sdpal.version";
constexpr const char* kPalettizedKey = "sdpal.palettized";
constexpr const char* kConfigPrefix = "sdpal.config.";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_component(const std::string& c) {
  const auto& all = sdpal_component_names();
  return std::find(all.begin(), all.end(), c) != all.end();
}

// Parses `text`, rejecting duplicate object keys at any depth (nlohmann would keep the last).
// Returns false with *err set when it is not valid JSON.
bool parse_strict(const std::string& text, json* out, std::string* err) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  try {
    *out = json::parse(text, cb);
  } catch (const json::exception& e) {
    *err = e.what();
    return false;
  }
  if (!duplicate.empty()) {
    *err = "duplicate key '" + duplicate + "'";
    return false;
  }
  return true;
}

// A shape from JSON: an array of non-negative integers.
bool json_shape(const json& j, Shape* out) {
  if (!j.is_array()) return false;
  out->clear();
  for (const auto& d : j) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t(1) << 48)) return false;
    out->push_back(int64_t(d.get<uint64_t>()));
  }
  return true;
}

uint64_t index_bytes(const Shape& shape, int nbits) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);  // dims are < 2^48 and validated before use
  return (n * uint64_t(nbits) + 7) / 8;
}

class ComponentFile : public TensorFile {
 public:
  ComponentFile(std::string path, std::shared_ptr<TensorFile> container, std::vector<TensorView> tensors)
      : path_(std::move(path)), container_(std::move(container)), tensors_(std::move(tensors)) {
    for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* find(const std::string& name) const override {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  std::string metadata(const std::string& key) const override { return container_->metadata(key); }

 private:
  std::string path_;
  std::shared_ptr<TensorFile> container_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace

const std::vector<std::string>& sdpal_component_names() {
  static const std::vector<std::string> kNames{"text_encoder", "unet", "vae", "safety_checker"};
  return kNames;
}

// --- Writing -------------------------------------------------------------------------------

void write_sdpal_file(const std::string& path, const SdpalModelToWrite& m) {
  auto require_json = [&](const std::string& text, const std::string& what) {
    json j;
    std::string err;
    if (!parse_strict(text, &j, &err)) fail(ErrorCode::kInvalidArgument, path + ": " + what + " is not valid JSON: " + err);
  };
  std::vector<TensorToWrite> out;
  std::map<std::string, std::string> meta;
  json pal = json::object();
  std::set<std::string> seen_components;
  for (const SdpalComponentToWrite& c : m.components) {
    check(is_component(c.name), ErrorCode::kInvalidArgument, path + ": unknown component '" + c.name + "'");
    check(seen_components.insert(c.name).second, ErrorCode::kInvalidArgument,
          path + ": component '" + c.name + "' given twice");
    require_json(c.config_json, c.name + " config");
    meta[kConfigPrefix + c.name] = c.config_json;
    std::set<std::string> names;
    for (const SdpalTensorToWrite& t : c.tensors) {
      const std::string full = c.name + "." + t.name;
      const std::string where = path + ": tensor '" + full + "'";
      check(!t.name.empty(), ErrorCode::kInvalidArgument, path + ": empty tensor name in " + c.name);
      check(names.insert(t.name).second, ErrorCode::kInvalidArgument, where + ": given twice");
      check(!ends_with(t.name, ".indices") && !ends_with(t.name, ".lut"), ErrorCode::kInvalidArgument,
            where + ": names ending in .indices or .lut are reserved for palettized weights");
      if (!t.palettized) {
        TensorToWrite d = t.dense;
        d.name = full;
        out.push_back(std::move(d));
        continue;
      }
      const PalettizedView& p = *t.palettized;
      try {
        validate_palettized(p);
      } catch (const Error& e) {
        fail(ErrorCode::kInvalidArgument, where + ": " + e.what());
      }
      check(p.lut_dtype == DType::F16, ErrorCode::kInvalidArgument,
            where + ": palettized tables must be F16, not " + dtype_name(p.lut_dtype));
      check(p.vector_size() == 1, ErrorCode::kInvalidArgument, where + ": vector palettization is not supported");
      out.push_back({full + ".indices", DType::U8, {int64_t(p.indices_nbytes)}, p.indices, p.indices_nbytes});
      out.push_back({full + ".lut", DType::F16, p.lut_shape, p.lut, p.lut_nbytes});
      pal[full] = {{"nbits", p.nbits}, {"shape", p.shape}, {"lut_shape", p.lut_shape}};
    }
  }
  require_json(m.model_index_json, "model_index.json");
  require_json(m.scheduler_json, "scheduler_config.json");
  require_json(m.vocab_json, "tokenizer vocab.json");
  if (!m.feature_extractor_json.empty()) require_json(m.feature_extractor_json, "feature_extractor config");
  check(seen_components.count("safety_checker") == 0 || !m.feature_extractor_json.empty(),
        ErrorCode::kInvalidArgument, path + ": a safety checker needs the feature_extractor config");
  for (const auto& [k, v] : m.extra_metadata) {
    check(k.rfind("sdpal.", 0) == 0, ErrorCode::kInvalidArgument, path + ": metadata key '" + k + "' must start with sdpal.");
    meta[k] = v;
  }
  meta[kFormatKey] = "sdpal";
  meta[kVersionKey] = "1";
  meta[kPalettizedKey] = pal.dump();
  meta["sdpal.model_index"] = m.model_index_json;
  meta["sdpal.scheduler"] = m.scheduler_json;
  meta["sdpal.tokenizer.vocab"] = m.vocab_json;
  meta["sdpal.tokenizer.merges"] = m.merges_txt;
  if (!m.feature_extractor_json.empty()) meta["sdpal.feature_extractor"] = m.feature_extractor_json;
  write_safetensors(path, out, meta);
}

// --- Reading -------------------------------------------------------------------------------

std::shared_ptr<const SdpalFile> SdpalFile::open(const std::string& path) {
  std::shared_ptr<TensorFile> container = open_safetensors(path);
  auto f = std::shared_ptr<SdpalFile>(new SdpalFile());
  f->path_ = path;
  f->container_ = container;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) f->file_bytes_ = uint64_t(st.st_size);

  const std::string format = container->metadata(kFormatKey);
  check(format == "sdpal", ErrorCode::kFormat,
        path + ": not an sdpal file (metadata 'format' is " + (format.empty() ? "missing" : "'" + format + "'") +
            ", expected 'sdpal')");
  const std::string version = container->metadata(kVersionKey);
  check(!version.empty(), ErrorCode::kFormat, path + ": metadata 'sdpal.version' is missing");
  check(version == "1", ErrorCode::kUnsupported,
        path + ": sdpal format version '" + version + "' is not supported (this build reads version 1)");

  // JSON metadata values must parse.
  auto parse_meta = [&](const std::string& key, bool required) {
    const std::string text = container->metadata(key);
    json j;
    if (text.empty()) {
      check(!required, ErrorCode::kFormat, path + ": metadata '" + key + "' is missing");
      return j;
    }
    std::string err;
    if (!parse_strict(text, &j, &err)) fail(ErrorCode::kFormat, path + ": metadata '" + key + "' is not valid JSON: " + err);
    check(j.is_object(), ErrorCode::kFormat, path + ": metadata '" + key + "' is not a JSON object");
    return j;
  };
  for (const char* key : {"sdpal.scheduler", "sdpal.model_index", "sdpal.feature_extractor"}) parse_meta(key, false);
  for (const std::string& c : sdpal_component_names()) {
    const std::string key = kConfigPrefix + c;
    if (container->metadata(key).empty()) continue;
    parse_meta(key, true);
    f->configs_[c] = container->metadata(key);
  }
  const json pal = parse_meta(kPalettizedKey, false);

  // Index every tensor of the container by name.
  std::map<std::string, const TensorView*> by_name;
  for (const TensorView& v : container->tensors()) by_name.emplace(v.name, &v);

  // Palettized entries: each claims X.indices and X.lut.
  std::map<std::string, std::string> claimed;  // tensor name -> palettized entry
  std::map<std::string, PalettizedView> views;
  if (pal.is_object()) {
    for (const auto& [name, info] : pal.items()) {
      const std::string where = path + ": palettized tensor '" + name + "'";
      check(info.is_object(), ErrorCode::kFormat, where + ": entry in sdpal.palettized is not an object");
      SdpalPalettizedInfo pi;
      auto nb = info.find("nbits");
      check(nb != info.end() && nb->is_number_unsigned() && nb->get<uint64_t>() <= 8, ErrorCode::kFormat,
            where + ": 'nbits' must be an integer in [1, 8]");
      pi.nbits = int(nb->get<uint64_t>());
      auto sh = info.find("shape");
      auto ls = info.find("lut_shape");
      check(sh != info.end() && json_shape(*sh, &pi.shape), ErrorCode::kFormat,
            where + ": 'shape' must be an array of non-negative integers");
      check(ls != info.end() && json_shape(*ls, &pi.lut_shape), ErrorCode::kFormat,
            where + ": 'lut_shape' must be an array of non-negative integers");
      check(by_name.count(name) == 0, ErrorCode::kFormat,
            path + ": tensor '" + name + "' is stored both dense and palettized");
      if (auto c = claimed.find(name); c != claimed.end())
        fail(ErrorCode::kFormat, path + ": palettized tensor '" + name + "' collides with the parts of '" + c->second + "'");
      check(!ends_with(name, ".indices") && !ends_with(name, ".lut"), ErrorCode::kFormat,
            where + ": names ending in .indices or .lut are reserved for the parts of palettized tensors");
      for (const char* part : {".indices", ".lut"}) {
        const std::string pn = name + part;
        check(!pal.contains(pn), ErrorCode::kFormat,
              path + ": palettized tensor '" + pn + "' collides with the parts of '" + name + "'");
        check(claimed.emplace(pn, name).second, ErrorCode::kFormat,
              path + ": tensor '" + pn + "' is claimed by two palettized entries");
      }
      auto idx = by_name.find(name + ".indices");
      auto lut = by_name.find(name + ".lut");
      check(idx != by_name.end(), ErrorCode::kFormat, where + ": its tensor '" + name + ".indices' is missing");
      check(lut != by_name.end(), ErrorCode::kFormat, where + ": its tensor '" + name + ".lut' is missing");
      const TensorView& iv = *idx->second;
      const TensorView& lv = *lut->second;
      check(iv.dtype == DType::U8 && iv.shape.size() == 1, ErrorCode::kFormat,
            where + ": '" + name + ".indices' must be 1-D U8, not " + dtype_name(iv.dtype) + " " + shape_str(iv.shape));
      check(lv.dtype == DType::F16, ErrorCode::kFormat,
            where + ": '" + name + ".lut' must be F16, not " + dtype_name(lv.dtype));
      check(lv.shape == pi.lut_shape, ErrorCode::kFormat,
            where + ": '" + name + ".lut' has shape " + shape_str(lv.shape) + " but sdpal.palettized says lut_shape " +
                shape_str(pi.lut_shape));
      check(pi.lut_shape.size() == 1 || pi.lut_shape.back() == 1, ErrorCode::kFormat,
            where + ": lut_shape " + shape_str(pi.lut_shape) + " has vector entries, which sdpal files do not support");
      PalettizedView pv;
      pv.shape = pi.shape;
      pv.nbits = pi.nbits;
      pv.indices = iv.data;
      pv.indices_nbytes = iv.nbytes;
      pv.lut_dtype = DType::F16;
      pv.lut = lv.data;
      pv.lut_nbytes = lv.nbytes;
      pv.lut_shape = pi.lut_shape;
      pv.name = name;
      try {
        validate_palettized(pv);  // nbits, table shape vs nbits and groups, index byte count
      } catch (const Error& e) {
        fail(ErrorCode::kFormat, path + ": " + e.what());
      }
      check(uint64_t(iv.nbytes) == index_bytes(pi.shape, pi.nbits), ErrorCode::kFormat,
            where + ": index bytes not matching the shape");
      f->palettized_.emplace(name, pi);
      views.emplace(name, std::move(pv));
    }
  }

  // Every tensor: a palettized part, or a dense weight; all under a known component with a config.
  std::map<std::string, std::vector<TensorView>> per_component;
  const std::shared_ptr<const void> owner = container;
  auto component_of = [&](const std::string& name, const std::string& what) {
    const size_t dot = name.find('.');
    const std::string c = dot == std::string::npos ? std::string() : name.substr(0, dot);
    check(dot != std::string::npos && dot + 1 < name.size() && is_component(c), ErrorCode::kFormat,
          path + ": " + what + " '" + name + "' is not under a known component (text_encoder., unet., vae., safety_checker.)");
    check(f->configs_.count(c) != 0, ErrorCode::kFormat,
          path + ": " + what + " '" + name + "' belongs to component '" + c + "', which has no sdpal.config." + c);
    return c;
  };
  for (const TensorView& v : container->tensors()) {
    if (claimed.count(v.name)) continue;
    check(!ends_with(v.name, ".indices") && !ends_with(v.name, ".lut"), ErrorCode::kFormat,
          path + ": tensor '" + v.name + "' looks like a palettized part but has no entry in sdpal.palettized");
    const std::string c = component_of(v.name, "tensor");
    TensorView d = v;
    d.name = v.name.substr(c.size() + 1);
    d.owner = owner;
    per_component[c].push_back(std::move(d));
  }
  for (auto& [name, pv] : views) {
    const std::string c = component_of(name, "palettized tensor");
    pv.name = name.substr(c.size() + 1);
    per_component[c].push_back(palettized_tensor_view(std::move(pv), owner));
  }
  for (const std::string& c : sdpal_component_names()) {
    if (!f->configs_.count(c) && !per_component.count(c)) continue;
    f->components_.push_back(c);
    f->files_[c] = std::make_shared<ComponentFile>(path, container, std::move(per_component[c]));
  }
  return f;
}

bool SdpalFile::has_component(const std::string& name) const { return files_.count(name) != 0; }

std::shared_ptr<TensorFile> SdpalFile::component(const std::string& name) const {
  auto it = files_.find(name);
  check(it != files_.end(), ErrorCode::kModel, path_ + ": the sdpal file has no component '" + name + "'");
  return it->second;
}

const std::string& SdpalFile::config(const std::string& component) const {
  auto it = configs_.find(component);
  check(it != configs_.end(), ErrorCode::kModel, path_ + ": the sdpal file has no config for '" + component + "'");
  return it->second;
}

bool looks_like_sdpal_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 8) return false;
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  unsigned char len[8];
  bool ok = std::fread(len, 1, 8, fp) == 8;
  uint64_t n = 0;
  for (int i = 7; i >= 0 && ok; --i) n = (n << 8) | len[i];
  std::string header;
  if (ok && n > 0 && n <= 100'000'000 && n <= uint64_t(st.st_size) - 8) {
    header.resize(size_t(n));
    ok = std::fread(header.data(), 1, header.size(), fp) == header.size();
  } else {
    ok = false;
  }
  std::fclose(fp);
  if (!ok) return false;
  const json h = json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (!h.is_object()) return false;
  auto m = h.find("__metadata__");
  if (m == h.end() || !m->is_object()) return false;
  auto fmt = m->find(kFormatKey);
  return fmt != m->end() && fmt->is_string() && fmt->get<std::string>() == "sdpal";
}

}  // namespace sdpal
