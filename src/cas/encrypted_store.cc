// Sealing of CAS records. Row key: hex HMAC-SHA-256(name key, table 0x00
// name), so names (session names are policy strings) never reach the
// inner store. Row value: AES-256-GCM record of (u32 name length, name,
// value) with associated data (label, table, row key); after opening, the
// name inside must hash to the row key. A sealed value copied to another
// row or table does not open.
#include <algorithm>
#include <mutex>

#include "cas/store.h"
#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

constexpr char kLabel[] = "cloister cas record v1";

class EncryptedStore final : public Store {
 public:
  EncryptedStore(std::unique_ptr<Store> inner, SecretBytes name_key, std::unique_ptr<crypto::Aead> aead)
      : inner_(std::move(inner)), name_key_(std::move(name_key)), aead_(std::move(aead)) {}

  StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) override {
    std::string row = RowKey(table, key);
    ASSIGN_OR_RETURN(auto sealed, inner_->GetVersioned(table, row));
    if (!sealed) return std::optional<Versioned>();
    ASSIGN_OR_RETURN(auto rec, Open(table, row, sealed->value));
    return std::optional<Versioned>(Versioned{std::move(rec.second), sealed->revision});
  }

  StatusOr<uint64_t> Apply(const std::vector<Write>& batch) override {
    std::vector<Write> sealed;
    sealed.reserve(batch.size());
    for (const Write& w : batch) {
      Write s{w.table, RowKey(w.table, w.key), std::nullopt, w.if_revision};
      if (w.value) {
        Bytes plain;
        PutLengthPrefixed(plain, AsBytes(w.key));
        PutBytes(plain, *w.value);
        std::lock_guard<std::mutex> l(mu_);
        auto rec = aead_->SealRecord(Aad(w.table, s.key), plain);
        SecureZero(plain.data(), plain.size());
        if (!rec.ok()) return rec.status();
        s.value = std::move(rec).value();
      }
      sealed.push_back(std::move(s));
    }
    return inner_->Apply(sealed);
  }

  StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) override {
    ASSIGN_OR_RETURN(auto rows, inner_->Scan(table));
    std::vector<std::pair<std::string, Bytes>> out;
    for (auto& [row, sealed] : rows) {
      ASSIGN_OR_RETURN(auto rec, Open(table, row, sealed));
      out.push_back(std::move(rec));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

 private:
  std::string RowKey(std::string_view table, std::string_view key) const {
    uint8_t zero = 0;
    return HexEncode(crypto::HmacSha256(name_key_, {AsBytes(table), {&zero, 1}, AsBytes(key)}));
  }
  static Bytes Aad(std::string_view table, std::string_view row) {
    Bytes aad;
    PutBytes(aad, AsBytes(kLabel));
    PutLengthPrefixed(aad, AsBytes(table));
    PutLengthPrefixed(aad, AsBytes(row));
    return aad;
  }
  // Opens the record stored in `row` of `table`: it must authenticate for
  // that row, and the name inside must be the one the row key stands for.
  StatusOr<std::pair<std::string, Bytes>> Open(std::string_view table, const std::string& row, const Bytes& sealed) {
    StatusOr<Bytes> plain = [&] {
      std::lock_guard<std::mutex> l(mu_);
      return aead_->OpenRecord(Aad(table, row), sealed);
    }();
    if (!plain.ok()) return IntegrityError("a store record of table " + std::string(table) + " does not authenticate");
    ByteReader r(*plain);
    auto name = r.LengthPrefixed(plain->size());
    if (!r.ok()) return IntegrityError("a store record is malformed");
    std::string n(name.begin(), name.end());
    if (RowKey(table, n) != row) return IntegrityError("a store record names another key");
    Bytes value(plain->begin() + static_cast<ptrdiff_t>(r.position()), plain->end());
    SecureZero(plain->data(), plain->size());
    return std::make_pair(std::move(n), std::move(value));
  }

  std::unique_ptr<Store> inner_;
  SecretBytes name_key_;
  std::mutex mu_;  // guards aead_
  std::unique_ptr<crypto::Aead> aead_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> NewEncryptedStore(std::unique_ptr<Store> inner, const SecretBytes& database_key) {
  if (database_key.size() != 32) return InvalidArgument("the database key is 32 bytes");
  Bytes salt(AsBytes("cloister cas database v1").begin(), AsBytes("cloister cas database v1").end());
  ASSIGN_OR_RETURN(SecretBytes name_key, crypto::HkdfSha256(database_key, salt, AsBytes("cloister cas names v1"), 32));
  ASSIGN_OR_RETURN(SecretBytes record_key, crypto::HkdfSha256(database_key, salt, AsBytes("cloister cas records v1"), 32));
  ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(record_key));
  return std::unique_ptr<Store>(new EncryptedStore(std::move(inner), std::move(name_key), std::move(aead)));
}

}  // namespace cloister::cas
