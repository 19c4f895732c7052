// SHA-256: FIPS 180-4 known answers, and the incremental form used while
// downloading equals the one-shot digest.
#include <gtest/gtest.h>

#include <string>

#include "engine/common/sha256.h"

namespace rwkv {
namespace {

std::string hex(const common::Sha256Digest& d) { return common::to_hex(d.data(), d.size()); }

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(hex(common::sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(common::sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(common::sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(common::sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += std::to_string(i * 7919);
  common::Sha256 h;
  for (size_t off = 0, step = 1; off < data.size(); off += step, step = step * 3 % 97 + 1)
    h.update(std::string_view(data).substr(off, step));
  EXPECT_EQ(hex(h.finish()), hex(common::sha256(data)));
}

}  // namespace
}  // namespace rwkv
