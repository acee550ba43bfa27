// Validation of session documents. The YAML is read by yaml_tree.cc into a
// tree with positions; this file walks the tree once, field by field,
// building the Policy and collecting every problem it meets instead of
// stopping at the first, then runs the checks that need the whole
// document (duplicates, references, placeholders).
//
// Two rules hold throughout: a secret value (an explicit `value`, a volume
// `key`) is never copied into an error message, and a value that fails a
// check is reported once, at the field where the user wrote it.
#include "policy/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <set>

#include "base/bytes.h"
#include "crypto/crypto.h"
#include "policy/yaml_tree.h"

namespace cloister::policy {
namespace {

using yaml::Node;
using yaml::NodeKind;

constexpr size_t kMaxErrors = 100;
constexpr size_t kMaxSessionName = 128;
constexpr size_t kMaxName = 64;
constexpr size_t kMaxPath = 4096;
constexpr int kMaxSize = 4096;
constexpr int kMaxValidityDays = 36500;
constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";
constexpr std::string_view kPlaceholderStart = "$$CLOISTER::";

// ---- small helpers ----

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool IsHexDigits(std::string_view s, size_t len) {
  if (s.size() != len) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); });
}

// A user-written word for a message: control characters escaped, long
// text cut. Never used on secret values.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}
std::string Quoted(std::string_view s) { return "'" + Shown(s) + "'"; }

std::string Join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

std::string Child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + Shown(key);
}
std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

bool IsName(std::string_view s) {
  return !s.empty() && s.size() <= kMaxName &&
         std::all_of(s.begin(), s.end(), [](char c) { return IsAlnum(c) || c == '_' || c == '-'; });
}

// Levenshtein distance, for "did you mean" hints on short field names.
size_t EditDistance(std::string_view a, std::string_view b) {
  if (a.size() > 40 || b.size() > 40) return 99;
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::optional<SecretKind> ParseKind(std::string_view s) {
  static constexpr std::pair<std::string_view, SecretKind> kKinds[] = {
      {"ascii", SecretKind::kAscii},    {"binary", SecretKind::kBinary}, {"private-key", SecretKind::kPrivateKey},
      {"x509-ca", SecretKind::kX509Ca}, {"x509", SecretKind::kX509},     {"explicit", SecretKind::kExplicit}};
  for (const auto& [name, kind] : kKinds) {
    if (name == s) return kind;
  }
  return std::nullopt;
}

std::optional<KeyAlgorithm> ParseAlgorithm(std::string_view s) {
  for (KeyAlgorithm a : {KeyAlgorithm::kP256, KeyAlgorithm::kP384, KeyAlgorithm::kEd25519, KeyAlgorithm::kRsa3072}) {
    if (KeyAlgorithmName(a) == s) return a;
  }
  return std::nullopt;
}

// Labels of letters, digits and '-', not starting or ending with '-',
// joined by dots; an optional "*." in front for a wildcard certificate.
bool IsDnsName(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return IsAlnum(c) || c == '-'; })) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// ---- the validator ----

// Where a string that may hold placeholders was written.
struct PlaceholderSite {
  std::string text;
  const Node* node;
  std::string path;
};

// What the cross checks need to know about each secret beyond the model.
struct SecretSite {
  const Node* node = nullptr;
  std::string path;
  bool kind_known = false;  // false if `kind` was missing or invalid
  const Node* issuer = nullptr;
  const Node* private_key = nullptr;
  const Node* import_session = nullptr;
};

class Validator {
 public:
  explicit Validator(std::vector<PolicyError>& errors) : errors_(errors) {}

  Policy Run(const Node* root);

 private:
  // ---- reporting ----
  void Error(const Node* n, const std::string& path, std::string message) {
    if (errors_.size() > kMaxErrors) return;
    PolicyError e;
    e.path = path;
    if (n != nullptr) {
      e.line = n->line;
      e.column = n->column;
    }
    e.message = std::move(message);
    if (errors_.size() == kMaxErrors) {
      e.path.clear();
      e.message = "more than " + std::to_string(kMaxErrors) + " problems; fix these and try again";
    }
    errors_.push_back(std::move(e));
  }
  bool TooManyErrors() const { return errors_.size() > kMaxErrors; }

  // ---- typed access ----
  static const char* What(const Node* n) {
    switch (n->kind) {
      case NodeKind::kNull:
        return "empty";
      case NodeKind::kScalar:
        return "a single value";
      case NodeKind::kSequence:
        return "a list";
      case NodeKind::kMap:
        return "a map";
    }
    return "?";
  }

  // Tags are not part of the language; only the standard ones that say
  // what the value already is are tolerated.
  bool TagOk(const Node* n, const std::string& path, std::string_view allowed) {
    if (n->tag.empty() || n->tag == allowed) return true;
    Error(n, path, "unsupported YAML tag " + Quoted(n->tag));
    return false;
  }

  bool IsMapNode(const Node* n, const std::string& path) {
    if (!n->IsMap()) {
      Error(n, path, std::string("must be a map, not ") + What(n));
      return false;
    }
    return TagOk(n, path, "tag:yaml.org,2002:map");
  }

  // A list's items, or nullptr after reporting that `n` is not a list.
  const std::vector<const Node*>* List(const Node* n, const std::string& path) {
    if (!n->IsSequence()) {
      Error(n, path, std::string("must be a list, not ") + What(n));
      return nullptr;
    }
    if (!TagOk(n, path, "tag:yaml.org,2002:seq")) return nullptr;
    return &n->children;
  }

  // A string: any scalar, taken as written (plain numbers too: "name: 7"
  // is the name "7"). Null, lists and maps are wrong types.
  std::optional<std::string> String(const Node* n, const std::string& path) {
    if (!n->IsScalar()) {
      Error(n, path, std::string("must be a string, not ") + What(n));
      return std::nullopt;
    }
    if (!TagOk(n, path, kStrTag)) return std::nullopt;
    return n->value;
  }

  // An integer in [lo, hi], written as a plain decimal number.
  std::optional<int> Int(const Node* n, const std::string& path, int lo, int hi) {
    bool digits = n->IsScalar() && !n->value.empty() && n->value.size() <= 9 &&
                  std::all_of(n->value.begin(), n->value.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!n->IsScalar() || !digits || (!n->plain && n->tag != "tag:yaml.org,2002:int")) {
      Error(n, path, std::string("must be an integer") + (n->IsScalar() ? "" : std::string(", not ") + What(n)));
      return std::nullopt;
    }
    if (!TagOk(n, path, "tag:yaml.org,2002:int")) return std::nullopt;
    int v = 0;
    for (char c : n->value) v = v * 10 + (c - '0');  // at most 9 digits: no overflow
    if (v < lo || v > hi) {
      Error(n, path, "must be from " + std::to_string(lo) + " to " + std::to_string(hi));
      return std::nullopt;
    }
    return v;
  }

