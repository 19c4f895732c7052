#include "tests/support/fixture_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace rwkv::test {

std::string fixtures_dir() {
  if (const char* env = std::getenv("RWKV_FIXTURES_DIR")) return env;
  return RWKV_FIXTURES_DIR;
}

bool fixtures_present() {
  return std::filesystem::exists(std::filesystem::path(fixtures_dir()) / "expected.json");
}

namespace {
nlohmann::json parse_fixture(const std::string& file) {
  std::ifstream in(std::filesystem::path(fixtures_dir()) / file);
  if (!in) throw std::runtime_error("cannot open " + file + " in " + fixtures_dir());
  return nlohmann::json::parse(in);
}
}  // namespace

const nlohmann::json& expected() {
  static const nlohmann::json j = parse_fixture("expected.json");
  return j;
}

const nlohmann::json& protocol() {
  static const nlohmann::json j = parse_fixture("protocol.json");
  return j;
}

std::vector<float> load_state_file(const nlohmann::json& ref) {
  const auto path = std::filesystem::path(fixtures_dir()) / ref.at("file").get<std::string>();
  size_t n = 1;
  for (const auto& d : ref.at("shape")) n *= d.get<size_t>();
  std::vector<float> v(n);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  if (!in) throw std::runtime_error("short state file " + path.string());
  return v;
}

static void flatten(const nlohmann::json& a, std::vector<float>& out) {
  if (a.is_array()) {
    for (const auto& x : a) flatten(x, out);
  } else {
    out.push_back(a.get<float>());
  }
}

std::vector<float> to_floats(const nlohmann::json& array) {
  std::vector<float> out;
  flatten(array, out);
  return out;
}

std::vector<int32_t> to_ids(const nlohmann::json& array) {
  return array.get<std::vector<int32_t>>();
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double abs_tol,
                  double rel_tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double excess = std::abs(double(got[i]) - want[i]) - rel_tol * std::abs(want[i]);
    if (!(excess <= worst)) {  // also catches NaN
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, abs_tol) << what << ": element " << worst_at << " got " << got[worst_at]
                            << " want " << want[worst_at];
}

void expect_similar(const std::vector<float>& got, const std::vector<float>& want, double max_abs,
                    double min_cosine, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0, dot = 0, gg = 0, ww = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(double(got[i]) - want[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
    dot += double(got[i]) * want[i];
    gg += double(got[i]) * got[i];
    ww += double(want[i]) * want[i];
  }
  const double cosine = gg == 0 && ww == 0 ? 1 : dot / std::sqrt(gg * ww);
  std::printf("  %-44s max|diff| %.3g (max|want| %.3g), cosine %.9f\n", what.c_str(), worst,
              max_magnitude(want), cosine);
  EXPECT_LE(worst, max_abs) << what;
  EXPECT_GE(cosine, min_cosine) << what;
}

double max_magnitude(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::abs(x)));
  return m;
}

}  // namespace rwkv::test
