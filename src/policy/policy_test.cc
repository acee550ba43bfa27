#include "policy/policy.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/bytes.h"
#include "crypto/crypto.h"

namespace cloister::policy {
namespace {

// ---- helpers ----

std::string SourceDir() {
  if (const char* dir = std::getenv("CLOISTER_SOURCE_DIR")) return dir;
  std::string file = __FILE__;  // .../src/policy/policy_test.cc
  return file.substr(0, file.rfind("/src/policy/"));
}

std::string ReadSource(const std::string& relative) {
  std::ifstream in(SourceDir() + "/" + relative, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kM1 = "1111111111111111111111111111111111111111111111111111111111111111";
const std::string kM2 = "2222222222222222222222222222222222222222222222222222222222222222";
const std::string kId = "4c7e2a9d1b3f5e7a9c0d2e4f6a8b0c1d3e5f7a9b0c2d4e6f8a1b3c5d7e9f0a2b";

// A valid document around a service body and a secrets list.
std::string Doc(const std::string& service_extra, const std::string& secrets = "") {
  std::string d = "name: test/app\nservices:\n  - name: web\n    measurements: [" + kM1 + "]\n" + service_extra;
  if (!secrets.empty()) d += "secrets:\n" + secrets;
  return d;
}

std::string Dump(const ParseResult& r) {
  std::string out;
  for (const PolicyError& e : r.errors) out += "  " + FormatError(e) + "\n";
  return out;
}

// The single error of a document that must have exactly one.
PolicyError OneError(const std::string& text) {
  ParseResult r = Parse(text);
  EXPECT_EQ(r.errors.size(), 1u) << text << "\n" << Dump(r);
  EXPECT_FALSE(r.policy.has_value());
  return r.errors.empty() ? PolicyError{} : r.errors[0];
}

// Whether some error has this path and a message containing `part`.
bool HasError(const ParseResult& r, const std::string& path, const std::string& part) {
  for (const PolicyError& e : r.errors) {
    if (e.path == path && e.message.find(part) != std::string::npos) return true;
  }
  return false;
}

Policy MustParse(const std::string& text) {
  ParseResult r = Parse(text);
  EXPECT_TRUE(r.policy.has_value()) << text << "\n" << Dump(r);
  return r.policy ? std::move(*r.policy) : Policy{};
}

std::string Str(const SecretBytes& b) {
  return std::string(reinterpret_cast<const char*>(b.UnsafeBytes().data()), b.size());
}

// ---- valid documents ----

TEST(PolicyTest, FullExampleParsesWithEveryField) {
  std::string text = ReadSource("tests/policy/full.yaml");
  ASSERT_FALSE(text.empty()) << "tests/policy/full.yaml not found from " << SourceDir();
  Policy p = MustParse(text);
  EXPECT_EQ(p.name, "shop/backend");
  EXPECT_EQ(p.version, "1");
  EXPECT_EQ(p.predecessor, "");

  ASSERT_EQ(p.services.size(), 1u);
  const Service& s = p.services[0];
  EXPECT_EQ(s.name, "api");
  EXPECT_EQ(s.measurements,
            std::vector<std::string>{"3f9a1c0d5e7b2a4c6d8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"});
  EXPECT_EQ(s.command,
            (std::vector<std::string>{"python3", "/app/server.py", "--config", "/etc/shop/app.ini", "--port", "8443"}));
  EXPECT_EQ(s.environment.size(), 4u);
  EXPECT_EQ(s.environment.at("DB_USER"), "shop");
  EXPECT_EQ(s.environment.at("DB_PASSWORD"), "$$CLOISTER::db_password$$");
  EXPECT_EQ(s.environment.at("API_TOKEN_HEX"), "$$CLOISTER::api_token:hex$$");
  EXPECT_EQ(s.environment.at("PYTHONUNBUFFERED"), "1");
  EXPECT_EQ(s.pwd, "/app");
  ASSERT_EQ(s.mounts.size(), 1u);
  EXPECT_EQ(s.mounts[0].volume, "data");
  EXPECT_EQ(s.mounts[0].path, "/var/lib/shop");
  ASSERT_EQ(s.files.size(), 2u);
  EXPECT_EQ(s.files[0].path, "/etc/shop/app.ini");
  EXPECT_EQ(s.files[0].mode, 0400u);
  EXPECT_EQ(s.files[0].content,
            "[database]\nhost = db.shop.internal\npassword = $$CLOISTER::db_password$$\n[tls]\n"
            "certificate = /etc/shop/tls.pem\n");
  EXPECT_EQ(s.files[1].path, "/etc/shop/tls.pem");
  EXPECT_EQ(s.files[1].mode, 0400u);  // the default
  EXPECT_EQ(s.files[1].content, "$$CLOISTER::api_cert$$$$CLOISTER::api_cert:privatekey$$");

  ASSERT_EQ(p.secrets.size(), 6u);
  const Secret& db = p.secrets[0];
  EXPECT_EQ(db.name, "db_password");
  EXPECT_EQ(db.kind, SecretKind::kAscii);
  EXPECT_EQ(db.size, 24);
  ASSERT_EQ(db.exports.size(), 1u);
  EXPECT_EQ(db.exports[0].session, "shop/reporting");
  EXPECT_EQ(db.exports[0].session_hash, "");
  const Secret& token = p.secrets[1];
  EXPECT_EQ(token.kind, SecretKind::kBinary);
  EXPECT_EQ(token.size, 32);  // the default
  const Secret& ca = p.secrets[2];
  EXPECT_EQ(ca.kind, SecretKind::kX509Ca);
  EXPECT_EQ(ca.common_name, "Shop internal CA");
  EXPECT_EQ(ca.validity_days, 1825);
  EXPECT_EQ(ca.algorithm, KeyAlgorithm::kP256);
  EXPECT_EQ(ca.issuer, "");
  const Secret& cert = p.secrets[3];
  EXPECT_EQ(cert.kind, SecretKind::kX509);
  EXPECT_EQ(cert.issuer, "shop_ca");
  EXPECT_EQ(cert.algorithm, KeyAlgorithm::kP384);
  EXPECT_EQ(cert.common_name, "api.shop.internal");
  EXPECT_EQ(cert.dns, (std::vector<std::string>{"api.shop.internal", "*.api.shop.internal"}));
  EXPECT_EQ(cert.ip, (std::vector<std::string>{"10.0.0.7", "fd00::7"}));
  EXPECT_EQ(cert.validity_days, 365);  // the x509 default
  const Secret& license = p.secrets[4];
  EXPECT_EQ(license.kind, SecretKind::kExplicit);
  ASSERT_TRUE(license.value.has_value());
  EXPECT_EQ(Str(*license.value), "LK-7781-ACME-0042-SECRET");
  const Secret& imported = p.secrets[5];
  EXPECT_EQ(imported.kind, SecretKind::kImported);
  ASSERT_TRUE(imported.import.has_value());
  EXPECT_EQ(imported.import->session, "shop/pki");
  EXPECT_EQ(imported.import->secret, "root_ca");
  EXPECT_EQ(imported.import->session_hash, "9d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e");

  ASSERT_EQ(p.volumes.size(), 1u);
  EXPECT_EQ(p.volumes[0].name, "data");
  ASSERT_TRUE(p.volumes[0].key.has_value());
  EXPECT_EQ(HexEncode(p.volumes[0].key->UnsafeBytes()),
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  EXPECT_EQ(p.volumes[0].tag, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
  EXPECT_EQ(p.volumes[0].update_policy, UpdatePolicy::kRollbackProtected);

  EXPECT_EQ(p.access_policy.read, (std::vector<std::string>{"CREATOR", kId}));
  EXPECT_EQ(p.access_policy.update, std::vector<std::string>{"CREATOR"});
  EXPECT_EQ(p.access_policy.del, std::vector<std::string>{"NONE"});
  EXPECT_EQ(p.attestation.allowed, (std::vector<std::string>{"tdx", "snp"}));
  EXPECT_EQ(p.attestation.tolerate, std::vector<std::string>{"outdated-tcb"});
  EXPECT_EQ(p.attestation.ignore_advisories, std::vector<std::string>{"INTEL-SA-00615"});
}

TEST(PolicyTest, MinimalDocumentGetsDefaults) {
  Policy p = MustParse(ReadSource("tests/policy/minimal.yaml"));
  EXPECT_EQ(p.name, "hello");
  EXPECT_EQ(p.version, "1");
  ASSERT_EQ(p.services.size(), 1u);
  EXPECT_EQ(p.services[0].pwd, "/");
  EXPECT_TRUE(p.services[0].command.empty());
  EXPECT_TRUE(p.secrets.empty());
  EXPECT_EQ(p.access_policy.read, std::vector<std::string>{"CREATOR"});
  EXPECT_EQ(p.access_policy.update, std::vector<std::string>{"CREATOR"});
  EXPECT_EQ(p.access_policy.del, std::vector<std::string>{"CREATOR"});
  EXPECT_EQ(p.attestation.allowed, (std::vector<std::string>{"tdx", "snp", "sgx"}));
  EXPECT_TRUE(p.attestation.tolerate.empty());
}

TEST(PolicyTest, WorkedExampleOfTheDocumentationParses) {
  std::string doc = ReadSource("docs/policy.md");
  ASSERT_FALSE(doc.empty());
  size_t marker = doc.find("<!-- worked-example -->");
  ASSERT_NE(marker, std::string::npos);
  size_t begin = doc.find("```yaml\n", marker);
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  size_t end = doc.find("```", begin);
  Policy p = MustParse(doc.substr(begin, end - begin));
  EXPECT_FALSE(p.services.empty());
  EXPECT_FALSE(p.secrets.empty());
  EXPECT_FALSE(p.volumes.empty());
}

TEST(PolicyTest, ErrorExampleOfTheDocumentationIsExact) {
  std::string doc = ReadSource("docs/policy.md");
  size_t marker = doc.find("<!-- error-example -->");
  ASSERT_NE(marker, std::string::npos);
  size_t begin = doc.find("```yaml\n", marker) + 8;
  size_t end = doc.find("```", begin);
  std::string text = doc.substr(begin, end - begin);
  size_t out_begin = doc.find("```\n", end + 3) + 4;
  std::string shown = doc.substr(out_begin, doc.find("```", out_begin) - out_begin);
  std::string actual;
  for (const PolicyError& e : Parse(text).errors) actual += FormatError(e) + "\n";
  EXPECT_EQ(actual, shown);
}

TEST(PolicyTest, AliasesAreExpanded) {
  Policy p = MustParse(ReadSource("tests/policy/aliases.yaml"));
  ASSERT_EQ(p.services.size(), 2u);
  EXPECT_EQ(p.services[1].measurements, p.services[0].measurements);
  EXPECT_EQ(p.services[1].environment.at("TOKEN"), "$$CLOISTER::shared$$");
}

TEST(PolicyTest, VersionIsTheNumberOrTheStringOne) {
  MustParse("name: a\nversion: 1\n");
  MustParse("name: a\nversion: \"1\"\n");
  EXPECT_EQ(OneError("name: a\nversion: 2\n").path, "version");
  EXPECT_EQ(OneError("name: a\nversion: 1.0\n").path, "version");
  EXPECT_EQ(OneError("name: a\nversion: [1]\n").path, "version");
}

TEST(PolicyTest, HexIsLowercased) {
  std::string upper = "ABCDEF0000000000000000000000000000000000000000000000000000000000";
  Policy p = MustParse("name: a\npredecessor: " + upper + "\nservices:\n  - name: s\n    measurements: [" + upper +
                       "]\naccess_policy:\n  read: [" + upper + "]\n");
  std::string lower = "abcdef0000000000000000000000000000000000000000000000000000000000";
  EXPECT_EQ(p.predecessor, lower);
  EXPECT_EQ(p.services[0].measurements[0], lower);
  EXPECT_EQ(p.access_policy.read[0], lower);
}

// ---- one test per error class ----

TEST(PolicyErrorTest, SyntaxErrorHasItsLine) {
  PolicyError e = OneError(ReadSource("tests/policy/invalid-syntax.yaml"));
  EXPECT_EQ(e.path, "");
  EXPECT_EQ(e.line, 5);
  EXPECT_NE(e.message.find("YAML syntax error"), std::string::npos) << e.message;

  e = OneError("name: a\nservices:\n  - name: s\n   bad: indentation\n");
  EXPECT_EQ(e.line, 4);
  // yaml-cpp would close a quoted string at the end of the text.
  for (std::string text : {"name: \"unterminated\n", "name: 'unterminated\n", "name: a\nx: !!str \"a\\\"\n"}) {
    e = OneError(text);
    EXPECT_EQ(e.message, "YAML syntax error: the quoted string is not closed") << text;
  }
}

TEST(PolicyErrorTest, UnknownFieldsAtEveryLevel) {
  struct Case {
    std::string text;
    std::string path;
    int line;
    std::string allowed;
  };
  const std::string svc = "name: a\nservices:\n  - name: s\n    measurements: [" + kM1 + "]\n";
  const Case cases[] = {
      {"name: a\nsevices: []\n", "sevices", 2, "allowed here: name, version, predecessor, services"},
      {svc + "    colour: red\n", "services[0].colour", 5, "allowed here: name, measurements, command"},
      {svc + "    mounts:\n      - {volume: v, path: /x, ro: true}\nvolumes: [{name: v}]\n", "services[0].mounts[0].ro",
       6, "allowed here: volume, path"},
      {svc + "    files:\n      - {path: /x, content: y, owner: root}\n", "services[0].files[0].owner", 6,
       "allowed here: path, content, mode"},
      {"name: a\nsecrets:\n  - name: k\n    kind: ascii\n    colour: red\n", "secrets[0].colour", 5,
       "allowed here: name, kind, import, export"},
      {"name: a\nsecrets:\n  - name: k\n    import: {session: b, secret: k, version: 2}\n", "secrets[0].import.version",
       4, "allowed here: session, secret, session_hash"},
      {"name: a\nsecrets:\n  - name: k\n    kind: ascii\n    export: [{session: b, to: c}]\n",
       "secrets[0].export[0].to", 5, "allowed here: session, session_hash"},
      {"name: a\nvolumes:\n  - {name: v, size: 3}\n", "volumes[0].size", 3,
       "allowed here: name, key, tag, update_policy"},
      {"name: a\naccess_policy:\n  write: [ANY]\n", "access_policy.write", 3, "allowed here: read, update, delete"},
      {"name: a\nsecurity:\n  tls: {}\n", "security.tls", 3, "allowed here: attestation"},
      {"name: a\nsecurity:\n  attestation:\n    allow: [tdx]\n", "security.attestation.allow", 4,
       "did you mean 'allowed'?"},
  };
  for (const Case& c : cases) {
    PolicyError e = OneError(c.text);
    EXPECT_EQ(e.path, c.path) << c.text;
    EXPECT_EQ(e.line, c.line) << c.text;
    EXPECT_NE(e.message.find("unknown field"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(c.allowed), std::string::npos) << e.message;
  }
}

TEST(PolicyErrorTest, WrongTypes) {
  PolicyError e = OneError("name: [a, b]\n");
  EXPECT_EQ(e.path, "name");
  EXPECT_EQ(e.message, "must be a string, not a list");
  e = OneError("name: a\nservices: {web: 1}\n");
  EXPECT_EQ(e.path, "services");
  EXPECT_EQ(e.message, "must be a list, not a map");
  e = OneError(Doc("    environment: [A=1]\n"));
  EXPECT_EQ(e.path, "services[0].environment");
  EXPECT_EQ(e.message, "must be a map, not a list");
  e = OneError(Doc("", "  - name: k\n    kind: ascii\n    size: \"32\"\n"));
  EXPECT_EQ(e.path, "secrets[0].size");
  EXPECT_EQ(e.message, "must be an integer");
  e = OneError(Doc("", "  - name: k\n    kind: ascii\n    size: {n: 3}\n"));
  EXPECT_EQ(e.message, "must be an integer, not a map");
  e = OneError(Doc("    environment:\n      DB: {nested: map}\n"));
  EXPECT_EQ(e.path, "services[0].environment.DB");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.column, 11);
  e = OneError(Doc("    environment:\n      DB:\n"));
  EXPECT_EQ(e.path, "services[0].environment.DB");
  EXPECT_NE(e.message.find("write \"\""), std::string::npos);
  e = OneError("name: a\nsecurity:\n  attestation: [tdx]\n");
  EXPECT_EQ(e.path, "security.attestation");
  e = OneError("- name: a\n");
  EXPECT_EQ(e.path, "");
  EXPECT_EQ(e.message, "must be a map, not a list");
  e = OneError("name: !custom a\n");
  EXPECT_NE(e.message.find("unsupported YAML tag"), std::string::npos);
  // Scalars are taken as written where a string is expected.
  Policy p = MustParse(Doc("    environment: {A: 1, B: true, C: 0x10, D: \"\"}\n"));
  EXPECT_EQ(p.services[0].environment.at("A"), "1");
  EXPECT_EQ(p.services[0].environment.at("B"), "true");
  EXPECT_EQ(p.services[0].environment.at("C"), "0x10");
  EXPECT_EQ(p.services[0].environment.at("D"), "");
}

TEST(PolicyErrorTest, MissingRequiredFields) {
  PolicyError e = OneError("services: []\n");
  EXPECT_EQ(e.path, "name");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.message, "required field is missing");

  ParseResult r = Parse("name: a\nservices:\n  - pwd: /\n");
  EXPECT_TRUE(HasError(r, "services[0].name", "required field is missing")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[0].measurements", "at least one measurement")) << Dump(r);
  EXPECT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].column, 5);

  e = OneError("name: a\nservices:\n  - name: s\n    measurements: []\n");
  EXPECT_EQ(e.path, "services[0].measurements");
  EXPECT_EQ(e.message, "needs at least one measurement");

  r = Parse("name: a\nsecrets:\n  - kind: ascii\n  - name: b\n");
  EXPECT_TRUE(HasError(r, "secrets[0].name", "required field is missing")) << Dump(r);
  EXPECT_TRUE(HasError(r, "secrets[1].kind", "required field is missing")) << Dump(r);
  EXPECT_EQ(r.errors.size(), 2u) << Dump(r);

  // An import replaces the kind.
  MustParse("name: a\nsecrets:\n  - name: b\n    import: {session: other, secret: x}\n");
  r = Parse("name: a\nsecrets:\n  - name: b\n    import: {secret: x}\n  - name: c\n    kind: explicit\n");
  EXPECT_TRUE(HasError(r, "secrets[0].import.session", "required field is missing")) << Dump(r);
  EXPECT_TRUE(HasError(r, "secrets[1].value", "required field is missing")) << Dump(r);

  r = Parse(Doc("    mounts: [{}]\n    files: [{mode: \"0400\"}]\n"));
  EXPECT_TRUE(HasError(r, "services[0].mounts[0].volume", "required")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[0].mounts[0].path", "required")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[0].files[0].path", "required")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[0].files[0].content", "required")) << Dump(r);
}

TEST(PolicyErrorTest, SessionNames) {
  for (std::string ok : std::vector<std::string>{"a", "shop/backend", "a.b_c-d/e/f", "v1.2", std::string(128, 'x')}) {
    MustParse("name: \"" + ok + "\"\n");
  }
  for (std::string bad : std::vector<std::string>{"", "/a", "a/", "a//b", "a/./b", "a/../b", "..", "a b", "a:b", "ä",
                                                  std::string(129, 'x')}) {
    PolicyError e = OneError("name: \"" + bad + "\"\n");
    EXPECT_EQ(e.path, "name") << bad;
    EXPECT_NE(e.message.find("is not valid"), std::string::npos) << bad << ": " << e.message;
  }
  PolicyError e = OneError("name: a\nsecrets:\n  - name: k\n    import: {session: a/../b, secret: x}\n");
  EXPECT_EQ(e.path, "secrets[0].import.session");
}

TEST(PolicyErrorTest, SecretServiceAndVolumeNames) {
  MustParse(Doc("", "  - name: Db_Pass-2\n    kind: ascii\n"));
  for (std::string bad : std::vector<std::string>{"a.b", "a/b", "a b", "$x", std::string(65, 'a')}) {
    PolicyError e = OneError(Doc("", "  - name: \"" + bad + "\"\n    kind: ascii\n"));
    EXPECT_EQ(e.path, "secrets[0].name") << bad;
    EXPECT_NE(e.message.find("letters, digits, '_' or '-'"), std::string::npos);
  }
  EXPECT_EQ(OneError("name: a\nservices:\n  - name: a.b\n    measurements: [" + kM1 + "]\n").path, "services[0].name");
  EXPECT_EQ(OneError("name: a\nvolumes:\n  - name: a/b\n").path, "volumes[0].name");
}

TEST(PolicyErrorTest, HexValues) {
  PolicyError e = OneError("name: a\nservices:\n  - name: s\n    measurements: [abc, " + kM1 + "]\n");
  EXPECT_EQ(e.path, "services[0].measurements[0]");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.column, 20);
  EXPECT_EQ(e.message, "must be a measurement (64 hex digits)");
  e = OneError("name: a\npredecessor: " + kM1.substr(1) + "g\n");
  EXPECT_EQ(e.path, "predecessor");
  e = OneError("name: a\nservices:\n  - name: s\n    measurements: [" + kM1 + ", " + kM1 + "]\n");
  EXPECT_EQ(e.path, "services[0].measurements[1]");
  EXPECT_EQ(e.message, "duplicate measurement");
  e = OneError("name: a\nvolumes:\n  - {name: v, key: " + kM1 + ", tag: abcd}\n");
  EXPECT_EQ(e.path, "volumes[0].tag");
  e = OneError("name: a\nvolumes:\n  - {name: v, tag: " + kM1 + "}\n");
  EXPECT_EQ(e.path, "volumes[0].tag");
  EXPECT_NE(e.message.find("needs the key"), std::string::npos);
}

TEST(PolicyErrorTest, Paths) {
  struct Case {
    std::string value;
    std::string part;
  };
  const Case cases[] = {{"relative/dir", "absolute"}, {"/a/../b", "'..'"},  {"/..", "'..'"},
                        {"\"/a\\0b\"", "NUL"},        {"\"\"", "absolute"}, {"/$$CLOISTER::k$$", "placeholder"}};
  for (const Case& c : cases) {
    PolicyError e = OneError(Doc("    pwd: " + c.value + "\n"));
    EXPECT_EQ(e.path, "services[0].pwd") << c.value;
    EXPECT_NE(e.message.find(c.part), std::string::npos) << c.value << ": " << e.message;
    e = OneError(Doc("    files: [{path: " + c.value + ", content: x}]\n"));
    EXPECT_EQ(e.path, "services[0].files[0].path") << c.value;
    e = OneError(Doc("    mounts: [{volume: v, path: " + c.value + "}]\nvolumes: [{name: v}]\n"));
    EXPECT_EQ(e.path, "services[0].mounts[0].path") << c.value;
  }
  MustParse(Doc("    pwd: /a/..b/c./.../d\n"));  // '..' only as a whole segment
}

TEST(PolicyErrorTest, AccessPolicyIdentities) {
  Policy p = MustParse("name: a\naccess_policy:\n  read: [ANY]\n  update: [CREATOR, " + kId + "]\n  delete: [NONE]\n");
  EXPECT_EQ(p.access_policy.read, std::vector<std::string>{"ANY"});
  PolicyError e = OneError("name: a\naccess_policy:\n  delete: [NONE, CREATOR]\n");
  EXPECT_EQ(e.path, "access_policy.delete[0]");
  EXPECT_EQ(e.message, "NONE must be alone in its list");
  e = OneError("name: a\naccess_policy:\n  read: [creator]\n");
  EXPECT_EQ(e.path, "access_policy.read[0]");
  EXPECT_NE(e.message.find("not an identity"), std::string::npos);
  e = OneError("name: a\naccess_policy:\n  read: []\n");
  EXPECT_NE(e.message.find("[NONE]"), std::string::npos);
  e = OneError("name: a\naccess_policy:\n  read: [ANY, ANY]\n");
  EXPECT_EQ(e.path, "access_policy.read[1]");
  EXPECT_EQ(e.message, "duplicate entry");
}

TEST(PolicyErrorTest, AttestationValues) {
  Policy p = MustParse(
      "name: a\nsecurity:\n  attestation:\n    allowed: [sim, tdx]\n    tolerate: [simulation, debug, "
      "outdated-tcb, sw-hardening-needed, configuration-needed]\n");
  EXPECT_EQ(p.attestation.allowed, (std::vector<std::string>{"sim", "tdx"}));
  EXPECT_EQ(p.attestation.tolerate.size(), 5u);
  PolicyError e = OneError("name: a\nsecurity:\n  attestation:\n    allowed: [tdx, sev]\n");
  EXPECT_EQ(e.path, "security.attestation.allowed[1]");
  EXPECT_NE(e.message.find("allowed: sim, tpm, tdx, snp, sgx"), std::string::npos) << e.message;
  e = OneError("name: a\nsecurity:\n  attestation:\n    tolerate: [everything]\n");
  EXPECT_EQ(e.path, "security.attestation.tolerate[0]");
  e = OneError("name: a\nsecurity:\n  attestation:\n    allowed: [sim]\n");
  EXPECT_EQ(e.path, "security.attestation.allowed");
  EXPECT_NE(e.message.find("tolerate: [simulation]"), std::string::npos);
  e = OneError("name: a\nsecurity:\n  attestation:\n    allowed: []\n");
  EXPECT_NE(e.message.find("is empty"), std::string::npos);
  e = OneError("name: a\nsecurity:\n  attestation:\n    ignore_advisories: [\"bad id\"]\n");
  EXPECT_EQ(e.path, "security.attestation.ignore_advisories[0]");
}

TEST(PolicyTest, ExpectedHardwareClaims) {
  const std::string mrtd = std::string(96, 'A');
  const std::string doc = "name: a\nsecurity:\n  attestation:\n    allowed: [tdx, sgx, snp, tpm]\n    expect:\n"
                          "      tdx:\n        mrtd: [" + mrtd + ", " + std::string(96, 'b') + "]\n"
                          "        rtmr0: " + std::string(96, 'c') + "\n"
                          "      sgx:\n        mrsigner: [" + std::string(64, 'd') + "]\n        min_isvsvn: 3\n"
                          "        isvprodid: 1\n"
                          "      snp:\n        measurement: [" + std::string(96, 'e') + "]\n"
                          "        min_tcb: {bootloader: 3, snp: 8, microcode: 115}\n        min_guest_svn: 2\n"
                          "      tpm:\n        pcrs:\n          0: [" + std::string(64, 'f') + "]\n"
                          "          7: [" + std::string(64, '1') + ", " + std::string(64, '2') + "]\n";
  Policy p = MustParse(doc);
  const auto& e = p.attestation.expect;
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e.at("tdx").one_of.at("mrtd"), (std::vector<std::string>{std::string(96, 'a'), std::string(96, 'b')}));
  EXPECT_EQ(e.at("tdx").one_of.at("rtmr0"), std::vector<std::string>{std::string(96, 'c')});
  EXPECT_EQ(e.at("sgx").at_least.at("isvsvn"), 3u);
  EXPECT_EQ(e.at("sgx").one_of.at("isvprodid"), std::vector<std::string>{"1"});
  EXPECT_EQ(e.at("snp").at_least.at("reported_tcb.bootloader"), 3u);
  EXPECT_EQ(e.at("snp").at_least.at("reported_tcb.microcode"), 115u);
  EXPECT_EQ(e.at("snp").at_least.at("guest_svn"), 2u);
  EXPECT_EQ(e.at("snp").at_least.count("reported_tcb.tee"), 0u);
  EXPECT_EQ(e.at("tpm").one_of.at("pcr7").size(), 2u);
  EXPECT_EQ(e.at("tpm").one_of.at("pcr0"), std::vector<std::string>{std::string(64, 'f')});
}

TEST(PolicyErrorTest, ExpectedHardwareClaims) {
  const std::string head = "name: a\nsecurity:\n  attestation:\n    expect:\n";
  PolicyError e = OneError(head + "      tdx:\n        mrtd: [abc]\n");
  EXPECT_EQ(e.path, "security.attestation.expect.tdx.mrtd[0]");
  EXPECT_NE(e.message.find("is not 96 hex digits"), std::string::npos) << e.message;
  e = OneError(head + "      tdx:\n        mrenclave: [" + std::string(64, 'a') + "]\n");
  EXPECT_EQ(e.path, "security.attestation.expect.tdx.mrenclave");
  EXPECT_NE(e.message.find("unknown field"), std::string::npos);
  e = OneError(head + "      sev:\n        measurement: []\n");
  EXPECT_EQ(e.path, "security.attestation.expect.sev");
  e = OneError(head + "      sgx:\n        mrenclave: []\n");
  EXPECT_NE(e.message.find("is empty"), std::string::npos);
  e = OneError(head + "      sgx:\n        min_isvsvn: -1\n");
  EXPECT_EQ(e.path, "security.attestation.expect.sgx.min_isvsvn");
  e = OneError(head + "      snp:\n        min_tcb: {snp: 256}\n");
  EXPECT_EQ(e.path, "security.attestation.expect.snp.min_tcb.snp");
  e = OneError(head + "      snp:\n        min_tcb: {firmware: 1}\n");
  EXPECT_EQ(e.path, "security.attestation.expect.snp.min_tcb.firmware");
  e = OneError(head + "      tpm:\n        pcrs:\n          24: [" + std::string(64, 'a') + "]\n");
  EXPECT_EQ(e.path, "security.attestation.expect.tpm.pcrs.24");
  e = OneError(head + "      tpm:\n        pcrs:\n          1: [" + std::string(64, 'a') + ", " + std::string(64, 'A') +
               "]\n");
  EXPECT_NE(e.message.find("duplicate"), std::string::npos) << e.message;
}

TEST(PolicyErrorTest, Ranges) {
  const std::string sized = "  - name: k\n    kind: binary\n    size: ";
  MustParse(Doc("", sized + "1\n"));
  MustParse(Doc("", sized + "4096\n"));
  for (std::string bad : {"0", "4097", "-1", "99999999999"}) {
    PolicyError e = OneError(Doc("", sized + bad + "\n"));
    EXPECT_EQ(e.path, "secrets[0].size") << bad;
  }
  EXPECT_EQ(OneError(Doc("", sized + "0\n")).message, "must be from 1 to 4096");
  const std::string ca = "  - name: k\n    kind: x509-ca\n    validity_days: ";
  MustParse(Doc("", ca + "36500\n"));
  EXPECT_EQ(OneError(Doc("", ca + "36501\n")).message, "must be from 1 to 36500");
  EXPECT_EQ(OneError(Doc("", ca + "0\n")).path, "secrets[0].validity_days");
  const std::string cn = "  - name: k\n    kind: x509-ca\n    common_name: ";
  std::string umlauts;
  for (int i = 0; i < 64; ++i) umlauts += "\xc3\xa4";  // 64 characters, 128 bytes
  EXPECT_EQ(MustParse(Doc("", cn + umlauts + "\n")).secrets[0].common_name, umlauts);
  EXPECT_EQ(OneError(Doc("", cn + std::string(65, 'x') + "\n")).path, "secrets[0].common_name");
  EXPECT_EQ(OneError(Doc("", cn + "\"a\\tb\"\n")).path, "secrets[0].common_name");
}

TEST(PolicyErrorTest, Algorithms) {
  for (std::string a : {"P-256", "P-384", "Ed25519", "RSA-3072"}) {
    Policy p = MustParse(Doc("", "  - name: k\n    kind: private-key\n    algorithm: " + a + "\n"));
    EXPECT_EQ(KeyAlgorithmName(p.secrets[0].algorithm), a);
  }
  PolicyError e = OneError(Doc("", "  - name: k\n    kind: private-key\n    algorithm: RSA-1024\n"));
  EXPECT_EQ(e.path, "secrets[0].algorithm");
  EXPECT_NE(e.message.find("P-256, P-384, Ed25519, RSA-3072"), std::string::npos);
  e = OneError(Doc("",
                   "  - name: key\n    kind: private-key\n  - name: ca\n    kind: x509-ca\n"
                   "    private_key: key\n    algorithm: P-384\n"));
  EXPECT_EQ(e.path, "secrets[1].algorithm");
}

TEST(PolicyErrorTest, FileModes) {
  for (std::string m : {"\"0400\"", "0400", "400", "\"0o400\"", "0o400"}) {
    Policy p = MustParse(Doc("    files: [{path: /f, content: x, mode: " + m + "}]\n"));
    EXPECT_EQ(p.services[0].files[0].mode, 0400u) << m;
  }
  EXPECT_EQ(MustParse(Doc("    files: [{path: /f, content: x, mode: \"0755\"}]\n")).services[0].files[0].mode, 0755u);
  for (std::string m : {"\"0800\"", "01000", "rw", "[4]", "\"\""}) {
    PolicyError e = OneError(Doc("    files: [{path: /f, content: x, mode: " + m + "}]\n"));
    EXPECT_EQ(e.path, "services[0].files[0].mode") << m;
  }
}

TEST(PolicyErrorTest, Duplicates) {
  ParseResult r = Parse(
      "name: a\n"      // 1
      "services:\n"    // 2
      "  - name: s\n"  // 3
      "    measurements: [" +
      kM1 +
      "]\n"                                                            // 4
      "    mounts: [{volume: v, path: /d}, {volume: w, path: /d}]\n"   // 5
      "    files: [{path: /f, content: x}, {path: /f, content: y}]\n"  // 6
      "  - name: s\n"                                                  // 7
      "    measurements: [" +
      kM2 +
      "]\n"                            // 8
      "secrets:\n"                     // 9
      "  - {name: k, kind: ascii}\n"   // 10
      "  - {name: k, kind: binary}\n"  // 11
      "volumes:\n"                     // 12
      "  - name: v\n"                  // 13
      "  - name: w\n"                  // 14
      "  - name: v\n"                  // 15
      "name: b\n");                    // 16
  EXPECT_TRUE(HasError(r, "services[0].mounts[1].path", "duplicate mount path (first at line 5)")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[0].files[1].path", "duplicate file path (first at line 6)")) << Dump(r);
  EXPECT_TRUE(HasError(r, "services[1].name", "duplicate service name 's' (first at line 3)")) << Dump(r);
  EXPECT_TRUE(HasError(r, "secrets[1].name", "duplicate secret name 'k' (first at line 10)")) << Dump(r);
  EXPECT_TRUE(HasError(r, "volumes[2].name", "duplicate volume name 'v' (first at line 13)")) << Dump(r);
  EXPECT_TRUE(HasError(r, "name", "duplicate key (first at line 1)")) << Dump(r);
  EXPECT_EQ(r.errors.size(), 6u) << Dump(r);

  PolicyError e = OneError(Doc("    mounts: [{volume: v, path: /a}, {volume: v, path: /b}]\nvolumes: [{name: v}]\n"));
  EXPECT_EQ(e.path, "services[0].mounts[1].volume");
  e = OneError(Doc("    environment:\n      A: 1\n      A: 2\n"));
  EXPECT_EQ(e.path, "services[0].environment.A");
  EXPECT_EQ(e.line, 7);
}

TEST(PolicyErrorTest, MountsNameVolumes) {
  PolicyError e = OneError(Doc("    mounts: [{volume: data, path: /d}]\n"));
  EXPECT_EQ(e.path, "services[0].mounts[0].volume");
  EXPECT_EQ(e.line, 5);
  EXPECT_EQ(e.message, "no volume 'data' in this session's volumes");
}

TEST(PolicyErrorTest, SecretReferences) {
  // x509 needs an issuer: an x509-ca of this session or an imported secret.
  PolicyError e = OneError(Doc("", "  - name: c\n    kind: x509\n"));
  EXPECT_EQ(e.path, "secrets[0].issuer");
  EXPECT_EQ(e.line, 6);
  MustParse(Doc("", "  - {name: ca, import: {session: pki, secret: root}}\n  - {name: c, kind: x509, issuer: ca}\n"));
  e = OneError(Doc("", "  - {name: c, kind: x509, issuer: nope}\n"));
  EXPECT_EQ(e.path, "secrets[0].issuer");
  EXPECT_NE(e.message.find("no secret 'nope'"), std::string::npos);
  e = OneError(Doc("",
                   "  - {name: ca, kind: x509-ca}\n  - {name: c, kind: x509, issuer: ca}\n"
                   "  - {name: x, kind: x509, issuer: c}\n"));
  EXPECT_EQ(e.path, "secrets[2].issuer");
  EXPECT_NE(e.message.find("names x509 secret 'c'; an issuer must be an x509-ca secret"), std::string::npos);
  // private_key names a private-key secret.
  MustParse(Doc("", "  - {name: k, kind: private-key}\n  - {name: ca, kind: x509-ca, private_key: k}\n"));
  e = OneError(Doc("", "  - {name: k, kind: ascii}\n  - {name: ca, kind: x509-ca, private_key: k}\n"));
  EXPECT_EQ(e.path, "secrets[1].private_key");
  EXPECT_NE(e.message.find("must name a private-key secret"), std::string::npos);
  // Fields that do not apply to the kind.
  e = OneError(Doc("", "  - {name: ca, kind: x509-ca}\n  - {name: c, kind: x509, issuer: ca, size: 3}\n"));
  EXPECT_EQ(e.path, "secrets[1].size");
  EXPECT_NE(e.message.find("does not apply to a secret of kind x509"), std::string::npos);
  e = OneError(Doc("", "  - {name: k, kind: ascii, value: x}\n"));
  EXPECT_EQ(e.path, "secrets[0].value");
  e = OneError(Doc("", "  - {name: ca, kind: x509-ca, dns: [a.b]}\n"));
  EXPECT_EQ(e.path, "secrets[0].dns");
  e = OneError(Doc("", "  - {name: k, kind: import}\n"));
  EXPECT_NE(e.message.find("'import' map instead of a kind"), std::string::npos);
  // Imports take only name and import, and are not passed on.
  ParseResult r = Parse(Doc("",
                            "  - name: k\n    kind: ascii\n    size: 3\n    export: [{session: c}]\n"
                            "    import: {session: b, secret: x}\n"));
  EXPECT_TRUE(HasError(r, "secrets[0].kind", "takes its kind from the exporting session")) << Dump(r);
  EXPECT_TRUE(HasError(r, "secrets[0].size", "does not apply to an imported secret")) << Dump(r);
  EXPECT_TRUE(HasError(r, "secrets[0].export", "cannot be exported again")) << Dump(r);
  e = OneError("name: a\nsecrets:\n  - {name: k, import: {session: a, secret: x}}\n");
  EXPECT_EQ(e.path, "secrets[0].import.session");
  EXPECT_EQ(e.message, "a session cannot import from itself");
  // SANs.
  e = OneError(Doc("",
                   "  - {name: ca, kind: x509-ca}\n  - {name: c, kind: x509, issuer: ca, dns: [\"-bad\"], "
                   "ip: [10.0.0.1]}\n"));
  EXPECT_EQ(e.path, "secrets[1].dns[0]");
  e = OneError(Doc("", "  - {name: ca, kind: x509-ca}\n  - {name: c, kind: x509, issuer: ca, ip: [10.0.0.256]}\n"));
  EXPECT_EQ(e.path, "secrets[1].ip[0]");
}

TEST(PolicyErrorTest, IssuerCyclesAreReportedOnce) {
  ParseResult r = Parse(Doc("",
                            "  - {name: a, kind: x509-ca, issuer: b}\n"
                            "  - {name: b, kind: x509-ca, issuer: c}\n"
                            "  - {name: c, kind: x509-ca, issuer: a}\n"
                            "  - {name: d, kind: x509-ca, issuer: d}\n"
                            "  - {name: e, kind: x509, issuer: a}\n"));
  ASSERT_EQ(r.errors.size(), 2u) << Dump(r);
  EXPECT_EQ(r.errors[0].path, "secrets[0].issuer");
  EXPECT_EQ(r.errors[0].message, "issuer cycle: a -> b -> c -> a");
  EXPECT_EQ(r.errors[1].path, "secrets[3].issuer");
  EXPECT_EQ(r.errors[1].message, "issuer cycle: d -> d");
}

TEST(PolicyErrorTest, Placeholders) {
  const std::string secrets =
      "  - {name: pw, kind: ascii}\n  - {name: bin, kind: binary}\n  - {name: key, kind: private-key}\n"
      "  - {name: ca, kind: x509-ca}\n  - {name: tls, kind: x509, issuer: ca}\n  - {name: lic, kind: explicit, "
      "value: v}\n  - {name: imp, import: {session: other, secret: x}}\n";
  // Every format of every kind, in all three places.
  Policy p = MustParse(
      Doc("    command: [\"--pw=$$CLOISTER::pw$$\", \"$$CLOISTER::pw:hex$$\", \"$$CLOISTER::pw:base64$$\", "
          "\"$$CLOISTER::pw:raw$$\"]\n"
          "    environment:\n      A: $$CLOISTER::bin$$ $$CLOISTER::bin:raw$$ $$CLOISTER::bin:base64$$\n"
          "      B: $$CLOISTER::key$$$$CLOISTER::key:pem$$$$CLOISTER::key:public-pem$$\n"
          "      C: $$CLOISTER::lic:base64$$ $$CLOISTER::imp:privatekey$$ $$CLOISTER::imp:raw$$\n"
          "    files:\n      - path: /t\n        content: |\n          $$CLOISTER::tls$$ $$CLOISTER::tls:chain$$\n"
          "          $$CLOISTER::tls:privatekey$$ $$CLOISTER::ca:cert$$ $$CLOISTER::ca:public-pem$$\n",
          secrets));
  EXPECT_EQ(p.services[0].command[0], "--pw=$$CLOISTER::pw$$");

  PolicyError e = OneError(Doc("    environment:\n      A: $$CLOISTER::nope$$\n", secrets));
  EXPECT_EQ(e.path, "services[0].environment.A");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.column, 10);
  EXPECT_EQ(e.message, "placeholder names secret 'nope', which this session does not define");

  e = OneError(Doc("    environment:\n      A: \"$$CLOISTER::pw:pem$$\"\n", secrets));
  EXPECT_EQ(e.path, "services[0].environment.A");
  EXPECT_EQ(e.message, "placeholder asks for format 'pem' of ascii secret 'pw' (formats: raw, hex, base64)");

  e = OneError(Doc("    command: run $$CLOISTER::pw\n", secrets));
  EXPECT_EQ(e.path, "services[0].command");
  EXPECT_NE(e.message.find("ill-formed placeholder"), std::string::npos);

  e = OneError(Doc("    command: [run, \"$$CLOISTER::key:cert$$\"]\n", secrets));
  EXPECT_EQ(e.path, "services[0].command[1]");
  EXPECT_EQ(e.line, 5);

  e = OneError(Doc("    files: [{path: /x, content: \"$$CLOISTER::imp:bogus$$\"}]\n", secrets));
  EXPECT_EQ(e.path, "services[0].files[0].content");
  EXPECT_NE(e.message.find("unknown format 'bogus'"), std::string::npos);

  // Only in command, environment and file content: elsewhere they are text.
  ParseResult r = Parse(Doc("    environment:\n      A: $$CLOISTER::x$$\n    command: x $$CLOISTER::y$$\n"));
  EXPECT_EQ(r.errors.size(), 2u) << Dump(r);
}

TEST(PolicyErrorTest, SecretValuesNeverInMessages) {
  const std::string secret = "hunter2-very-secret";
  for (const std::string& bad :
       {"[" + secret + "]", "{" + secret + ": 1}", "!!binary " + secret, "!custom " + secret}) {
    ParseResult r = Parse(Doc("", "  - name: k\n    kind: explicit\n    value: " + bad + "\n"));
    ASSERT_FALSE(r.errors.empty()) << bad;
    for (const PolicyError& e : r.errors) EXPECT_EQ(FormatError(e).find("hunter2"), std::string::npos) << bad;
  }
  for (const std::string& bad : {secret, "[" + secret + "]", "\"" + kM1.substr(2) + "zz\""}) {
    ParseResult r = Parse("name: a\nvolumes:\n  - name: v\n    key: " + bad + "\n");
    ASSERT_EQ(r.errors.size(), 1u) << bad;
    EXPECT_EQ(r.errors[0].message, "must be 64 hex digits (a 32-byte volume key)");
  }
  PolicyError e = OneError(Doc("", "  - {name: k, kind: explicit, value: \"\"}\n"));
  EXPECT_EQ(e.path, "secrets[0].value");
}

TEST(PolicyErrorTest, CommandSplittingErrorsPointAtTheCommand) {
  PolicyError e = OneError(Doc("    command: python3 -c 'print(1)\n"));
  EXPECT_EQ(e.path, "services[0].command");
  EXPECT_EQ(e.line, 5);
  EXPECT_NE(e.message.find("unterminated single quote"), std::string::npos);
  e = OneError(Doc("    command: [a, [b]]\n"));
  EXPECT_EQ(e.path, "services[0].command[1]");
}

TEST(PolicyErrorTest, SeveralErrorsAreAllReported) {
  ParseResult r = Parse(ReadSource("tests/policy/invalid-fields.yaml"));
  ASSERT_FALSE(r.policy.has_value());
  struct Expected {
    std::string path;
    int line;
  };
  const Expected expected[] = {
      {"name", 2},
      {"version", 3},
      {"services[0].comand", 6},
      {"services[0].measurements[0]", 7},
      {"services[0].environment.DB_PASSWORD", 9},
      {"services[0].environment.BAD", 10},
      {"services[0].pwd", 11},
      {"services[0].mounts[0].volume", 13},
      {"services[0].mounts[0].path", 14},
      {"secrets[0].size", 18},
      {"secrets[1].issuer", 21},
      {"secrets[1].size", 22},
      {"secrets[2].name", 23},
  };
  ASSERT_EQ(r.errors.size(), std::size(expected)) << Dump(r);
  for (size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_EQ(r.errors[i].path, expected[i].path) << i;
    EXPECT_EQ(r.errors[i].line, expected[i].line) << i;
    EXPECT_GT(r.errors[i].column, 0) << i;
  }
  EXPECT_EQ(FormatError(r.errors[2]),
            "line 6, column 5: services[0].comand: unknown field; did you mean 'command'? allowed here: name, "
            "measurements, command, environment, pwd, mounts, files");
}

TEST(PolicyErrorTest, ErrorCountIsCapped) {
  std::string text = "name: a\n";
  for (int i = 0; i < 300; ++i) text += "field" + std::to_string(i) + ": 1\n";
  ParseResult r = Parse(text);
  ASSERT_EQ(r.errors.size(), 101u);
  EXPECT_NE(r.errors.back().message.find("more than 100 problems"), std::string::npos);
  EXPECT_EQ(r.errors[0].path, "field0");
}

// ---- hostile input ----

TEST(PolicyLimitsTest, OversizedDocumentIsRefusedBeforeParsing) {
  std::string text = "name: a\n# " + std::string(kMaxDocumentSize, 'x') + "\n";
  PolicyError e = OneError(text);
  EXPECT_EQ(e.line, 0);
  EXPECT_NE(e.message.find("at most 1048576"), std::string::npos);
}

TEST(PolicyLimitsTest, DeepNestingIsRefused) {
  std::string text = "name: a\nx: " + std::string(100, '[') + std::string(100, ']') + "\n";
  PolicyError e = OneError(text);
  EXPECT_NE(e.message.find("nested deeper than 64"), std::string::npos) << e.message;
  EXPECT_EQ(e.line, 2);
  // Far deeper than yaml-cpp's own recursion limit: still an error, no crash.
  e = OneError("x: " + std::string(200000, '[') + "\n");
  EXPECT_NE(e.message.find("nested deeper than 64"), std::string::npos) << e.message;
  e = OneError(std::string(100000, '-') + "\n");
  EXPECT_FALSE(e.message.empty());
}

TEST(PolicyLimitsTest, AliasBombIsRefused) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev + ", " + prev + ", " +
            prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + "]\n";
  }
  PolicyError e = OneError(text);
  EXPECT_NE(e.message.find("more than 100000 nodes once its aliases are expanded"), std::string::npos) << e.message;
  // Few nodes, but huge values.
  text = "a: &a \"" + std::string(500000, 'x') + "\"\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
  e = OneError(text);
  EXPECT_NE(e.message.find("bytes once its aliases are expanded"), std::string::npos) << e.message;
  e = OneError("a: &a [*a]\n");
  EXPECT_NE(e.message.find("contains it"), std::string::npos) << e.message;
  e = OneError("a: *nowhere\n");
  EXPECT_EQ(e.line, 1);
}