  // A list of strings; items of other types are reported one by one.
  std::optional<std::vector<std::string>> Strings(const Node* n, const std::string& path) {
    const auto* items = List(n, path);
    if (items == nullptr) return std::nullopt;
    std::vector<std::string> out;
    bool ok = true;
    for (size_t i = 0; i < items->size(); ++i) {
      auto s = String((*items)[i], Index(path, i));
      if (s) {
        out.push_back(std::move(*s));
      } else {
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // The fields of a map, after reporting duplicate keys, keys that are
  // not strings, and unknown fields (with the list of allowed ones).
  struct Fields {
    std::map<std::string, std::pair<const Node*, const Node*>, std::less<>> present;  // key, value
    const Node* Get(std::string_view name) const {
      auto it = present.find(name);
      return it == present.end() ? nullptr : it->second.second;
    }
  };
  Fields ReadFields(const Node* map, const std::string& path, std::span<const std::string_view> allowed) {
    Fields f;
    for (size_t i = 0; i < map->MapSize(); ++i) {
      const Node* key = map->Key(i);
      if (!key->IsScalar()) {
        Error(key, path, std::string("a key must be a string, not ") + What(key));
        continue;
      }
      const std::string& name = key->value;
      std::string field_path = Child(path, name);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string hint;
        for (std::string_view a : TooManyErrors() ? std::span<const std::string_view>() : allowed) {
          if (EditDistance(name, a) <= 2) {
            hint = "did you mean '" + std::string(a) + "'? ";
            break;
          }
        }
        Error(key, field_path, "unknown field; " + hint + "allowed here: " + Join(allowed));
        continue;
      }
      auto [it, inserted] = f.present.emplace(name, std::make_pair(key, map->Value(i)));
      if (!inserted) {
        Error(key, field_path, "duplicate key (first at line " + std::to_string(it->second.first->line) + ")");
      }
    }
    return f;
  }

  const Node* Required(const Fields& f, const Node* map, const std::string& path, std::string_view name) {
    const Node* v = f.Get(name);
    if (v == nullptr) Error(map, Child(path, name), "required field is missing");
    return v;
  }

  // ---- value checks ----
  void CheckName(const Node* n, const std::string& path, const std::string& s, const char* what) {
    if (!IsName(s)) {
      Error(n, path, std::string(what) + " " + Quoted(s) + " is not valid: use 1 to 64 letters, digits, '_' or '-'");
    }
  }

  void CheckSessionName(const Node* n, const std::string& path, const std::string& s) {
    std::string why;
    if (s.empty()) {
      why = "it is empty";
    } else if (s.size() > kMaxSessionName) {
      why = "it is longer than 128 characters";
    } else {
      size_t start = 0;
      while (why.empty()) {
        size_t slash = s.find('/', start);
        std::string_view seg(s.data() + start, (slash == std::string::npos ? s.size() : slash) - start);
        if (seg.empty() || seg == "." || seg == "..") {
          why = "segments between '/' must not be empty, '.' or '..'";
        } else if (!std::all_of(seg.begin(), seg.end(),
                                [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; })) {
          why = "use letters, digits, '.', '_' and '-', with '/' between segments";
        }
        if (slash == std::string::npos) break;
        start = slash + 1;
      }
    }
    if (!why.empty()) Error(n, path, "session name " + Quoted(s) + " is not valid: " + why);
  }

  void CheckAbsolutePath(const Node* n, const std::string& path, const std::string& s) {
    std::string why;
    if (s.empty() || s[0] != '/') {
      why = "must be an absolute path (starting with '/')";
    } else if (s.find('\0') != std::string::npos) {
      why = "must not contain a NUL character";
    } else if (s.size() > kMaxPath) {
      why = "is longer than " + std::to_string(kMaxPath) + " bytes";
    } else if (s.find(kPlaceholderStart) != std::string::npos) {
      why = "must not hold a placeholder (they are allowed in command, environment and file content)";
    } else {
      for (size_t start = 1; start <= s.size();) {
        size_t slash = s.find('/', start);
        if (slash == std::string::npos) slash = s.size();
        if (s.compare(start, slash - start, "..") == 0) {
          why = "must not contain '..'";
          break;
        }
        start = slash + 1;
      }
    }
    if (!why.empty()) Error(n, path, why);
  }

  std::optional<std::string> Hex64(const Node* n, const std::string& path, const char* what) {
    auto s = String(n, path);
    if (!s) return std::nullopt;
    if (!IsHexDigits(*s, 64)) {
      Error(n, path, std::string("must be ") + what + " (64 hex digits)");
      return std::nullopt;
    }
    return AsciiLower(std::move(*s));
  }

  // ---- sections ----
  void ReadServices(const Node* n, Policy& p);
  void ReadService(const Node* n, const std::string& path, Service& s);
  void ReadSecrets(const Node* n, Policy& p);
  void ReadSecret(const Node* n, const std::string& path, Secret& s, SecretSite& site);
  void ReadVolumes(const Node* n, Policy& p);
  void ReadAccessPolicy(const Node* n, AccessPolicy& a);
  void ReadSecurity(const Node* n, AttestationPolicy& a);
  void ReadExpect(const Node* n, AttestationPolicy& a);
  void ReadHexList(const Node* v, const std::string& path, size_t digits, std::vector<std::string>& out);
  void CheckReferences(const Policy& p);
  void CheckPlaceholders(const Policy& p);
  template <typename Named>
  void CheckUnique(const std::vector<Named>& items, const std::vector<const Node*>& nodes, const char* list,
                   const char* what);

  std::vector<PolicyError>& errors_;
  std::vector<SecretSite> secret_sites_;
  std::vector<const Node*> secret_nodes_;
  std::vector<const Node*> service_nodes_;
  std::vector<const Node*> volume_nodes_;
  std::vector<PlaceholderSite> placeholder_sites_;
  // services[i].mounts[j] -> node of `volume`, checked once volumes are known.
  std::vector<std::pair<std::string, const Node*>> mount_refs_;
};

// The fields of each map of the language, in the order error messages
// list them.
constexpr std::string_view kTopFields[] = {"name",    "version", "predecessor",   "services",
                                           "secrets", "volumes", "access_policy", "security"};
constexpr std::string_view kServiceFields[] = {"name", "measurements", "command", "environment",
                                               "pwd",  "mounts",       "files"};
constexpr std::string_view kMountFields[] = {"volume", "path"};
constexpr std::string_view kFileFields[] = {"path", "content", "mode"};
constexpr std::string_view kSecretFields[] = {"name",  "kind",      "import",       "export", "size",
                                              "value", "algorithm", "private_key",  "issuer", "common_name",
                                              "dns",   "ip",        "validity_days"};
constexpr std::string_view kExportFields[] = {"session", "session_hash"};
constexpr std::string_view kImportFields[] = {"session", "secret", "session_hash"};
constexpr std::string_view kVolumeFields[] = {"name", "key", "tag", "update_policy"};
constexpr std::string_view kAccessFields[] = {"read", "update", "delete"};
constexpr std::string_view kSecurityFields[] = {"attestation"};
constexpr std::string_view kAttestationFields[] = {"allowed", "tolerate", "ignore_advisories", "expect"};
constexpr std::string_view kExpectTypes[] = {"sgx", "tdx", "snp", "tpm"};
// For each evidence type: the fields that list accepted values (hex of the
// given length), the fields that set minimums, and where they go.
struct ExpectField {
  std::string_view field;
  size_t hex_digits;  // 0: a minimum (integer) instead
  std::string_view claim;
};
constexpr ExpectField kSgxExpect[] = {{"mrenclave", 64, "mrenclave"}, {"mrsigner", 64, "mrsigner"},
                                      {"min_isvsvn", 0, "isvsvn"}, {"isvprodid", 0, "isvprodid"}};
constexpr ExpectField kTdxExpect[] = {{"mrtd", 96, "mrtd"},          {"rtmr0", 96, "rtmr0"},
                                      {"rtmr1", 96, "rtmr1"},        {"rtmr2", 96, "rtmr2"},
                                      {"rtmr3", 96, "rtmr3"},        {"mrseam", 96, "mrseam"},
                                      {"mrsignerseam", 96, "mrsignerseam"}, {"mrconfigid", 96, "mrconfigid"},
                                      {"mrowner", 96, "mrowner"},    {"mrownerconfig", 96, "mrownerconfig"}};
constexpr ExpectField kSnpExpect[] = {{"measurement", 96, "measurement"}, {"host_data", 64, "host_data"},
                                      {"id_key_digest", 96, "id_key_digest"}, {"family_id", 32, "family_id"},
                                      {"image_id", 32, "image_id"},      {"min_guest_svn", 0, "guest_svn"}};
constexpr std::string_view kSnpTcbParts[] = {"bootloader", "tee", "snp", "microcode", "fmc"};
constexpr std::string_view kEvidenceTypes[] = {"sim", "tpm", "tdx", "snp", "sgx"};
constexpr std::string_view kTolerations[] = {"simulation", "debug", "outdated-tcb", "sw-hardening-needed",
                                             "configuration-needed"};

// The fields each kind takes besides name, kind and export.
std::span<const std::string_view> KindFields(SecretKind k) {
  static constexpr std::string_view kSized[] = {"size"};
  static constexpr std::string_view kExplicitFields[] = {"value"};
  static constexpr std::string_view kKey[] = {"algorithm"};
  static constexpr std::string_view kCa[] = {"algorithm", "private_key", "issuer", "common_name", "validity_days"};
  static constexpr std::string_view kCert[] = {"algorithm", "private_key", "issuer",       "common_name",
                                               "dns",       "ip",          "validity_days"};
  switch (k) {
    case SecretKind::kAscii:
    case SecretKind::kBinary:
      return kSized;
    case SecretKind::kExplicit:
      return kExplicitFields;
    case SecretKind::kPrivateKey:
      return kKey;
    case SecretKind::kX509Ca:
      return kCa;
    case SecretKind::kX509:
      return kCert;
    case SecretKind::kImported:
      break;
  }
  return {};
}

Policy Validator::Run(const Node* root) {
  Policy p;
  if (!IsMapNode(root, "")) return p;
  Fields f = ReadFields(root, "", kTopFields);

  if (const Node* n = Required(f, root, "", "name")) {
    if (auto s = String(n, "name")) {
      CheckSessionName(n, "name", *s);
      p.name = std::move(*s);
    }
  }
  if (const Node* n = f.Get("version")) {
    // `version: 1` and `version: "1"` are the same; nothing else exists.
    bool tag_ok = n->tag.empty() || n->tag == kStrTag || n->tag == "tag:yaml.org,2002:int";
    if (!n->IsScalar() || n->value != "1" || !tag_ok) {
      Error(n, "version", "must be 1 (the only version of the language)");
    }
  }
  if (const Node* n = f.Get("predecessor")) {
    if (auto s = Hex64(n, "predecessor", "the hash of the session version this one replaces")) {
      p.predecessor = std::move(*s);
    }
  }
  // Secrets and volumes first: services refer to them.
  if (const Node* n = f.Get("secrets")) ReadSecrets(n, p);
  if (const Node* n = f.Get("volumes")) ReadVolumes(n, p);
  if (const Node* n = f.Get("services")) ReadServices(n, p);
  if (const Node* n = f.Get("access_policy")) ReadAccessPolicy(n, p.access_policy);
  if (const Node* n = f.Get("security")) ReadSecurity(n, p.attestation);
  if (TooManyErrors()) return p;

  CheckUnique(p.secrets, secret_nodes_, "secrets", "secret");
  CheckUnique(p.volumes, volume_nodes_, "volumes", "volume");
  CheckUnique(p.services, service_nodes_, "services", "service");
  CheckReferences(p);
  CheckPlaceholders(p);
  return p;
}

template <typename Named>
void Validator::CheckUnique(const std::vector<Named>& items, const std::vector<const Node*>& nodes, const char* list,
                            const char* what) {
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].name.empty()) continue;  // missing or invalid; reported already
    auto [it, inserted] = first.emplace(items[i].name, i);
    if (!inserted) {
      const Node* node = nodes[i];
      const Node* earlier = nodes[it->second];
      if (const Node* name = node->Find("name")) node = name;
      Error(node, Index(list, i) + ".name",
            std::string("duplicate ") + what + " name " + Quoted(items[i].name) + " (first at line " +
                std::to_string(earlier->line) + ")");
    }
  }
}

