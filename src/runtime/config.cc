#include "runtime/config.h"

#include <cctype>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "attest/volume_commit.h"
#include "runtime/encoding.h"
#include "runtime/las_client.h"
#include "runtime/log.h"
#include "runtime/paths.h"

namespace cloister::runtime {
namespace {

// A JSON document whose strings, arrays and objects live in wiping memory:
// the grant carries secrets (environment values, file contents, volume
// keys), and this way neither the parsed document nor the parser's token
// buffer leaves a copy behind in freed heap blocks.
using Json = nlohmann::basic_json<std::map, std::vector, SecretString, bool, std::int64_t, std::uint64_t, double,
                                  WipingAllocator>;

constexpr size_t kMaxConfigId = 256;

std::string Str(const SecretString& s) { return std::string(s.data(), s.size()); }

bool HasNul(const SecretString& s) { return s.find('\0') != SecretString::npos; }

const Json* Member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// A string member: absent gives `absent_ok`, a non-string false.
bool StringMember(const Json& object, const char* name, SecretString* out, bool absent_ok) {
  const Json* m = Member(object, name);
  if (m == nullptr) return absent_ok;
  const SecretString* s = m->get_ptr<const SecretString*>();
  if (s == nullptr) return false;
  *out = *s;
  return true;
}

// An absolute path from the CAS, in normal form.
bool NormalAbsolutePath(const SecretString& p, std::string* out) {
  if (p.empty() || p[0] != '/' || HasNul(p)) return false;
  PathBuffer normal;
  if (!NormalizePath({}, std::string_view(p.data(), p.size()), normal)) return false;
  out->assign(normal.data, normal.size);
  return true;
}

// A short word the CAS sent (reason, evidence type), safe to print.
std::string Word(const SecretString& s) { return PeerText(std::string_view(s.data(), s.size()), 64); }

Failure Malformed(const ReplyContext& ctx, const std::string& what) {
  std::string m = CasName(ctx) + " sent a malformed grant: " + what;
  if (!ctx.evidence_type.empty()) m += " (evidence: " + ctx.evidence_type + ")";
  return Fail(m);
}

Result<Grant> ParseGrant(const Json& doc, const ReplyContext& ctx) {
  Grant g;
  if (!doc.is_object()) return Malformed(ctx, "not a JSON object");
  SecretString s;
  if (!StringMember(doc, "evidence", &s, true)) return Malformed(ctx, "'evidence' is not a string");
  g.evidence = Word(s);
  s.clear();
  if (!StringMember(doc, "session", &s, false)) return Malformed(ctx, "'session' is missing or not a string");
  g.session = Str(s);
  if (!StringMember(doc, "service", &s, false)) return Malformed(ctx, "'service' is missing or not a string");
  g.service = Str(s);
  s.clear();
  if (!StringMember(doc, "session_hash", &s, true)) return Malformed(ctx, "'session_hash' is not a string");
  g.session_hash = Str(s);
  // The CAS is pinned, so a mismatch is a CAS bug rather than an attack;
  // either way this configuration is not the one the host asked for.
  if (g.session + "/" + g.service != ctx.config_id) {
    return Malformed(
        ctx, "it is for " + PeerText(g.session + "/" + g.service, 200) + ", not CLOISTER_CONFIG_ID=" + ctx.config_id);
  }

  if (const Json* c = Member(doc, "command")) {
    if (!c->is_array()) return Malformed(ctx, "'command' is not a list");
    for (const Json& arg : *c) {
      const SecretString* a = arg.get_ptr<const SecretString*>();
      if (a == nullptr || HasNul(*a)) return Malformed(ctx, "'command' holds something other than a string");
      g.command.push_back(*a);
    }
  }

  if (const Json* e = Member(doc, "environment")) {
    if (!e->is_object()) return Malformed(ctx, "'environment' is not an object");
    for (auto it = e->begin(); it != e->end(); ++it) {
      const SecretString& name = it.key();
      const SecretString* value = it.value().get_ptr<const SecretString*>();
      if (name.empty() || HasNul(name) || name.find('=') != SecretString::npos) {
        return Malformed(ctx, "an environment variable has an invalid name");
      }
      if (value == nullptr || HasNul(*value)) {
        return Malformed(ctx, "environment variable " + PeerText(Str(name), 64) + " is not a string");
      }
      g.environment.emplace_back(Str(name), *value);
    }
  }

  s.clear();
  if (!StringMember(doc, "pwd", &s, true)) return Malformed(ctx, "'pwd' is not a string");
  if (!s.empty() && !NormalAbsolutePath(s, &g.pwd)) return Malformed(ctx, "'pwd' is not an absolute path");

  if (const Json* f = Member(doc, "files")) {
    if (!f->is_array()) return Malformed(ctx, "'files' is not a list");
    for (const Json& item : *f) {
      if (!item.is_object()) return Malformed(ctx, "an entry of 'files' is not an object");
      InjectedFile file;
      SecretString path, content;
      if (!StringMember(item, "path", &path, false) || !NormalAbsolutePath(path, &file.path) || file.path == "/") {
        return Malformed(ctx, "an injected file has no valid absolute path");
      }
      const Json* mode = Member(item, "mode");
      if (mode == nullptr || !mode->is_number_unsigned() || mode->get<std::uint64_t>() > 07777) {
        return Malformed(ctx, "injected file " + file.path + " has no valid mode (0 to 4095)");
      }
      file.mode = static_cast<uint32_t>(mode->get<std::uint64_t>());
      if (!StringMember(item, "content", &content, false) ||
          !Base64Decode(std::string_view(content.data(), content.size()), &file.content)) {
        return Malformed(ctx, "the content of injected file " + file.path + " is not base64");
      }
      g.files.push_back(std::move(file));
    }
  }

  if (const Json* v = Member(doc, "volumes")) {
    if (!v->is_array()) return Malformed(ctx, "'volumes' is not a list");
    for (const Json& item : *v) {
      if (!item.is_object()) return Malformed(ctx, "an entry of 'volumes' is not an object");
      VolumeMount m;
      SecretString name, path, key, tag, policy;
      if (!StringMember(item, "name", &name, false) || name.empty()) return Malformed(ctx, "a volume has no name");
      m.name = PeerText(Str(name), 64);
      if (!StringMember(item, "path", &path, false) || !NormalAbsolutePath(path, &m.path)) {
        return Malformed(ctx, "volume " + m.name + " has no valid absolute path");
      }
      m.key.resize(32);
      if (!StringMember(item, "key", &key, false) || !HexDecode(std::string_view(key.data(), key.size()), m.key)) {
        return Malformed(ctx, "volume " + m.name + " has no valid key (64 hex digits)");
      }
      if (!StringMember(item, "tag", &tag, true))
        return Malformed(ctx, "the tag of volume " + m.name + " is not a string");
      if (!tag.empty()) {
        m.tag.resize(32);
        if (!HexDecode(std::string_view(tag.data(), tag.size()), m.tag)) {
          return Malformed(ctx, "the tag of volume " + m.name + " is not 64 hex digits");
        }
      }
      if (!StringMember(item, "update_policy", &policy, true)) {
        return Malformed(ctx, "the update policy of volume " + m.name + " is not a string");
      }
      m.update_policy = Word(policy);
      g.volumes.push_back(std::move(m));
    }
  }

  SecretString token;
  if (!StringMember(doc, "volume_token", &token, true)) return Malformed(ctx, "'volume_token' is not a string");
  if (!token.empty()) {
    SecretBytes raw;
    if (!Base64Decode(std::string_view(token.data(), token.size()), &raw) || raw.empty() ||
        raw.size() > volume_commit::kMaxToken) {
      return Malformed(ctx, "'volume_token' is not base64 of 1 to " + std::to_string(volume_commit::kMaxToken) +
                                " bytes");
    }
    g.volume_token.assign(raw.begin(), raw.end());
  }
  return g;
}

// One explanation per refusal reason of docs/protocol.md section 5.
std::string ExplainReason(const std::string& reason, const std::string& error, const ReplyContext& ctx) {
  if (reason == "unknown-config") return "unknown session or service for CLOISTER_CONFIG_ID=" + ctx.config_id;
  if (reason == "measurement-not-allowed") {
    std::string exe, rt;
    std::string m = "the measurements of this program are not allowed for CLOISTER_CONFIG_ID=" + ctx.config_id;
    if (EvidenceMeasurements(ctx.evidence, &exe, &rt)) m += ": executable " + exe + ", runtime " + rt;
    return m + " (list them in the service's measurements)";
  }
  if (reason == "evidence-type-not-allowed") {
    return "the session does not allow this evidence type (security.attestation" +
           std::string(ctx.evidence_type == "sim" ? "; sim also needs tolerate: [simulation]" : "") + ")";
  }
  if (reason == "node-not-certified") {
    return "this node's LAS has no valid certificate from this CAS (join the node again or let it renew)";
  }
  if (reason == "node-revoked") return "this node is revoked at the CAS";
  if (reason == "evidence-stale") {
    return "the evidence is too old or dated in the future (check the clocks of this node and the CAS)";
  }
  if (reason == "evidence-not-bound") return "the evidence is not bound to the key of this connection";
  if (reason == "evidence-invalid") return "the evidence is invalid: " + error;
  if (reason == "bad-request") return "the CAS could not read the request: " + error;
  return "";
}

Failure Refusal(int http_status, const Json& doc, const ReplyContext& ctx) {
  SecretString reason, error, evidence;
  bool is_object = doc.is_object();
  if (is_object) {
    StringMember(doc, "reason", &reason, true);
    StringMember(doc, "error", &error, true);
    StringMember(doc, "evidence", &evidence, true);
  }
  std::string type = evidence.empty() ? ctx.evidence_type : Word(evidence);
  std::string error_text = PeerText(std::string_view(error.data(), error.size()));
  std::string explanation = ExplainReason(Word(reason), error_text, ctx);
  std::string m = CasName(ctx);
  if (!explanation.empty()) {
    m += " refused: " + explanation;
  } else {
    m += " answered HTTP " + std::to_string(http_status);
    m += error_text.empty() ? " without a reason" : ": " + error_text;
    if (!reason.empty()) m += " (reason: " + Word(reason) + ")";
    // The client API (port 8081) has no /v1/attest; the same variable
    // name is used for it by the CLI, so this mix-up is easy to make.
    if (http_status == 404 && reason.empty() && ctx.relayed_by.empty())
      m += " (is CLOISTER_CAS_ADDR the CAS's attestation endpoint, port 18765?)";
  }
  if (!type.empty()) m += " (evidence: " + type + ")";
  return Fail(m);
}

}  // namespace

std::string CasName(const ReplyContext& ctx) {
  return ctx.relayed_by.empty() ? "the CAS at " + ctx.cas : "the CAS (relayed by the LAS at " + ctx.relayed_by + ")";
}

Result<CasAddress> ParseCasAddress(std::string_view text) {
  CasAddress a;
  a.text = std::string(text);
  auto bad = [&] {
    return Fail("CLOISTER_CAS_ADDR='" + PeerText(text, 200) +
                "' is not host:port (an IPv6 address in brackets: [addr]:port)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
    // An address, then optionally a zone: [fe80::1%eth0].
    size_t percent = host.find('%');
    std::string_view address = host.substr(0, percent);
    std::string_view zone = percent == std::string_view::npos ? std::string_view() : host.substr(percent + 1);
    if (address.find(':') == std::string_view::npos || (percent != std::string_view::npos && zone.empty())) {
      return bad();
    }
    for (char c : address) {
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return bad();
    }
    for (char c : zone) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) return bad();
    }
  } else {
    for (char c : host) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) return bad();
    }
  }
  if (port.empty() || port.size() > 5) return bad();
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad();
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  if (p == 0 || p > 65535) return bad();
  a.host = std::string(host);
  a.port = static_cast<uint16_t>(p);
  return a;
}