TEST(PolicyLimitsTest, OneDocumentOnly) {
  PolicyError e = OneError("name: a\n---\nname: b\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.message.find("only one YAML document"), std::string::npos);
  EXPECT_EQ(OneError("").message, "the document is empty");
  EXPECT_EQ(OneError("# only a comment\n").message, "the document is empty");
}

TEST(PolicyLimitsTest, EncodingIsChecked) {
  PolicyError e = OneError(std::string("name: a\nx: \"a\0b\"\n", 17));
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 6);
  EXPECT_NE(e.message.find("U+0000"), std::string::npos);
  e = OneError("name: a\nx: \xff\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.message, "not UTF-8");
  EXPECT_EQ(OneError("name: \xed\xa0\x80\n").message, "not UTF-8");  // a surrogate
  EXPECT_EQ(OneError("\xff\xfen\0a\0").message, "not UTF-8");        // UTF-16
  // A UTF-8 byte order mark is fine, and positions still count from the
  // start of the text; columns count characters, not bytes.
  ParseResult r = Parse("\xEF\xBB\xBFname: a\nsecrets:\n  - {name: \"äöü\", kind: ascii}\n");
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].column, 12);
  r = Parse("name: a\r\nx: 1\r\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].column, 1);
}

// ---- placeholders and commands ----

