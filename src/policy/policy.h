// The session (policy) model: what a session document says, parsed and
// validated once, up front, before anything has effects. The language is
// specified in docs/policy.md; this header is its in-memory form.
//
// Parsing is pure: no store, no clock, no network. Checks that need other
// sessions (imports) take a lookup callback, so `cloister session verify`
// runs offline and the CAS runs the same code with its store behind it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::policy {

// One reason a document was refused. `path` names the field the way a user
// finds it in the YAML ("services[0].environment.DB_PASSWORD"); `line` and
// `column` are 1-based positions in the uploaded text (0 when unknown).
struct PolicyError {
  std::string path;
  int line = 0;
  int column = 0;
  std::string message;
};
// "line 12, column 5: services[0].pwd: must be an absolute path"
std::string FormatError(const PolicyError& e);

// Who may act on a session. Each list holds 64-hex identities and the
// keywords CREATOR (the identity that created the session), ANY (every
// authenticated identity) and NONE (nobody; alone in its list).
struct AccessPolicy {
  std::vector<std::string> read = {"CREATOR"};
  std::vector<std::string> update = {"CREATOR"};
  std::vector<std::string> del = {"CREATOR"};  // "delete" in YAML
};

// `security.attestation`
struct AttestationPolicy {
  // Evidence types a service of this session may start with:
  // sim, tpm, tdx, snp, sgx. Default: tdx, snp, sgx (hardware only).
  std::vector<std::string> allowed = {"tdx", "snp", "sgx"};
  // simulation, debug, outdated-tcb, sw-hardening-needed,
  // configuration-needed. `sim` evidence needs "simulation".
  std::vector<std::string> tolerate;
  std::vector<std::string> ignore_advisories;
  // `expect`: by evidence type (sgx, tdx, snp, tpm), the claims the
  // hardware evidence must carry. Claim names are those of the verifiers
  // (src/attest/hardware.h): `expect.tdx.mrtd` becomes one_of["mrtd"],
  // `expect.sgx.min_isvsvn` at_least["isvsvn"], `expect.snp.min_tcb.snp`
  // at_least["reported_tcb.snp"], `expect.tpm.pcrs.7` one_of["pcr7"].
  // Values are lowercase hex (or decimal).
  struct Expected {
    std::map<std::string, std::vector<std::string>> one_of;
    std::map<std::string, uint64_t> at_least;
  };
  std::map<std::string, Expected> expect;
};

struct Mount {
  std::string volume;  // the name of an entry of `volumes`
  std::string path;    // absolute path inside the program
};

struct InjectedFile {
  std::string path;     // absolute path inside the program
  std::string content;  // may hold placeholders
  uint32_t mode = 0400;
};

struct Service {
  std::string name;
  std::vector<std::string> measurements;  // 64-hex SHA-256, at least one
  std::vector<std::string> command;       // argv; YAML string (shell-like
                                          // quoting, no expansion) or list
  std::map<std::string, std::string> environment;  // values may hold placeholders
  std::string pwd = "/";
  std::vector<Mount> mounts;
  std::vector<InjectedFile> files;
};

enum class SecretKind { kAscii, kBinary, kPrivateKey, kX509Ca, kX509, kExplicit, kImported };
std::string_view SecretKindName(SecretKind k);  // "ascii", ..., "explicit", "import"

enum class KeyAlgorithm { kP256, kP384, kEd25519, kRsa3072 };
std::string_view KeyAlgorithmName(KeyAlgorithm a);  // "P-256", "P-384", "Ed25519", "RSA-3072"

struct Export {
  std::string session;       // name of the session allowed to import
  std::string session_hash;  // optional 64-hex: only that version of it
};

struct Import {
  std::string session;       // the exporting session
  std::string secret;        // the secret's name there
  std::string session_hash;  // optional 64-hex pin of the exporting session
};

struct Secret {
  std::string name;
  SecretKind kind = SecretKind::kAscii;
  // ascii: characters (default 32); binary: bytes (default 32).
  int size = 0;
  // private-key, x509-ca, x509: the key type (default P-256).
  KeyAlgorithm algorithm = KeyAlgorithm::kP256;
  // x509-ca, x509: use this private-key secret instead of a fresh key.
  std::string private_key;
  // x509: the x509-ca secret that signs it (this session's or imported).
  // x509-ca: optional, for an intermediate CA; empty = self-signed root.
  std::string issuer;
  std::string common_name;
  std::vector<std::string> dns;  // subjectAltName DNS entries (x509)
  std::vector<std::string> ip;   // subjectAltName IP entries (x509)
  int validity_days = 0;         // default 365 (x509), 3650 (x509-ca)
  // explicit: the value. Never shown by the CAS.
  std::optional<SecretBytes> value;
  std::vector<Export> exports;
  std::optional<Import> import;  // kind == kImported

  // A canonical text of the definition (everything but exports): when it
  // changes across an update the CAS generates a new value, otherwise it
  // keeps the old one. Includes a hash of an explicit value, not the value
  // (an unsalted SHA-256: keep fingerprints as confidential as the store,
  // a short explicit value could be guessed from it).
  std::string Fingerprint() const;
};

enum class UpdatePolicy { kRollbackProtected, kReadOnly };

