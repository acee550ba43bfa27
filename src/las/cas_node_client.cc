#include "las/cas_node_client.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <optional>
#include <utility>
#include <string_view>

namespace cloister::las {
namespace {

using nlohmann::json;

constexpr std::string_view kTokenPrefix = "cloister-join-v1:";

bool IsSpace(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// The string at `key`, or "" when absent or not a string. nlohmann throws
// on a type mismatch; checking first keeps exceptions out of our code.
std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// Errors of the transport (no HTTP response at all) keep their text but
// get codes of their own, so that callers can tell them from the CAS's
// answers: a CAS that is not the pinned one is not a refusal by the CAS.
Status TransportError(const Status& s) {
  if (s.code() == StatusCode::kPermissionDenied) {
    std::string msg = s.message();
    if (size_t at = msg.find(" (CLOISTER_CAS_KEY)"); at != std::string::npos) msg.replace(at, 19, " (--cas-key)");
    return FailedPrecondition(msg);
  }
  return Unavailable(s.message());
}

}  // namespace

StatusOr<std::vector<StatusOr<Bytes>>> RelayBatchToCas(net::ApiClient& client,
                                                       const std::vector<const RelayStart*>& starts) {
  if (starts.empty() || starts.size() > relay::kMaxBatch) {
    return (InvalidArgument("a relayed batch holds 1 to " + std::to_string(relay::kMaxBatch) + " starts"));
  }
  json list = json::array();
  for (const RelayStart* start : starts) {
    list.push_back({{"config_id", std::string(start->config_id)},
                    {"evidence", Base64Encode(start->evidence)},
                    {"key", Base64Encode(start->key)}});
  }
  auto response = client.Post("/v1/attest/relay/batch", json{{"starts", std::move(list)}}.dump());
  if (!response.ok()) return TransportError(response.status());
  if (response->status != 200 || response->content_type != "application/octet-stream") {
    json error = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    std::string text = error.is_object() ? StringField(error, "error") : "";
    return Unavailable("the CAS would not take the relayed attestation (HTTP " + std::to_string(response->status) +
                           (text.empty() ? ")" : "): " + text));
  }
  std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size());
  std::vector<std::span<const uint8_t>> replies;
  std::string error;
  if (!relay::DecodeBatch(body, starts.size(), &replies, &error)) {
    return IntegrityError("the CAS's answer to a relayed batch is malformed: " + error);
  }
  std::vector<StatusOr<Bytes>> out;
  out.reserve(starts.size());
  for (std::span<const uint8_t> reply : replies) {
    if (reply.empty()) {
      out.emplace_back(Unavailable("the CAS would not take the relayed attestation: it found the request malformed"));
    } else {
      out.emplace_back(Bytes(reply.begin(), reply.end()));
    }
  }
  return out;
}

StatusOr<CasAnswer> CommitVolumeToCas(net::ApiClient& client, const std::string& report, size_t max_body) {
  auto response = client.Post("/v1/volumes/commit", report);
  if (!response.ok()) return TransportError(response.status());
  if (response->status < 100 || response->status > 599 || response->body.size() > max_body) {
    return IntegrityError("the CAS's answer to a volume commit is out of bounds (HTTP " +
                          std::to_string(response->status) + ", " + std::to_string(response->body.size()) + " bytes)");
  }
  return CasAnswer{response->status, std::move(response->body)};
}

bool IsValidNodeName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string SanitizeNodeName(const std::string& hostname) {
  std::string out;
  for (unsigned char c : hostname) {
    if (out.size() == 64) break;
    out += (std::isalnum(c) || c == '.' || c == '_' || c == '-') ? static_cast<char>(c) : '-';
  }
  return out.empty() ? "node" : out;
}

StatusOr<SecretBytes> ParseJoinToken(const SecretBytes& file_content) {
  auto all = file_content.UnsafeBytes();
  size_t begin = 0, end = all.size();
  while (begin < end && IsSpace(all[begin])) ++begin;
  while (end > begin && IsSpace(all[end - 1])) --end;
  auto token = all.subspan(begin, end - begin);
  // Never quote the content in the error: it may be a token of some other
  // kind, and it is secret either way.
  Status bad = InvalidArgument("the join token file does not hold a Cloister join token (cloister-join-v1:...)");
  if (token.size() != kTokenPrefix.size() + 64) return bad;
  if (std::string_view(reinterpret_cast<const char*>(token.data()), kTokenPrefix.size()) != kTokenPrefix) return bad;
  for (size_t i = kTokenPrefix.size(); i < token.size(); ++i) {
    if (!std::isxdigit(token[i])) return bad;
  }
  return SecretBytes(token.data(), token.size());
}

StatusOr<IssuedCertificate> ParseIssuedCertificate(const net::HttpResponse& response, const std::string& node_id) {
  json j = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status != 200) {
    std::string msg = j.is_object() ? StringField(j, "error") : "";
    if (msg.empty()) msg = "HTTP " + std::to_string(response.status);
    switch (response.status) {
      case 401: return Unauthenticated(msg);
      case 403: return PermissionDenied(msg);
      default: return Unavailable(msg + " (HTTP " + std::to_string(response.status) + ")");
    }
  }
  if (!j.is_object()) return IntegrityError("the CAS's answer is not a JSON object");
  std::string got_id = StringField(j, "node_id");
  std::string cert = StringField(j, "certificate");
  std::string ca = StringField(j, "ca_certificate");
  if (cert.empty() || ca.empty()) return IntegrityError("the CAS's answer has no certificate or no CA certificate");
  if (got_id != node_id) return IntegrityError("the CAS issued a certificate for node " + got_id + ", not this node");
  ASSIGN_OR_RETURN(NodeCertificate c, CheckNodeCertificate(cert, node_id, ca, "the certificate the CAS issued"));
  return IssuedCertificate{std::move(c), std::move(ca)};
}