TEST(PlaceholderTest, Finds) {
  auto found = FindPlaceholders("a $$CLOISTER::db_pw$$ b $$CLOISTER::cert:chain$$$$CLOISTER::X-1_y:hex$$");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_EQ(found->size(), 3u);
  EXPECT_EQ((*found)[0].secret, "db_pw");
  EXPECT_EQ((*found)[0].format, "");
  EXPECT_EQ((*found)[0].begin, 2u);
  EXPECT_EQ((*found)[0].end, 21u);
  EXPECT_EQ((*found)[1].secret, "cert");
  EXPECT_EQ((*found)[1].format, "chain");
  EXPECT_EQ((*found)[2].secret, "X-1_y");
  EXPECT_EQ((*found)[2].format, "hex");
  EXPECT_EQ((*found)[2].begin, (*found)[1].end);
}

TEST(PlaceholderTest, EdgeCases) {
  // Not placeholders: plain text stays plain.
  for (std::string_view s :
       {"", "$$", "$CLOISTER::x$", "$$cloister::x$$", "$$CLOISTER:x$$", "CLOISTER::x$$", "price: $$5", "$$$"}) {
    auto found = FindPlaceholders(s);
    ASSERT_TRUE(found.ok()) << s;
    EXPECT_TRUE(found->empty()) << s;
  }
  auto found = FindPlaceholders("$$$CLOISTER::a$$$");
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].begin, 1u);
  // After one placeholder, scanning goes on behind it.
  found = FindPlaceholders("$$CLOISTER::a$$CLOISTER::b$$");
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].secret, "a");
  // Ill-formed ones.
  for (std::string_view s : {"$$CLOISTER::", "$$CLOISTER::$$", "$$CLOISTER::a", "$$CLOISTER::a$", "$$CLOISTER::a b$$",
                             "$$CLOISTER::a.b$$", "$$CLOISTER::a:$$", "$$CLOISTER::a:HEX$$", "$$CLOISTER::a:hex",
                             "$$CLOISTER::a:nope$$", "$$CLOISTER::a:hex:raw$$", "ok $$CLOISTER::a$$ $$CLOISTER::"}) {
    auto r = FindPlaceholders(s);
    EXPECT_FALSE(r.ok()) << s;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  std::string long_name(65, 'a');
  EXPECT_FALSE(FindPlaceholders("$$CLOISTER::" + long_name + "$$").ok());
  EXPECT_TRUE(FindPlaceholders("$$CLOISTER::" + long_name.substr(1) + "$$").ok());
}