// ---- services ----

void Validator::ReadServices(const Node* n, Policy& p) {
  const auto* items = List(n, "services");
  if (items == nullptr) return;
  for (size_t i = 0; i < items->size() && !TooManyErrors(); ++i) {
    Service s;
    ReadService((*items)[i], Index("services", i), s);
    p.services.push_back(std::move(s));
    service_nodes_.push_back((*items)[i]);
  }
}

void Validator::ReadService(const Node* n, const std::string& path, Service& s) {
  if (!IsMapNode(n, path)) return;
  Fields f = ReadFields(n, path, kServiceFields);

  if (const Node* v = Required(f, n, path, "name")) {
    if (auto name = String(v, Child(path, "name"))) {
      CheckName(v, Child(path, "name"), *name, "service name");
      if (IsName(*name)) s.name = std::move(*name);
    }
  }

  std::string mpath = Child(path, "measurements");
  if (const Node* v = f.Get("measurements")) {
    if (const auto* items = List(v, mpath)) {
      if (items->empty()) Error(v, mpath, "needs at least one measurement");
      std::set<std::string> seen;
      for (size_t i = 0; i < items->size(); ++i) {
        std::string ipath = Index(mpath, i);
        auto m = Hex64((*items)[i], ipath, "a measurement");
        if (!m) continue;
        if (!seen.insert(*m).second) Error((*items)[i], ipath, "duplicate measurement");
        s.measurements.push_back(std::move(*m));
      }
    }
  } else {
    Error(n, mpath, "required field is missing: a service needs at least one measurement (64 hex digits)");
  }

  std::string cpath = Child(path, "command");
  if (const Node* v = f.Get("command")) {
    if (v->IsScalar()) {
      if (auto text = String(v, cpath)) {
        auto words = SplitCommand(*text);
        if (!words.ok()) {
          Error(v, cpath, words.status().message());
        } else {
          s.command = std::move(words).value();
        }
      }
    } else if (auto words = Strings(v, cpath)) {
      s.command = std::move(*words);
    }
    for (size_t i = 0; i < s.command.size(); ++i) {
      std::string wpath = v->IsScalar() ? cpath : Index(cpath, i);
      const Node* wnode = v->IsScalar() ? v : v->children[i];
      if (s.command[i].find('\0') != std::string::npos) {
        Error(wnode, wpath, "an argument must not contain a NUL character");
      }
      placeholder_sites_.push_back({s.command[i], wnode, wpath});
    }
  }

  std::string epath = Child(path, "environment");
  if (const Node* v = f.Get("environment")) {
    if (IsMapNode(v, epath)) {
      for (size_t i = 0; i < v->MapSize(); ++i) {
        const Node* key = v->Key(i);
        if (!key->IsScalar()) {
          Error(key, epath, std::string("a variable name must be a string, not ") + What(key));
          continue;
        }
        const std::string& name = key->value;
        std::string vpath = Child(epath, name);
        bool valid = !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
                     std::all_of(name.begin(), name.end(), [](char c) { return IsAlnum(c) || c == '_'; });
        if (!valid) {
          Error(key, vpath, "not a valid variable name (letters, digits and '_', not starting with a digit)");
          continue;
        }
        if (s.environment.count(name) != 0) {
          Error(key, vpath, "duplicate variable");
          continue;
        }
        const Node* val = v->Value(i);
        if (val->IsNull()) {
          Error(val, vpath, "must be a string; write \"\" for an empty value");
          continue;
        }
        auto text = String(val, vpath);
        if (!text) continue;
        if (text->find('\0') != std::string::npos) {
          Error(val, vpath, "must not contain a NUL character");
          continue;
        }
        placeholder_sites_.push_back({*text, val, vpath});
        s.environment.emplace(name, std::move(*text));
      }
    }
  }

  if (const Node* v = f.Get("pwd")) {
    if (auto pwd = String(v, Child(path, "pwd"))) {
      CheckAbsolutePath(v, Child(path, "pwd"), *pwd);
      s.pwd = std::move(*pwd);
    }
  }

  std::string mopath = Child(path, "mounts");
  if (const Node* v = f.Get("mounts")) {
    if (const auto* items = List(v, mopath)) {
      std::map<std::string, const Node*> paths, volumes;
      for (size_t i = 0; i < items->size(); ++i) {
        const Node* item = (*items)[i];
        std::string ipath = Index(mopath, i);
        if (!IsMapNode(item, ipath)) continue;
        Fields mf = ReadFields(item, ipath, kMountFields);
        Mount m;
        if (const Node* vol = Required(mf, item, ipath, "volume")) {
          if (auto name = String(vol, Child(ipath, "volume"))) {
            CheckName(vol, Child(ipath, "volume"), *name, "volume name");
            if (IsName(*name)) {
              auto [it, inserted] = volumes.emplace(*name, vol);
              if (!inserted) {
                Error(vol, Child(ipath, "volume"),
                      "volume " + Quoted(*name) + " is already mounted by this service (line " +
                          std::to_string(it->second->line) + ")");
              }
              mount_refs_.emplace_back(Child(ipath, "volume"), vol);
              m.volume = std::move(*name);
            }
          }
        }
        if (const Node* mp = Required(mf, item, ipath, "path")) {
          if (auto text = String(mp, Child(ipath, "path"))) {
            CheckAbsolutePath(mp, Child(ipath, "path"), *text);
            auto [it, inserted] = paths.emplace(*text, mp);
            if (!inserted) {
              Error(mp, Child(ipath, "path"),
                    "duplicate mount path (first at line " + std::to_string(it->second->line) + ")");
            }
            m.path = std::move(*text);
          }
        }
        s.mounts.push_back(std::move(m));
      }
    }
  }

  std::string fpath = Child(path, "files");
  if (const Node* v = f.Get("files")) {
    if (const auto* items = List(v, fpath)) {
      std::map<std::string, const Node*> paths;
      for (size_t i = 0; i < items->size(); ++i) {
        const Node* item = (*items)[i];
        std::string ipath = Index(fpath, i);
        if (!IsMapNode(item, ipath)) continue;
        Fields ff = ReadFields(item, ipath, kFileFields);
        InjectedFile file;
        if (const Node* fp = Required(ff, item, ipath, "path")) {
          if (auto text = String(fp, Child(ipath, "path"))) {
            CheckAbsolutePath(fp, Child(ipath, "path"), *text);
            auto [it, inserted] = paths.emplace(*text, fp);
            if (!inserted) {
              Error(fp, Child(ipath, "path"),
                    "duplicate file path (first at line " + std::to_string(it->second->line) + ")");
            }
            file.path = std::move(*text);
          }
        }
        if (const Node* c = Required(ff, item, ipath, "content")) {
          if (auto text = String(c, Child(ipath, "content"))) {
            placeholder_sites_.push_back({*text, c, Child(ipath, "content")});
            file.content = std::move(*text);
          }
        }
        if (const Node* m = ff.Get("mode")) {
          // Always octal digits, quoted or not: "0400", 0400, 400 and 0o400
          // are the same mode. A YAML reader would take an unquoted 0400
          // as decimal 400 (YAML 1.2) or as octal (1.1); reading digits as
          // octal regardless is what people mean when they write a mode.
          std::string mpath2 = Child(ipath, "mode");
          std::string text = m->IsScalar() ? m->value : std::string();
          if (std::string_view(text).starts_with("0o")) text.erase(0, 2);
          bool ok = m->IsScalar() && !text.empty() && text.size() <= 4 &&
                    std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
          uint32_t mode = 0;
          for (char c : text) mode = mode * 8 + static_cast<uint32_t>(c - '0');
          if (!ok || mode > 0777) {
            Error(m, mpath2, "must be a file mode in octal, e.g. \"0400\" (at most 0777)");
          } else {
            file.mode = mode;
          }
        }
        s.files.push_back(std::move(file));
      }
    }
  }
}

