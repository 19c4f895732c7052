// The World tokenizer: exact ids against the reference fixtures, round trips,
// an independent brute-force longest match, and the vocabulary parser.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/text/tokenizer.h"
#include "tests/support/fixture_data.h"

namespace rwkv {
namespace {

using Ids = std::vector<int32_t>;

const text::Tokenizer& world() { return text::Tokenizer::world(); }

Ids without_last(Ids ids) {
  if (!ids.empty()) ids.pop_back();
  return ids;
}

// ---------------------------------------------------------------------------
// Fixtures (reference ids).

TEST(TokenizerFixtures, TokenizerCases) {
  RWKV_REQUIRE_FIXTURES();
  const auto& cases = test::expected().at("tokenizer");
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto text = c.at("text").get<std::string>();
    const Ids ids = test::to_ids(c.at("ids"));
    ASSERT_EQ(text.size(), c.at("utf8_bytes").get<size_t>());
    EXPECT_EQ(world().encode(text, /*add_eos=*/true), ids);
    ASSERT_FALSE(ids.empty());
    ASSERT_EQ(ids.back(), text::Tokenizer::kEos);
    EXPECT_EQ(world().decode(without_last(ids)), c.at("decoded_without_eos").get<std::string>());
  }
}

TEST(TokenizerFixtures, EmbeddingTexts) {
  RWKV_REQUIRE_FIXTURES();
  int checked = 0;
  for (const auto& c : test::expected().at("embeddings")) {
    if (c.at("input_kind") != "text") continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    EXPECT_EQ(world().encode(c.at("text").get<std::string>(), true), test::to_ids(c.at("ids")));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(TokenizerFixtures, RerankOnlineTexts) {
  RWKV_REQUIRE_FIXTURES();
  const auto& r = test::expected().at("rerank_online");
  ASSERT_EQ(r.at("texts").size(), r.at("ids").size());
  for (size_t i = 0; i < r.at("texts").size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(world().encode(r.at("texts")[i].get<std::string>(), true),
              test::to_ids(r.at("ids")[i]));
  }
}

TEST(TokenizerFixtures, RerankOfflineTexts) {
  RWKV_REQUIRE_FIXTURES();
  const auto& r = test::expected().at("rerank_offline");
  ASSERT_EQ(r.at("doc_texts").size(), r.at("doc_ids").size());
  for (size_t i = 0; i < r.at("doc_texts").size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(world().encode(r.at("doc_texts")[i].get<std::string>(), /*add_eos=*/false),
              test::to_ids(r.at("doc_ids")[i]));
  }
  EXPECT_EQ(world().encode(r.at("query_text").get<std::string>(), true),
            test::to_ids(r.at("query_ids")));
}

// ---------------------------------------------------------------------------
// World vocabulary properties.

TEST(TokenizerWorld, EveryByteIsOneToken) {
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    EXPECT_EQ(world().encode(s, false), Ids{b + 1}) << "byte " << b;
    EXPECT_EQ(world().decode(Ids{b + 1}), s);
  }
}

TEST(TokenizerWorld, KnownIds) {
  EXPECT_TRUE(world().is_known(text::Tokenizer::kEos));
  EXPECT_TRUE(world().is_known(text::Tokenizer::kEndOfText));
  for (int32_t id = 1; id <= 65529; ++id) ASSERT_TRUE(world().is_known(id)) << id;
  for (int32_t id : {-1, 65530, 65534, 65536, 1 << 30}) EXPECT_FALSE(world().is_known(id)) << id;
}

TEST(TokenizerWorld, EosAndEndOfText) {
  EXPECT_EQ(world().encode(""), Ids{text::Tokenizer::kEos});
  EXPECT_TRUE(world().encode("", false).empty());
  const Ids hello = world().encode("Hello", false);
  EXPECT_EQ(world().encode("Hello"), [&] {
    Ids ids = hello;
    ids.push_back(text::Tokenizer::kEos);
    return ids;
  }());
  // EOS and token 0 decode to nothing, wherever they are.
  EXPECT_EQ(world().decode(Ids{}), "");
  EXPECT_EQ(world().decode(Ids{0, text::Tokenizer::kEos, 0}), "");
  Ids mixed = {0};
  mixed.insert(mixed.end(), hello.begin(), hello.end());
  mixed.insert(mixed.end(), {text::Tokenizer::kEos, 0});
  EXPECT_EQ(world().decode(mixed), "Hello");
  // The literal text of token 0 is ordinary text, not the special token.
  for (int32_t id : world().encode("<|endoftext|>", false)) EXPECT_NE(id, 0);
}

TEST(TokenizerWorld, UnknownIdThrows) {
  for (int32_t id : {-1, 65530, 65534, 65536, 1 << 30}) {
    EXPECT_THROW(world().decode(Ids{33155, id}), text::TokenizerError) << id;
  }
}

TEST(TokenizerWorld, RandomBytesRoundTrip) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 400);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s(static_cast<size_t>(length(rng)), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    const Ids ids = world().encode(s, true);
    ASSERT_EQ(ids.back(), text::Tokenizer::kEos);
    ASSERT_LE(ids.size(), s.size() + 1);
    ASSERT_EQ(world().decode(ids), s) << "iteration " << iter;
  }
}