TEST(PlaceholderTest, FormatsPerKind) {
  EXPECT_EQ(DefaultFormat(SecretKind::kAscii), "raw");
  EXPECT_EQ(DefaultFormat(SecretKind::kExplicit), "raw");
  EXPECT_EQ(DefaultFormat(SecretKind::kBinary), "hex");
  EXPECT_EQ(DefaultFormat(SecretKind::kPrivateKey), "pem");
  EXPECT_EQ(DefaultFormat(SecretKind::kX509), "cert");
  EXPECT_EQ(DefaultFormat(SecretKind::kX509Ca), "cert");
  EXPECT_TRUE(FormatApplies(SecretKind::kPrivateKey, ""));
  EXPECT_TRUE(FormatApplies(SecretKind::kPrivateKey, "public-pem"));
  EXPECT_FALSE(FormatApplies(SecretKind::kPrivateKey, "hex"));
  EXPECT_FALSE(FormatApplies(SecretKind::kAscii, "pem"));
  EXPECT_TRUE(FormatApplies(SecretKind::kX509, "privatekey"));
  EXPECT_FALSE(FormatApplies(SecretKind::kX509, "raw"));
  EXPECT_TRUE(FormatApplies(SecretKind::kImported, "chain"));
  EXPECT_FALSE(FormatApplies(SecretKind::kImported, "nope"));
}

