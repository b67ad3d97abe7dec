// A read-only tree of files addressed by relative '/'-separated paths: a folder on disk, or a zip
// archive (Apple's release zips of .mlmodelc folders). Model readers use it so the same code
// finds and reads resources in both.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdpal::coreml {

class ResourceTree {
 public:
  struct Bytes {
    const uint8_t* data = nullptr;  // aligned to at least 16 bytes
    size_t size = 0;
    std::shared_ptr<const void> owner;  // keeps the bytes alive
  };

  virtual ~ResourceTree() = default;
  // A folder, or a file that is a zip archive. Throws Error(kIo) if neither can be opened.
  static std::shared_ptr<const ResourceTree> open(const std::string& path);

  const std::string& root() const { return root_; }
  virtual bool is_zip() const = 0;
  virtual bool is_file(const std::string& rel) const = 0;
  virtual bool is_dir(const std::string& rel) const = 0;  // "" is the root
  // Names of the direct children of a folder, sorted; empty if it is not a folder.
  virtual std::vector<std::string> list(const std::string& rel_dir) const = 0;
  // The whole file: memory-mapped (folder), a view into the mapping (stored zip entry) or inflated.
  // Throws Error(kIo) if absent, Error(kFormat) for a corrupt zip entry.
  virtual Bytes read(const std::string& rel) const = 0;
  // For messages: "root/rel" or "archive.zip:rel".
  virtual std::string display(const std::string& rel) const = 0;

  static std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : name.empty() ? dir : dir + "/" + name;
  }

 protected:
  explicit ResourceTree(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace sdpal::coreml