// ---- secrets ----

void Validator::ReadSecrets(const Node* n, Policy& p) {
  const auto* items = List(n, "secrets");
  if (items == nullptr) return;
  for (size_t i = 0; i < items->size() && !TooManyErrors(); ++i) {
    Secret s;
    SecretSite site;
    site.node = (*items)[i];
    site.path = Index("secrets", i);
    ReadSecret((*items)[i], site.path, s, site);
    p.secrets.push_back(std::move(s));
    secret_sites_.push_back(site);
    secret_nodes_.push_back((*items)[i]);
  }
}

void Validator::ReadSecret(const Node* n, const std::string& path, Secret& s, SecretSite& site) {
  if (!IsMapNode(n, path)) return;
  Fields f = ReadFields(n, path, kSecretFields);

  if (const Node* v = Required(f, n, path, "name")) {
    if (auto name = String(v, Child(path, "name"))) {
      CheckName(v, Child(path, "name"), *name, "secret name");
      if (IsName(*name)) s.name = std::move(*name);
    }
  }

  const Node* import = f.Get("import");
  const Node* kind_node = f.Get("kind");
  if (import != nullptr) {
    s.kind = SecretKind::kImported;
    site.kind_known = true;
    for (const auto& [field, nodes] : f.present) {
      if (field == "name" || field == "import") continue;
      std::string fp = Child(path, field);
      if (field == "kind") {
        Error(nodes.first, fp, "an imported secret takes its kind from the exporting session; remove 'kind'");
      } else if (field == "export") {
        Error(nodes.first, fp, "an imported secret cannot be exported again");
      } else {
        Error(nodes.first, fp, "does not apply to an imported secret (it takes only name and import)");
      }
    }
    std::string ipath = Child(path, "import");
    if (!IsMapNode(import, ipath)) return;
    Fields imf = ReadFields(import, ipath, kImportFields);
    Import im;
    if (const Node* v = Required(imf, import, ipath, "session")) {
      if (auto name = String(v, Child(ipath, "session"))) {
        CheckSessionName(v, Child(ipath, "session"), *name);
        im.session = std::move(*name);
        site.import_session = v;
      }
    }
    if (const Node* v = Required(imf, import, ipath, "secret")) {
      if (auto name = String(v, Child(ipath, "secret"))) {
        CheckName(v, Child(ipath, "secret"), *name, "secret name");
        im.secret = std::move(*name);
      }
    }
    if (const Node* v = imf.Get("session_hash")) {
      if (auto h = Hex64(v, Child(ipath, "session_hash"), "a session hash")) im.session_hash = std::move(*h);
    }
    s.import = std::move(im);
    return;
  }

  std::string kpath = Child(path, "kind");
  if (kind_node == nullptr) {
    Error(n, kpath,
          "required field is missing (ascii, binary, private-key, x509-ca, x509 or explicit; "
          "or an 'import' map instead of a kind)");
    return;
  }
  auto kind_text = String(kind_node, kpath);
  if (!kind_text) return;
  auto kind = ParseKind(*kind_text);
  if (!kind) {
    Error(kind_node, kpath,
          "unknown kind " + Quoted(*kind_text) + "; kinds: ascii, binary, private-key, x509-ca, x509, explicit" +
              (*kind_text == "import" ? " (an imported secret has an 'import' map instead of a kind)" : ""));
    return;
  }
  s.kind = *kind;
  site.kind_known = true;

  // Fields that exist but not for this kind.
  std::span<const std::string_view> applies = KindFields(s.kind);
  for (const auto& [field, nodes] : f.present) {
    if (field == "name" || field == "kind" || field == "export") continue;
    if (std::find(applies.begin(), applies.end(), field) != applies.end()) continue;
    std::vector<std::string_view> takes = {"name", "kind", "export"};
    takes.insert(takes.end(), applies.begin(), applies.end());
    Error(nodes.first, Child(path, field),
          "does not apply to a secret of kind " + std::string(SecretKindName(s.kind)) + " (it takes " + Join(takes) +
              ")");
  }
  auto applicable = [&](std::string_view field) -> const Node* {
    return std::find(applies.begin(), applies.end(), field) != applies.end() ? f.Get(field) : nullptr;
  };

  if (s.kind == SecretKind::kAscii || s.kind == SecretKind::kBinary) {
    s.size = 32;
    if (const Node* v = applicable("size")) {
      if (auto size = Int(v, Child(path, "size"), 1, kMaxSize)) s.size = *size;
    }
  }
  if (s.kind == SecretKind::kExplicit) {
    std::string vpath = Child(path, "value");
    if (const Node* v = Required(f, n, path, "value")) {
      // The value itself never reaches a message.
      if (!v->IsScalar() || !(v->tag.empty() || v->tag == kStrTag)) {
        Error(v, vpath, std::string("must be a string, not ") + (v->IsScalar() ? "a tagged value" : What(v)));
      } else if (v->value.empty()) {
        Error(v, vpath, "is empty (did a template leave it blank?)");
      } else {
        s.value = SecretBytes(reinterpret_cast<const uint8_t*>(v->value.data()), v->value.size());
      }
    }
  }
  if (const Node* v = applicable("algorithm")) {
    if (auto text = String(v, Child(path, "algorithm"))) {
      auto a = ParseAlgorithm(*text);
      if (!a) {
        Error(v, Child(path, "algorithm"),
              "unknown algorithm " + Quoted(*text) + "; algorithms: P-256, P-384, Ed25519, RSA-3072");
      } else if (applicable("private_key") != nullptr) {
        Error(v, Child(path, "algorithm"), "does not apply together with private_key (the key has an algorithm)");
      } else {
        s.algorithm = *a;
      }
    }
  }
  if (const Node* v = applicable("private_key")) {
    if (auto text = String(v, Child(path, "private_key"))) {
      CheckName(v, Child(path, "private_key"), *text, "secret name");
      s.private_key = std::move(*text);
      site.private_key = v;
    }
  }
  if (const Node* v = applicable("issuer")) {
    if (auto text = String(v, Child(path, "issuer"))) {
      CheckName(v, Child(path, "issuer"), *text, "secret name");
      s.issuer = std::move(*text);
      site.issuer = v;
    }
  } else if (s.kind == SecretKind::kX509) {
    Error(n, Child(path, "issuer"), "required field is missing: an x509 secret needs the x509-ca secret that signs it");
  }
  if (const Node* v = applicable("common_name")) {
    if (auto text = String(v, Child(path, "common_name"))) {
      size_t chars = static_cast<size_t>(std::count_if(
          text->begin(), text->end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
      bool control = std::any_of(text->begin(), text->end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
      if (chars == 0 || chars > 64 || control) {
        Error(v, Child(path, "common_name"), "must be 1 to 64 characters, without control characters");
      } else {
        s.common_name = std::move(*text);
      }
    }
  }
  if (const Node* v = applicable("dns")) {
    if (auto names = Strings(v, Child(path, "dns"))) {
      for (size_t i = 0; i < names->size(); ++i) {
        if (!IsDnsName((*names)[i])) {
          Error(v->children[i], Index(Child(path, "dns"), i), Quoted((*names)[i]) + " is not a DNS name");
        }
      }
      s.dns = std::move(*names);
    }
  }
  if (const Node* v = applicable("ip")) {
    if (auto ips = Strings(v, Child(path, "ip"))) {
      for (size_t i = 0; i < ips->size(); ++i) {
        if (!IsIpAddress((*ips)[i])) {
          Error(v->children[i], Index(Child(path, "ip"), i), Quoted((*ips)[i]) + " is not an IPv4 or IPv6 address");
        }
      }
      s.ip = std::move(*ips);
    }
  }
  if (s.kind == SecretKind::kX509 || s.kind == SecretKind::kX509Ca) {
    s.validity_days = s.kind == SecretKind::kX509 ? 365 : 3650;
    if (const Node* v = applicable("validity_days")) {
      if (auto days = Int(v, Child(path, "validity_days"), 1, kMaxValidityDays)) s.validity_days = *days;
    }
  }

  if (const Node* v = f.Get("export")) {
    std::string xpath = Child(path, "export");
    if (const auto* items = List(v, xpath)) {
      std::set<std::pair<std::string, std::string>> seen;
      for (size_t i = 0; i < items->size(); ++i) {
        const Node* item = (*items)[i];
        std::string ipath = Index(xpath, i);
        if (!IsMapNode(item, ipath)) continue;
        Fields xf = ReadFields(item, ipath, kExportFields);
        Export e;
        if (const Node* sv = Required(xf, item, ipath, "session")) {
          if (auto name = String(sv, Child(ipath, "session"))) {
            CheckSessionName(sv, Child(ipath, "session"), *name);
            e.session = std::move(*name);
          }
        }
        if (const Node* hv = xf.Get("session_hash")) {
          if (auto h = Hex64(hv, Child(ipath, "session_hash"), "a session hash")) e.session_hash = std::move(*h);
        }
        if (!seen.emplace(e.session, e.session_hash).second) Error(item, ipath, "duplicate export");
        s.exports.push_back(std::move(e));
      }
    }
  }
}

// ---- volumes ----

void Validator::ReadVolumes(const Node* n, Policy& p) {
  const auto* items = List(n, "volumes");
  if (items == nullptr) return;
  for (size_t i = 0; i < items->size() && !TooManyErrors(); ++i) {
    const Node* item = (*items)[i];
    std::string path = Index("volumes", i);
    Volume vol;
    volume_nodes_.push_back(item);
    if (!IsMapNode(item, path)) {
      p.volumes.push_back(std::move(vol));
      continue;
    }
    Fields f = ReadFields(item, path, kVolumeFields);
    if (const Node* v = Required(f, item, path, "name")) {
      if (auto name = String(v, Child(path, "name"))) {
        CheckName(v, Child(path, "name"), *name, "volume name");
        if (IsName(*name)) vol.name = std::move(*name);
      }
    }
    if (const Node* v = f.Get("key")) {
      // A secret: checked without String() so that nothing echoes it.
      std::optional<Bytes> key;
      if (v->IsScalar() && (v->tag.empty() || v->tag == kStrTag) && IsHexDigits(v->value, 64)) {
        key = HexDecode(v->value);
      }
      if (!key) {
        Error(v, Child(path, "key"), "must be 64 hex digits (a 32-byte volume key)");
      } else {
        vol.key = SecretBytes(key->data(), key->size());
        SecureZero(key->data(), key->size());
      }
    }
    if (const Node* v = f.Get("tag")) {
      if (auto tag = Hex64(v, Child(path, "tag"), "a volume tag")) vol.tag = std::move(*tag);
      if (f.Get("key") == nullptr) {
        Error(v, Child(path, "tag"), "a tag needs the key of the volume it describes");
      }
    }
    if (const Node* v = f.Get("update_policy")) {
      if (auto text = String(v, Child(path, "update_policy"))) {
        if (*text == "rollback-protected") {
          vol.update_policy = UpdatePolicy::kRollbackProtected;
        } else if (*text == "read-only") {
          vol.update_policy = UpdatePolicy::kReadOnly;
        } else {
          Error(v, Child(path, "update_policy"),
                "unknown update policy " + Quoted(*text) + "; policies: rollback-protected, read-only");
        }
      }
    }
    p.volumes.push_back(std::move(vol));
  }
}

// ---- access and attestation ----

void Validator::ReadAccessPolicy(const Node* n, AccessPolicy& a) {
  if (!IsMapNode(n, "access_policy")) return;
  Fields f = ReadFields(n, "access_policy", kAccessFields);
  for (auto [field, list] : {std::pair<std::string_view, std::vector<std::string>*>{"read", &a.read},
                             {"update", &a.update},
                             {"delete", &a.del}}) {
    const Node* v = f.Get(field);
    if (v == nullptr) continue;
    std::string path = Child("access_policy", field);
    auto entries = Strings(v, path);
    if (!entries) continue;
    if (entries->empty()) {
      Error(v, path, "is empty; write [NONE] if nobody may do this");
      continue;
    }
    std::set<std::string> seen;
    bool ok = true;
    for (size_t i = 0; i < entries->size(); ++i) {
      std::string& e = (*entries)[i];
      const Node* item = v->children[i];
      std::string ipath = Index(path, i);
      if (e == "CREATOR" || e == "ANY" || e == "NONE") {
        if (e == "NONE" && entries->size() > 1) {
          Error(item, ipath, "NONE must be alone in its list");
          ok = false;
        }
      } else if (IsHexDigits(e, 64)) {
        e = AsciiLower(e);
      } else {
        Error(item, ipath, Quoted(e) + " is not an identity (64 hex digits) nor CREATOR, ANY or NONE");
        ok = false;
        continue;
      }
      if (!seen.insert(e).second) {
        Error(item, ipath, "duplicate entry");
        ok = false;
      }
    }
    if (ok) *list = std::move(*entries);
  }
}

void Validator::ReadSecurity(const Node* n, AttestationPolicy& a) {
  if (!IsMapNode(n, "security")) return;
  Fields f = ReadFields(n, "security", kSecurityFields);
  const Node* at = f.Get("attestation");
  if (at == nullptr || !IsMapNode(at, "security.attestation")) return;
  Fields af = ReadFields(at, "security.attestation", kAttestationFields);

  auto read_set = [&](std::string_view field, std::span<const std::string_view> known,
                      std::vector<std::string>& out) -> const Node* {
    const Node* v = af.Get(field);
    if (v == nullptr) return nullptr;
    std::string path = Child("security.attestation", field);
    auto items = Strings(v, path);
    if (!items) return v;
    std::set<std::string> seen;
    bool ok = true;
    for (size_t i = 0; i < items->size(); ++i) {
      const std::string& item = (*items)[i];
      std::string ipath = Index(path, i);
      bool advisory_id = !item.empty() && item.size() <= kMaxName && std::all_of(item.begin(), item.end(), [](char c) {
        return IsAlnum(c) || c == '.' || c == '_' || c == '-';
      });
      if (!known.empty() && std::find(known.begin(), known.end(), item) == known.end()) {
        Error(v->children[i], ipath, "unknown value " + Quoted(item) + "; allowed: " + Join(known));
        ok = false;
      } else if (known.empty() && !advisory_id) {
        Error(v->children[i], ipath, Quoted(item) + " is not an advisory id (e.g. INTEL-SA-00615)");
        ok = false;
      } else if (!seen.insert(item).second) {
        Error(v->children[i], ipath, "duplicate entry");
        ok = false;
      }
    }
    if (ok) out = std::move(*items);
    return v;
  };
  const Node* allowed = read_set("allowed", kEvidenceTypes, a.allowed);
  read_set("tolerate", kTolerations, a.tolerate);
  read_set("ignore_advisories", {}, a.ignore_advisories);
  if (allowed != nullptr && allowed->IsSequence() && allowed->children.empty()) {
    Error(allowed, "security.attestation.allowed", "is empty: no service could ever start");
  }
  if (const Node* e = af.Get("expect")) ReadExpect(e, a);
  bool sim = std::find(a.allowed.begin(), a.allowed.end(), "sim") != a.allowed.end();
  bool tolerated = std::find(a.tolerate.begin(), a.tolerate.end(), "simulation") != a.tolerate.end();
  if (sim && !tolerated) {
    Error(allowed, "security.attestation.allowed",
          "'sim' evidence proves nothing; allow it only together with tolerate: [simulation]");
  }
}

void Validator::ReadExpect(const Node* n, AttestationPolicy& a) {
  const std::string base = "security.attestation.expect";
  if (!IsMapNode(n, base)) return;
  Fields types = ReadFields(n, base, kExpectTypes);
  for (std::string_view type : kExpectTypes) {
    const Node* t = types.Get(type);
    if (t == nullptr) continue;
    const std::string tpath = Child(base, type);
    if (!IsMapNode(t, tpath)) continue;
    AttestationPolicy::Expected out;
    // Hex values (any of a list) and minimums, per the table of the type.
    auto read_table = [&](std::span<const ExpectField> table, std::vector<std::string_view> extra) {
      std::vector<std::string_view> names;
      for (const ExpectField& f : table) names.push_back(f.field);
      names.insert(names.end(), extra.begin(), extra.end());
      Fields f = ReadFields(t, tpath, names);
      for (const ExpectField& ef : table) {
        const Node* v = f.Get(ef.field);
        if (v == nullptr) continue;
        const std::string path = Child(tpath, ef.field);
        if (ef.hex_digits == 0) {
          if (auto i = Int(v, path, 0, 65535)) {
            if (ef.field.rfind("min_", 0) == 0) {
              out.at_least[std::string(ef.claim)] = static_cast<uint64_t>(*i);
            } else {
              out.one_of[std::string(ef.claim)] = {std::to_string(*i)};
            }
          }
          continue;
        }
        ReadHexList(v, path, ef.hex_digits, out.one_of[std::string(ef.claim)]);
      }
      return f;
    };
    if (type == "sgx") {
      read_table(kSgxExpect, {});
    } else if (type == "tdx") {
      read_table(kTdxExpect, {});
    } else if (type == "snp") {
      Fields f = read_table(kSnpExpect, {"min_tcb"});
      if (const Node* m = f.Get("min_tcb")) {
        const std::string mpath = Child(tpath, "min_tcb");
        if (IsMapNode(m, mpath)) {
          Fields parts = ReadFields(m, mpath, kSnpTcbParts);
          for (std::string_view part : kSnpTcbParts) {
            if (const Node* v = parts.Get(part)) {
              if (auto i = Int(v, Child(mpath, part), 0, 255)) {
                out.at_least["reported_tcb." + std::string(part)] = static_cast<uint64_t>(*i);
              }
            }
          }
        }
      }
    } else {  // tpm
      static constexpr std::string_view kTpmFields[] = {"pcrs"};
      Fields f = ReadFields(t, tpath, kTpmFields);
      if (const Node* pcrs = f.Get("pcrs")) {
        const std::string ppath = Child(tpath, "pcrs");
        if (IsMapNode(pcrs, ppath)) {
          for (size_t i = 0; i < pcrs->MapSize(); ++i) {
            const Node* key = pcrs->Key(i);
            const std::string kpath = Child(ppath, key->IsScalar() ? key->value : "?");
            auto index = Int(key, kpath, 0, 23);
            if (!index) continue;
            auto& list = out.one_of["pcr" + std::to_string(*index)];
            if (!list.empty()) {
              Error(key, kpath, "duplicate PCR");
              continue;
            }
            ReadHexList(pcrs->Value(i), kpath, 64, list);
          }
        }
      }
    }
    // Lists that failed to read leave empty entries behind: drop them.
    for (auto it = out.one_of.begin(); it != out.one_of.end();) {
      it = it->second.empty() ? out.one_of.erase(it) : std::next(it);
    }
    a.expect[std::string(type)] = std::move(out);
  }
}

void Validator::ReadHexList(const Node* v, const std::string& path, size_t digits, std::vector<std::string>& out) {
  // One value or a list of accepted values.
  std::vector<std::string> items;
  std::vector<const Node*> nodes;
  if (v->IsSequence()) {
    auto list = Strings(v, path);
    if (!list) return;
    items = std::move(*list);
    for (const Node* c : v->children) nodes.push_back(c);
  } else {
    auto one = String(v, path);
    if (!one) return;
    items.push_back(std::move(*one));
    nodes.push_back(v);
  }
  if (items.empty()) {
    Error(v, path, "is empty: no evidence could match");
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string ipath = v->IsSequence() ? Index(path, i) : path;
    if (!IsHexDigits(items[i], digits)) {
      Error(nodes[i], ipath, Quoted(items[i]) + " is not " + std::to_string(digits) + " hex digits");
      out.clear();
      return;
    }
    std::string lower = AsciiLower(items[i]);
    if (!seen.insert(lower).second) {
      Error(nodes[i], ipath, "duplicate entry");
      out.clear();
      return;
    }
    out.push_back(std::move(lower));
  }
}

// ---- cross checks ----

void Validator::CheckReferences(const Policy& p) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p.secrets.size(); ++i) {
    if (!p.secrets[i].name.empty()) index.emplace(p.secrets[i].name, i);
  }
  auto lookup = [&](const std::string& name) -> std::optional<size_t> {
    auto it = index.find(name);
    if (it == index.end()) return std::nullopt;
    return it->second;
  };

  for (size_t i = 0; i < p.secrets.size(); ++i) {
    const Secret& s = p.secrets[i];
    const SecretSite& site = secret_sites_[i];
    if (s.kind == SecretKind::kImported && s.import && !s.import->session.empty() && s.import->session == p.name) {
      Error(site.import_session, Child(Child(site.path, "import"), "session"), "a session cannot import from itself");
    }
    if (site.private_key != nullptr && IsName(s.private_key)) {
      std::string path = Child(site.path, "private_key");
      auto j = lookup(s.private_key);
      if (!j) {
        Error(site.private_key, path, "no secret " + Quoted(s.private_key) + " in this session");
      } else if (secret_sites_[*j].kind_known && p.secrets[*j].kind != SecretKind::kPrivateKey &&
                 p.secrets[*j].kind != SecretKind::kImported) {
        Error(site.private_key, path,
              "names " + std::string(SecretKindName(p.secrets[*j].kind)) + " secret " + Quoted(s.private_key) +
                  "; it must name a private-key secret");
      }
    }
    if (site.issuer != nullptr && IsName(s.issuer)) {
      std::string path = Child(site.path, "issuer");
      auto j = lookup(s.issuer);
      if (!j) {
        Error(site.issuer, path,
              "no secret " + Quoted(s.issuer) +
                  " in this session (an issuer is an x509-ca secret of this "
                  "session or an imported one)");
      } else if (secret_sites_[*j].kind_known && p.secrets[*j].kind != SecretKind::kX509Ca &&
                 p.secrets[*j].kind != SecretKind::kImported) {
        Error(site.issuer, path,
              "names " + std::string(SecretKindName(p.secrets[*j].kind)) + " secret " + Quoted(s.issuer) +
                  "; an issuer must be an x509-ca secret");
      }
    }
  }

  // Issuer cycles. Each secret names at most one issuer, so following the
  // links from a secret either ends or runs into a cycle. States: 0 not
  // seen, 1 on the walk in progress, 2 done; every secret is walked once,
  // and each cycle is reported once, at its member that comes first.
  std::vector<int> state(p.secrets.size(), 0);
  auto next = [&](size_t i) -> std::optional<size_t> {
    if (p.secrets[i].issuer.empty() || secret_sites_[i].issuer == nullptr) return std::nullopt;
    return lookup(p.secrets[i].issuer);
  };
  for (size_t start = 0; start < p.secrets.size(); ++start) {
    std::vector<size_t> walk;
    std::optional<size_t> cur = start;
    while (cur && state[*cur] == 0) {
      state[*cur] = 1;
      walk.push_back(*cur);
      cur = next(*cur);
    }
    if (cur && state[*cur] == 1) {
      std::vector<size_t> loop(std::find(walk.begin(), walk.end(), *cur), walk.end());
      std::rotate(loop.begin(), std::min_element(loop.begin(), loop.end()), loop.end());
      std::string text;
      for (size_t k = 0; k < loop.size() && k < 8; ++k) text += p.secrets[loop[k]].name + " -> ";
      if (loop.size() > 8) text += "... (" + std::to_string(loop.size()) + " secrets) -> ";
      text += p.secrets[loop[0]].name;
      Error(secret_sites_[loop[0]].issuer, Child(secret_sites_[loop[0]].path, "issuer"), "issuer cycle: " + text);
    }
    for (size_t k : walk) state[k] = 2;
  }

  std::set<std::string> volumes;
  for (const Volume& v : p.volumes) volumes.insert(v.name);
  for (const auto& [path, node] : mount_refs_) {
    if (volumes.count(node->value) == 0) {
      Error(node, path, "no volume " + Quoted(node->value) + " in this session's volumes");
    }
  }
}

void Validator::CheckPlaceholders(const Policy& p) {
  std::map<std::string, std::optional<SecretKind>> kinds;
  for (size_t i = 0; i < p.secrets.size(); ++i) {
    if (p.secrets[i].name.empty()) continue;
    kinds.emplace(p.secrets[i].name,
                  secret_sites_[i].kind_known ? std::optional<SecretKind>(p.secrets[i].kind) : std::nullopt);
  }
  for (const PlaceholderSite& site : placeholder_sites_) {
    auto found = FindPlaceholders(site.text);
    if (!found.ok()) {
      Error(site.node, site.path, found.status().message());
      continue;
    }
    for (const Placeholder& ph : *found) {
      auto it = kinds.find(ph.secret);
      if (it == kinds.end()) {
        Error(site.node, site.path,
              "placeholder names secret " + Quoted(ph.secret) +
                  ", which this session does "
                  "not define");
      } else if (it->second && !FormatApplies(*it->second, ph.format)) {
        std::string formats;
        for (std::string_view f : FormatsOf(*it->second)) formats += (formats.empty() ? "" : ", ") + std::string(f);
        Error(site.node, site.path,
              "placeholder asks for format " + Quoted(ph.format) + " of " + std::string(SecretKindName(*it->second)) +
                  " secret " + Quoted(ph.secret) + " (formats: " + formats + ")");
      }
    }
  }
}

// ---- locating fields again, for CheckImports ----

// The node at a path such as "secrets[2].import.session", or the deepest
// node on the way there that exists.
const Node* NodeAt(const Node* root, std::string_view path) {
  const Node* cur = root;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '.') {
      ++i;
      continue;
    }
    const Node* next = nullptr;
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) break;
      size_t index = 0;
      for (size_t k = i + 1; k < close && index < (1u << 30); ++k)
        index = index * 10 + static_cast<size_t>(path[k] - '0');
      if (cur->IsSequence() && index < cur->children.size()) next = cur->children[index];
      i = close + 1;
    } else {
      size_t end = std::min(path.find_first_of(".[", i), path.size());
      next = cur->Find(path.substr(i, end - i));
      i = end;
    }
    if (next == nullptr) break;
    cur = next;
  }
  return cur;
}

}  // namespace

