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
