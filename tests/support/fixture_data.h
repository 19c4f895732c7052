// Access to the golden fixtures in ../shared/fixtures (computed by the
// upstream reference). Tests that need them call RWKV_REQUIRE_FIXTURES(),
// which skips loudly when the folder is absent. Needs no engine library: the
// model's outputs that the cases hold are in fixture_outputs.h.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rwkv::test {

std::string fixtures_dir();
bool fixtures_present();
// expected.json, parsed once.
const nlohmann::json& expected();
// protocol.json (token ids of the input protocol), parsed once.
const nlohmann::json& protocol();
// A float32 state file referenced as {"file","shape","dtype"} in expected.json.
std::vector<float> load_state_file(const nlohmann::json& ref);
std::vector<float> to_floats(const nlohmann::json& array);  // flattens nested arrays
std::vector<int32_t> to_ids(const nlohmann::json& array);

// |got - want| <= abs_tol + rel_tol * |want| elementwise; reports the worst element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double abs_tol,
                  double rel_tol, const std::string& what);

// For approximate arithmetic (half precision, another device): max |got - want|
// <= max_abs and cosine(got, want) >= min_cosine. Prints the measured values,
// which a GPU run reports.
void expect_similar(const std::vector<float>& got, const std::vector<float>& want, double max_abs,
                    double min_cosine, const std::string& what);
double max_magnitude(const std::vector<float>& v);

}  // namespace rwkv::test

#define RWKV_REQUIRE_FIXTURES()                                                         \
  do {                                                                                  \
    if (!::rwkv::test::fixtures_present())                                              \
      GTEST_SKIP() << "\n\n*** FIXTURES MISSING: " << ::rwkv::test::fixtures_dir()      \
                   << " not found; numeric checks against the reference SKIPPED ***\n"; \
  } while (0)
