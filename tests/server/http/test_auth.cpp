// API-key checks (server/http/auth.h): which headers pass, and the state owner
// derived from a key. The constant time is by construction (digests of equal
// length, an OR over every byte and every key, no early exit), not timed here.
#include <gtest/gtest.h>

#include "server/http/auth.h"

namespace rwkv::server::http {
namespace {

TEST(Auth, ConstantTimeEqualIsEquality) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(constant_time_equal("secret", "secret2"));
  EXPECT_FALSE(constant_time_equal("secret", "secre"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST(Auth, OnlyABearerHeaderWithAConfiguredKeyPasses) {
  const std::vector<std::string> keys = {"key-one", "key-two"};
  EXPECT_TRUE(authorized(keys, "Bearer key-one"));
  EXPECT_TRUE(authorized(keys, "Bearer key-two"));
  for (const char* header : {"", "Bearer ", "Bearer key", "Bearer key-one ", "Bearer key-two2",
                             "bearer key-one", "key-one", "Basic key-one", "Bearer  key-one"})
    EXPECT_FALSE(authorized(keys, header)) << header;
  EXPECT_TRUE(authorized({}, ""));  // no keys configured: open
  EXPECT_TRUE(authorized({}, "Bearer anything"));
}

TEST(Auth, StateOwnersAreDigestsNotKeys) {
  const std::vector<std::string> keys = {"key-one", "key-two"};
  const std::string one = state_owner(keys, "Bearer key-one");
  EXPECT_EQ(one.size(), 32u);
  EXPECT_EQ(one.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(one, state_owner(keys, "Bearer key-one"));
  EXPECT_NE(one, state_owner(keys, "Bearer key-two"));
  EXPECT_EQ(one.find("key"), std::string::npos);
  EXPECT_EQ(state_owner({}, "Bearer key-one"), "");  // no keys: one public owner
}

}  // namespace
}  // namespace rwkv::server::http
