// The World tokenizer: a parser for the vocabulary's Python literals and a
// double-array byte trie for greedy longest-match encoding.
#include "engine/text/tokenizer.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

// The vocabulary file, embedded by the build (cmake/embed_blob.S.in).
extern "C" const char rwkv_vocab_blob_begin[];
extern "C" const char rwkv_vocab_blob_end[];

namespace rwkv::text {
namespace {

[[noreturn]] void fail(size_t line_no, const std::string& what) {
  throw TokenizerError("vocab line " + std::to_string(line_no) + ": " + what);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Reads exactly `n` hex digits at lit[i...]; advances i.
uint32_t read_hex(std::string_view lit, size_t& i, int n, size_t line_no) {
  uint32_t v = 0;
  for (int k = 0; k < n; ++k, ++i) {
    const int d = i < lit.size() ? hex_digit(lit[i]) : -1;
    if (d < 0) fail(line_no, "truncated \\x, \\u or \\U escape");
    v = v * 16 + static_cast<uint32_t>(d);
  }
  return v;
}

// The bytes of a Python str or bytes literal, in the subset that repr()
// writes (plus octal and \U escapes). A str is UTF-8 encoded, as the
// reference does; a bytes literal is taken as is.
std::string parse_literal(std::string_view lit, size_t line_no) {
  const bool is_bytes = !lit.empty() && (lit[0] == 'b' || lit[0] == 'B');
  if (is_bytes) lit.remove_prefix(1);
  if (lit.size() < 2 || (lit[0] != '\'' && lit[0] != '"') || lit.back() != lit[0])
    fail(line_no, "expected a quoted str or bytes literal");
  const char quote = lit[0];
  lit = lit.substr(1, lit.size() - 2);

  std::string out;
  // A decoded escape: a code point in a str, a byte in a bytes literal.
  auto put = [&](uint32_t v) {
    if (is_bytes) {
      if (v > 0xFF) fail(line_no, "escape value above 0xff in a bytes literal");
      out += static_cast<char>(v);
    } else {
      if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        fail(line_no, "escape is not a valid Unicode scalar value");
      append_utf8(out, v);
    }
  };
  for (size_t i = 0; i < lit.size();) {
    const char c = lit[i++];
    if (c == quote) fail(line_no, "unescaped quote inside the literal");
    if (c != '\\') {
      // Characters of a str are already UTF-8 in the file; bytes must be ASCII.
      if (is_bytes && static_cast<unsigned char>(c) >= 0x80)
        fail(line_no, "non-ASCII character in a bytes literal");
      out += c;
      continue;
    }
    if (i == lit.size()) fail(line_no, "literal ends with a backslash");
    const char e = lit[i++];
    switch (e) {
      case '\\':
      case '\'':
      case '"':
        out += e;
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
        put(read_hex(lit, i, 2, line_no));
        break;
      case 'u':
      case 'U':
        if (is_bytes) fail(line_no, "\\u or \\U escape in a bytes literal");
        put(read_hex(lit, i, e == 'u' ? 4 : 8, line_no));
        break;
      default:
        if (e >= '0' && e <= '7') {  // octal, up to three digits
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k)
            v = v * 8 + static_cast<uint32_t>(lit[i++] - '0');
          put(v);
          break;
        }
        fail(line_no, std::string("unsupported escape \\") + e);
    }
  }
  return out;
}

template <class Int>
Int parse_int(std::string_view s, size_t line_no, const char* what) {
  Int v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    fail(line_no, std::string("bad ") + what + " '" + std::string(s) + "'");
  return v;
}

}  // namespace

Tokenizer::Tokenizer(std::string_view vocab_text) {
  std::vector<std::string> pieces(kVocabSize);
  size_t line_no = 0;
  while (!vocab_text.empty()) {
    ++line_no;
    const size_t nl = vocab_text.find('\n');
    std::string_view line = vocab_text.substr(0, nl);
    vocab_text.remove_prefix(nl == std::string_view::npos ? vocab_text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // tolerate CRLF files
    if (line.empty()) continue;

    // `<id> <literal> <length>`: the literal may itself contain spaces, so
    // split at the first and the last space, as the reference does.
    const size_t first = line.find(' ');
    const size_t last = line.rfind(' ');
    if (first == std::string_view::npos || first == last)
      fail(line_no, "expected '<id> <literal> <byte length>'");
    const auto id = parse_int<int32_t>(line.substr(0, first), line_no, "id");
    const auto length = parse_int<size_t>(line.substr(last + 1), line_no, "byte length");
    std::string bytes = parse_literal(line.substr(first + 1, last - first - 1), line_no);

    // Id 0 (<|endoftext|>) and EOS are reserved: they decode to nothing.
    if (id <= kEndOfText || id >= kEos)
      fail(line_no, "id " + std::to_string(id) + " outside 1.." + std::to_string(kEos - 1));
    if (!pieces[id].empty()) fail(line_no, "duplicate id " + std::to_string(id));
    if (bytes.size() != length)
      fail(line_no, "literal has " + std::to_string(bytes.size()) + " bytes, the line says " +
                        std::to_string(length));
    if (bytes.empty()) fail(line_no, "empty token");
    pieces[id] = std::move(bytes);
  }

  piece_start_.resize(kVocabSize + 1);
  for (int32_t id = 0; id < kVocabSize; ++id) {
    piece_start_[id] = static_cast<uint32_t>(piece_bytes_.size());
    piece_bytes_ += pieces[id];
  }
  piece_start_[kVocabSize] = static_cast<uint32_t>(piece_bytes_.size());
  build_trie();
}

void Tokenizer::build_trie() {
  std::vector<int32_t> ids;  // the vocabulary, sorted by bytes
  for (int32_t id = 1; id < kVocabSize; ++id)
    if (!piece(id).empty()) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return piece(a) < piece(b); });
  for (size_t k = 1; k < ids.size(); ++k)
    if (piece(ids[k - 1]) == piece(ids[k]))
      throw TokenizerError("vocab: ids " + std::to_string(ids[k - 1]) + " and " +
                           std::to_string(ids[k]) + " have the same bytes");

