// The RWKV "World" tokenizer: greedy longest match over UTF-8 bytes with a byte
// trie, vocabulary rwkv_vocab_v20230424 embedded in the binary.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::text {

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  static constexpr int32_t kEos = 65535;        // appended to every embedded text
  static constexpr int32_t kEndOfText = 0;      // `<|endoftext|>`, decodes to ""
  static constexpr int32_t kVocabSize = 65536;  // ids are < this

  // The tokenizer over the vocabulary built into the binary (parsed once).
  static const Tokenizer& world();
  // A tokenizer over vocabulary text in the rwkv_vocab_v20230424.txt format.
  explicit Tokenizer(std::string_view vocab_text);

  std::vector<int32_t> encode(std::string_view text, bool add_eos = true) const;
  // Appends the text's ids (no EOS) to `out` (no allocation per call when
  // `out` has capacity).
  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  // Bytes of the ids; EOS and token 0 decode to nothing. Throws TokenizerError
  // on an id outside the vocabulary. The result may be invalid UTF-8 when
  // the ids split a character.
  std::string decode(std::span<const int32_t> ids) const;
  // True when `id` is EOS, token 0 or a vocabulary entry.
  bool is_known(int32_t id) const;

 private:
  // One state of a double-array byte trie: the child of state s on byte c is
  // t = nodes_[s].base + c, valid when nodes_[t].check == s. 8 bytes, so the
  // walk's working set stays small; token ids live apart in token_.
  struct Node {
    uint32_t base = 0;
    int32_t check = -1;  // parent state, -1 for a free slot (and the root)
  };

  void build_trie();
  std::string_view piece(int32_t id) const {
    return std::string_view(piece_bytes_)
        .substr(piece_start_[id], piece_start_[id + 1] - piece_start_[id]);
  }

  std::string piece_bytes_;            // the bytes of all tokens, in id order
  std::vector<uint32_t> piece_start_;  // id -> offset in piece_bytes_ (kVocabSize + 1 entries)
  std::vector<Node> nodes_;            // double-array trie, node 0 is the root
  std::vector<int32_t> token_;         // state -> id of the token ending there, -1 for none
};

}  // namespace rwkv::text
