#include "args.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace sdpal::app {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& value_options,
           const std::set<std::string>& flags, const std::map<std::string, std::string>& aliases) {
  auto canonical = [&](const std::string& n) {
    auto it = aliases.find(n);
    return it == aliases.end() ? n : it->second;
  };
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(uint8_t(a[1])) || a[1] == '.'))) {
      std::string name = a, value;
      bool inline_value = false;
      size_t eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      name = canonical(name);
      if (flags.count(name)) {
        check(!inline_value, ErrorCode::kInvalidArgument, name + " takes no value");
        flags_.insert(name);
      } else if (value_options.count(name)) {
        if (!inline_value) {
          check(i + 1 < argc, ErrorCode::kInvalidArgument, name + " needs a value");
          value = argv[++i];
        }
        values_[name] = value;
      } else {
        fail(ErrorCode::kInvalidArgument, "unknown option " + name + " (see --help)");
      }
    } else {
      positional_.push_back(a);
    }
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  check(errno == 0 && end && *end == 0 && !it->second.empty(), ErrorCode::kInvalidArgument,
        name + ": '" + it->second + "' is not an integer");
  check(v >= lo && v <= hi, ErrorCode::kInvalidArgument,
        name + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " + it->second + ")");
  return v;
}

uint64_t Args::u64(const std::string& name, uint64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  errno = 0;
  char* end = nullptr;
  const std::string& s = it->second;
  check(!s.empty() && s[0] != '-', ErrorCode::kInvalidArgument, name + ": '" + s + "' is not a non-negative integer");
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  check(errno == 0 && end && *end == 0, ErrorCode::kInvalidArgument,
        name + ": '" + s + "' is not an integer in [0, 2^64)");
  return v;
}

double Args::number(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  check(end && *end == 0 && !it->second.empty(), ErrorCode::kInvalidArgument,
        name + ": '" + it->second + "' is not a number");
  check(std::isfinite(v), ErrorCode::kInvalidArgument, name + " must be finite (got " + it->second + ")");
  return v;
}

}  // namespace sdpal::app
