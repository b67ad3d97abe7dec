// A restricted unpickler: it builds plain values (None, bool, int, float, str, bytes, tuple,
// list, dict) and never imports or calls anything. Globals, REDUCE/NEWOBJ and persistent ids
// are handed to hooks that decide what they mean (pickle_checkpoint.cpp gives torch's meaning
// to a short allowlist); anything not understood is an error naming the opcode or global.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sdpal {

// Values the hooks create (storages, tensors) derive from this.
struct PyExtension {
  virtual ~PyExtension() = default;
};

struct PyObject;
using PyRef = std::shared_ptr<PyObject>;

enum class PyKind { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kExtension };

struct PyObject {
  PyKind kind = PyKind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;                                // kStr (UTF-8), kBytes, kGlobal "module.name"
  std::vector<PyRef> items;                       // kTuple, kList
  std::vector<std::pair<PyRef, PyRef>> entries;   // kDict, in insertion order
  std::unordered_map<std::string, size_t> index;  // kDict: position of each str key
  std::shared_ptr<PyExtension> ext;               // kExtension
  int depth = 0;        // nesting depth, bounded so destruction cannot overflow the stack
  bool frozen = false;  // set once placed in a container: later mutation would allow cycles

  const PyObject* get(const std::string& key) const;  // kDict with a str key, else nullptr
};

const char* py_kind_name(PyKind k);

struct UnpickleHooks {
  // GLOBAL / STACK_GLOBAL: false rejects the file. The resulting object is a kGlobal.
  std::function<bool(const std::string& module, const std::string& name)> allow_global;
  // BINPERSID: the persistent id (any value) to the object it stands for.
  std::function<PyRef(const PyRef& pid)> persistent_load;
  // REDUCE and NEWOBJ: callable (always an allowed kGlobal) applied to an args tuple.
  std::function<PyRef(const PyObject& callable, const PyObject& args)> call;
};

// Runs the pickle in data[0, size) up to STOP. Throws Error(kFormat) with `where` and the byte
// offset for malformed data or a global the hooks reject, and Error(kUnsupported) for opcodes
// outside the binary subset of protocols 2-5 (no INST/OBJ/EXT, no text protocol 0 opcodes).
PyRef unpickle(const uint8_t* data, size_t size, const UnpickleHooks& hooks, const std::string& where);

}  // namespace sdpal
