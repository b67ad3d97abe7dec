#include "io/pickle_checkpoint.h"

#include <iterator>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "io/pickle.h"
#include "io/zip_archive.h"

namespace sdpal {

namespace {

struct StorageRef : PyExtension {
  DType dtype = DType::F32;
  std::string key;
  int64_t numel = 0;
};

struct TensorRef : PyExtension {
  std::shared_ptr<StorageRef> storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

struct OpaqueValue : PyExtension {};  // result of calling an inert global; never inspected

const std::map<std::string, DType>& storage_types() {
  static const std::map<std::string, DType> kTypes = {
      {"torch.FloatStorage", DType::F32},   {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64},  {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},   {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::BOOL}};
  return kTypes;
}

// Globals that build tensors or dicts. Everything else in a checkpoint is refused.
const char* const kCallables[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                  "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
                                  "torch._utils._rebuild_parameter_with_state"};

// Harmless types Lightning checkpoints keep next to the weights (training step counters,
// callback state). They are allowed so such files open, and turned into opaque values that
// nothing reads; they are never called either.
const char* const kInert[] = {"numpy.core.multiarray.scalar", "numpy.dtype", "_codecs.encode",
                              "torch.torch_version.TorchVersion", "argparse.Namespace",
                              "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"};

bool in(const char* const* list, size_t n, const std::string& s) {
  for (size_t i = 0; i < n; ++i)
    if (s == list[i]) return true;
  return false;
}

class CheckpointFile : public TensorFile {
 public:
  CheckpointFile(std::string path, std::vector<TensorView> tensors, std::vector<ZipBytes> keep_alive,
                 std::shared_ptr<const MappedFile> file)
      : path_(std::move(path)), tensors_(std::move(tensors)), keep_alive_(std::move(keep_alive)), file_(std::move(file)) {
    for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  }
  const std::string& path() const override { return path_; }
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* find(const std::string& name) const override {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }

 private:
  std::string path_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<ZipBytes> keep_alive_;  // inflated storages
  std::shared_ptr<const MappedFile> file_;
};

int64_t as_int(const PyObject& o, const std::string& what, const std::string& where) {
  if (o.kind == PyKind::kInt) return o.integer;
  if (o.kind == PyKind::kBool) return o.boolean;
  fail(ErrorCode::kFormat, where + ": " + what + " is a " + py_kind_name(o.kind) + ", expected an int");
}

std::vector<int64_t> as_int_tuple(const PyObject& o, const std::string& what, const std::string& where) {
  if (o.kind != PyKind::kTuple && o.kind != PyKind::kList)
    fail(ErrorCode::kFormat, where + ": " + what + " is a " + py_kind_name(o.kind) + ", expected a tuple");
  std::vector<int64_t> v;
  for (const PyRef& i : o.items) v.push_back(as_int(*i, what, where));
  return v;
}

// The torch-specific meaning of the allowlisted globals and persistent ids.
class TorchHooks {
 public:
  explicit TorchHooks(const std::string& where) : where_(where) {}

  UnpickleHooks hooks() {
    UnpickleHooks h;
    h.allow_global = [](const std::string& module, const std::string& name) {
      const std::string g = module + "." + name;
      return storage_types().count(g) || in(kCallables, std::size(kCallables), g) || in(kInert, std::size(kInert), g);
    };
    h.persistent_load = [this](const PyRef& pid) { return persistent_load(*pid); };
    h.call = [this](const PyObject& callable, const PyObject& args) { return call(callable, args); };
    return h;
  }

 private:
  static PyRef wrap(std::shared_ptr<PyExtension> ext) {
    auto o = std::make_shared<PyObject>();
    o->kind = PyKind::kExtension;
    o->ext = std::move(ext);
    return o;
  }

