#include "attest/ccel.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "attest/dcap.h"
#include "attest/test_vectors.h"
#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using testing::ReadVector;

const char kLog[] = "tdx/go-tdx-guest/ccel/ccel_data.dat";

uint32_t U32Of(const Bytes& b, size_t at) {
  return static_cast<uint32_t>(b[at]) | static_cast<uint32_t>(b[at + 1]) << 8 | static_cast<uint32_t>(b[at + 2]) << 16 |
         static_cast<uint32_t>(b[at + 3]) << 24;
}
const char kQuote[] = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat";

HardwareVerdict QuoteVerdict() {
  auto v = VerifyDcapQuote(ReadVector(kQuote), nullptr, *crypto::ParseRfc3339("2025-01-01T00:00:00Z"));
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : HardwareVerdict{};
}

TEST(CcelTest, LogReplaysToTheQuotesRtmrs) {
  CLOISTER_REQUIRE_VECTORS();
  auto replay = ReplayCcel(ReadVector(kLog));
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_EQ(replay->events.size(), 43u);
  HardwareVerdict v = QuoteVerdict();
  Status s = CheckCcelMatchesQuote(*replay, v);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(v.checks.back(), "event log (43 events) replays to the quote's RTMR0-3");
  // The other vector's log (OVMF) parses too.
  auto ovmf = ReplayCcel(ReadVector("trustee/CCEL_data_ovmf"));
  ASSERT_TRUE(ovmf.ok()) << ovmf.status().ToString();
  EXPECT_GT(ovmf->events.size(), 5u);
}

TEST(CcelTest, ChangedEventOrForeignLogIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes log = ReadVector(kLog);
  auto replay = ReplayCcel(log);
  ASSERT_TRUE(replay.ok());
  // Flip one byte of the last SHA-384 digest that extends an RTMR: find it
  // by its value in the log.
  const CcelEvent* last = nullptr;
  for (const CcelEvent& e : replay->events) {
    if (e.type != 3 && e.mr_index >= 1 && e.mr_index <= 4) last = &e;
  }
  ASSERT_NE(last, nullptr);
  auto at = std::search(log.begin(), log.end(), last->sha384.begin(), last->sha384.end());
  ASSERT_NE(at, log.end());
  at[5] ^= 1;
  auto changed = ReplayCcel(log);
  ASSERT_TRUE(changed.ok());
  HardwareVerdict v = QuoteVerdict();
  Status s = CheckCcelMatchesQuote(*changed, v);
  EXPECT_EQ(s.code(), StatusCode::kIntegrity);
  EXPECT_NE(s.message().find("replays to an RTMR" + std::to_string(last->mr_index - 1)), std::string::npos)
      << s.message();
  // A log for other evidence than TDX is a caller's mistake.
  HardwareVerdict sgx;
  sgx.type = "sgx";
  EXPECT_EQ(CheckCcelMatchesQuote(*replay, sgx).code(), StatusCode::kInvalidArgument);
}

TEST(CcelTest, MalformedLogsAreRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes log = ReadVector(kLog);
  // Not a crypto-agile log.
  Bytes bad = log;
  bad[32] = 'X';
  EXPECT_NE(ReplayCcel(bad).status().message().find("Spec ID Event03"), std::string::npos);
  // Prefixes: each one parses (ending at an event boundary or in filler)
  // or is refused as truncated; never read past.
  size_t ok = 0;
  for (size_t n = 0; n < 18200 && n < log.size(); n += 13) {
    auto r = ReplayCcel(std::span<const uint8_t>(log.data(), n));
    if (r.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kIntegrity) << n;
    }
  }
  EXPECT_LT(ok, 200u);
  // An event for a register TDX does not have.
  auto replay = ReplayCcel(log);
  ASSERT_TRUE(replay.ok());
  size_t first_event = 32 + U32Of(log, 28);
  bad = log;
  bad[first_event] = 9;  // MR index of the second event
  if (U32Of(bad, first_event + 4) != 3) {
    EXPECT_NE(ReplayCcel(bad).status().message().find("not a TDX one"), std::string::npos);
  }
}

}  // namespace
}  // namespace cloister::attest
