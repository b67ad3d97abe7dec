#include "io/coreml/blob_refs.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "io/coreml/blob_storage.h"

namespace sdpal::coreml {

namespace {

void collect_value(const MilValue& v, const std::string& what, std::vector<BlobRef>& out) {
  if (v.kind == MilValue::Kind::kBlob) {
    BlobRef r;
    r.path = v.blob.path;
    r.offset = v.blob.offset;
    r.dtype = v.type.dtype;
    const int64_t n = v.type.numel();
    if (n < 0) fail(ErrorCode::kFormat, what + ": weight-file value without a static shape: " + v.type.str());
    r.numel = uint64_t(n);
    r.nbytes = mil_packed_nbytes(v.type.dtype, r.numel);
    r.what = what;
    out.push_back(std::move(r));
    return;
  }
  for (const auto& item : v.items) collect_value(item, what, out);
}

void collect_block(const MilBlock& b, std::vector<BlobRef>& out) {
  for (const auto& op : b.ops) {
    const std::string where = "op '" + op.name() + "' (" + op.type + ")";
    for (const auto& a : op.inputs)
      for (const auto& bind : a.bindings)
        if (bind.value) collect_value(*bind.value, where + "." + a.name, out);
    for (const auto& a : op.attributes) collect_value(a.value, where + "." + a.name, out);
    for (const auto& nested : op.blocks) collect_block(nested, out);
  }
}

}  // namespace

std::vector<BlobRef> collect_blob_refs(const MilProgram& program) {
  std::vector<BlobRef> out;
  for (const auto& a : program.attributes) collect_value(a.value, "program attribute " + a.name, out);
  for (const auto& f : program.functions) {
    for (const auto& a : f.attributes) collect_value(a.value, "function '" + f.name + "' attribute " + a.name, out);
    collect_block(f.block, out);
  }
  return out;
}

std::vector<BlobLayout> plan_blob_layouts(const std::vector<BlobRef>& refs) {
  std::map<std::string, std::map<uint64_t, BlobSlot>> files;
  for (const auto& r : refs) {
    auto& slots = files[r.path];
    auto [it, fresh] = slots.try_emplace(r.offset);
    BlobSlot& s = it->second;
    if (fresh) {
      s.offset = r.offset;
      s.dtype = r.dtype;
      s.numel = r.numel;
      s.nbytes = r.nbytes;
      s.what = r.what;
    } else if (s.dtype != r.dtype || s.numel != r.numel) {
      fail(ErrorCode::kFormat, r.path + " offset " + std::to_string(r.offset) + ": " + s.what + " reads " +
                                   std::to_string(s.numel) + " " + mil_dtype_name(s.dtype) + " but " + r.what + " reads " +
                                   std::to_string(r.numel) + " " + mil_dtype_name(r.dtype));
    }
    ++s.refs;
  }
  std::vector<BlobLayout> out;
  for (auto& [path, slots] : files) {
    BlobLayout l;
    l.path = path;
    uint64_t end = kBlobHeaderSize;  // first free byte
    const BlobSlot* prev = nullptr;
    for (auto& [off, s] : slots) {
      if (off < end)
        fail(ErrorCode::kFormat, path + ": blob of " + s.what + " at offset " + std::to_string(off) +
                                     (prev ? " overlaps " + prev->what + " (which ends at " + std::to_string(end) + ")"
                                           : " overlaps the 64-byte file header"));
      if (off > (uint64_t(1) << 62) || s.nbytes > (uint64_t(1) << 62)) fail(ErrorCode::kFormat, path + ": offset or size too large for " + s.what);
      end = off + kBlobMetadataSize + s.nbytes;
      l.slots.push_back(s);
      prev = &l.slots.back();
    }
    l.min_file_size = end;  // Apple's writer does not pad after the last blob
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace sdpal::coreml