TEST(TokenizerWorld, InvalidUtf8IsTokenizedBytewise) {
  EXPECT_EQ(world().encode("\xff\xfe", false), (Ids{256, 255}));
  const std::string truncated = "\xe4\xb8";  // the first two bytes of U+4E2D
  EXPECT_EQ(world().decode(world().encode(truncated, false)), truncated);
  // A split multi-byte character decodes to the same (invalid) bytes.
  const std::string zhong = "\xe4\xb8\xad";
  const Ids ids = world().encode(zhong, false);
  EXPECT_EQ(world().decode(ids), zhong);
}

TEST(TokenizerWorld, EncodeIntoAppends) {
  Ids out = {7, 8};
  world().encode_into("Hello, world!", out);
  Ids expected = {7, 8};
  const Ids hello = world().encode("Hello, world!", false);
  expected.insert(expected.end(), hello.begin(), hello.end());
  EXPECT_EQ(out, expected);
}

// Greedy longest match done the slow, obvious way: a hash map of all tokens,
// trying the longest candidate first.
TEST(TokenizerWorld, MatchesBruteForceLongestMatch) {
  std::unordered_map<std::string, int32_t> by_bytes;
  std::vector<std::string> pieces;
  size_t longest = 0;
  for (int32_t id = 1; id <= 65529; ++id) {
    std::string p = world().decode(Ids{id});
    longest = std::max(longest, p.size());
    by_bytes.emplace(p, id);
    pieces.push_back(std::move(p));
  }
  ASSERT_EQ(by_bytes.size(), pieces.size()) << "token bytes are unique";
  auto brute = [&](const std::string& s) {
    Ids ids;
    for (size_t i = 0; i < s.size();) {
      // n reaches 1 at worst: every single byte is a token.
      for (size_t n = std::min(longest, s.size() - i); n > 0; --n) {
        if (auto it = by_bytes.find(s.substr(i, n)); it != by_bytes.end()) {
          ids.push_back(it->second);
          i += n;
          break;
        }
      }
    }
    return ids;
  };
  // Texts glued from random tokens, cut at random points and sprinkled with
  // random bytes: many near-miss prefixes for the trie walk.
  std::mt19937 rng(99);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    const int parts = 1 + static_cast<int>(rng() % 60);
    for (int k = 0; k < parts; ++k) {
      const std::string& p = pieces[pick(rng)];
      s += rng() % 4 == 0 ? p.substr(0, rng() % (p.size() + 1)) : p;
      if (rng() % 8 == 0) s += static_cast<char>(rng() % 256);
    }
    ASSERT_EQ(world().encode(s, false), brute(s)) << "iteration " << iter;
  }
}

TEST(TokenizerWorld, WorldIsParsedOnceAcrossThreads) {
  std::vector<const text::Tokenizer*> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&seen, i] { seen[i] = &text::Tokenizer::world(); });
  for (auto& t : threads) t.join();
  for (const text::Tokenizer* p : seen) EXPECT_EQ(p, &text::Tokenizer::world());
}

// ---------------------------------------------------------------------------
// Small hand-written vocabularies: greedy semantics and the literal parser.

// Every single byte (as the World vocabulary has) plus `extra` lines from id 257.
std::string byte_vocab(const std::vector<std::string>& extra) {
  std::string v;
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "%02x", b);
    v += std::to_string(b + 1) + " b'\\x" + hex + "' 1\n";
  }
  int id = 257;
  for (const auto& line : extra) v += std::to_string(id++) + " " + line + "\n";
  return v;
}