Result<Settings> ReadSettings(const std::function<const char*(const char*)>& getenv) {
  Settings s;
  auto get = [&](const char* name) -> std::string_view {
    const char* v = getenv(name);
    return v == nullptr ? std::string_view() : std::string_view(v);
  };

  std::string_view log = get("CLOISTER_LOG");
  if (!log.empty() && log != "debug") {
    return Fail("CLOISTER_LOG='" + PeerText(log, 64) + "' is not supported (use debug, or leave it empty)");
  }
  s.debug = log == "debug";

  std::string_view id = get("CLOISTER_CONFIG_ID");
  if (id.empty()) return Fail("CLOISTER_CONFIG_ID is not set (expected SESSION/SERVICE, e.g. shop/web)");
  size_t slash = id.rfind('/');
  bool printable = id.size() <= kMaxConfigId;
  for (char c : id) printable = printable && c > 0x20 && c < 0x7f && c != '"' && c != '\\';
  if (!printable || slash == std::string_view::npos || slash == 0 || slash + 1 == id.size()) {
    return Fail("CLOISTER_CONFIG_ID='" + PeerText(id, 200) + "' is not SESSION/SERVICE (e.g. shop/web)");
  }
  s.config_id = std::string(id);
  s.session = std::string(id.substr(0, slash));
  s.service = std::string(id.substr(slash + 1));

  std::string_view addr = get("CLOISTER_CAS_ADDR");
  s.relayed = addr.empty();
  if (!s.relayed) {
    Result<CasAddress> cas = ParseCasAddress(addr);
    if (!cas.ok()) return cas.failure();
    s.cas = std::move(cas.value());
  }

  std::string_view key = get("CLOISTER_CAS_KEY");
  if (key.empty()) return Fail("CLOISTER_CAS_KEY is not set (expected the CAS's key hash, 64 hex digits)");
  if (!HexDecode(key, s.cas_key)) return Fail("CLOISTER_CAS_KEY is not 64 hex digits");

  std::string_view las = get("CLOISTER_LAS_SOCKET");
  s.las_socket = las.empty() ? std::string(kDefaultLasSocket) : std::string(las);
  // sockaddr_un holds 108 bytes with the terminating NUL.
  if (s.las_socket.size() > 107) return Fail("CLOISTER_LAS_SOCKET is longer than a socket path may be (107 bytes)");
  return s;
}