struct Volume {
  std::string name;
  // Optional initial key (64 hex) and expected tag (hex) written by
  // `cloister image protect`; without a key the CAS generates one.
  // `key` holds the 32 key bytes (decoded from the document's hex); `tag`
  // is 64 lowercase hex digits, and is only allowed with a key.
  std::optional<SecretBytes> key;
  std::string tag;
  UpdatePolicy update_policy = UpdatePolicy::kRollbackProtected;
};

struct Policy {
  std::string name;            // [A-Za-z0-9._-]+ segments joined by '/', <= 128
  std::string version = "1";   // language version; only "1" exists
  std::string predecessor;     // 64-hex; required on update, absent on create
  std::vector<Service> services;
  std::vector<Secret> secrets;
  std::vector<Volume> volumes;
  AccessPolicy access_policy;
  AttestationPolicy attestation;
};

// Parses and validates a document: YAML syntax, unknown fields, types,
// names, duplicate names, ill-formed and dangling placeholders, references
// between secrets, volumes and mounts. Every problem found is reported, not
// only the first (up to 100, then a note that there are more), in
// document order. Imports are checked only for shape here (see
// CheckImports). Never throws; safe on any input (documents larger than
// kMaxDocumentSize, nested deeper than 64 levels, or holding more than
// 100000 nodes once aliases are expanded are refused). Defaults are filled
// in: size 32 for ascii and binary, validity_days 365 (x509) and 3650
// (x509-ca); hex (measurements, identities, hashes) is lowercased.
struct ParseResult {
  std::optional<Policy> policy;  // set iff errors is empty
  std::vector<PolicyError> errors;
};
ParseResult Parse(std::string_view yaml_text);

// Largest document accepted (bytes); larger ones are refused before parsing.
inline constexpr size_t kMaxDocumentSize = 1 << 20;

// The hash of a session version: hex SHA-256 of the exact document text.
std::string DocumentHash(std::string_view yaml_text);

// What the CAS knows about another session when checking an import.
struct ExporterView {
  std::string hash;   // current version's DocumentHash
  const Policy* policy = nullptr;
};
using SessionLookup = std::function<std::optional<ExporterView>(const std::string& name)>;
// Checks each import of `p` (whose document hash will be `own_hash`): the
// exporting session exists, matches a pinned hash, has the secret, and
// exports it to `p.name` (pinned, if it pins, to `own_hash`), and is not
// itself an import there. Errors point at the import fields. The imported
// secret's kind is taken from the exporter for the checks that need it
// (placeholder formats, issuer and private_key), which run again here.
// `p` must come from Parse(yaml_text); the text only gives errors their
// line and column. Each exporting session is looked up once.
std::vector<PolicyError> CheckImports(const Policy& p, std::string_view own_hash,
                                      const std::string& yaml_text, const SessionLookup& lookup);

// Placeholders: $$CLOISTER::name$$ or $$CLOISTER::name:format$$.
// Formats by kind:
//   ascii, explicit: raw (default), hex, base64
//   binary:          hex (default), base64, raw
//   private-key:     pem (default, PKCS#8), public-pem
//   x509-ca, x509:   cert (default, PEM), chain (cert and issuers, PEM),
//                    privatekey (PEM), public-pem
struct Placeholder {
  size_t begin = 0, end = 0;  // byte range of "$$...$$" in the string
  std::string secret;
  std::string format;         // empty = the kind's default
};
// The placeholders of a string, or an error for an ill-formed one: a
// "$$CLOISTER::" not followed by a name of [A-Za-z0-9_-] (at most 64),
// an optional ":format" naming one of the formats above, and "$$". There
// is no escape: "$$CLOISTER::" always starts a placeholder.
StatusOr<std::vector<Placeholder>> FindPlaceholders(std::string_view s);

// The formats of a kind, the default first. For kImported (whose kind is
// unknown until CheckImports asks the exporter) every known format.
std::span<const std::string_view> FormatsOf(SecretKind kind);
// The default format of a kind ("" for kImported).
std::string_view DefaultFormat(SecretKind kind);
// Whether a placeholder may ask `format` ("" = default) of such a secret.
bool FormatApplies(SecretKind kind, std::string_view format);

// Splits a `command` written as one string into argv, like a POSIX shell
// but without any expansion: words are separated by blanks; '...' keeps
// everything literally; "..." keeps everything but \\, \", \$ and \`
// (and drops backslash-newline); outside quotes a backslash keeps the
// next character literally. $, *, ;, | and the like are plain characters.
// An unterminated quote or a trailing lone backslash is an error.
StatusOr<std::vector<std::string>> SplitCommand(std::string_view command);

// A copy of the document for `show`: the same YAML with every explicit
// secret value (secrets[].value) and volume key (volumes[].key) replaced
// by "<redacted>", every other byte kept. If a value cannot be cut out in
// place (the result is re-parsed to make sure), the whole document is
// re-emitted from its parsed form instead, with a comment saying so, which
// loses comments and layout. Any further verbatim copy of such a value
// (or of one line of a multi-line value) of 6 bytes or more anywhere in
// the text, in a comment or another field, is replaced too; for documents
// with thousands of such values, only as many as a fixed search budget
// allows, longest first. Text that is not YAML (or too large) yields only
// a comment line, since nothing can be located in it. Never throws.
std::string RedactedText(std::string_view yaml_text);

}  // namespace cloister::policy
