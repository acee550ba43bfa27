#include "cas/keyring.h"

extern "C" {  // the header has no C++ guards
#include <libgfshare.h>
}

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

constexpr size_t kKeySize = 32;
constexpr char kSharePrefix[] = "cloister-share-v1:";
constexpr uint32_t kKeyringMagic = 0x524b4c43;  // "CLKR"
constexpr char kWrapLabel[] = "cloister cas wrap v1";

// libgfshare draws its polynomial coefficients through this hook.
void FillRandom(unsigned char* buf, unsigned int n) {
  if (!crypto::RandomBytes(std::span<uint8_t>(buf, n)).ok()) std::abort();
}

struct RandomHook {
  RandomHook() { gfshare_fill_rand = FillRandom; }
};
const RandomHook g_random_hook;

std::string ShareCheck(uint8_t index, std::span<const uint8_t> bytes) {
  crypto::Sha256Hasher h;
  h.Update(std::span<const uint8_t>(&index, 1));
  h.Update(bytes);
  crypto::Digest d = h.Finish();
  return HexEncode(std::span<const uint8_t>(d.data(), 4));
}

StatusOr<SecretBytes> WrapKey(const SecretBytes& master) {
  return crypto::HkdfSha256(master, AsBytes(kWrapLabel), AsBytes("database key"), kKeySize);
}

}  // namespace

StatusOr<std::vector<SecretBytes>> SplitSecret(const SecretBytes& secret, int n, int m) {
  if (secret.size() != kKeySize) return InvalidArgument("the secret to split is 32 bytes");
  if (m < 1 || n < m || n > 255) return InvalidArgument("need 1 <= threshold <= shares <= 255");
  std::vector<unsigned char> nrs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) nrs[static_cast<size_t>(i)] = static_cast<unsigned char>(i + 1);
  gfshare_ctx* ctx = gfshare_ctx_init_enc(nrs.data(), static_cast<unsigned>(n), static_cast<unsigned char>(m), kKeySize);
  if (ctx == nullptr) return InternalError("cannot initialise the share splitter");
  SecretBytes copy = secret;
  gfshare_ctx_enc_setsecret(ctx, copy.UnsafeMutableBytes().data());
  std::vector<SecretBytes> out;
  SecretBytes share(kKeySize);
  for (int i = 0; i < n; ++i) {
    gfshare_ctx_enc_getshare(ctx, static_cast<unsigned char>(i), share.UnsafeMutableBytes().data());
    std::string text = std::string(kSharePrefix) + std::to_string(i + 1) + ":" + HexEncode(share.UnsafeBytes()) +
                       ":" + ShareCheck(static_cast<uint8_t>(i + 1), share.UnsafeBytes());
    out.emplace_back(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    SecureZero(text.data(), text.size());
  }
  // libgfshare keeps its own copy of the coefficients and frees it here; it
  // offers no way to zero that memory first (noted as a known limit).
  gfshare_ctx_free(ctx);
  return out;
}

StatusOr<SecretBytes> CombineShares(const std::vector<SecretBytes>& shares, int m) {
  if (m < 1 || static_cast<int>(shares.size()) < m) {
    return InvalidArgument("need at least " + std::to_string(m) + " shares");
  }
  std::vector<unsigned char> nrs;
  std::vector<SecretBytes> values;
  std::set<int> seen;
  for (const SecretBytes& s : shares) {
    std::string_view text(reinterpret_cast<const char*>(s.UnsafeBytes().data()), s.size());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    const size_t p = sizeof(kSharePrefix) - 1;
    size_t c1 = text.find(':', p), c2 = c1 == std::string_view::npos ? c1 : text.find(':', c1 + 1);
    if (text.compare(0, p, kSharePrefix) != 0 || c2 == std::string_view::npos) {
      return InvalidArgument("not a Cloister key share");
    }
    int index = 0;
    for (char ch : text.substr(p, c1 - p)) {
      if (ch < '0' || ch > '9' || index > 255) return InvalidArgument("bad share number");
      index = index * 10 + (ch - '0');
    }
    auto bytes = HexDecode(text.substr(c1 + 1, c2 - c1 - 1));
    if (index < 1 || index > 255 || !bytes || bytes->size() != kKeySize) {
      return InvalidArgument("share " + std::to_string(index) + " is malformed");
    }
    if (ShareCheck(static_cast<uint8_t>(index), *bytes) != text.substr(c2 + 1)) {
      SecureZero(bytes->data(), bytes->size());
      return InvalidArgument("share " + std::to_string(index) + " has a typing mistake (its check does not match)");
    }
    if (!seen.insert(index).second) return InvalidArgument("share " + std::to_string(index) + " was given twice");
    nrs.push_back(static_cast<unsigned char>(index));
    values.emplace_back(bytes->data(), bytes->size());
    SecureZero(bytes->data(), bytes->size());
  }
  gfshare_ctx* ctx = gfshare_ctx_init_dec(nrs.data(), static_cast<unsigned>(nrs.size()), kKeySize);
  if (ctx == nullptr) return InternalError("cannot initialise the share combiner");
  for (size_t i = 0; i < values.size(); ++i) {
    gfshare_ctx_dec_giveshare(ctx, static_cast<unsigned char>(i), values[i].UnsafeMutableBytes().data());
  }
  SecretBytes secret(kKeySize);
  gfshare_ctx_dec_extract(ctx, secret.UnsafeMutableBytes().data());
  gfshare_ctx_free(ctx);
  return secret;
}

