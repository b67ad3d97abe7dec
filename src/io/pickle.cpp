#include "io/pickle.h"

#include <cstring>

#include "core/error.h"

namespace sdpal {

const PyObject* PyObject::get(const std::string& key) const {
  if (kind != PyKind::kDict) return nullptr;
  auto it = index.find(key);
  return it == index.end() ? nullptr : entries[it->second].second.get();
}

const char* py_kind_name(PyKind k) {
  switch (k) {
    case PyKind::kNone: return "None";
    case PyKind::kBool: return "bool";
    case PyKind::kInt: return "int";
    case PyKind::kFloat: return "float";
    case PyKind::kStr: return "str";
    case PyKind::kBytes: return "bytes";
    case PyKind::kTuple: return "tuple";
    case PyKind::kList: return "list";
    case PyKind::kDict: return "dict";
    case PyKind::kGlobal: return "global";
    case PyKind::kExtension: return "object";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 256;
constexpr size_t kMaxMemo = size_t(1) << 24;

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const UnpickleHooks& hooks, const std::string& where)
      : p_(data), size_(size), hooks_(hooks), where_(where) {}

  PyRef run() {
    for (;;) {
      op_pos_ = pos_;
      const uint8_t op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t proto = byte();
          if (proto > 5) error(ErrorCode::kUnsupported, "pickle protocol " + std::to_string(proto));
          break;
        }
        case 0x95: skip(8); break;  // FRAME: framing is transparent to a reader of the whole buffer
        case '.': {                 // STOP
          if (stack_.size() != 1 || !marks_.empty()) error(ErrorCode::kFormat, "stack not empty at STOP");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case '0': pop(); break;                            // POP
        case '1': pop_mark(); break;                       // POP_MARK
        case '2': push(top()); break;                      // DUP
        case 'N': push(make(PyKind::kNone)); break;
        case 0x88: push(make_bool(true)); break;   // NEWTRUE
        case 0x89: push(make_bool(false)); break;  // NEWFALSE
        case 'J': push(make_int(int32_t(uint32_t(le(4))))); break;  // BININT
        case 'K': push(make_int(int64_t(le(1)))); break;            // BININT1
        case 'M': push(make_int(int64_t(le(2)))); break;            // BININT2
        case 0x8a: push(make_long(le(1))); break;                   // LONG1
        case 0x8b: push(make_long(le(4))); break;                   // LONG4
        case 'G': {                                                 // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = bits << 8 | byte();
          auto o = make(PyKind::kFloat);
          std::memcpy(&o->real, &bits, 8);
          push(o);
          break;
        }
        case 'X': push(make_str(PyKind::kStr, le(4))); break;     // BINUNICODE
        case 0x8c: push(make_str(PyKind::kStr, le(1))); break;    // SHORT_BINUNICODE
        case 0x8d: push(make_str(PyKind::kStr, le(8))); break;    // BINUNICODE8
        case 'T': push(make_str(PyKind::kStr, le(4))); break;     // BINSTRING (Python 2 str)
        case 'U': push(make_str(PyKind::kStr, le(1))); break;     // SHORT_BINSTRING
        case 'B': push(make_str(PyKind::kBytes, le(4))); break;   // BINBYTES
        case 'C': push(make_str(PyKind::kBytes, le(1))); break;   // SHORT_BINBYTES
        case 0x8e: push(make_str(PyKind::kBytes, le(8))); break;  // BINBYTES8
        case ')': push(make(PyKind::kTuple)); break;              // EMPTY_TUPLE
        case 't': push(make_container(PyKind::kTuple, pop_mark())); break;  // TUPLE
        case 0x85: push(make_container(PyKind::kTuple, pop_n(1))); break;   // TUPLE1
        case 0x86: push(make_container(PyKind::kTuple, pop_n(2))); break;   // TUPLE2
        case 0x87: push(make_container(PyKind::kTuple, pop_n(3))); break;   // TUPLE3
        case ']': push(make(PyKind::kList)); break;                         // EMPTY_LIST
        case 'l': push(make_container(PyKind::kList, pop_mark())); break;   // LIST
        case 'a': {                                                         // APPEND
          PyRef v = pop();
          append(top(), {v});
          break;
        }
        case 'e': {  // APPENDS
          std::vector<PyRef> vs = pop_mark();
          append(top(), vs);
          break;
        }
        case '}': push(make(PyKind::kDict)); break;  // EMPTY_DICT
        case 'd': {                                  // DICT
          std::vector<PyRef> kv = pop_mark();
          PyRef d = make(PyKind::kDict);
          set_items(d, kv);
          push(d);
          break;
        }
        case 's': {  // SETITEM
          PyRef v = pop();
          PyRef k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<PyRef> kv = pop_mark();
          set_items(top(), kv);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line();
          std::string name = line();
          push(make_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PyRef name = pop();
          PyRef module = pop();
          if (module->kind != PyKind::kStr || name->kind != PyKind::kStr)
            error(ErrorCode::kFormat, "STACK_GLOBAL needs two strings");
          push(make_global(module->str, name->str));
          break;
        }
        case 'R': {  // REDUCE
          PyRef args = pop();
          PyRef callable = pop();
          push(call(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
          PyRef args = pop();
          PyRef cls = pop();
          push(call(cls, args));
          break;
        }
        case 'b': {  // BUILD: setstate; plain values keep no attributes, so the state is dropped
          pop();
          PyRef obj = top();
          if (obj->frozen) error(ErrorCode::kFormat, "BUILD on an object already placed in a container");
          break;
        }
        case 'Q': {  // BINPERSID
          PyRef pid = pop();
          if (!hooks_.persistent_load) error(ErrorCode::kUnsupported, "persistent id");
          push(checked(hooks_.persistent_load(pid)));
          break;
        }
        case 'q': memo_put(le(1)); break;      // BINPUT
        case 'r': memo_put(le(4)); break;      // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
        case 'h': memo_get(le(1)); break;      // BINGET
        case 'j': memo_get(le(4)); break;      // LONG_BINGET
        default: {
          char buf[64];
          if (op >= 0x20 && op < 0x7f)
            std::snprintf(buf, sizeof buf, "pickle opcode 0x%02x ('%c')", op, op);
          else
            std::snprintf(buf, sizeof buf, "pickle opcode 0x%02x", op);
          error(ErrorCode::kUnsupported, std::string(buf) + " is not supported by the restricted unpickler");
        }
      }
    }
  }

 private:
  [[noreturn]] void error(ErrorCode code, const std::string& msg) const {
    fail(code, where_ + ": " + msg + " (pickle offset " + std::to_string(op_pos_) + ")");
  }

  uint8_t byte() {
    if (pos_ >= size_) error(ErrorCode::kFormat, "truncated pickle");
    return p_[pos_++];
  }
  void skip(size_t n) {
    if (n > size_ - pos_) error(ErrorCode::kFormat, "truncated pickle");
    pos_ += n;
  }
  uint64_t le(int n) {
    if (size_t(n) > size_ - pos_) error(ErrorCode::kFormat, "truncated pickle");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = v << 8 | p_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (!nl) error(ErrorCode::kFormat, "truncated pickle");
    const size_t end = size_t(static_cast<const uint8_t*>(nl) - p_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), end - pos_);
    pos_ = end + 1;
    return s;
  }

  PyRef make(PyKind k) {
    auto o = std::make_shared<PyObject>();
    o->kind = k;
    return o;
  }
  PyRef make_bool(bool b) {
    auto o = make(PyKind::kBool);
    o->boolean = b;
    return o;
  }
  PyRef make_int(int64_t v) {
    auto o = make(PyKind::kInt);
    o->integer = v;
    return o;
  }
  // LONG1/LONG4: little-endian two's complement of n bytes; only 64-bit values are accepted.
  PyRef make_long(uint64_t n) {
    if (n > 8) error(ErrorCode::kUnsupported, "integer wider than 64 bits");
    if (n == 0) return make_int(0);
    uint64_t v = le(int(n));
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return make_int(int64_t(v));
  }
  PyRef make_str(PyKind k, uint64_t n) {
    if (n > size_ - pos_) error(ErrorCode::kFormat, "string runs past the end of the pickle");
    auto o = make(k);
    o->str.assign(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return o;
  }
  PyRef make_global(const std::string& module, const std::string& name) {
    if (!hooks_.allow_global || !hooks_.allow_global(module, name))
      error(ErrorCode::kFormat, "global '" + module + "." + name + "' is not allowed (the file may try to run code)");
    auto o = make(PyKind::kGlobal);
    o->str = module + "." + name;
    return o;
  }
  PyRef make_container(PyKind k, std::vector<PyRef> items) {
    auto o = make(k);
    for (const PyRef& it : items) adopt(*o, it);
    o->items = std::move(items);
    return o;
  }
  // Records that `child` now lives in `parent`: freezes it and tracks the depth.
  void adopt(PyObject& parent, const PyRef& child) {
    if (child.get() == &parent) error(ErrorCode::kFormat, "container contains itself");
    child->frozen = true;
    if (child->depth + 1 > kMaxDepth) error(ErrorCode::kFormat, "objects nested too deeply");
    parent.depth = std::max(parent.depth, child->depth + 1);
  }
  void append(const PyRef& list, const std::vector<PyRef>& vs) {
    if (list->kind != PyKind::kList) error(ErrorCode::kFormat, std::string("APPEND to a ") + py_kind_name(list->kind));
    if (list->frozen) error(ErrorCode::kFormat, "APPEND to a list already placed in a container");
    for (const PyRef& v : vs) adopt(*list, v);
    list->items.insert(list->items.end(), vs.begin(), vs.end());
  }
  void set_items(const PyRef& dict, const std::vector<PyRef>& kv) {
    if (dict->kind != PyKind::kDict) error(ErrorCode::kFormat, std::string("SETITEM on a ") + py_kind_name(dict->kind));
    if (dict->frozen) error(ErrorCode::kFormat, "SETITEM on a dict already placed in a container");
    if (kv.size() % 2) error(ErrorCode::kFormat, "odd number of items for a dict");
    for (size_t i = 0; i < kv.size(); i += 2) {
      adopt(*dict, kv[i]);
      adopt(*dict, kv[i + 1]);
      if (kv[i]->kind == PyKind::kStr) {  // Python semantics: a repeated key replaces the value
        auto [it, inserted] = dict->index.emplace(kv[i]->str, dict->entries.size());
        if (!inserted) {
          dict->entries[it->second].second = kv[i + 1];
          continue;
        }
      }
      dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
  }
  PyRef call(const PyRef& callable, const PyRef& args) {
    if (callable->kind != PyKind::kGlobal) error(ErrorCode::kFormat, std::string("call of a ") + py_kind_name(callable->kind));
    if (args->kind != PyKind::kTuple) error(ErrorCode::kFormat, "call of '" + callable->str + "' without an argument tuple");
    if (!hooks_.call) error(ErrorCode::kFormat, "call of '" + callable->str + "' is not allowed");
    return checked(hooks_.call(*callable, *args));
  }
  PyRef checked(PyRef o) {
    if (!o) error(ErrorCode::kInternal, "hook returned no object");
    return o;
  }

  void push(PyRef o) { stack_.push_back(std::move(o)); }
  PyRef& top() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) error(ErrorCode::kFormat, "stack underflow");
    return stack_.back();
  }
  PyRef pop() {
    PyRef o = top();
    stack_.pop_back();
    return o;
  }
  std::vector<PyRef> pop_n(size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) error(ErrorCode::kFormat, "stack underflow");
    std::vector<PyRef> out(stack_.end() - n, stack_.end());
    stack_.resize(stack_.size() - n);
    return out;
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) error(ErrorCode::kFormat, "no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> out(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(uint64_t key) {
    // Picklers number memo slots sequentially, so an index beyond the bytes read so far (or the
    // cap) is hostile and would only serve to allocate a huge memo.
    if (key >= kMaxMemo || key > pos_) error(ErrorCode::kFormat, "memo index " + std::to_string(key) + " too large");
    if (key >= memo_.size()) memo_.resize(size_t(key) + 1);
    memo_[size_t(key)] = top();
  }
  void memo_get(uint64_t key) {
    if (key >= memo_.size() || !memo_[size_t(key)]) error(ErrorCode::kFormat, "memo index " + std::to_string(key) + " not set");
    push(memo_[size_t(key)]);
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  const UnpickleHooks& hooks_;
  const std::string& where_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::vector<PyRef> memo_;
};

}  // namespace

PyRef unpickle(const uint8_t* data, size_t size, const UnpickleHooks& hooks, const std::string& where) {
  return Unpickler(data, size, hooks, where).run();
}

}  // namespace sdpal