TEST(TokenizerVocab, GreedyLongestMatchIsNotOptimal) {
  // 257 = ab, 258 = bcd, 259 = abcx (only reached through the walk's dead end).
  const text::Tokenizer t(byte_vocab({"'ab' 2", "'bcd' 3", "'abcx' 4"}));
  // Greedy takes "ab" (the walk to "abc" finds no token and falls back) even
  // though "a" + "bcd" would be shorter; this is what the reference does.
  EXPECT_EQ(t.encode("abcd", false), (Ids{257, 'c' + 1, 'd' + 1}));
  EXPECT_EQ(t.encode("abcx", false), Ids{259});
  EXPECT_EQ(t.encode("abcxab", false), (Ids{259, 257}));
  EXPECT_EQ(t.encode("ab", false), Ids{257});
  EXPECT_EQ(t.encode("a", false), Ids{'a' + 1});
}

TEST(TokenizerVocab, MissingByteThrowsOnEncode) {
  const text::Tokenizer t("1 'a' 1\n2 'ab' 2\n");
  EXPECT_EQ(t.encode("aba", false), (Ids{2, 1}));
  EXPECT_THROW(t.encode("abc", false), text::TokenizerError);
}

TEST(TokenizerVocab, EmptyVocabulary) {
  const text::Tokenizer t("");
  EXPECT_EQ(t.encode(""), Ids{text::Tokenizer::kEos});
  EXPECT_THROW(t.encode("a"), text::TokenizerError);
  EXPECT_FALSE(t.is_known(1));
}

TEST(TokenizerVocab, ParsesPythonLiterals) {
  const text::Tokenizer t(
      "1 '\\t\\t' 2\n"
      "2 b'\\xf9' 1\n"
      "3 '\\xe9' 2\n"  // a str: U+00E9, UTF-8 encoded
      "4 '\\u2002' 3\n"
      "5 '\\U0001F680' 4\n"
      "6 \"it's\" 4\n"
      "7 '\\'\"\\\\' 3\n"       // '"\ (escaped quote, quote, backslash)
      "8 'caf\xc3\xa9 ok' 8\n"  // a literal UTF-8 character and a space
      "9 b'\\x00\\n\\r\\\\' 4\n"
      "10 '\\0\\101' 2\n"  // octal
      "11 B\"x\\\"y\" 3\n"
      "12 '  ' 2\r\n"  // spaces only, CRLF line end
      "\n");           // blank lines are ignored
  const std::vector<std::string> want = {"\t\t",
                                         "\xf9",
                                         "\xc3\xa9",
                                         "\xe2\x80\x82",
                                         "\xf0\x9f\x9a\x80",
                                         "it's",
                                         "'\"\\",
                                         "caf\xc3\xa9 ok",
                                         std::string("\0\n\r\\", 4),
                                         std::string("\0A", 2),
                                         "x\"y",
                                         "  "};
  for (size_t i = 0; i < want.size(); ++i) {
    const auto id = static_cast<int32_t>(i + 1);
    EXPECT_EQ(t.decode(Ids{id}), want[i]) << "id " << id;
    EXPECT_TRUE(t.is_known(id));
  }
  EXPECT_FALSE(t.is_known(13));
  EXPECT_EQ(t.encode("caf\xc3\xa9 ok\t\t", false), (Ids{8, 1}));
}

TEST(TokenizerVocab, MalformedLinesThrow) {
  const std::string good = "1 'a' 1\n";
  const std::vector<std::string> bad = {
      "2 'ab' 3",         // byte length mismatch
      "2 '\\xe9' 1",      // a str's \x is a code point: 2 UTF-8 bytes
      "2 ab 2",           // not a literal
      "2 'ab 2",          // unterminated
      "2 'a'b' 3",        // unescaped quote
      "2 'a\\qb' 3",      // unknown escape
      "2 'a\\' 2",        // trailing backslash
      "2 '\\x4' 1",       // truncated \x
      "2 b'\\u0041' 1",   // \u in bytes
      "2 b'\xc3\xa9' 2",  // non-ASCII in bytes
      "2 '\\ud800' 3",    // lone surrogate
      "2 '' 0",           // empty token
      "x 'b' 1",          // bad id
      "2 'b' one",        // bad length
      "2'b'1",            // no spaces
      "2 'b'",            // missing length
      "0 'b' 1",          // reserved id 0
      "65535 'b' 1",      // reserved EOS
      "70000 'b' 1",      // outside the id range
      "1 'b' 1",          // duplicate id
      "2 'a' 1",          // duplicate bytes
  };
  for (const auto& line : bad) {
    EXPECT_THROW(text::Tokenizer(good + line + "\n"), text::TokenizerError) << line;
  }
  // The message names the offending line.
  try {
    text::Tokenizer(good + "2 'b' 1\n3 'cd' 5\n");
    FAIL() << "expected TokenizerError";
  } catch (const text::TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rwkv
