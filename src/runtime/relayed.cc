#include "runtime/relayed.h"

#include <openssl/crypto.h>

#include <string>
#include <vector>

#include "attest/relay_reply.h"
#include "crypto/hpke.h"

namespace cloister::runtime {

Result<HttpResponse> OpenRelayedReply(std::span<const uint8_t> cas_reply, const Settings& settings,
                                      const ClientIdentity& identity) {
  const std::string from = "the reply the LAS at " + settings.las_socket + " relayed from the CAS";
  relay::Reply reply;
  std::string error;
  if (!relay::Parse(cas_reply, &reply, &error)) return Fail(from + " is malformed: " + error);
  if (!relay::Verify(reply, settings.cas_key, identity.report_data, settings.config_id, &error)) {
    return Fail(from + " is refused: " + error);
  }
  HttpResponse out;
  out.status = reply.status;
  if (reply.status != 200) {
    out.body.assign(reply.payload.begin(), reply.payload.end());
    return out;
  }
  if (reply.payload.size() < hpke::kEncSize + hpke::kTagSize) return Fail(from + " holds no sealed grant");
  std::vector<uint8_t> plaintext;
  std::string_view info = relay::kGrantInfo;
  hpke::Error e = hpke::Open(identity.key.get(), reply.payload.first(hpke::kEncSize),
                             {reinterpret_cast<const uint8_t*>(info.data()), info.size()},
                             {reinterpret_cast<const uint8_t*>(settings.config_id.data()), settings.config_id.size()},
                             reply.payload.subspan(hpke::kEncSize), &plaintext);
  if (e != hpke::Error::kNone) return Fail(from + " does not open with this start's key: " + hpke::ErrorText(e));
  out.body.assign(plaintext.begin(), plaintext.end());
  OPENSSL_cleanse(plaintext.data(), plaintext.size());
  return out;
}

}  // namespace cloister::runtime