StatusOr<IssuedCertificate> JoinCas(net::ApiClient& client, const SecretBytes& token, const std::string& name,
                                    const std::string& node_id, const SecretBytes* evidence) {
  if (!IsValidNodeName(name)) return InvalidArgument("node name '" + name + "' is not [A-Za-z0-9._-]{1,64}");
  // Built by hand: both values are plain ASCII (checked above and by
  // ParseJoinToken), and the evidence is a JSON object already, so no
  // escaping is needed, and the only copies of the token and of the
  // evidence's secret are ones we wipe. (The HTTP library keeps its own
  // copy of the request while sending it; that one is beyond our reach.)
  auto t = token.UnsafeBytes();
  std::span<const uint8_t> e = evidence != nullptr ? evidence->UnsafeBytes() : std::span<const uint8_t>();
  std::string body;
  body.reserve(t.size() + name.size() + e.size() + 64);  // no reallocation may leave a copy behind
  body = "{\"token\": \"";
  body.append(reinterpret_cast<const char*>(t.data()), t.size());
  body += "\", \"name\": \"";
  body += name;
  if (evidence != nullptr) {
    body += "\", \"evidence\": ";
    body.append(reinterpret_cast<const char*>(e.data()), e.size());
    body += "}";
  } else {
    body += "\"}";
  }
  auto response = client.Post("/v1/nodes/join", body);
  SecureZero(body.data(), body.size());
  if (!response.ok()) return TransportError(response.status());
  return ParseIssuedCertificate(*response, node_id);
}

StatusOr<IssuedCertificate> RenewWithCas(net::ApiClient& client, const std::string& node_id,
                                         const SecretBytes* evidence) {
  std::string body = "{}";
  if (evidence != nullptr) {
    auto e = evidence->UnsafeBytes();
    body.reserve(e.size() + 16);
    body = "{\"evidence\": ";
    body.append(reinterpret_cast<const char*>(e.data()), e.size());
    body += "}";
  }
  auto response = client.Post("/v1/nodes/renew", body);
  SecureZero(body.data(), body.size());
  if (!response.ok()) return TransportError(response.status());
  return ParseIssuedCertificate(*response, node_id);
}

StatusOr<NodeChallenge> ParseNodeChallenge(const net::HttpResponse& response, const std::string& type) {
  json j = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status != 200) {
    std::string msg = j.is_object() ? StringField(j, "error") : "";
    if (msg.empty()) msg = "HTTP " + std::to_string(response.status);
    msg = "challenge refused: " + msg;
    switch (response.status) {
      case 401: return Unauthenticated(msg);
      case 403: return PermissionDenied(msg);
      default: return Unavailable(msg + " (HTTP " + std::to_string(response.status) + ")");
    }
  }
  auto bad = [](const std::string& what) { return IntegrityError("the CAS's challenge is malformed: " + what); };
  if (!j.is_object()) return bad("not a JSON object");
  NodeChallenge c;
  auto challenge = j.find("challenge");
  std::optional<Bytes> raw;
  if (challenge == j.end() || !challenge->is_string() ||
      !(raw = HexDecode(challenge->get<std::string>())) || raw->size() != kNodeChallengeSize) {
    return bad("\"challenge\" is not " + std::to_string(2 * kNodeChallengeSize) + " hex digits");
  }
  c.challenge = std::move(*raw);
  auto expires = j.find("expires");
  if (expires == j.end() || !expires->is_number_integer() || expires->get<int64_t>() <= 0) {
    return bad("\"expires\" is not a positive integer");
  }
  c.expires = expires->get<int64_t>();
  for (auto [key, out] : {std::pair<const char*, Bytes*>{"credential_blob", &c.credential_blob},
                          std::pair<const char*, Bytes*>{"encrypted_secret", &c.encrypted_secret}}) {
    auto it = j.find(key);
    if (type != "tpm") {
      if (it != j.end()) return bad(std::string("\"") + key + "\" is for tpm evidence only");
      continue;
    }
    std::optional<Bytes> decoded;
    if (it == j.end() || !it->is_string() || !(decoded = Base64Decode(it->get<std::string>())) ||
        decoded->empty()) {
      return bad(std::string("\"") + key + "\" is not base64");
    }
    *out = std::move(*decoded);
  }
  return c;
}

StatusOr<NodeChallenge> RequestNodeChallenge(net::ApiClient& client, const std::string& request_body,
                                             const std::string& type) {
  auto response = client.Post("/v1/nodes/challenge", request_body);
  if (!response.ok()) return TransportError(response.status());
  return ParseNodeChallenge(*response, type);
}

StatusOr<SecretBytes> GatherNodeEvidence(net::ApiClient& client, NodeEvidenceSource& source,
                                         const std::string& node_id) {
  const std::string type = source.type();
  return source.Gather(
      [&client, &type](const std::string& body) { return RequestNodeChallenge(client, body, type); }, node_id);
}

}  // namespace cloister::las