TEST(CommandTest, Splits) {
  struct Case {
    std::string_view in;
    std::vector<std::string> out;
  };
  const Case cases[] = {
      {"", {}},
      {"   \t\n ", {}},
      {"python3 app.py", {"python3", "app.py"}},
      {"  a   b\tc\nd  ", {"a", "b", "c", "d"}},
      {"echo 'a b' \"c d\"", {"echo", "a b", "c d"}},
      {"a'b'\"c\"d", {"abcd"}},
      {"'' \"\" x", {"", "", "x"}},
      {"'it''s'", {"its"}},
      {"\"it's\" 'say \"hi\"'", {"it's", "say \"hi\""}},
      {"a\\ b \\'c\\' \\\\", {"a b", "'c'", "\\"}},
      {"\"a\\\"b\\\\c\\$d\\`e\\nf\"", {"a\"b\\c$d`e\\nf"}},
      {"'no \\escapes\\ here'", {"no \\escapes\\ here"}},
      {"$HOME *.py a;b |c &&", {"$HOME", "*.py", "a;b", "|c", "&&"}},
      {"line\\\ncontinued", {"linecontinued"}},
      {"\"multi\\\nline\"", {"multiline"}},
      {"--pw=$$CLOISTER::pw$$ '$$CLOISTER::x:hex$$'", {"--pw=$$CLOISTER::pw$$", "$$CLOISTER::x:hex$$"}},
  };
  for (const Case& c : cases) {
    auto words = SplitCommand(c.in);
    ASSERT_TRUE(words.ok()) << c.in << ": " << words.status().ToString();
    EXPECT_EQ(*words, c.out) << c.in;
  }
}