  // ('storage', <storage class>, key, location, numel) as torch.save writes it.
  PyRef persistent_load(const PyObject& pid) {
    const auto& t = pid.items;
    if (pid.kind != PyKind::kTuple || t.size() != 5 || t[0]->kind != PyKind::kStr || t[0]->str != "storage" ||
        t[1]->kind != PyKind::kGlobal || t[2]->kind != PyKind::kStr)
      fail(ErrorCode::kFormat, where_ + ": unexpected persistent id (not a torch storage)");
    auto type = storage_types().find(t[1]->str);
    if (type == storage_types().end())
      fail(ErrorCode::kFormat, where_ + ": '" + t[1]->str + "' is not a storage type");
    const int64_t numel = as_int(*t[4], "storage size", where_);
    if (numel < 0) fail(ErrorCode::kFormat, where_ + ": negative storage size");
    auto& s = storages_[t[2]->str];
    if (!s) {
      s = std::make_shared<StorageRef>();
      s->dtype = type->second;
      s->key = t[2]->str;
      s->numel = numel;
    } else if (s->dtype != type->second || s->numel != numel) {
      fail(ErrorCode::kUnsupported, where_ + ": storage '" + s->key + "' is used with different types or sizes");
    }
    return wrap(s);
  }

  PyRef call(const PyObject& callable, const PyObject& args) {
    const std::string& f = callable.str;
    const auto& a = args.items;
    if (f == "collections.OrderedDict") {
      if (!a.empty()) fail(ErrorCode::kFormat, where_ + ": OrderedDict called with arguments");
      auto d = std::make_shared<PyObject>();
      d->kind = PyKind::kDict;
      return d;
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
      if (a.size() < 4) fail(ErrorCode::kFormat, where_ + ": " + f + " with too few arguments");
      auto storage = a[0]->kind == PyKind::kExtension ? std::dynamic_pointer_cast<StorageRef>(a[0]->ext) : nullptr;
      if (!storage) fail(ErrorCode::kFormat, where_ + ": " + f + " without a storage");
      auto t = std::make_shared<TensorRef>();
      t->storage = storage;
      t->offset = as_int(*a[1], "storage offset", where_);
      t->size = as_int_tuple(*a[2], "tensor size", where_);
      t->stride = as_int_tuple(*a[3], "tensor stride", where_);
      return wrap(t);
    }
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != PyKind::kExtension || !std::dynamic_pointer_cast<TensorRef>(a[0]->ext))
        fail(ErrorCode::kFormat, where_ + ": " + f + " without a tensor");
      return a[0];
    }
    if (in(kInert, std::size(kInert), f)) return wrap(std::make_shared<OpaqueValue>());
    fail(ErrorCode::kFormat, where_ + ": call of '" + f + "' is not allowed");
  }

  const std::string& where_;
  std::map<std::string, std::shared_ptr<StorageRef>> storages_;
};

// Validates one tensor against its storage and returns the view.
TensorView make_view(const std::string& path, const std::string& name, const TensorRef& t, const ZipBytes& bytes) {
  const std::string where = path + ": tensor '" + name + "'";
  TensorView v;
  v.name = name;
  v.dtype = t.storage->dtype;
  v.shape = t.size;
  if (t.size.size() != t.stride.size()) fail(ErrorCode::kFormat, where + ": size and stride ranks differ");
  const uint64_t esize = dtype_size(v.dtype);
  uint64_t numel = 1;
  for (int64_t d : t.size) {
    if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel)) fail(ErrorCode::kFormat, where + ": invalid size " + shape_str(t.size));
  }
  // Row-major contiguous: every dimension longer than 1 has the stride of the dims after it.
  uint64_t expect = 1;
  for (size_t i = t.size.size(); numel > 0 && i-- > 0;) {
    if (t.size[i] != 1 && uint64_t(t.stride[i]) != expect)
      fail(ErrorCode::kFormat, where + ": non-contiguous tensor (size " + shape_str(t.size) + ", stride " +
                                   shape_str(t.stride) + "); save it with .contiguous()");
    expect *= uint64_t(t.size[i]);
  }
  const uint64_t storage_numel = uint64_t(t.storage->numel);
  if (t.offset < 0 || uint64_t(t.offset) > storage_numel || numel > storage_numel - uint64_t(t.offset))
    fail(ErrorCode::kFormat, where + ": storage offset " + std::to_string(t.offset) + " + " + std::to_string(numel) +
                                 " elements exceed storage '" + t.storage->key + "' (" + std::to_string(storage_numel) + ")");
  v.data = bytes.data + uint64_t(t.offset) * esize;
  v.nbytes = size_t(numel * esize);
  return v;
}

}  // namespace

