// Tokenizer throughput: encodes a corpus (by default the fixture texts,
// repeated to a few MB) as one buffer and as separate texts, and prints MB/s
// and tokens/s. bench/tokenizer_compare.sh runs it against the Python
// reference; see bench/README.md.
//
//   tokenizer_bench [--corpus FILE | --fixtures DIR] [--mb N] [--iters N]
//                   [--save-corpus FILE] [--ids-out FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Resident set size in MiB (Linux), to see what the parsed vocabulary costs.
double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * 4096.0 / (1024.0 * 1024.0);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every text in expected.json that the tokenizer fixtures cover.
std::vector<std::string> fixture_texts(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "expected.json");
  if (!in) throw std::runtime_error("no expected.json in " + dir + " (use --corpus FILE)");
  const auto j = nlohmann::json::parse(in);
  std::vector<std::string> texts;
  for (const auto& c : j.at("tokenizer")) texts.push_back(c.at("text"));
  for (const auto& c : j.at("embeddings"))
    if (c.at("input_kind") == "text") texts.push_back(c.at("text"));
  for (const auto& t : j.at("rerank_online").at("texts")) texts.push_back(t);
  for (const auto& t : j.at("rerank_offline").at("doc_texts")) texts.push_back(t);
  texts.push_back(j.at("rerank_offline").at("query_text"));
  return texts;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: tokenizer_bench [--corpus FILE | --fixtures DIR] [--mb N] [--iters N]\n"
               "                       [--save-corpus FILE] [--ids-out FILE]\n"
               "  --corpus FILE       tokenize this file (its lines are the separate texts)\n"
               "  --fixtures DIR      take the texts of DIR/expected.json (default:\n"
               "                      $RWKV_FIXTURES_DIR or ../shared/fixtures of the repo)\n"
               "  --mb N              repeat the fixture texts to N MB (default 8)\n"
               "  --iters N           timed repetitions, the best is reported (default 5)\n"
               "  --save-corpus FILE  write the corpus that was tokenized\n"
               "  --ids-out FILE      write the ids of the whole corpus as int32 little endian\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus_path, save_corpus, ids_out;
  std::string fixtures = std::getenv("RWKV_FIXTURES_DIR") ? std::getenv("RWKV_FIXTURES_DIR") : "";
  if (fixtures.empty())  // the source tree's sibling, as the tests use
    fixtures = (std::filesystem::path(__FILE__).parent_path() / "../../shared/fixtures").string();
  double mb = 8;
  int iters = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (a == "--corpus")
      corpus_path = v;
    else if (a == "--fixtures")
      fixtures = v;
    else if (a == "--mb")
      mb = std::atof(v.c_str());
    else if (a == "--iters")
      iters = std::max(1, std::atoi(v.c_str()));
    else if (a == "--save-corpus")
      save_corpus = v;
    else if (a == "--ids-out")
      ids_out = v;
    else
      usage();
  }

  try {
    // The corpus, and the same bytes cut into the separate texts a server sees.
    std::string corpus;
    std::vector<std::string> docs;
    if (!corpus_path.empty()) {
      corpus = read_file(corpus_path);
      docs = split_lines(corpus);
      std::printf("corpus: %s\n", corpus_path.c_str());
    } else {
      const auto texts = fixture_texts(fixtures);
      const auto target = static_cast<size_t>(mb * 1e6);
      while (corpus.size() < target) {
        for (const auto& t : texts) {
          corpus += t;
          corpus += '\n';
          docs.push_back(t);
        }
      }
      std::printf("corpus: %zu fixture texts from %s, repeated to %zu texts\n", texts.size(),
                  fixtures.c_str(), docs.size());
    }
    if (!save_corpus.empty()) std::ofstream(save_corpus, std::ios::binary) << corpus;

    const double rss0 = rss_mib();
    const auto t_load = Clock::now();
    const rwkv::text::Tokenizer& tok = rwkv::text::Tokenizer::world();
    const double load_ms = seconds_since(t_load) * 1e3;
#if defined(__GLIBC__)
    malloc_trim(0);  // hand the parser's temporaries back, so RSS shows what stays
#endif
    std::printf("vocab parse + trie build: %.1f ms, RSS +%.1f MiB\n", load_ms, rss_mib() - rss0);

    // One buffer: the raw speed of the trie walk.
    std::vector<int32_t> ids;
    double best = 1e30;
    for (int it = 0; it < iters; ++it) {
      ids.clear();
      const auto t0 = Clock::now();
      tok.encode_into(corpus, ids);
      best = std::min(best, seconds_since(t0));
    }
    const double mbytes = static_cast<double>(corpus.size()) / 1e6;
    std::printf("whole corpus: %.2f MB, %zu tokens, best of %d: %.4f s, %.1f MB/s, %.3g tokens/s\n",
                mbytes, ids.size(), iters, best, mbytes / best,
                static_cast<double>(ids.size()) / best);
    // Machine-readable, for tokenizer_compare.sh.
    std::printf("tokens_per_s: %.6g\n", static_cast<double>(ids.size()) / best);

    // Separate texts through encode(text, add_eos): the server's call pattern.
    size_t doc_bytes = 0, doc_tokens = 0;
    double best_docs = 1e30;
    for (int it = 0; it < iters; ++it) {
      doc_bytes = doc_tokens = 0;
      const auto t0 = Clock::now();
      for (const auto& d : docs) {
        doc_tokens += tok.encode(d, true).size();
        doc_bytes += d.size();
      }
      best_docs = std::min(best_docs, seconds_since(t0));
    }
    std::printf("per text: %zu encode() calls, %.1f MB/s, %.3g tokens/s (incl. EOS)\n", docs.size(),
                static_cast<double>(doc_bytes) / 1e6 / best_docs,
                static_cast<double>(doc_tokens) / best_docs);

    if (!ids_out.empty()) {
      std::ofstream out(ids_out, std::ios::binary);
      out.write(reinterpret_cast<const char*>(ids.data()),
                static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
