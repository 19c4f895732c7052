// The text-embedding input protocol (docs/model.md "Input protocol"): EOS layouts at every
// boundary, instructions, limits, and the fixture's token ids, which the upstream evaluation
// wrapper built.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "api/api_error.h"
#include "engine/text/tokenizer.h"
#include "server/service/preprocessor.h"
#include "tests/support/fixture_data.h"

namespace rwkv::server::service {
namespace {

using api::EosProtocol;
using api::InputType;
using api::TextOptions;
using api::Truncate;
using nlohmann::json;

constexpr int32_t kEos = text::Tokenizer::kEos;

std::vector<int32_t> text_ids(size_t n) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 1);
  return ids;
}

// The lengths of the pieces between EOS tokens (the layout ends with EOS).
std::vector<size_t> piece_lengths(const std::vector<int32_t>& layout) {
  std::vector<size_t> out;
  size_t length = 0;
  for (const int32_t id : layout) {
    if (id == kEos) {
      out.push_back(length);
      length = 0;
    } else {
      ++length;
    }
  }
  EXPECT_EQ(length, 0u) << "the layout must end with EOS";
  return out;
}

std::vector<int32_t> without_eos(std::vector<int32_t> layout) {
  std::erase(layout, kEos);
  return layout;
}

TEST(EosLayout, SingleIsTextPlusOneEos) {
  EXPECT_EQ(eos_layout(std::vector<int32_t>{}, EosProtocol::kSingle), (std::vector<int32_t>{kEos}));
  EXPECT_EQ(eos_layout(text_ids(3), EosProtocol::kSingle), (std::vector<int32_t>{1, 2, 3, kEos}));
  EXPECT_EQ(eos_layout(text_ids(5000), EosProtocol::kSingle).size(), 5001u);
}

TEST(EosLayout, ShortTextsAreRepeatedOncePerEos) {
  EXPECT_EQ(eos_layout(std::vector<int32_t>{}, EosProtocol::kChunked),
            (std::vector<int32_t>{kEos, kEos, kEos, kEos}));  // the empty text: 4 EOS
  EXPECT_EQ(eos_layout(std::vector<int32_t>{7}, EosProtocol::kChunked),
            (std::vector<int32_t>{7, kEos, 7, kEos, 7, kEos, 7, kEos}));
  for (const size_t n : {2u, 100u, 511u}) {
    const auto ids = text_ids(n);
    std::vector<int32_t> want;
    for (int k = 0; k < 4; ++k) {
      want.insert(want.end(), ids.begin(), ids.end());
      want.push_back(kEos);
    }
    EXPECT_EQ(eos_layout(ids, EosProtocol::kChunked), want) << n;
  }
}

// n >= 512: the text once, cut into pieces of ceil(n / 4) per 2048-token part
// (ceil(n / 2048) parts of ceil(n / parts) once n > 2044), each + EOS.
TEST(EosLayout, LongTextsAreCutIntoPiecesAtEveryBoundary) {
  const std::vector<std::pair<size_t, std::vector<size_t>>> cases = {
      {512, {128, 128, 128, 128}},
      {513, {129, 129, 129, 126}},
      {2044, {511, 511, 511, 511}},  // ctx - n_eos: 2048 tokens with the EOS
      // 2045..2048: still one part (ceil(n / 2048) = 1), as upstream cuts it
      // (the sequence is then 2049..2052 tokens long).
      {2045, {512, 512, 512, 509}},
      {2048, {512, 512, 512, 512}},
      {2049, {257, 257, 257, 254, 256, 256, 256, 256}},  // parts 1025 + 1024
      // 3 parts of 1667, 1667, 1666.
      {5000, {417, 417, 417, 416, 417, 417, 417, 416, 417, 417, 417, 415}},
  };
  for (const auto& [n, want] : cases) {
    const auto ids = text_ids(n);
    const auto layout = eos_layout(ids, EosProtocol::kChunked);
    EXPECT_EQ(piece_lengths(layout), want) << n;
    EXPECT_EQ(without_eos(layout), ids) << n;  // the text once, in order
  }
}

TEST(EosLayout, ManyPartsKeepFourEosPerPart) {
  for (const size_t n : {6144u, 6145u, 20000u, 40001u}) {
    const auto ids = text_ids(n);
    const auto layout = eos_layout(ids, EosProtocol::kChunked);
    const size_t parts = (n + 2047) / 2048;
    const auto pieces = piece_lengths(layout);
    ASSERT_EQ(pieces.size(), 4 * parts) << n;
    EXPECT_EQ(without_eos(layout), ids) << n;
    const size_t part = (n + parts - 1) / parts;
    for (size_t p = 0; p + 1 < parts; ++p) {  // every part but the last is full
      size_t sum = 0;
      for (int k = 0; k < 4; ++k) sum += pieces[4 * p + k];
      EXPECT_EQ(sum, part) << n << " part " << p;
    }
  }
}

TEST(Instructions, FormatAndDefaults) {
  EXPECT_EQ(instructed_text("Do X", "hello"), "Instruct: Do X\nQuery: hello");
  EXPECT_EQ(instructed_text("", "hello"), "hello");
  EXPECT_EQ(Preprocessor::default_description(InputType::kSearchDocument), "");
  EXPECT_EQ(Preprocessor::default_description(InputType::kSearchQuery),
            "Given a query, retrieve documents that answer the query");
  EXPECT_EQ(Preprocessor::default_description(InputType::kSts),
            "Retrieve semantically similar text");
  EXPECT_EQ(Preprocessor::default_description(InputType::kClustering),
            "Categorizing the given news title");
  EXPECT_EQ(head_of(InputType::kSearchQuery), model::EmbeddingHead::kRetrieval);
  EXPECT_EQ(head_of(InputType::kSts), model::EmbeddingHead::kSts);
  EXPECT_EQ(head_of(InputType::kClustering), model::EmbeddingHead::kClassification);
}