// ---- public API ----

std::string FormatError(const PolicyError& e) {
  std::string out;
  if (e.line > 0) out = "line " + std::to_string(e.line) + ", column " + std::to_string(e.column) + ": ";
  if (!e.path.empty()) out += e.path + ": ";
  return out + e.message;
}

std::string_view SecretKindName(SecretKind k) {
  switch (k) {
    case SecretKind::kAscii:
      return "ascii";
    case SecretKind::kBinary:
      return "binary";
    case SecretKind::kPrivateKey:
      return "private-key";
    case SecretKind::kX509Ca:
      return "x509-ca";
    case SecretKind::kX509:
      return "x509";
    case SecretKind::kExplicit:
      return "explicit";
    case SecretKind::kImported:
      return "import";
  }
  return "?";
}

std::string_view KeyAlgorithmName(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kP256:
      return "P-256";
    case KeyAlgorithm::kP384:
      return "P-384";
    case KeyAlgorithm::kEd25519:
      return "Ed25519";
    case KeyAlgorithm::kRsa3072:
      return "RSA-3072";
  }
  return "?";
}

std::string Secret::Fingerprint() const {
  // One "field=length:bytes" line per field, always in this order and
  // with defaults filled in, so that equal definitions give equal text
  // however they were written and no value can imitate another field.
  std::string out = "cloister secret v1\n";
  auto add = [&out](std::string_view field, std::string_view value) {
    out += std::string(field) + "=" + std::to_string(value.size()) + ":" + std::string(value) + "\n";
  };
  auto add_list = [&](std::string_view field, const std::vector<std::string>& values) {
    add(field, std::to_string(values.size()));
    for (const std::string& v : values) add(field, v);
  };
  add("name", name);
  add("kind", SecretKindName(kind));
  switch (kind) {
    case SecretKind::kAscii:
    case SecretKind::kBinary:
      add("size", std::to_string(size == 0 ? 32 : size));
      break;
    case SecretKind::kExplicit: {
      std::string digest;
      if (value) digest = HexEncode(crypto::Sha256(value->UnsafeBytes()));
      add("value-sha256", digest);
      break;
    }
    case SecretKind::kPrivateKey:
      add("algorithm", KeyAlgorithmName(algorithm));
      break;
    case SecretKind::kX509Ca:
    case SecretKind::kX509: {
      // With a private_key the algorithm is the key's; the field is unset.
      add("algorithm", private_key.empty() ? KeyAlgorithmName(algorithm) : "");
      add("private_key", private_key);
      add("issuer", issuer);
      add("common_name", common_name);
      add_list("dns", dns);
      add_list("ip", ip);
      int days = validity_days != 0 ? validity_days : (kind == SecretKind::kX509 ? 365 : 3650);
      add("validity_days", std::to_string(days));
      break;
    }
    case SecretKind::kImported:
      add("session", import ? import->session : "");
      add("secret", import ? import->secret : "");
      add("session_hash", import ? import->session_hash : "");
      break;
  }
  return out;
}

