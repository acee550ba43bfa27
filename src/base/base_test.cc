#include <gtest/gtest.h>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = IntegrityError("chunk 3");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIntegrity);
  EXPECT_EQ(s.ToString(), "integrity: chunk 3");
  EXPECT_EQ(s.WithContext("file /a").message(), "file /a: chunk 3");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, AssignOrReturnPropagates) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  EXPECT_EQ(UseHalf(3, &v).code(), StatusCode::kInvalidArgument);
}

TEST(StatusTest, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoStatus("open x", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus("open x", EEXIST).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus("open x", EIO).code(), StatusCode::kIoError);
}

TEST(BytesTest, HexRoundTripAndRejects) {
  Bytes b = {0x00, 0xab, 0xff};
  EXPECT_EQ(HexEncode(b), "00abff");
  EXPECT_EQ(*HexDecode("00ABff"), b);
  EXPECT_FALSE(HexDecode("0").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(BytesTest, ReaderFailsInsteadOfOverrunning) {
  Bytes b;
  PutU32(b, 7);
  PutU64(b, 0x1122334455667788ull);
  ByteReader r(b);
  EXPECT_EQ(r.U32(), 7u);
  EXPECT_EQ(r.U64(), 0x1122334455667788ull);
  EXPECT_TRUE(r.AtEnd());
  EXPECT_EQ(r.U8(), 0);
  EXPECT_FALSE(r.ok());

  Bytes lp;
  PutU32(lp, 1000);  // claims more than there is
  PutU8(lp, 1);
  ByteReader r2(lp);
  EXPECT_TRUE(r2.LengthPrefixed(5000).empty());
  EXPECT_FALSE(r2.ok());
}

TEST(SecretTest, ComparesInConstantTimeAndCopies) {
  uint8_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
  SecretBytes x(a, 4), y(a, 4), z(b, 4);
  EXPECT_TRUE(x.Equals(y));
  EXPECT_FALSE(x.Equals(z));
  SecretBytes moved = std::move(x);
  EXPECT_EQ(moved.size(), 4u);
  EXPECT_TRUE(x.empty());  // NOLINT: moved-from is specified empty
  EXPECT_FALSE(ConstantTimeEquals(std::span<const uint8_t>(a, 3), std::span<const uint8_t>(a, 4)));
}

}  // namespace
}  // namespace cloister

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include "base/parallel.h"

namespace cloister {
namespace {

TEST(ParallelForTest, CoversEveryIndexOnceWithDistinctSlots) {
  ParallelFor pool(3);
  for (size_t n : {0u, 1u, 5u, 100u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    std::vector<std::atomic<int>> slot_busy(pool.threads());
    std::atomic<bool> overlap{false};
    pool.Run(n, 10, [&](size_t b, size_t e, size_t slot) {
      if (slot_busy[slot].fetch_add(1) != 0) overlap = true;
      for (size_t i = b; i < e; ++i) hits[i]++;
      slot_busy[slot].fetch_sub(1);
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << i;
    EXPECT_FALSE(overlap);
  }
}

TEST(ParallelForTest, RunsSeriallyInAForkedChild) {
  ParallelFor pool(2);
  pool.Run(100, 1, [](size_t, size_t, size_t) {});  // start the worker
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int sum = 0;
    pool.Run(100, 1, [&](size_t b, size_t e, size_t slot) { sum += static_cast<int>(e - b) + static_cast<int>(slot); });
    _exit(sum == 100 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace cloister