Status CheckShare(const SecretBytes& share) {
  // One share "combines" to its own value: parsing and the check run, and
  // the value is wiped at once.
  return CombineShares({share}, 1).status();
}

namespace {

Bytes KeyringHeader(const KeyringInfo& info) {
  Bytes h;
  PutU32(h, kKeyringMagic);
  PutU32(h, 1);  // version
  PutU8(h, static_cast<uint8_t>(info.mode));
  PutU8(h, static_cast<uint8_t>(info.shares));
  PutU8(h, static_cast<uint8_t>(info.threshold));
  PutU8(h, 0);
  return h;
}
constexpr size_t kKeyringHeaderSize = 12;

}  // namespace

StatusOr<NewKeyring> CreateKeyring(UnsealMode mode, int shares, int threshold, const SecretBytes* master_key) {
  KeyringInfo info{mode, mode == UnsealMode::kShares ? shares : 0, mode == UnsealMode::kShares ? threshold : 0};
  NewKeyring k;
  if (master_key != nullptr) {
    if (mode != UnsealMode::kKeyFile || master_key->size() != kKeySize) {
      return InvalidArgument("an existing master key is used only in key-file mode and must be 32 bytes");
    }
    k.master_key = *master_key;
  } else {
    ASSIGN_OR_RETURN(k.master_key, crypto::RandomSecret(kKeySize));
  }
  ASSIGN_OR_RETURN(k.database_key, crypto::RandomSecret(kKeySize));
  if (mode == UnsealMode::kShares) {
    ASSIGN_OR_RETURN(k.shares, SplitSecret(k.master_key, shares, threshold));
  }
  Bytes header = KeyringHeader(info);
  ASSIGN_OR_RETURN(SecretBytes wrap, WrapKey(k.master_key));
  ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(wrap));
  ASSIGN_OR_RETURN(Bytes sealed, aead->SealRecord(header, k.database_key.UnsafeBytes()));
  k.file = header;
  PutBytes(k.file, sealed);
  return k;
}

StatusOr<KeyringInfo> ParseKeyring(std::span<const uint8_t> file) {
  ByteReader r(file);
  uint32_t magic = r.U32(), version = r.U32();
  KeyringInfo info;
  uint8_t mode = r.U8();
  info.shares = r.U8();
  info.threshold = r.U8();
  r.U8();
  if (!r.ok() || magic != kKeyringMagic || version != 1 || (mode != 1 && mode != 2)) {
    return IntegrityError("the keyring file is not a Cloister CAS keyring");
  }
  info.mode = static_cast<UnsealMode>(mode);
  if (info.mode == UnsealMode::kShares && (info.threshold < 1 || info.shares < info.threshold)) {
    return IntegrityError("the keyring file has invalid share parameters");
  }
  return info;
}

StatusOr<SecretBytes> UnwrapDatabaseKey(std::span<const uint8_t> file, const SecretBytes& master_key) {
  RETURN_IF_ERROR(ParseKeyring(file).status());
  ASSIGN_OR_RETURN(SecretBytes wrap, WrapKey(master_key));
  ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(wrap));
  auto plain = aead->OpenRecord(file.first(kKeyringHeaderSize), file.subspan(kKeyringHeaderSize));
  if (!plain.ok() || plain->size() != kKeySize) {
    return IntegrityError("the unseal key or shares do not open the keyring");
  }
  SecretBytes key(plain->data(), plain->size());
  SecureZero(plain->data(), plain->size());
  return key;
}

}  // namespace cloister::cas