ParseResult Parse(std::string_view yaml_text) {
  ParseResult result;
  if (yaml_text.size() > kMaxDocumentSize) {
    result.errors.push_back({"", 0, 0,
                             "the document is " + std::to_string(yaml_text.size()) + " bytes; at most " +
                                 std::to_string(kMaxDocumentSize) + " are accepted"});
    return result;
  }
  std::unique_ptr<yaml::Tree> tree = yaml::Tree::Parse(yaml_text);
  if (tree->error()) {
    result.errors.push_back(*tree->error());
    return result;
  }
  Validator v(result.errors);
  Policy p = v.Run(tree->root());
  // Problems in document order (cross checks ran after the walk); the
  // "too many problems" note, if any, stays last.
  size_t sortable = std::min(result.errors.size(), kMaxErrors);
  std::stable_sort(result.errors.begin(), result.errors.begin() + static_cast<std::ptrdiff_t>(sortable),
                   [](const PolicyError& a, const PolicyError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  if (result.errors.empty()) result.policy = std::move(p);
  return result;
}

std::string DocumentHash(std::string_view yaml_text) { return HexEncode(crypto::Sha256(AsBytes(yaml_text))); }

std::vector<PolicyError> CheckImports(const Policy& p, std::string_view own_hash, const std::string& yaml_text,
                                      const SessionLookup& lookup) {
  std::vector<PolicyError> errors;
  bool any_import = std::any_of(p.secrets.begin(), p.secrets.end(),
                                [](const Secret& s) { return s.kind == SecretKind::kImported && s.import; });
  if (!any_import) return errors;

  // The document is read again only to give errors a position.
  std::unique_ptr<yaml::Tree> tree;
  auto root = [&]() -> const Node* {
    if (!tree) tree = yaml::Tree::Parse(yaml_text.size() <= kMaxDocumentSize ? yaml_text : std::string());
    return tree->root();
  };
  auto report = [&](const std::string& path, std::string message) {
    PolicyError e;
    e.path = path;
    if (root() != nullptr) {
      const Node* n = NodeAt(root(), path);
      e.line = n->line;
      e.column = n->column;
    }
    e.message = std::move(message);
    errors.push_back(std::move(e));
  };
  const std::string own = AsciiLower(std::string(own_hash));

  // Each exporting session is looked up once, and its secrets indexed.
  struct Exporter {
    std::optional<ExporterView> view;
    std::map<std::string, const Secret*, std::less<>> secrets;
  };
  std::map<std::string, Exporter, std::less<>> exporters;
  auto exporter = [&](const std::string& name) -> const Exporter& {
    auto it = exporters.find(name);
    if (it != exporters.end()) return it->second;
    Exporter& e = exporters[name];
    if (lookup) e.view = lookup(name);
    if (e.view && e.view->policy != nullptr) {
      for (const Secret& s : e.view->policy->secrets) e.secrets.emplace(s.name, &s);
    }
    return e;
  };

  // The kind of each imported secret, as the exporter defines it.
  std::map<std::string, SecretKind> imported_kinds;
  for (size_t i = 0; i < p.secrets.size(); ++i) {
    const Secret& s = p.secrets[i];
    if (s.kind != SecretKind::kImported || !s.import) continue;
    const Import& im = *s.import;
    std::string path = Index("secrets", i) + ".import";
    const Exporter& ex = exporter(im.session);
    const std::optional<ExporterView>& view = ex.view;
    if (!view || view->policy == nullptr) {
      report(path + ".session", "no session " + Quoted(im.session));
      continue;
    }
    if (!im.session_hash.empty() && AsciiLower(im.session_hash) != AsciiLower(view->hash)) {
      report(path + ".session_hash",
             "session " + Quoted(im.session) + " is now at version " + AsciiLower(view->hash) + ", not the pinned one");
      continue;
    }
    auto found = ex.secrets.find(im.secret);
    const Secret* exported = found == ex.secrets.end() ? nullptr : found->second;
    if (exported == nullptr) {
      report(path + ".secret", "session " + Quoted(im.session) + " has no secret " + Quoted(im.secret));
      continue;
    }
    bool to_us = false, to_this_version = false;
    for (const Export& e : exported->exports) {
      if (e.session != p.name) continue;
      to_us = true;
      if (e.session_hash.empty() || AsciiLower(e.session_hash) == own) to_this_version = true;
    }
    if (!to_us) {
      report(path + ".secret", "secret " + Quoted(im.secret) + " of session " + Quoted(im.session) +
                                   " is not exported to " + Quoted(p.name));
      continue;
    }
    if (!to_this_version) {
      report(path + ".secret", "secret " + Quoted(im.secret) + " of session " + Quoted(im.session) +
                                   " is exported to another version of " + Quoted(p.name) + " (this one is " + own +
                                   ")");
      continue;
    }
    if (exported->kind == SecretKind::kImported) {
      report(path + ".secret", "secret " + Quoted(im.secret) + " of session " + Quoted(im.session) +
                                   " is itself imported and cannot be passed on");
      continue;
    }
    imported_kinds.emplace(s.name, exported->kind);
  }

  // References from local secrets to imported ones, now that kinds are known.
  for (size_t i = 0; i < p.secrets.size(); ++i) {
    const Secret& s = p.secrets[i];
    auto check = [&](const std::string& ref, SecretKind want, const char* field) {
      auto it = imported_kinds.find(ref);
      if (ref.empty() || it == imported_kinds.end() || it->second == want) return;
      report(Index("secrets", i) + "." + field, "imported secret " + Quoted(ref) + " is a " +
                                                    std::string(SecretKindName(it->second)) + " secret; it must be " +
                                                    std::string(SecretKindName(want)));
    };
    check(s.private_key, SecretKind::kPrivateKey, "private_key");
    check(s.issuer, SecretKind::kX509Ca, "issuer");
  }

  // Placeholder formats for imported secrets. Paths are made only for
  // errors; a command written as one string is reported as a whole, as
  // Parse does.
  auto check_text = [&](const std::string& text, const std::function<std::string()>& path) {
    if (text.find(kPlaceholderStart) == std::string::npos) return;
    auto found = FindPlaceholders(text);
    if (!found.ok()) return;  // Parse reported it
    for (const Placeholder& ph : *found) {
      auto it = imported_kinds.find(ph.secret);
      if (it == imported_kinds.end() || FormatApplies(it->second, ph.format)) continue;
      std::string formats;
      for (std::string_view f : FormatsOf(it->second)) formats += (formats.empty() ? "" : ", ") + std::string(f);
      report(path(), "placeholder asks for format " + Quoted(ph.format) + " of imported " +
                         std::string(SecretKindName(it->second)) + " secret " + Quoted(ph.secret) +
                         " (formats: " + formats + ")");
    }
  };
  if (imported_kinds.empty()) return errors;
  for (size_t i = 0; i < p.services.size(); ++i) {
    const Service& svc = p.services[i];
    const std::string path = Index("services", i);
    for (size_t k = 0; k < svc.command.size(); ++k) {
      check_text(svc.command[k], [&] {
        const Node* command = root() != nullptr ? NodeAt(root(), path + ".command") : nullptr;
        return command != nullptr && command->IsScalar() ? path + ".command" : Index(path + ".command", k);
      });
    }
    for (const auto& variable : svc.environment) {
      check_text(variable.second, [&] { return path + ".environment." + variable.first; });
    }
    for (size_t k = 0; k < svc.files.size(); ++k) {
      check_text(svc.files[k].content, [&] { return Index(path + ".files", k) + ".content"; });
    }
  }
  return errors;
}

}  // namespace cloister::policy