TEST(CommandTest, RejectsUnterminatedQuotes) {
  for (std::string_view s : {"'a", "a 'b c", "\"a", "\"a\\\"", "a\\", "'a'\"b"}) {
    auto words = SplitCommand(s);
    EXPECT_FALSE(words.ok()) << s;
  }
  EXPECT_NE(SplitCommand("run 'x").status().message().find("unterminated single quote at byte 4"), std::string::npos);
  EXPECT_NE(SplitCommand("run \"x").status().message().find("unterminated double quote"), std::string::npos);
}

// ---- redaction ----

// Asserts that `redacted` shows none of `secrets`.
void ExpectHidden(const std::string& redacted, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) EXPECT_EQ(redacted.find(s), std::string::npos) << s << " in\n" << redacted;
}

TEST(RedactTest, ReplacesValuesAndKeysInPlace) {
  std::string text = ReadSource("tests/policy/full.yaml");
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"LK-7781-ACME-0042-SECRET", "00112233445566778899aabbccddeeff"});
  // Every other byte is kept: putting the values back gives the original.
  std::string restored = redacted;
  restored.replace(restored.find("<redacted>"), 10, "\"LK-7781-ACME-0042-SECRET\"");
  restored.replace(restored.find("<redacted>"), 10, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  EXPECT_EQ(restored, text);
  EXPECT_EQ(redacted.find("Re-formatted"), std::string::npos);
}

