#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace sdpal {

namespace {

using ojson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

class SafetensorsFile : public TensorFile {
 public:
  SafetensorsFile(std::shared_ptr<const MappedFile> file, std::vector<TensorView> tensors,
                  std::map<std::string, std::string> metadata)
      : file_(std::move(file)), tensors_(std::move(tensors)), metadata_(std::move(metadata)) {
    for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }
  const std::string& path() const override { return file_->path(); }
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* find(const std::string& name) const override {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  std::string metadata(const std::string& key) const override {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? std::string() : it->second;
  }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Name as written in the header; unknown names are a format error, valid safetensors dtypes we
// do not implement are unsupported.
DType parse_dtype(const std::string& s, const std::string& where) {
  static const std::pair<const char*, DType> kKnown[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16},   {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto& [name, t] : kKnown)
    if (s == name) return t;
  if (s == "F8_E4M3" || s == "F8_E5M2" || s == "U16" || s == "U32" || s == "U64")
    fail(ErrorCode::kUnsupported, where + ": dtype " + s + " is not supported");
  fail(ErrorCode::kFormat, where + ": unknown dtype '" + s + "'");
}

// The reference writer orders tensors by its dtype enum, largest first, then by name.
int dtype_rank(DType t) {
  switch (t) {
    case DType::BOOL: return 0;
    case DType::U8: return 1;
    case DType::I8: return 2;
    case DType::I16: return 5;
    case DType::F16: return 7;
    case DType::BF16: return 8;
    case DType::I32: return 9;
    case DType::F32: return 11;
    case DType::F64: return 12;
    case DType::I64: return 13;
  }
  return 0;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses the header, rejecting duplicate keys at any depth (nlohmann would keep the last one).
ojson parse_header(const char* begin, const char* end, const std::string& path) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  ojson::parser_callback_t cb = [&](int, ojson::parse_event_t ev, ojson& parsed) {
    if (ev == ojson::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == ojson::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == ojson::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  ojson header;
  try {
    header = ojson::parse(begin, end, cb);
  } catch (const ojson::exception& e) {
    fail(ErrorCode::kFormat, path + ": header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) fail(ErrorCode::kFormat, path + ": duplicate key '" + duplicate + "' in header");
  if (!header.is_object()) fail(ErrorCode::kFormat, path + ": header is not a JSON object");
  return header;
}

}  // namespace

std::unique_ptr<TensorFile> open_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  const uint8_t* base = file->data();
  const uint64_t size = file->size();
  if (size < 8) fail(ErrorCode::kFormat, path + ": file too short for a safetensors header (" + std::to_string(size) + " bytes)");
  const uint64_t header_len = read_u64_le(base);
  if (header_len > kMaxHeaderBytes)
    fail(ErrorCode::kFormat, path + ": header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > size - 8)
    fail(ErrorCode::kFormat, path + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                                 std::to_string(size) + " bytes)");
  const char* hbegin = reinterpret_cast<const char*>(base + 8);
  ojson header = parse_header(hbegin, hbegin + header_len, path);

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  std::map<std::string, std::string> metadata;
  std::vector<TensorView> views;
  struct Range { uint64_t begin, end; size_t index; };
  std::vector<Range> ranges;

  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (info.is_null()) continue;  // the reference reader treats null as absent
      if (!info.is_object()) fail(ErrorCode::kFormat, path + ": __metadata__ is not an object");
      for (auto& [k, v] : info.items()) {
        if (!v.is_string()) fail(ErrorCode::kFormat, path + ": __metadata__ value for '" + k + "' is not a string");
        metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!info.is_object()) fail(ErrorCode::kFormat, where + ": entry is not an object");
    auto dt = info.find("dtype");
    auto sh = info.find("shape");
    auto off = info.find("data_offsets");
    if (dt == info.end() || !dt->is_string()) fail(ErrorCode::kFormat, where + ": missing or non-string 'dtype'");
    if (sh == info.end() || !sh->is_array()) fail(ErrorCode::kFormat, where + ": missing or non-array 'shape'");
    if (off == info.end() || !off->is_array() || off->size() != 2)
      fail(ErrorCode::kFormat, where + ": 'data_offsets' must be an array [begin, end]");

    TensorView v;
    v.name = name;
    v.dtype = parse_dtype(dt->get<std::string>(), where);
    // numel * element size, with every step checked so a huge shape cannot wrap around.
    uint64_t nbytes = dtype_size(v.dtype);
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(ErrorCode::kFormat, where + ": shape has a negative or non-integer dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(INT64_MAX) || __builtin_mul_overflow(nbytes, dim, &nbytes))
        fail(ErrorCode::kFormat, where + ": shape is too large");
      v.shape.push_back(int64_t(dim));
    }
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      fail(ErrorCode::kFormat, where + ": data_offsets must be non-negative integers");
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    std::string range = std::to_string(begin);  // built by appending: GCC 12 warns on "[" + string&&
    range.insert(0, 1, '[').append(", ").append(std::to_string(end)).append("]");
    if (begin > end) fail(ErrorCode::kFormat, where + ": data_offsets " + range + " are reversed");
    if (end > data_size)
      fail(ErrorCode::kFormat, where + ": data_offsets " + range + " exceed the data section (" + std::to_string(data_size) + " bytes)");
    if (end - begin != nbytes)
      fail(ErrorCode::kFormat, where + ": shape " + shape_str(v.shape) + " of " + dtype_name(v.dtype) + " needs " +
                                   std::to_string(nbytes) + " bytes but data_offsets " + range + " hold " +
                                   std::to_string(end - begin));
    v.nbytes = size_t(nbytes);
    v.data = base + data_start + begin;
    v.owner = file;  // a holder of the view keeps the mapping alive (e.g. an embedding table read per call)
    ranges.push_back({begin, end, views.size()});
    views.push_back(std::move(v));
  }

  // Like the reference reader: the tensors must tile the data section exactly (no overlap, no gap,
  // no trailing bytes), which also catches most corrupted offsets.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t pos = 0;
  for (const Range& r : ranges) {
    const std::string& name = views[r.index].name;
    if (r.begin < pos) fail(ErrorCode::kFormat, path + ": tensor '" + name + "' overlaps the previous tensor's data");
    if (r.begin > pos) fail(ErrorCode::kFormat, path + ": gap in the data section before tensor '" + name + "'");
    pos = r.end;
  }
  if (pos != data_size)
    fail(ErrorCode::kFormat, path + ": data section has " + std::to_string(data_size - pos) + " unused trailing bytes");

  std::vector<TensorView> ordered;
  ordered.reserve(views.size());
  for (const Range& r : ranges) ordered.push_back(std::move(views[r.index]));
  return std::make_unique<SafetensorsFile>(std::move(file), std::move(ordered), std::move(metadata));
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const auto& t : tensors) {
    const std::string where = path + ": tensor '" + t.name + "'";
    check(t.name != "__metadata__", ErrorCode::kInvalidArgument, where + ": reserved name");
    check(names.insert(t.name).second, ErrorCode::kInvalidArgument, where + ": duplicate name");
    uint64_t nbytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      check(d >= 0, ErrorCode::kInvalidArgument, where + ": negative dimension in shape " + shape_str(t.shape));
      check(!__builtin_mul_overflow(nbytes, uint64_t(d), &nbytes), ErrorCode::kInvalidArgument, where + ": shape too large");
    }
    check(nbytes == t.nbytes, ErrorCode::kInvalidArgument,
          where + ": shape " + shape_str(t.shape) + " needs " + std::to_string(nbytes) + " bytes, got " + std::to_string(t.nbytes));
    check(t.data != nullptr || t.nbytes == 0, ErrorCode::kInvalidArgument, where + ": no data");
  }

  std::vector<const TensorToWrite*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
    return ra != rb ? ra > rb : a->name < b->name;
  });

  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const TensorToWrite* t : order) {
    ojson entry = ojson::object();
    entry["dtype"] = dtype_name(t->dtype);
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + t->nbytes};
    header[t->name] = std::move(entry);
    offset += t->nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ojson::exception&) {
    fail(ErrorCode::kInvalidArgument, path + ": a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  AtomicFileWriter out(path);
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (const TensorToWrite* t : order) out.write(t->data, t->nbytes);
  out.commit();
}

}  // namespace sdpal