std::unique_ptr<TensorFile> open_pickle_checkpoint(const std::string& path, bool verify_crc) {
  auto file = MappedFile::open(path);
  if (!ZipArchive::looks_like_zip(file->data(), file->size())) {
    if (file->size() >= 2 && file->data()[0] == 0x80 && file->data()[1] <= 5)
      fail(ErrorCode::kUnsupported, path + ": legacy (pre-1.6, non-zip) torch format is not supported; "
                                           "re-save it with a current torch.save or convert it to safetensors");
    fail(ErrorCode::kFormat, path + ": not a torch checkpoint (zip archive expected)");
  }
  ZipArchive zip(file);
  // torch names every entry "<prefix>/..." with one prefix (the saved file's stem or "archive").
  if (zip.entries().empty()) fail(ErrorCode::kFormat, path + ": empty archive");
  const std::string& first = zip.entries().front().name;
  const std::string prefix = first.substr(0, first.find('/') + 1);
  const ZipEntry* pkl = zip.find(prefix + "data.pkl");
  if (prefix.empty() || !pkl) fail(ErrorCode::kFormat, path + ": no data.pkl (not a torch checkpoint)");
  if (const ZipEntry* order = zip.find(prefix + "byteorder")) {
    ZipBytes b = zip.read(*order);
    if (std::string(reinterpret_cast<const char*>(b.data), b.size) != "little")
      fail(ErrorCode::kUnsupported, path + ": big-endian checkpoints are not supported");
  }

  ZipBytes pickle = zip.read(*pkl);
  const std::string where = path + " (" + pkl->name + ")";
  TorchHooks torch_hooks(where);
  PyRef root = unpickle(pickle.data, pickle.size, torch_hooks.hooks(), where);
  if (root->kind != PyKind::kDict) fail(ErrorCode::kFormat, path + ": top-level object is a " + std::string(py_kind_name(root->kind)) + ", expected a dict");
  const PyObject* state = root->get("state_dict");
  if (!state || state->kind != PyKind::kDict) state = root.get();

  std::map<std::string, ZipBytes> storages;  // loaded once each, shared by views
  std::vector<TensorView> views;
  for (const auto& [key, value] : state->entries) {
    if (key->kind != PyKind::kStr || value->kind != PyKind::kExtension) continue;
    auto t = std::dynamic_pointer_cast<TensorRef>(value->ext);
    if (!t) continue;
    auto it = storages.find(t->storage->key);
    if (it == storages.end()) {
      const std::string entry_name = prefix + "data/" + t->storage->key;
      const ZipEntry* e = zip.find(entry_name);
      if (!e) fail(ErrorCode::kFormat, path + ": tensor '" + key->str + "': storage entry '" + entry_name + "' is missing");
      ZipBytes bytes = zip.read(*e, verify_crc);
      const uint64_t want = uint64_t(t->storage->numel) * dtype_size(t->storage->dtype);
      if (uint64_t(t->storage->numel) > (uint64_t(1) << 60) || bytes.size != want)
        fail(ErrorCode::kFormat, path + ": storage '" + entry_name + "' has " + std::to_string(bytes.size) +
                                     " bytes, expected " + std::to_string(t->storage->numel) + " x " +
                                     dtype_name(t->storage->dtype));
      it = storages.emplace(t->storage->key, std::move(bytes)).first;
    }
    views.push_back(make_view(path, key->str, *t, it->second));
  }
  std::vector<ZipBytes> keep;
  for (auto& [k, b] : storages)
    if (b.owned) keep.push_back(std::move(b));
  return std::make_unique<CheckpointFile>(path, std::move(views), std::move(keep), zip.file());
}

}  // namespace sdpal
