// `sdpal tokenize`: the 77 token ids of each prompt, one prompt per line.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "args.h"
#include "model/diffusers_folder.h"
#include "core/error.h"
#include "model/tokenizer.h"

namespace sdpal::app {

int run_tokenize(int argc, char** argv) {
  Args a(argc, argv, 2, {"--model", "--file", "--vocab"}, {"--help", "--tokens"},
         {{"-m", "--model"}, {"-f", "--file"}, {"-h", "--help"}});
  if (a.flag("--help")) {
    std::cout << "usage: sdpal tokenize [-m MODEL | --vocab bpe_simple_vocab_16e6.txt.gz] [--file F] [--tokens] "
                 "[PROMPT...]\n  prints the padded token ids of each prompt on one line (F: one prompt per line);\n"
                 "  --tokens prints the BPE token strings instead\n";
    return kExitOk;
  }
  std::unique_ptr<ClipTokenizer> tok;
  const std::string model = a.str("--model", default_model_path());
  if (a.has("--vocab")) {
    tok = std::make_unique<ClipTokenizer>(ClipTokenizer::from_bpe_gz(a.str("--vocab")));
  } else if (std::filesystem::is_directory(model + "/tokenizer")) {
    tok = std::make_unique<ClipTokenizer>(ClipTokenizer::from_folder(model + "/tokenizer"));
  } else {  // an sdpal file, Core ML resources or a checkpoint: their tokenizer as generate uses it
    LoadOptions lo;
    lo.safety_checker = false;
    tok = std::move(load_model(model, lo)->tokenizer);
  }
  std::vector<std::string> prompts = a.positional();
  if (a.has("--file")) {
    std::string f = a.str("--file");
    std::ifstream in(f, std::ios::binary);
    check(bool(in), ErrorCode::kIo, "cannot open " + f);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      prompts.push_back(line);
    }
  }
  check(!prompts.empty(), ErrorCode::kInvalidArgument, "no prompt given (pass prompts or --file)");
  for (const auto& p : prompts) {
    if (a.flag("--tokens")) {
      bool first = true;
      for (const auto& t : tok->tokens(p)) { std::cout << (first ? "" : " ") << t; first = false; }
    } else {
      auto ids = tok->encode_padded(p);
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    }
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace sdpal::app
