#include "io/coreml/resource_tree.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/zip_archive.h"

namespace sdpal::coreml {

namespace {

namespace fs = std::filesystem;

class FolderTree final : public ResourceTree {
 public:
  explicit FolderTree(std::string root) : ResourceTree(std::move(root)) {}
  bool is_zip() const override { return false; }
  bool is_file(const std::string& rel) const override {
    std::error_code ec;
    return ZipArchive::is_safe_path(rel) && fs::is_regular_file(path(rel), ec);
  }
  bool is_dir(const std::string& rel) const override {
    std::error_code ec;
    return (rel.empty() || ZipArchive::is_safe_path(rel)) && fs::is_directory(path(rel), ec);
  }
  std::vector<std::string> list(const std::string& rel) const override {
    std::vector<std::string> r;
    if (!is_dir(rel)) return r;
    std::error_code ec;
    for (fs::directory_iterator it(path(rel), ec), end; !ec && it != end; it.increment(ec))
      r.push_back(it->path().filename().string());
    std::sort(r.begin(), r.end());
    return r;
  }
  Bytes read(const std::string& rel) const override {
    if (!ZipArchive::is_safe_path(rel)) fail(ErrorCode::kIo, "unsafe resource path '" + rel + "' under " + root_);
    auto f = MappedFile::open(path(rel));
    return {f->data(), f->size(), f};
  }
  std::string display(const std::string& rel) const override { return join(root_, rel); }

 private:
  std::string path(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
};

class ZipTree final : public ResourceTree {
 public:
  explicit ZipTree(const std::string& path) : ResourceTree(path), zip_(std::make_shared<ZipArchive>(MappedFile::open(path))) {
    for (const auto& e : zip_->entries()) {
      std::string name = e.name;
      const bool dir = !name.empty() && name.back() == '/';
      if (dir) name.pop_back();
      if (name.empty() || !ZipArchive::is_safe_path(name)) continue;  // never addressable
      if (!dir) files_.emplace(name, &e);
      else children_.try_emplace(name);
      // Every parent folder exists implicitly, listed in the archive or not.
      std::string parent;
      for (size_t start = 0;;) {
        const size_t slash = name.find('/', start);
        const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        children_[parent].insert(part);
        if (slash == std::string::npos) break;
        parent = name.substr(0, slash);
        start = slash + 1;
      }
    }
  }
  bool is_zip() const override { return true; }
  bool is_file(const std::string& rel) const override { return files_.count(rel) != 0; }
  bool is_dir(const std::string& rel) const override { return children_.count(rel) != 0; }
  std::vector<std::string> list(const std::string& rel) const override {
    auto it = children_.find(rel);
    if (it == children_.end()) return {};
    return {it->second.begin(), it->second.end()};
  }
  Bytes read(const std::string& rel) const override {
    auto it = files_.find(rel);
    if (it == files_.end()) fail(ErrorCode::kIo, display(rel) + ": no such entry");
    // CRC-checking a stored multi-GB weight file would read it all up front; inflated data is always checked.
    ZipBytes b = zip_->read(*it->second, /*verify_crc=*/it->second->uncompressed_size < (64u << 20));
    if (reinterpret_cast<uintptr_t>(b.data) % 16 != 0) {  // a stored entry at an odd offset: copy to align
      auto copy = std::make_shared<std::vector<uint8_t>>(b.data, b.data + b.size);
      return {copy->data(), copy->size(), copy};
    }
    if (b.owned) return {b.data, b.size, b.owned};
    return {b.data, b.size, zip_};  // a view into the mapping the archive keeps
  }
  std::string display(const std::string& rel) const override { return root_ + ":" + rel; }

 private:
  std::shared_ptr<ZipArchive> zip_;
  std::map<std::string, const ZipEntry*> files_;
  std::map<std::string, std::set<std::string>> children_;
};

}  // namespace

std::shared_ptr<const ResourceTree> ResourceTree::open(const std::string& path) {
  std::error_code ec;
  std::string root = path;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (fs::is_directory(root, ec)) return std::make_shared<FolderTree>(root);
  if (!fs::is_regular_file(root, ec)) fail(ErrorCode::kIo, "'" + path + "' is neither a folder nor a zip archive");
  {
    auto f = MappedFile::open(root);
    if (!ZipArchive::looks_like_zip(f->data(), f->size()))
      fail(ErrorCode::kIo, "'" + path + "' is neither a folder nor a zip archive");
  }
  return std::make_shared<ZipTree>(root);
}

}  // namespace sdpal::coreml
