// A small command-line parser: --long VALUE / --long=VALUE / -s VALUE options, flags and positionals.
// Errors name the argument and become exit code 2.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sdpal::app {

class Args {
 public:
  // value_options / flags: accepted names including dashes, e.g. {"-m", "--model"} as aliases via `alias`.
  Args(int argc, char** argv, int first, const std::set<std::string>& value_options,
       const std::set<std::string>& flags, const std::map<std::string, std::string>& aliases);
  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  uint64_t u64(const std::string& name, uint64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

// Exit codes (documented in README and `sdpal --help`).
enum ExitCode { kExitOk = 0, kExitInternal = 1, kExitUsage = 2, kExitIo = 3, kExitModel = 4, kExitCancelled = 5,
                kExitUnsupported = 6 };

int run_generate(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_bench(int argc, char** argv);
std::string default_model_path();

}  // namespace sdpal::app