Result<Grant> ParseCasReply(int http_status, std::span<const uint8_t> body, const ReplyContext& ctx) {
  Json doc = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (http_status != 200) return Refusal(http_status, doc, ctx);
  if (doc.is_discarded()) return Malformed(ctx, "the body is not JSON");
  return ParseGrant(doc, ctx);
}

std::vector<SecretString> BuildArguments(const std::vector<SecretString>& command, int argc, char* const* argv) {
  if (!command.empty()) return command;
  std::vector<SecretString> out;
  for (int i = 0; i < argc && argv[i] != nullptr; ++i) out.emplace_back(argv[i]);
  return out;
}

std::vector<SecretString> BuildEnvironment(const std::vector<std::pair<std::string, SecretString>>& session_env,
                                           char* const* host_env) {
  std::vector<SecretString> out;
  out.reserve(session_env.size() + kHostAllowList.size());
  for (const auto& [name, value] : session_env) {
    SecretString e(name.data(), name.size());
    e += '=';
    e += value;
    out.push_back(std::move(e));
  }
  for (std::string_view allowed : kHostAllowList) {
    bool session_sets = false;
    for (const auto& entry : session_env) session_sets = session_sets || entry.first == allowed;
    if (session_sets || host_env == nullptr) continue;
    for (char* const* e = host_env; *e != nullptr; ++e) {
      std::string_view v(*e);
      if (v.size() > allowed.size() && v.substr(0, allowed.size()) == allowed && v[allowed.size()] == '=') {
        out.emplace_back(v.data(), v.size());
        break;
      }
    }
  }
  return out;
}

}  // namespace cloister::runtime