TEST(RedactTest, EveryScalarStyle) {
  const std::string text =
      "# comment stays\n"
      "name: r   # trailing comment stays\n"
      "secrets:\n"
      "  - {name: a, kind: explicit, value: flow-plain-secret}\n"
      "  - name: b\n"
      "    kind: explicit\n"
      "    value: plain multi\n"
      "      line-secret-b\n"
      "\n"
      "      after-blank-b\n"
      "  - name: c\n"
      "    kind: explicit\n"
      "    value: \"double \\\"quoted\\\" secret-c\n"
      "      continued-c\"\n"
      "  - name: d\n"
      "    kind: explicit\n"
      "    value: 'single ''quoted'' secret-d'\n"
      "  - name: e\n"
      "    kind: explicit\n"
      "    value: |\n"
      "      literal-secret-e\n"
      "        indented-more-e\n"
      "\n"
      "      after-blank-e\n"
      "    # comment after the block\n"
      "  - name: f\n"
      "    kind: explicit\n"
      "    value: >-\n"
      "      folded-secret-f\n"
      "      more-f\n"
      "  - name: g\n"
      "    kind: explicit\n"
      "    value: |2\n"
      "        explicit-indent-secret-g\n"
      "      second-line-g\n"
      "  - name: h\n"
      "    kind: explicit\n"
      "    value: !!str &anchor-h tagged-anchored-secret-h\n"
      "volumes:\n"
      "  - name: v\n"
      "    key: \"AABBCCDDEEFF00112233445566778899aabbccddeeff00112233445566778899\"\n";
  Policy p = MustParse(text);
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"flow-plain", "line-secret", "after-blank", "secret-c", "continued-c", "quoted", "secret-d",
                          "literal-secret", "indented-more", "folded-secret", "more-f", "explicit-indent",
                          "second-line-g", "tagged-anchored", "AABBCCDD"});
  EXPECT_EQ(redacted.find("Re-formatted"), std::string::npos) << redacted;
  EXPECT_NE(redacted.find("# comment stays\nname: r   # trailing comment stays\n"), std::string::npos);
  EXPECT_NE(redacted.find("    # comment after the block\n"), std::string::npos);
  EXPECT_NE(redacted.find("value: !!str &anchor-h <redacted>\n"), std::string::npos) << redacted;
  // The redacted copy is still a document of the same shape.
  ParseResult again = Parse(redacted);
  EXPECT_TRUE(HasError(again, "volumes[0].key", "64 hex digits")) << Dump(again);
  EXPECT_EQ(again.errors.size(), 1u) << Dump(again);
}

TEST(RedactTest, BlockContentThatLooksLikeCommentsIsHidden) {
  // With "|2" the content starts 2 columns right of the mapping, so the
  // "#" lines are content, not comments: they must not survive.
  const std::string text =
      "name: r\n"
      "secrets:\n"
      "  - name: k\n"
      "    kind: explicit\n"
      "    value: |2\n"
      "          deeper-secret\n"
      "      #hash-line-secret\n"
      "        # another-hash-secret\n"
      "  - {name: j, kind: ascii}\n";
  Policy p = MustParse(text);
  EXPECT_EQ(Str(*p.secrets[0].value), "    deeper-secret\n#hash-line-secret\n  # another-hash-secret\n");
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"deeper-secret", "hash-line", "another-hash"});
  EXPECT_EQ(redacted,
            "name: r\nsecrets:\n  - name: k\n    kind: explicit\n    value: <redacted>\n"
            "  - {name: j, kind: ascii}\n");
}

TEST(RedactTest, LinesOfMultiLineValuesAreScrubbedElsewhere) {
  const std::string text =
      "name: r\n"
      "# remember: second-line-of-it\n"
      "secrets:\n"
      "  - name: k\n"
      "    kind: explicit\n"
      "    value: |\n"
      "      first line\n"
      "      second-line-of-it\n";
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"second-line-of-it"});
  EXPECT_NE(redacted.find("# remember: <redacted>\n"), std::string::npos) << redacted;
}

TEST(RedactTest, AliasedValueIsHiddenWhereverItIsUsed) {
  std::string text =
      "name: r\nsecrets:\n  - {name: k, kind: explicit, value: &pw aliased-secret}\n"
      "services:\n  - name: s\n    measurements: [" +
      kM1 + "]\n    environment: {P: *pw}\n";
  MustParse(text);
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"aliased-secret"});
  EXPECT_NE(redacted.find("{P: *pw}"), std::string::npos);
}

TEST(RedactTest, CopiesElsewhereAreScrubbed) {
  std::string text =
      "name: r\n# the password is copied-secret, do not tell\nsecrets:\n"
      "  - {name: k, kind: explicit, value: copied-secret}\n  - {name: short, kind: explicit, value: ab}\n";
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"copied-secret"});
  EXPECT_NE(redacted.find("# the password is <redacted>, do not tell"), std::string::npos) << redacted;
  // A value too short to scrub elsewhere is still cut out of its field.
  EXPECT_NE(redacted.find("{name: short, kind: explicit, value: <redacted>}"), std::string::npos) << redacted;
}

TEST(RedactTest, FallsBackToReEmittingWhenNotLocatable) {
  // A block scalar with an indentation indicator, nested where the
  // in-place code does not know the indentation it is relative to.
  std::string text =
      "name: r\nsecrets:\n  - name: k\n    kind: explicit\n    value:\n      - |2\n"
      "            nested-secret\n";
  std::string redacted = RedactedText(text);
  ExpectHidden(redacted, {"nested-secret"});
  EXPECT_NE(redacted.find("Re-formatted"), std::string::npos) << redacted;
  EXPECT_NE(redacted.find("<redacted>"), std::string::npos) << redacted;
}

TEST(RedactTest, OtherDocuments) {
  EXPECT_EQ(RedactedText("name: a\n"), "name: a\n");
  std::string minimal = ReadSource("tests/policy/minimal.yaml");
  EXPECT_EQ(RedactedText(minimal), minimal);
  std::string broken = "name: a\nsecrets: [{value: \"unterminated-secret}\n";
  std::string redacted = RedactedText(broken);
  ExpectHidden(redacted, {"unterminated-secret"});
  EXPECT_EQ(redacted[0], '#');
  // Invalid as a policy, still redacted.
  redacted = RedactedText("secrets:\n  - value: invalid-doc-secret\n    nonsense: 1\n");
  ExpectHidden(redacted, {"invalid-doc-secret"});
}

