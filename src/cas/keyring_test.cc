#include "cas/keyring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace cloister::cas {
namespace {

std::string Text(const SecretBytes& s) {
  return std::string(reinterpret_cast<const char*>(s.UnsafeBytes().data()), s.size());
}
SecretBytes FromText(const std::string& s) { return SecretBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(KeyringTest, AnyThresholdSubsetOfSharesRecoversTheSecret) {
  SecretBytes secret(32);
  for (size_t i = 0; i < 32; ++i) secret.UnsafeMutableBytes()[i] = static_cast<uint8_t>(i * 7 + 1);
  auto shares = SplitSecret(secret, 5, 3);
  ASSERT_TRUE(shares.ok()) << shares.status().ToString();
  ASSERT_EQ(shares->size(), 5u);
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<SecretBytes> pick = *shares;
    std::shuffle(pick.begin(), pick.end(), rng);
    pick.resize(3 + trial % 3);
    auto back = CombineShares(pick, 3);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(back->Equals(secret));
  }
  // Two shares of a 3-of-5 split give a different (useless) value.
  std::vector<SecretBytes> two = {(*shares)[0], (*shares)[1]};
  EXPECT_EQ(CombineShares(two, 3).status().code(), StatusCode::kInvalidArgument);
  auto wrong = CombineShares(two, 2);
  ASSERT_TRUE(wrong.ok());
  EXPECT_FALSE(wrong->Equals(secret));
}

TEST(KeyringTest, SharesRejectTyposAndDuplicates) {
  SecretBytes secret(32);
  auto shares = SplitSecret(secret, 3, 2);
  ASSERT_TRUE(shares.ok());
  std::string s0 = Text((*shares)[0]);
  EXPECT_EQ(s0.rfind("cloister-share-v1:1:", 0), 0u);
  std::string typo = s0;
  typo[25] = typo[25] == 'a' ? 'b' : 'a';
  EXPECT_EQ(CombineShares({FromText(typo), (*shares)[1]}, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CombineShares({(*shares)[0], (*shares)[0]}, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CombineShares({FromText("hello"), (*shares)[1]}, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CombineShares({FromText(s0 + "\n"), (*shares)[2]}, 2).ok()) << "a trailing newline is fine";
  EXPECT_FALSE(SplitSecret(secret, 2, 3).ok());
  EXPECT_FALSE(SplitSecret(secret, 256, 3).ok());
}

TEST(KeyringTest, KeyringUnlocksOnlyWithItsMasterKey) {
  auto k = CreateKeyring(UnsealMode::kShares, 5, 3);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  auto info = ParseKeyring(k->file);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, UnsealMode::kShares);
  EXPECT_EQ(info->shares, 5);
  EXPECT_EQ(info->threshold, 3);
  // The file holds neither key.
  std::string file(k->file.begin(), k->file.end());
  std::string db(reinterpret_cast<const char*>(k->database_key.UnsafeBytes().data()), 32);
  std::string master(reinterpret_cast<const char*>(k->master_key.UnsafeBytes().data()), 32);
  EXPECT_EQ(file.find(db), std::string::npos);
  EXPECT_EQ(file.find(master), std::string::npos);

  std::vector<SecretBytes> three = {k->shares[4], k->shares[0], k->shares[2]};
  auto master_back = CombineShares(three, info->threshold);
  ASSERT_TRUE(master_back.ok());
  auto db_key = UnwrapDatabaseKey(k->file, *master_back);
  ASSERT_TRUE(db_key.ok()) << db_key.status().ToString();
  EXPECT_TRUE(db_key->Equals(k->database_key));

  std::vector<SecretBytes> two = {k->shares[1], k->shares[3]};
  auto not_master = CombineShares(two, 2);
  ASSERT_TRUE(not_master.ok());
  EXPECT_EQ(UnwrapDatabaseKey(k->file, *not_master).status().code(), StatusCode::kIntegrity);

  Bytes tampered = k->file;
  tampered[10] = 1;  // threshold changed in the header
  EXPECT_EQ(UnwrapDatabaseKey(tampered, k->master_key).status().code(), StatusCode::kIntegrity);
  EXPECT_EQ(ParseKeyring(std::span<const uint8_t>(k->file.data(), 5)).status().code(), StatusCode::kIntegrity);
}

TEST(KeyringTest, KeyFileModeHasNoShares) {
  auto k = CreateKeyring(UnsealMode::kKeyFile, 0, 0);
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(k->shares.empty());
  EXPECT_EQ(ParseKeyring(k->file)->mode, UnsealMode::kKeyFile);
  EXPECT_TRUE(UnwrapDatabaseKey(k->file, k->master_key)->Equals(k->database_key));
}

}  // namespace
}  // namespace cloister::cas