  // Places the trie depth-first: a state's children are all placed (a base
  // found where every child slot is free) before recursing into them.
  struct Builder {
    Tokenizer& tok;
    const std::vector<int32_t>& ids;
    std::vector<bool> used{true};  // slot 0 is the root
    size_t first_free = 1;         // every slot below is used
    uint32_t max_base = 0;

    bool is_free(size_t p) const { return p >= used.size() || !used[p]; }

    // First fit: the lowest base (>= 1) whose child slots are all free. This
    // packs the 116k states of the World vocabulary into ~121k slots (1.4 MB
    // with token_).
    uint32_t find_base(const std::vector<unsigned char>& labels) {
      for (size_t p = std::max<size_t>(first_free, labels[0] + 1u);; ++p) {
        if (!is_free(p)) continue;
        const size_t base = p - labels[0];
        if (std::all_of(labels.begin() + 1, labels.end(),
                        [&](unsigned char c) { return is_free(base + c); }))
          return static_cast<uint32_t>(base);
      }
    }

    // Builds the subtree of `state`, which holds ids[lo, hi): the tokens that
    // share their first `depth` bytes.
    void place(uint32_t state, size_t lo, size_t hi, size_t depth) {
      if (tok.piece(ids[lo]).size() == depth) tok.token_[state] = ids[lo++];  // sorts first
      if (lo == hi) return;

      std::vector<unsigned char> labels;
      std::vector<size_t> starts;  // child k holds ids[starts[k], starts[k + 1])
      for (size_t k = lo; k < hi; ++k) {
        const auto c = static_cast<unsigned char>(tok.piece(ids[k])[depth]);
        if (labels.empty() || labels.back() != c) {
          labels.push_back(c);
          starts.push_back(k);
        }
      }
      starts.push_back(hi);

      const uint32_t base = find_base(labels);
      max_base = std::max(max_base, base);
      tok.nodes_[state].base = base;
      const size_t top = base + labels.back() + 1;
      if (tok.nodes_.size() < top) {
        tok.nodes_.resize(top);
        tok.token_.resize(top, -1);
      }
      if (used.size() < top) used.resize(top, false);
      for (const unsigned char c : labels) {
        used[base + c] = true;
        tok.nodes_[base + c].check = static_cast<int32_t>(state);
      }
      while (first_free < used.size() && used[first_free]) ++first_free;

      for (size_t k = 0; k < labels.size(); ++k)
        place(base + labels[k], starts[k], starts[k + 1], depth + 1);
    }
  };

  nodes_.assign(1, Node{});
  token_.assign(1, -1);
  Builder builder{*this, ids};
  if (!ids.empty()) builder.place(0, 0, ids.size(), 0);
  // Every lookup base + byte must stay inside the array.
  nodes_.resize(std::max<size_t>(nodes_.size(), size_t{builder.max_base} + 256));
  nodes_.shrink_to_fit();
  token_.resize(nodes_.size(), -1);
  token_.shrink_to_fit();
}

const Tokenizer& Tokenizer::world() {
  // A function-local static: parsed once, on first use, thread-safely.
  static const Tokenizer instance(std::string_view(
      rwkv_vocab_blob_begin, static_cast<size_t>(rwkv_vocab_blob_end - rwkv_vocab_blob_begin)));
  return instance;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_eos) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 2 + 2);  // typical text is 2..4 bytes per token
  encode_into(text, ids);
  if (add_eos) ids.push_back(kEos);
  return ids;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  const Node* nodes = nodes_.data();
  const int32_t* token = token_.data();
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p < end) {
    // Walk the trie as far as the text allows, remembering the last state
    // that ends a token: that is the longest match.
    int32_t best = -1;
    const unsigned char* best_end = p;
    uint32_t s = 0;
    for (const unsigned char* q = p; q < end;) {
      const uint32_t t = nodes[s].base + *q;
      if (nodes[t].check != static_cast<int32_t>(s)) break;
      s = t;
      ++q;
      // Keep this a branch (the hint stops compilers from using cmov): the
      // CPU then predicts where the next token starts and overlaps the walks,
      // while a cmov chains them through memory loads (~2x slower).
      if (token[s] >= 0) [[likely]] {
        best = token[s];
        best_end = q;
      }
    }
    // Never for the World vocabulary, which has every single byte.
    if (best < 0) throw TokenizerError("byte " + std::to_string(*p) + " is not in the vocabulary");
    out.push_back(best);
    p = best_end;
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (const int32_t id : ids) {
    if (id == kEos || id == kEndOfText) continue;
    if (!is_known(id)) throw TokenizerError("unknown token id " + std::to_string(id));
    out += piece(id);
  }
  return out;
}

bool Tokenizer::is_known(int32_t id) const {
  if (id == kEos || id == kEndOfText) return true;
  return id > 0 && id < kVocabSize && piece_start_[id + 1] > piece_start_[id];
}

}  // namespace rwkv::text