// ---- fingerprints and hashes ----

TEST(FingerprintTest, StableAndSensitive) {
  auto fp = [](const std::string& secret) {
    Policy p = MustParse("name: a\nsecrets:\n" + secret);
    return p.secrets.empty() ? std::string() : p.secrets.back().Fingerprint();
  };
  const std::string ca = "  - {name: ca, kind: x509-ca}\n";
  std::string base = fp(ca + "  - {name: c, kind: x509, issuer: ca, dns: [a.b]}\n");
  // Same definition written differently, or with other exports: same.
  EXPECT_EQ(base, fp(ca + "  - name: c\n    issuer: ca\n    kind: x509\n    dns:\n      - a.b\n"));
  EXPECT_EQ(base, fp(ca + "  - {name: c, kind: x509, issuer: ca, dns: [a.b], validity_days: 365}\n"));
  EXPECT_EQ(base, fp(ca + "  - {name: c, kind: x509, issuer: ca, dns: [a.b], algorithm: P-256}\n"));
  EXPECT_EQ(base, fp(ca + "  - {name: c, kind: x509, issuer: ca, dns: [a.b], export: [{session: x}]}\n"));
  // Anything else: different.
  for (std::string other : {"  - {name: c, kind: x509, issuer: ca, dns: [a.c]}\n",
                            "  - {name: c, kind: x509, issuer: ca, dns: [a.b, c.d]}\n",
                            "  - {name: c, kind: x509, issuer: ca, dns: [a.b], ip: [1.2.3.4]}\n",
                            "  - {name: c, kind: x509, issuer: ca, dns: [a.b], validity_days: 30}\n",
                            "  - {name: c, kind: x509, issuer: ca, dns: [a.b], algorithm: P-384}\n",
                            "  - {name: c, kind: x509, issuer: ca, dns: [a.b], common_name: x}\n",
                            "  - {name: c2, kind: x509, issuer: ca, dns: [a.b]}\n"}) {
    EXPECT_NE(base, fp(ca + other)) << other;
  }
  EXPECT_NE(fp("  - {name: k, kind: ascii}\n"), fp("  - {name: k, kind: binary}\n"));
  EXPECT_EQ(fp("  - {name: k, kind: ascii}\n"), fp("  - {name: k, kind: ascii, size: 32}\n"));
  EXPECT_NE(fp("  - {name: k, kind: ascii}\n"), fp("  - {name: k, kind: ascii, size: 33}\n"));
  // Explicit values: the hash of the value, never the value.
  std::string v1 = fp("  - {name: k, kind: explicit, value: first-value}\n");
  EXPECT_NE(v1, fp("  - {name: k, kind: explicit, value: other-value}\n"));
  EXPECT_EQ(v1.find("first-value"), std::string::npos);
  EXPECT_NE(v1.find(HexEncode(crypto::Sha256(AsBytes("first-value")))), std::string::npos) << v1;
  // Imports.
  std::string i1 = fp("  - {name: k, import: {session: s, secret: x}}\n");
  EXPECT_NE(i1, fp("  - {name: k, import: {session: s, secret: y}}\n"));
  EXPECT_NE(i1, fp("  - {name: k, import: {session: s, secret: x, session_hash: " + kM1 + "}}\n"));
  // A field's text cannot pose as another field (length prefixes).
  Secret posing, plain;
  posing.kind = plain.kind = SecretKind::kX509;
  posing.common_name = "a\nissuer=2:ca";
  plain.common_name = "a";
  plain.issuer = "ca";
  EXPECT_NE(posing.Fingerprint(), plain.Fingerprint());
  // Built in code with unset defaults: the same as parsed.
  Secret s;
  s.name = "k";
  s.kind = SecretKind::kAscii;
  EXPECT_EQ(s.Fingerprint(), fp("  - {name: k, kind: ascii}\n"));
}

TEST(DocumentHashTest, IsSha256OfTheExactText) {
  EXPECT_EQ(DocumentHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(DocumentHash("name: a\n"), DocumentHash("name: a \n"));
}

TEST(FormatErrorTest, Forms) {
  EXPECT_EQ(FormatError({"services[0].pwd", 12, 5, "must be an absolute path"}),
            "line 12, column 5: services[0].pwd: must be an absolute path");
  EXPECT_EQ(FormatError({"", 3, 1, "the document is empty"}), "line 3, column 1: the document is empty");
  EXPECT_EQ(FormatError({"", 0, 0, "too big"}), "too big");
}

// ---- imports ----

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    exporter_text_ =
        "name: pki\nsecrets:\n"
        "  - name: root\n    kind: x509-ca\n    export: [{session: app}, {session: pinned, session_hash: " +
        kM2 +
        "}]\n"
        "  - name: hidden\n    kind: ascii\n"
        "  - name: other\n    kind: ascii\n    export: [{session: someone-else}]\n"
        "  - name: pw\n    kind: ascii\n    export: [{session: app}]\n";
    exporter_ = MustParse(exporter_text_);
    exporter_hash_ = DocumentHash(exporter_text_);
  }

  std::vector<PolicyError> Check(const std::string& text, std::string own_hash = "") {
    Policy p = MustParse(text);
    if (own_hash.empty()) own_hash = DocumentHash(text);
    SessionLookup lookup = [this](const std::string& name) -> std::optional<ExporterView> {
      if (name != "pki") return std::nullopt;
      return ExporterView{exporter_hash_, &exporter_};
    };
    return CheckImports(p, own_hash, text, lookup);
  }

  static std::string App(const std::string& import, const std::string& name = "app") {
    return "name: " + name + "\nsecrets:\n  - name: ca\n    import: " + import + "\n";
  }

  std::string exporter_text_;
  Policy exporter_;
  std::string exporter_hash_;
};

TEST_F(ImportTest, Ok) {
  EXPECT_TRUE(Check(App("{session: pki, secret: root}")).empty());
  EXPECT_TRUE(Check(App("{session: pki, secret: root, session_hash: " + exporter_hash_ + "}")).empty());
  // Pinned exports match the importer's own hash.
  std::string pinned = App("{session: pki, secret: root}", "pinned");
  EXPECT_TRUE(Check(pinned, kM2).empty());
}

TEST_F(ImportTest, MissingSession) {
  auto errors = Check(App("{session: nowhere, secret: root}"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "secrets[0].import.session");
  EXPECT_EQ(errors[0].line, 4);
  EXPECT_EQ(errors[0].column, 23);
  EXPECT_EQ(errors[0].message, "no session 'nowhere'");
}

TEST_F(ImportTest, MissingSecretOrNotExported) {
  auto errors = Check(App("{session: pki, secret: nothing}"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "secrets[0].import.secret");
  EXPECT_EQ(errors[0].message, "session 'pki' has no secret 'nothing'");
  errors = Check(App("{session: pki, secret: hidden}"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "secret 'hidden' of session 'pki' is not exported to 'app'");
  EXPECT_EQ(errors[0].line, 4);
  errors = Check(App("{session: pki, secret: other}"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "secret 'other' of session 'pki' is not exported to 'app'");
}

TEST_F(ImportTest, PinnedHashes) {
  // The importer pins a version of the exporter that is not current.
  auto errors = Check(App("{session: pki, secret: root, session_hash: " + kM1 + "}"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "secrets[0].import.session_hash");
  EXPECT_NE(errors[0].message.find("not the pinned one"), std::string::npos);
  // The exporter pins a version of the importer that this is not.
  errors = Check(App("{session: pki, secret: root}", "pinned"), kM1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "secrets[0].import.secret");
  EXPECT_NE(errors[0].message.find("exported to another version of 'pinned'"), std::string::npos);
}

TEST_F(ImportTest, KindsOfImportsAreCheckedAgain) {
  std::string text =
      "name: app\nsecrets:\n"
      "  - {name: pw, import: {session: pki, secret: pw}}\n"
      "  - {name: ca, import: {session: pki, secret: root}}\n"
      "  - {name: c, kind: x509, issuer: pw}\n"
      "  - {name: c2, kind: x509, issuer: ca, private_key: ca}\n"
      "services:\n  - name: s\n    measurements: [" +
      kM1 +
      "]\n"
      "    command: run $$CLOISTER::pw:pem$$\n"
      "    environment: {A: \"$$CLOISTER::ca:chain$$\", B: \"$$CLOISTER::ca:hex$$\"}\n";
  auto errors = Check(text);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].path, "secrets[2].issuer");
  EXPECT_EQ(errors[0].message, "imported secret 'pw' is a ascii secret; it must be x509-ca");
  EXPECT_EQ(errors[1].path, "secrets[3].private_key");
  EXPECT_EQ(errors[2].path, "services[0].command");
  EXPECT_EQ(errors[2].line, 10);
  EXPECT_NE(errors[2].message.find("format 'pem' of imported ascii secret 'pw'"), std::string::npos);
  EXPECT_EQ(errors[3].path, "services[0].environment.B");
  EXPECT_EQ(errors[3].line, 11);
}

}  // namespace
}  // namespace cloister::policy
