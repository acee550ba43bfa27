#include "runtime/shield_exec.h"

#include <cstring>

#include "base/bytes.h"
#include "crypto/crypto.h"

namespace cloister::runtime::shield {
namespace {

void AddList(crypto::Sha256Hasher& h, const char* const* list) {
  uint64_t n = 0;
  if (list != nullptr) {
    while (list[n] != nullptr) ++n;
  }
  h.UpdateU64(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view s(list[i]);
    h.UpdateU64(s.size());
    h.Update(s);
  }
}

std::span<const uint8_t> Bytes(const std::string& s) { return AsBytes(s); }

}  // namespace

JoinDigest ExecDigest(const char* const* argv, const char* const* envp) {
  crypto::Sha256Hasher h;
  h.Update(std::string_view("cloister exec ticket v1"));
  AddList(h, argv);
  AddList(h, envp);
  return h.Finish();
}

cloister::SecretBytes JoinKey(const std::vector<JoinKeyPart>& volumes) {
  std::vector<uint8_t> ikm_plain;
  std::string info = "cloister shield join v1";
  for (const JoinKeyPart& v : volumes) {
    ikm_plain.insert(ikm_plain.end(), v.key, v.key + v.key_size);
    for (std::string_view s : {v.name, v.path}) {
      uint64_t n = s.size();
      info.append(reinterpret_cast<const char*>(&n), sizeof(n));
      info.append(s);
    }
  }
  cloister::SecretBytes ikm(ikm_plain.data(), ikm_plain.size());
  SecureZero(ikm_plain.data(), ikm_plain.size());
  StatusOr<cloister::SecretBytes> key = crypto::HkdfSha256(ikm, {}, AsBytes(info), 32);
  // HKDF-SHA-256 is always there in OpenSSL 3; without it, no key at all
  // means no proof either side can pass.
  if (!key.ok()) return cloister::SecretBytes();
  return std::move(key).value();
}

JoinDigest ServerProof(const cloister::SecretBytes& key, const std::string& client_nonce,
                       const std::string& server_nonce, const JoinDigest& ticket, bool main_process,
                       std::string_view cwd) {
  const uint8_t flag = main_process ? 1 : 0;
  uint64_t cwd_size = cwd.size();
  return crypto::HmacSha256(
      key, {AsBytes("cloister shield join: server"), Bytes(client_nonce), Bytes(server_nonce), ticket,
            std::span<const uint8_t>(&flag, 1),
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&cwd_size), sizeof(cwd_size)), AsBytes(cwd)});
}

JoinDigest ClientProof(const cloister::SecretBytes& key, const std::string& client_nonce,
                       const std::string& server_nonce) {
  return crypto::HmacSha256(key,
                            {AsBytes("cloister shield join: client"), Bytes(client_nonce), Bytes(server_nonce)});
}

bool IsRuntimeVariable(std::string_view entry) {
  return entry.starts_with("LD_PRELOAD=") || entry.starts_with("CLOISTER_");
}

std::vector<const char*> ExecEnvironment(const char* const* envp, const std::vector<std::string>& runtime) {
  std::vector<const char*> out;
  if (envp != nullptr) {
    for (const char* const* e = envp; *e != nullptr; ++e) {
      if (!IsRuntimeVariable(*e)) out.push_back(*e);
    }
  }
  for (const std::string& r : runtime) out.push_back(r.c_str());
  out.push_back(nullptr);
  return out;
}

}  // namespace cloister::runtime::shield