PreparedText prepare(const Preprocessor& p, const std::string& text, InputType type,
                     TextOptions options = {}, size_t max_tokens = 1 << 20,
                     Truncate truncate = Truncate::kNone) {
  return p.embedding_text(text, type, options, max_tokens, truncate, "input[0]", "input");
}

TEST(Preprocessor, TextsThroughInstructionAndProtocol) {
  const text::Tokenizer& tok = text::Tokenizer::world();
  const Preprocessor p;
  const auto query = tok.encode(
      "Instruct: Given a query, retrieve documents that answer the "
      "query\nQuery: where is it",
      false);
  const PreparedText got = prepare(p, "where is it", InputType::kSearchQuery);
  EXPECT_EQ(got.ids, eos_layout(query, EosProtocol::kChunked));
  EXPECT_EQ(got.text_tokens, tok.encode("where is it", false).size());
  // A request's instruction replaces the default; "" means none.
  TextOptions custom;
  custom.instruction = "Find the answer";
  EXPECT_EQ(prepare(p, "where is it", InputType::kSearchQuery, custom).ids,
            eos_layout(tok.encode("Instruct: Find the answer\nQuery: where is it", false),
                       EosProtocol::kChunked));
  custom.instruction = "";
  custom.eos_protocol = EosProtocol::kSingle;
  EXPECT_EQ(prepare(p, "where is it", InputType::kSearchQuery, custom).ids,
            tok.encode("where is it", true));
  // The empty and the whitespace-only text.
  EXPECT_EQ(prepare(p, "", InputType::kSearchDocument).ids,
            (std::vector<int32_t>{kEos, kEos, kEos, kEos}));
  EXPECT_EQ(prepare(p, "   ", InputType::kSearchDocument).ids,
            eos_layout(tok.encode("   ", false), EosProtocol::kChunked));
  EXPECT_EQ(prepare(p, "", InputType::kSts).ids,
            eos_layout(tok.encode("Instruct: Retrieve semantically similar text\nQuery: ", false),
                       EosProtocol::kChunked));
  // Server defaults from the flags.
  std::array<std::string, 5> descriptions;
  descriptions[static_cast<size_t>(InputType::kSearchQuery)] = "Mine";
  const Preprocessor flags(EosProtocol::kSingle, descriptions, SIZE_MAX);
  EXPECT_EQ(prepare(flags, "q", InputType::kSearchQuery).ids,
            tok.encode("Instruct: Mine\nQuery: q", true));
  EXPECT_EQ(prepare(flags, "q", InputType::kSts).ids, tok.encode("q", true));
}

TEST(Preprocessor, LimitCountsTheTextsOwnTokens) {
  const text::Tokenizer& tok = text::Tokenizer::world();
  const Preprocessor p;
  const std::string text = "one two three four five six seven eight nine ten";
  const auto ids = tok.encode(text, false);
  ASSERT_EQ(ids.size(), 10u);
  // 10 own tokens pass a limit of 10, though the query runs 4 x (instruction + text) + 4.
  EXPECT_EQ(prepare(p, text, InputType::kSearchQuery, {}, 10).text_tokens, 10u);
  try {
    prepare(p, text, InputType::kSearchQuery, {}, 9);
    FAIL() << "no error";
  } catch (const api::ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "input");
    EXPECT_NE(std::string(e.what()).find("input[0] has 10 tokens, more than the limit of 9"),
              std::string::npos)
        << e.what();
  }
  // Truncation cuts the text's tokens, then the instruction goes before them.
  const std::vector<int32_t> head(ids.begin(), ids.begin() + 4), tail(ids.end() - 4, ids.end());
  EXPECT_EQ(prepare(p, text, InputType::kSearchDocument, {}, 4, Truncate::kEnd).ids,
            eos_layout(head, EosProtocol::kChunked));
  const auto start = prepare(p, text, InputType::kSearchQuery, {}, 4, Truncate::kStart);
  EXPECT_EQ(start.text_tokens, 4u);
  EXPECT_EQ(start.ids, eos_layout(tok.encode(instructed_text(Preprocessor::default_description(
                                                                 InputType::kSearchQuery),
                                                             tok.decode(tail)),
                                             false),
                                  EosProtocol::kChunked));
}

std::string input_type_of(const json& c) {
  return c["input_type"].is_null() ? "search_document" : c["input_type"].get<std::string>();
}

// The ground truth: the ids that upstream's evaluation wrapper builds.
TEST(Preprocessor, EqualsTheUpstreamWrapperOnEveryFixtureCase) {
  RWKV_REQUIRE_FIXTURES();
  std::ifstream in(std::filesystem::path(test::fixtures_dir()) / "protocol.json");
  ASSERT_TRUE(in) << "protocol.json missing from " << test::fixtures_dir();
  const json fixture = json::parse(in);
  const Preprocessor p;
  ASSERT_EQ(fixture["cases"].size(), 28u);
  for (const json& c : fixture["cases"]) {
    const auto type = api::input_type_from_name(input_type_of(c));
    ASSERT_TRUE(type) << c["name"];
    EXPECT_EQ(prepare(p, c["text"].get<std::string>(), *type).ids, test::to_ids(c["ids"]))
        << c["name"];
    const std::string description = fixture["instructions"].value(input_type_of(c), "");
    EXPECT_EQ(description, Preprocessor::default_description(*type)) << c["name"];
  }
}

}  // namespace
}  // namespace rwkv::server::service
