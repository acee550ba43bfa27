#include "cas/secrets.h"
#include "crypto/ossl_ptr.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>

namespace cloister::cas {
namespace {

namespace fs = std::filesystem;
using policy::KeyAlgorithm;
using policy::SecretKind;

template <typename T>
using Ptr = crypto::OsslPtr<T>;

std::string Text(const SecretBytes& s) {
  return std::string(reinterpret_cast<const char*>(s.UnsafeBytes().data()), s.size());
}
SecretBytes FromText(std::string_view s) { return SecretBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

policy::Secret Spec(std::string name, SecretKind kind, KeyAlgorithm algorithm = KeyAlgorithm::kP256) {
  policy::Secret s;
  s.name = std::move(name);
  s.kind = kind;
  s.algorithm = algorithm;
  return s;
}

// Generated values by name, as the CAS keeps them during one session.
class Values {
 public:
  StatusOr<SecretValue> Add(const policy::Secret& spec) {
    auto v = GenerateSecret(spec, Resolver());
    if (v.ok()) values_.insert_or_assign(spec.name, *v);
    return v;
  }
  void Put(const std::string& name, SecretValue v) { values_.insert_or_assign(name, std::move(v)); }
  SecretResolver Resolver() const {
    return [this](const std::string& name) -> const SecretValue* {
      auto it = values_.find(name);
      return it == values_.end() ? nullptr : &it->second;
    };
  }

 private:
  std::map<std::string, SecretValue> values_;
};

Ptr<X509> ParseCert(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Ptr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<Ptr<X509>> ParseCerts(const std::string& pem) {
  std::vector<Ptr<X509>> out;
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();
  return out;
}

Ptr<EVP_PKEY> KeyOfDer(const SecretBytes& der) {
  const unsigned char* p = der.UnsafeBytes().data();
  return Ptr<EVP_PKEY>(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
}

std::string PublicPemOf(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool ExtensionIsCritical(X509* cert, int nid) {
  int i = X509_get_ext_by_NID(cert, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

// -1: no basicConstraints; 0: CA:FALSE; 1: CA:TRUE.
int BasicConstraintsCa(X509* cert) {
  Ptr<BASIC_CONSTRAINTS> bc(
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr)));
  if (!bc) return -1;
  return bc->ca ? 1 : 0;
}

std::string KeyId(const ASN1_OCTET_STRING* id) {
  if (id == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(id)), ASN1_STRING_length(id));
}

// Seconds from now to `t` (negative: in the past).
long SecondsFromNow(const ASN1_TIME* t) {
  Ptr<ASN1_TIME> now(ASN1_TIME_set(nullptr, std::time(nullptr)));
  int days = 0, secs = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &secs, now.get(), t), 1);
  return static_cast<long>(days) * 86400 + secs;
}

// X509_V_OK when `leaf` chains to `root` through `untrusted` for `purpose`.
int Verify(const std::string& root_pem, const std::string& untrusted_pem, const std::string& leaf_pem,
           int purpose = 0) {
  Ptr<X509_STORE> store(X509_STORE_new());
  for (auto& c : ParseCerts(root_pem)) X509_STORE_add_cert(store.get(), c.get());
  Ptr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  for (auto& c : ParseCerts(untrusted_pem)) sk_X509_push(untrusted.get(), c.release());
  Ptr<X509> leaf = ParseCert(leaf_pem);
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!leaf || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1) return -1;
  if (purpose != 0) X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  int rc = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return rc == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

// ---- the openssl command-line tool, for an outside opinion ----

bool HaveOpensslTool() { return std::system("openssl version >/dev/null 2>&1") == 0; }

// Exit status and output (stdout and stderr) of a shell command.
std::pair<int, std::string> RunShell(const std::string& command) {
  std::string out;
  FILE* f = popen((command + " 2>&1").c_str(), "r");
  if (f == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "cloister-secrets-XXXXXX").string();
    if (::mkdtemp(t.data()) != nullptr) path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  bool ok() const { return !path_.empty(); }
  // Writes `content` to `name` and returns the path, quoted for the shell.
  std::string Write(const std::string& name, const std::string& content) const {
    std::string p = (fs::path(path_) / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return "'" + p + "'";
  }

 private:
  std::string path_;
};

// RSA-3072 key generation takes up to a second or so: two RSA keys serve
// every test that needs one.
const SecretValue& SharedRsaKey() {
  static const SecretValue v = *GenerateSecret(Spec("rsa-key", SecretKind::kPrivateKey, KeyAlgorithm::kRsa3072), {});
  return v;
}
const SecretValue& SharedRsaCa() {
  static const SecretValue v = *GenerateSecret(Spec("rsa-ca", SecretKind::kX509Ca, KeyAlgorithm::kRsa3072), {});
  return v;
}

// ---- random values ----

TEST(SecretsTest, AsciiAlphabetIsLargeAndNeedsNoQuoting) {
  EXPECT_GE(kAsciiAlphabet.size(), 62u);
  EXPECT_EQ(std::set<char>(kAsciiAlphabet.begin(), kAsciiAlphabet.end()).size(), kAsciiAlphabet.size());
  for (char c : kAsciiAlphabet) {
    EXPECT_TRUE(c > ' ' && c < 0x7f) << int{c};
    EXPECT_EQ(std::string_view("'\"`\\$").find(c), std::string_view::npos) << c;
  }
}

TEST(SecretsTest, AsciiHasTheRequestedLengthAndUsesEveryCharacterEvenly) {
  auto dflt = GenerateSecret(Spec("pw", SecretKind::kAscii), {});
  ASSERT_TRUE(dflt.ok()) << dflt.status().ToString();
  EXPECT_EQ(dflt->kind, SecretKind::kAscii);
  EXPECT_EQ(dflt->bytes.size(), 32u);
  EXPECT_TRUE(dflt->certificate_pem.empty());

  policy::Secret one = Spec("one", SecretKind::kAscii);
  one.size = 1;
  EXPECT_EQ(GenerateSecret(one, {})->bytes.size(), 1u);

  // 400 expected per character; +-150 is more than seven standard deviations.
  policy::Secret big = Spec("big", SecretKind::kAscii);
  big.size = static_cast<int>(kAsciiAlphabet.size()) * 400;
  auto v = GenerateSecret(big, {});
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->bytes.size(), static_cast<size_t>(big.size));
  std::map<char, int> count;
  for (uint8_t b : v->bytes.UnsafeBytes()) {
    ASSERT_NE(kAsciiAlphabet.find(static_cast<char>(b)), std::string_view::npos) << int{b};
    ++count[static_cast<char>(b)];
  }
  ASSERT_EQ(count.size(), kAsciiAlphabet.size());
  for (auto [c, n] : count) {
    EXPECT_GT(n, 250) << c;
    EXPECT_LT(n, 550) << c;
  }
}

TEST(SecretsTest, BinaryHasTheRequestedSize) {
  auto dflt = GenerateSecret(Spec("key", SecretKind::kBinary), {});
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->kind, SecretKind::kBinary);
  EXPECT_EQ(dflt->bytes.size(), 32u);
  policy::Secret s = Spec("key", SecretKind::kBinary);
  s.size = 100;
  EXPECT_EQ(GenerateSecret(s, {})->bytes.size(), 100u);
}

TEST(SecretsTest, TwoGenerationsDiffer) {
  for (SecretKind kind : {SecretKind::kAscii, SecretKind::kBinary, SecretKind::kPrivateKey, SecretKind::kX509Ca}) {
    policy::Secret s = Spec("s", kind);
    auto a = GenerateSecret(s, {});
    auto b = GenerateSecret(s, {});
    ASSERT_TRUE(a.ok() && b.ok()) << policy::SecretKindName(kind);
    EXPECT_FALSE(a->bytes.Equals(b->bytes)) << policy::SecretKindName(kind);
    if (kind == SecretKind::kX509Ca) {
      EXPECT_NE(a->certificate_pem, b->certificate_pem);
      Ptr<X509> ca = ParseCert(a->certificate_pem), cb = ParseCert(b->certificate_pem);
      EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca.get()), X509_get0_serialNumber(cb.get())), 0);
    }
  }
}

TEST(SecretsTest, ExplicitIsACopyOfTheValue) {
  policy::Secret s = Spec("token", SecretKind::kExplicit);
  s.value = FromText("s3cr3t value");
  auto v = GenerateSecret(s, {});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, SecretKind::kExplicit);
  EXPECT_EQ(Text(v->bytes), "s3cr3t value");
  EXPECT_EQ(v->fingerprint, s.Fingerprint());
  s.value.reset();
  EXPECT_EQ(GenerateSecret(s, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(SecretsTest, EveryValueCarriesTheFingerprintOfItsDefinition) {
  Values values;
  for (SecretKind kind : {SecretKind::kAscii, SecretKind::kBinary, SecretKind::kPrivateKey, SecretKind::kX509Ca}) {
    policy::Secret s = Spec("s" + std::string(policy::SecretKindName(kind)), kind);
    auto v = values.Add(s);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->fingerprint, s.Fingerprint());
  }
  policy::Secret leaf = Spec("leaf", SecretKind::kX509);
  leaf.issuer = "sx509-ca";
  auto v = values.Add(leaf);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->fingerprint, leaf.Fingerprint());
}

TEST(SecretsTest, RejectsBadSizesValiditiesAndImports) {
  for (SecretKind kind : {SecretKind::kAscii, SecretKind::kBinary}) {
    for (int size : {-1, (1 << 16) + 1}) {
      policy::Secret s = Spec("s", kind);
      s.size = size;
      EXPECT_EQ(GenerateSecret(s, {}).status().code(), StatusCode::kInvalidArgument) << size;
    }
  }
  policy::Secret ca = Spec("ca", SecretKind::kX509Ca);
  ca.validity_days = -1;
  EXPECT_EQ(GenerateSecret(ca, {}).status().code(), StatusCode::kInvalidArgument);
  ca.validity_days = 0;
  ca.common_name = std::string(65, 'c');
  EXPECT_EQ(GenerateSecret(ca, {}).status().code(), StatusCode::kInvalidArgument);

  policy::Secret imported = Spec("imp", SecretKind::kImported);
  imported.import = policy::Import{"other", "secret", ""};
  EXPECT_EQ(GenerateSecret(imported, {}).status().code(), StatusCode::kInvalidArgument);
}

// ---- keys ----

TEST(SecretsTest, PrivateKeysOfEveryAlgorithm) {
  struct Case {
    KeyAlgorithm algorithm;
    const char* type;
    int bits;
  };
  for (const Case& c : {Case{KeyAlgorithm::kP256, "EC", 256}, Case{KeyAlgorithm::kP384, "EC", 384},
                        Case{KeyAlgorithm::kEd25519, "ED25519", 256}, Case{KeyAlgorithm::kRsa3072, "RSA", 3072}}) {
    SCOPED_TRACE(policy::KeyAlgorithmName(c.algorithm));
    SecretValue v;
    if (c.algorithm == KeyAlgorithm::kRsa3072) {
      v = SharedRsaKey();
    } else {
      auto g = GenerateSecret(Spec("k", SecretKind::kPrivateKey, c.algorithm), {});
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      v = *g;
    }
    EXPECT_EQ(v.kind, SecretKind::kPrivateKey);
    EXPECT_TRUE(v.certificate_pem.empty());
    // PKCS#8 DER: a SEQUENCE whose second element is the AlgorithmIdentifier.
    ASSERT_GT(v.bytes.size(), 16u);
    EXPECT_EQ(v.bytes.UnsafeBytes()[0], 0x30);
    Ptr<EVP_PKEY> key = KeyOfDer(v.bytes);
    ASSERT_TRUE(key);
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), c.type));
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), c.bits);

    auto pem = FormatSecret(v, "");
    ASSERT_TRUE(pem.ok()) << pem.status().ToString();
    EXPECT_EQ(Text(*pem).rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
    EXPECT_TRUE(FormatSecret(v, "pem")->Equals(*pem));
    Ptr<BIO> bio(BIO_new_mem_buf(pem->UnsafeBytes().data(), static_cast<int>(pem->size())));
    Ptr<EVP_PKEY> back(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_TRUE(back);
    EXPECT_EQ(EVP_PKEY_eq(back.get(), key.get()), 1);

    auto pub = FormatSecret(v, "public-pem");
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(Text(*pub), PublicPemOf(key.get()));
    EXPECT_EQ(Text(*pub).rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
    EXPECT_EQ(ERR_peek_error(), 0UL) << "OpenSSL's error queue is left non-empty";
  }
}

// ---- certificates ----

TEST(SecretsTest, RootCaOfEveryAlgorithm) {
  struct Case {
    KeyAlgorithm algorithm;
    int signature_nid;
  };
  for (const Case& c : {Case{KeyAlgorithm::kP256, NID_ecdsa_with_SHA256},
                        Case{KeyAlgorithm::kP384, NID_ecdsa_with_SHA384}, Case{KeyAlgorithm::kEd25519, NID_ED25519},
                        Case{KeyAlgorithm::kRsa3072, NID_sha256WithRSAEncryption}}) {
    SCOPED_TRACE(policy::KeyAlgorithmName(c.algorithm));
    SecretValue v;
    if (c.algorithm == KeyAlgorithm::kRsa3072) {
      v = SharedRsaCa();
    } else {
      auto g = GenerateSecret(Spec("root-ca", SecretKind::kX509Ca, c.algorithm), {});
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      v = *g;
    }
    EXPECT_EQ(v.kind, SecretKind::kX509Ca);
    EXPECT_TRUE(v.chain_pem.empty());
    Ptr<X509> cert = ParseCert(v.certificate_pem);
    ASSERT_TRUE(cert);
    Ptr<EVP_PKEY> key = KeyOfDer(v.bytes);
    ASSERT_TRUE(key);
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
    EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);
    EXPECT_EQ(X509_get_signature_nid(cert.get()), c.signature_nid);
    EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
    char cn[80] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
    EXPECT_STREQ(cn, c.algorithm == KeyAlgorithm::kRsa3072 ? "rsa-ca" : "root-ca");

    EXPECT_EQ(BasicConstraintsCa(cert.get()), 1);
    EXPECT_TRUE(ExtensionIsCritical(cert.get(), NID_basic_constraints));
    EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    EXPECT_TRUE(ExtensionIsCritical(cert.get(), NID_key_usage));
    EXPECT_LT(X509_get_ext_by_NID(cert.get(), NID_ext_key_usage, -1), 0);
    std::string ski = KeyId(X509_get0_subject_key_id(cert.get()));
    EXPECT_EQ(ski.size(), 20u);
    EXPECT_EQ(KeyId(X509_get0_authority_key_id(cert.get())), ski);

    Ptr<BIGNUM> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
    EXPECT_FALSE(BN_is_negative(serial.get()));
    EXPECT_LE(BN_num_bits(serial.get()), 127);
    EXPECT_GT(BN_num_bits(serial.get()), 64);  // fails once in 2^63

    long before = SecondsFromNow(X509_get0_notBefore(cert.get()));
    EXPECT_GE(before, -310);
    EXPECT_LE(before, -290);
    long after = SecondsFromNow(X509_get0_notAfter(cert.get()));
    EXPECT_NEAR(after, 3650L * 86400, 10);
  }
}

TEST(SecretsTest, CommonNameAndValidityFromTheDefinition) {
  policy::Secret s = Spec("ca", SecretKind::kX509Ca);
  s.common_name = "Example Root CA";
  s.validity_days = 30;
  auto v = GenerateSecret(s, {});
  ASSERT_TRUE(v.ok());
  Ptr<X509> cert = ParseCert(v->certificate_pem);
  char cn[80] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "Example Root CA");
  EXPECT_NEAR(SecondsFromNow(X509_get0_notAfter(cert.get())), 30L * 86400, 10);
}

TEST(SecretsTest, LeafCertificate) {
  Values values;
  ASSERT_TRUE(values.Add(Spec("ca", SecretKind::kX509Ca)).ok());
  policy::Secret s = Spec("server", SecretKind::kX509, KeyAlgorithm::kP384);
  s.issuer = "ca";
  s.common_name = "db.example.com";
  s.dns = {"db.example.com", "*.db.example.com"};
  s.ip = {"10.0.0.7", "2001:db8::1"};
  auto v = values.Add(s);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const SecretValue& ca = *values.Resolver()("ca");
  EXPECT_EQ(v->kind, SecretKind::kX509);
  EXPECT_EQ(v->chain_pem, ca.certificate_pem);

  Ptr<X509> cert = ParseCert(v->certificate_pem);
  Ptr<X509> issuer = ParseCert(ca.certificate_pem);
  ASSERT_TRUE(cert && issuer);
  Ptr<EVP_PKEY> key = KeyOfDer(v->bytes);
  ASSERT_TRUE(key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 384);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(X509_check_issued(issuer.get(), cert.get()), X509_V_OK);
  // Signed by the P-256 CA, so with SHA-256 whatever the leaf's own key.
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);

  EXPECT_EQ(BasicConstraintsCa(cert.get()), 0);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_TRUE(ExtensionIsCritical(cert.get(), NID_key_usage));
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  EXPECT_EQ(KeyId(X509_get0_authority_key_id(cert.get())), KeyId(X509_get0_subject_key_id(issuer.get())));
  EXPECT_EQ(KeyId(X509_get0_subject_key_id(cert.get())).size(), 20u);
  EXPECT_NEAR(SecondsFromNow(X509_get0_notAfter(cert.get())), 365L * 86400, 10);

  Ptr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  ASSERT_TRUE(names);
  std::vector<std::string> dns, ip;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS) dns.push_back(KeyId(gn->d.dNSName));
    if (gn->type == GEN_IPADD) ip.push_back(KeyId(gn->d.iPAddress));
  }
  EXPECT_EQ(dns, (std::vector<std::string>{"db.example.com", "*.db.example.com"}));
  ASSERT_EQ(ip.size(), 2u);
  EXPECT_EQ(ip[0], std::string("\x0a\x00\x00\x07", 4));
  EXPECT_EQ(ip[1], std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
  EXPECT_EQ(X509_check_host(cert.get(), "db.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "x.db.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.7", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "2001:db8::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.8", 0), 0);

  EXPECT_EQ(ERR_peek_error(), 0UL) << "OpenSSL's error queue is left non-empty";
  EXPECT_EQ(Verify(ca.certificate_pem, "", v->certificate_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(Verify(ca.certificate_pem, "", v->certificate_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

TEST(SecretsTest, LeafDoesNotOutliveItsIssuer) {
  Values values;
  policy::Secret ca = Spec("ca", SecretKind::kX509Ca);
  ca.validity_days = 10;
  ASSERT_TRUE(values.Add(ca).ok());
  policy::Secret leaf = Spec("leaf", SecretKind::kX509);
  leaf.issuer = "ca";
  auto v = values.Add(leaf);
  ASSERT_TRUE(v.ok());
  Ptr<X509> c = ParseCert(v->certificate_pem), i = ParseCert(values.Resolver()("ca")->certificate_pem);
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(c.get()), X509_get0_notAfter(i.get())), 0);
}

// Root CA -> intermediate CA -> server certificate.
struct Chain {
  Values values;
  SecretValue root, intermediate, leaf;
};

void MakeChain(Chain& c) {
  policy::Secret root = Spec("root", SecretKind::kX509Ca);
  policy::Secret intermediate = Spec("intermediate", SecretKind::kX509Ca, KeyAlgorithm::kP384);
  intermediate.issuer = "root";
  policy::Secret leaf = Spec("leaf", SecretKind::kX509, KeyAlgorithm::kEd25519);
  leaf.issuer = "intermediate";
  leaf.dns = {"service.local", "localhost"};
  leaf.ip = {"127.0.0.1", "::1", "192.168.10.20", "fd00:1234::abcd"};
  auto r = c.values.Add(root);
  auto i = c.values.Add(intermediate);
  auto l = c.values.Add(leaf);
  ASSERT_TRUE(r.ok() && i.ok() && l.ok()) << l.status().ToString();
  c.root = *r;
  c.intermediate = *i;
  c.leaf = *l;
}

TEST(SecretsTest, ChainVerifiesInProcess) {
  Chain c;
  ASSERT_NO_FATAL_FAILURE(MakeChain(c));
  EXPECT_TRUE(c.root.chain_pem.empty());
  EXPECT_EQ(c.intermediate.chain_pem, c.root.certificate_pem);
  EXPECT_EQ(c.leaf.chain_pem, c.intermediate.certificate_pem + c.root.certificate_pem);
  Ptr<X509> intermediate = ParseCert(c.intermediate.certificate_pem);
  EXPECT_EQ(BasicConstraintsCa(intermediate.get()), 1);
  EXPECT_EQ(X509_get_signature_nid(intermediate.get()), NID_ecdsa_with_SHA256);  // signed by the P-256 root
  Ptr<X509> leaf = ParseCert(c.leaf.certificate_pem);
  EXPECT_EQ(X509_get_signature_nid(leaf.get()), NID_ecdsa_with_SHA384);  // signed by the P-384 intermediate

  EXPECT_EQ(Verify(c.root.certificate_pem, c.intermediate.certificate_pem, c.leaf.certificate_pem), X509_V_OK);
  EXPECT_EQ(Verify(c.root.certificate_pem, c.leaf.chain_pem, c.leaf.certificate_pem, X509_PURPOSE_SSL_SERVER),
            X509_V_OK);
  EXPECT_EQ(Verify(c.root.certificate_pem, c.leaf.chain_pem, c.leaf.certificate_pem, X509_PURPOSE_SSL_CLIENT),
            X509_V_OK);
  // Without the intermediate, or trusting another root, it does not.
  EXPECT_NE(Verify(c.root.certificate_pem, "", c.leaf.certificate_pem), X509_V_OK);
  auto other = GenerateSecret(Spec("root", SecretKind::kX509Ca), {});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(Verify(other->certificate_pem, c.intermediate.certificate_pem, c.leaf.certificate_pem), X509_V_OK);
}

TEST(SecretsTest, ChainVerifiesWithTheOpensslTool) {
  if (!HaveOpensslTool()) GTEST_SKIP() << "the openssl command-line tool is not installed";
  Chain c;
  ASSERT_NO_FATAL_FAILURE(MakeChain(c));
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string root = dir.Write("root.pem", c.root.certificate_pem);
  std::string intermediate = dir.Write("intermediate.pem", c.intermediate.certificate_pem);
  std::string leaf = dir.Write("leaf.pem", c.leaf.certificate_pem);
  auto [rc, out] = RunShell("openssl verify -CAfile " + root + " -untrusted " + intermediate + " " + leaf);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(": OK"), std::string::npos) << out;
  std::tie(rc, out) = RunShell("openssl verify -purpose sslserver -CAfile " + root + " -untrusted " + intermediate +
                          " " + leaf);
  EXPECT_EQ(rc, 0) << out;
  // The leaf alone does not chain to the root.
  std::tie(rc, out) = RunShell("openssl verify -CAfile " + root + " " + leaf);
  EXPECT_NE(rc, 0) << out;
}

TEST(SecretsTest, SubjectAltNamesAsTheOpensslToolPrintsThem) {
  if (!HaveOpensslTool()) GTEST_SKIP() << "the openssl command-line tool is not installed";
  Chain c;
  ASSERT_NO_FATAL_FAILURE(MakeChain(c));
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string leaf = dir.Write("leaf.pem", c.leaf.certificate_pem);
  auto [rc, out] = RunShell("openssl x509 -noout -ext subjectAltName -in " + leaf);
  ASSERT_EQ(rc, 0) << out;
  for (const char* want : {"DNS:service.local", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1",
                           "IP Address:192.168.10.20", "IP Address:FD00:1234:0:0:0:0:0:ABCD"}) {
    EXPECT_NE(out.find(want), std::string::npos) << want << " in\n" << out;
  }
  std::tie(rc, out) = RunShell("openssl x509 -noout -ext basicConstraints,keyUsage,extendedKeyUsage -in " + leaf);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("CA:FALSE"), std::string::npos) << out;
  EXPECT_NE(out.find("Digital Signature"), std::string::npos) << out;
  EXPECT_NE(out.find("TLS Web Server Authentication, TLS Web Client Authentication"), std::string::npos) << out;
}

TEST(SecretsTest, Ed25519AndRsaCertificates) {
  Values values;
  values.Put("rsa-key", SharedRsaKey());
  values.Put("rsa-ca", SharedRsaCa());
  ASSERT_TRUE(values.Add(Spec("ed-ca", SecretKind::kX509Ca, KeyAlgorithm::kEd25519)).ok());

  // An RSA server key certified by an Ed25519 CA...
  policy::Secret rsa_leaf = Spec("rsa-leaf", SecretKind::kX509);
  rsa_leaf.issuer = "ed-ca";
  rsa_leaf.private_key = "rsa-key";
  rsa_leaf.dns = {"rsa.example"};
  auto rl = values.Add(rsa_leaf);
  ASSERT_TRUE(rl.ok()) << rl.status().ToString();
  EXPECT_TRUE(rl->bytes.Equals(SharedRsaKey().bytes));
  Ptr<X509> cert = ParseCert(rl->certificate_pem);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ED25519);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  EXPECT_EQ(Verify(values.Resolver()("ed-ca")->certificate_pem, "", rl->certificate_pem, X509_PURPOSE_SSL_SERVER),
            X509_V_OK);

  // ...and an Ed25519 client key certified by an RSA CA.
  policy::Secret ed_leaf = Spec("ed-leaf", SecretKind::kX509, KeyAlgorithm::kEd25519);
  ed_leaf.issuer = "rsa-ca";
  auto el = values.Add(ed_leaf);
  ASSERT_TRUE(el.ok()) << el.status().ToString();
  cert = ParseCert(el->certificate_pem);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_sha256WithRSAEncryption);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(cert.get()), "ED25519"));
  EXPECT_EQ(Verify(SharedRsaCa().certificate_pem, "", el->certificate_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

TEST(SecretsTest, CertificateUsesTheNamedPrivateKey) {
  Values values;
  auto key = values.Add(Spec("k", SecretKind::kPrivateKey, KeyAlgorithm::kP384));
  ASSERT_TRUE(key.ok());
  policy::Secret ca = Spec("ca", SecretKind::kX509Ca);  // algorithm P-256, but the key decides
  ca.private_key = "k";
  auto v = values.Add(ca);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->bytes.Equals(key->bytes));
  Ptr<X509> cert = ParseCert(v->certificate_pem);
  Ptr<EVP_PKEY> k = KeyOfDer(key->bytes);
  EXPECT_EQ(X509_check_private_key(cert.get(), k.get()), 1);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA384);
}

TEST(SecretsTest, CertificateErrorsAreClearAndRevealNothing) {
  Values values;
  policy::Secret password = Spec("password", SecretKind::kExplicit);
  password.value = FromText("correct-horse-battery-staple");
  ASSERT_TRUE(values.Add(password).ok());
  ASSERT_TRUE(values.Add(Spec("key", SecretKind::kPrivateKey)).ok());
  ASSERT_TRUE(values.Add(Spec("ca", SecretKind::kX509Ca)).ok());
  policy::Secret leaf = Spec("leaf", SecretKind::kX509);
  leaf.issuer = "ca";
  ASSERT_TRUE(values.Add(leaf).ok());

  auto expect = [&](const policy::Secret& s, StatusCode code, const std::string& mentions) {
    auto v = GenerateSecret(s, values.Resolver());
    ASSERT_FALSE(v.ok()) << s.name;
    EXPECT_EQ(v.status().code(), code) << v.status().ToString();
    EXPECT_NE(v.status().message().find(mentions), std::string::npos) << v.status().ToString();
    EXPECT_EQ(v.status().message().find("correct-horse"), std::string::npos) << v.status().ToString();
  };
  policy::Secret s = Spec("s", SecretKind::kX509);
  s.issuer = "nope";
  expect(s, StatusCode::kNotFound, "'nope'");
  s.issuer = "leaf";
  expect(s, StatusCode::kInvalidArgument, "not an x509-ca");
  s.issuer = "key";
  expect(s, StatusCode::kInvalidArgument, "not an x509-ca");
  s.issuer = "password";
  expect(s, StatusCode::kInvalidArgument, "not an x509-ca");
  s.issuer = "";
  expect(s, StatusCode::kInvalidArgument, "needs an issuer");
  policy::Secret self = Spec("self", SecretKind::kX509Ca);
  self.issuer = "self";
  expect(self, StatusCode::kInvalidArgument, "itself");

  s.issuer = "ca";
  s.private_key = "missing";
  expect(s, StatusCode::kNotFound, "'missing'");
  s.private_key = "password";
  expect(s, StatusCode::kInvalidArgument, "not a private-key");
  s.private_key = "";

  for (const char* ip : {"1.2.3", "256.1.1.1", "01.2.3.4", " 1.2.3.4", "1.2.3.4 ", "fe80::1%eth0", "::g", "",
                         "example.com"}) {
    s.ip = {ip};
    expect(s, StatusCode::kInvalidArgument, "not an IPv4 or IPv6 address");
  }
  s.ip.clear();
  for (const std::string& dns : {std::string(), std::string("a,IP:1.2.3.4"), std::string("a b"),
                                 std::string("a..b"), std::string("x.*.example"), std::string("trailing."),
                                 std::string(64, 'a') + ".example"}) {
    s.dns = {dns};
    expect(s, StatusCode::kInvalidArgument, "not a DNS name");
  }
}

// ---- store encoding ----

SecretValue SampleValue() {
  SecretValue v;
  v.kind = SecretKind::kX509;
  v.bytes = SecretBytes(40);
  for (size_t i = 0; i < 40; ++i) v.bytes.UnsafeMutableBytes()[i] = static_cast<uint8_t>(i * 37 + 11);
  v.certificate_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  v.chain_pem = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
  v.fingerprint = "x509 leaf issuer=ca";
  return v;
}

void ExpectSameValue(const SecretValue& a, const SecretValue& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_TRUE(a.bytes.Equals(b.bytes));
  EXPECT_EQ(a.certificate_pem, b.certificate_pem);
  EXPECT_EQ(a.chain_pem, b.chain_pem);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
}

TEST(SecretsTest, EncodingRoundTripsEveryKind) {
  Chain c;
  ASSERT_NO_FATAL_FAILURE(MakeChain(c));
  std::vector<SecretValue> all = {SampleValue(), c.root, c.intermediate, c.leaf, SharedRsaKey()};
  for (SecretKind kind : {SecretKind::kAscii, SecretKind::kBinary, SecretKind::kPrivateKey}) {
    all.push_back(*GenerateSecret(Spec("s", kind), {}));
  }
  policy::Secret e = Spec("e", SecretKind::kExplicit);
  e.value = SecretBytes();  // an explicit value may be empty
  all.push_back(*GenerateSecret(e, {}));
  for (const SecretValue& v : all) {
    SCOPED_TRACE(policy::SecretKindName(v.kind));
    SecretBytes encoded = EncodeSecretValue(v);
    EXPECT_EQ(encoded.UnsafeBytes()[0], 1);  // version
    auto back = DecodeSecretValue(encoded.UnsafeBytes());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ExpectSameValue(*back, v);
    EXPECT_TRUE(EncodeSecretValue(*back).Equals(encoded));
  }
}

TEST(SecretsTest, DecodingRejectsTruncationAndTrailingBytes) {
  SecretBytes encoded = EncodeSecretValue(SampleValue());
  std::span<const uint8_t> all = encoded.UnsafeBytes();
  for (size_t n = 0; n < all.size(); ++n) {
    auto v = DecodeSecretValue(all.first(n));
    ASSERT_FALSE(v.ok()) << n;
    EXPECT_EQ(v.status().code(), StatusCode::kIntegrity);
  }
  std::vector<uint8_t> longer(all.begin(), all.end());
  longer.push_back(0);
  EXPECT_EQ(DecodeSecretValue(longer).status().code(), StatusCode::kIntegrity);
}

TEST(SecretsTest, DecodingRejectsBitFlipsInLengths) {
  const SecretValue v = SampleValue();
  SecretBytes encoded = EncodeSecretValue(v);
  const size_t offsets[] = {2, 6 + v.bytes.size(), 10 + v.bytes.size() + v.certificate_pem.size(),
                            14 + v.bytes.size() + v.certificate_pem.size() + v.chain_pem.size()};
  for (size_t off : offsets) {
    for (int bit = 0; bit < 32; ++bit) {
      std::vector<uint8_t> bad(encoded.UnsafeBytes().begin(), encoded.UnsafeBytes().end());
      bad[off + static_cast<size_t>(bit / 8)] ^= static_cast<uint8_t>(1 << (bit % 8));
      EXPECT_FALSE(DecodeSecretValue(bad).ok()) << "offset " << off << " bit " << bit;
    }
  }
}

TEST(SecretsTest, DecodingRejectsGarbage) {
  const SecretBytes encoded = EncodeSecretValue(SampleValue());
  const std::vector<uint8_t> good(encoded.UnsafeBytes().begin(), encoded.UnsafeBytes().end());
  for (uint8_t version : {0, 2, 255}) {
    auto bad = good;
    bad[0] = version;
    EXPECT_FALSE(DecodeSecretValue(bad).ok()) << int{version};
  }
  for (uint8_t kind : {0, 7, 255}) {
    auto bad = good;
    bad[1] = kind;
    EXPECT_FALSE(DecodeSecretValue(bad).ok()) << int{kind};
  }
  // A kind that does not fit the fields: an ascii value with a certificate,
  // a certificate without one, a key without key bytes.
  SecretValue ascii = SampleValue();
  ascii.kind = SecretKind::kAscii;
  EXPECT_FALSE(DecodeSecretValue(EncodeSecretValue(ascii).UnsafeBytes()).ok());
  SecretValue no_cert = SampleValue();
  no_cert.certificate_pem.clear();
  EXPECT_FALSE(DecodeSecretValue(EncodeSecretValue(no_cert).UnsafeBytes()).ok());
  SecretValue no_key;
  no_key.kind = SecretKind::kPrivateKey;
  EXPECT_FALSE(DecodeSecretValue(EncodeSecretValue(no_key).UnsafeBytes()).ok());

  // Random bytes, and random bytes after a valid header, never crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> buf(rng() % 48);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0 && buf.size() >= 2) {
      buf[0] = 1;
      buf[1] = static_cast<uint8_t>(1 + rng() % 6);
    }
    auto v = DecodeSecretValue(buf);
    if (v.ok()) {
      SecretBytes again = EncodeSecretValue(*v);
      EXPECT_TRUE(std::equal(buf.begin(), buf.end(), again.UnsafeBytes().begin(), again.UnsafeBytes().end()));
    }
  }
}

// ---- formats ----

SecretValue Value(SecretKind kind, std::string_view bytes) {
  SecretValue v;
  v.kind = kind;
  v.bytes = FromText(bytes);
  return v;
}

void ExpectFormat(const SecretValue& v, std::string_view format, std::string_view want) {
  auto got = FormatSecret(v, format);
  ASSERT_TRUE(got.ok()) << format << ": " << got.status().ToString();
  EXPECT_EQ(Text(*got), want) << "format '" << format << "'";
}

void ExpectNoFormat(const SecretValue& v, std::string_view format) {
  auto got = FormatSecret(v, format);
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << "format '" << format << "'";
}

TEST(SecretsTest, FormatsOfAsciiAndExplicit) {
  for (SecretKind kind : {SecretKind::kAscii, SecretKind::kExplicit}) {
    SCOPED_TRACE(policy::SecretKindName(kind));
    SecretValue v = Value(kind, "foobar");
    ExpectFormat(v, "", "foobar");
    ExpectFormat(v, "raw", "foobar");
    ExpectFormat(v, "hex", "666f6f626172");
    ExpectFormat(v, "base64", "Zm9vYmFy");
    ExpectFormat(Value(kind, "fo"), "base64", "Zm8=");
    ExpectFormat(Value(kind, "f"), "base64", "Zg==");
    ExpectFormat(Value(kind, ""), "base64", "");
    ExpectFormat(Value(kind, ""), "hex", "");
    for (const char* bad : {"pem", "public-pem", "cert", "chain", "privatekey", "RAW", "hex ", "base32"}) {
      ExpectNoFormat(v, bad);
    }
    auto err = FormatSecret(v, "pem");
    EXPECT_EQ(err.status().message().find("foobar"), std::string::npos);
  }
  // No line breaks in long base64.
  auto long_b64 = FormatSecret(Value(SecretKind::kExplicit, std::string(200, 'x')), "base64");
  ASSERT_TRUE(long_b64.ok());
  EXPECT_EQ(long_b64->size(), 268u);
  EXPECT_EQ(Text(*long_b64).find('\n'), std::string::npos);
}

TEST(SecretsTest, FormatsOfBinary) {
  SecretValue v = Value(SecretKind::kBinary, std::string("\x00\xff\x10", 3));
  ExpectFormat(v, "", "00ff10");
  ExpectFormat(v, "hex", "00ff10");
  ExpectFormat(v, "base64", "AP8Q");
  ExpectFormat(v, "raw", std::string("\x00\xff\x10", 3));
  for (const char* bad : {"pem", "public-pem", "cert", "chain", "privatekey", "HEX"}) ExpectNoFormat(v, bad);
}

TEST(SecretsTest, FormatsOfPrivateKey) {
  auto v = GenerateSecret(Spec("k", SecretKind::kPrivateKey), {});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(FormatSecret(*v, "")->Equals(*FormatSecret(*v, "pem")));
  EXPECT_NE(Text(*FormatSecret(*v, "public-pem")).find("BEGIN PUBLIC KEY"), std::string::npos);
  for (const char* bad : {"raw", "hex", "base64", "cert", "chain", "privatekey", "der"}) ExpectNoFormat(*v, bad);
  // A stored key that is not PKCS#8 is refused, not misread.
  ExpectNoFormat(Value(SecretKind::kPrivateKey, "not a key"), "pem");
}

TEST(SecretsTest, FormatsOfCertificates) {
  Chain c;
  ASSERT_NO_FATAL_FAILURE(MakeChain(c));
  for (const SecretValue* v : {&c.root, &c.intermediate, &c.leaf}) {
    SCOPED_TRACE(policy::SecretKindName(v->kind));
    ExpectFormat(*v, "", v->certificate_pem);
    ExpectFormat(*v, "cert", v->certificate_pem);
    ExpectFormat(*v, "chain", v->certificate_pem + v->chain_pem);
    Ptr<EVP_PKEY> key = KeyOfDer(v->bytes);
    auto pem = FormatSecret(*v, "privatekey");
    ASSERT_TRUE(pem.ok());
    Ptr<BIO> bio(BIO_new_mem_buf(pem->UnsafeBytes().data(), static_cast<int>(pem->size())));
    Ptr<EVP_PKEY> back(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_TRUE(back);
    EXPECT_EQ(EVP_PKEY_eq(back.get(), key.get()), 1);
    Ptr<X509> cert = ParseCert(v->certificate_pem);
    ExpectFormat(*v, "public-pem", PublicPemOf(X509_get0_pubkey(cert.get())));
    for (const char* bad : {"pem", "raw", "hex", "base64", "certificate", "CERT"}) ExpectNoFormat(*v, bad);
  }
  EXPECT_EQ(ParseCerts(Text(*FormatSecret(c.leaf, "chain"))).size(), 3u);
}

// ---- order and placeholders ----

policy::Policy SessionOf(std::vector<policy::Secret> secrets) {
  policy::Policy p;
  p.name = "test";
  p.secrets = std::move(secrets);
  return p;
}

TEST(SecretsTest, GenerationOrderPutsImportsAndReferencesFirst) {
  policy::Secret leaf = Spec("leaf", SecretKind::kX509);
  leaf.issuer = "inter";
  leaf.private_key = "k";
  policy::Secret inter = Spec("inter", SecretKind::kX509Ca);
  inter.issuer = "root";
  policy::Secret imp = Spec("imp", SecretKind::kImported);
  imp.import = policy::Import{"other/session", "ca", ""};
  policy::Secret other = Spec("other-leaf", SecretKind::kX509);
  other.issuer = "imp";
  policy::Policy p = SessionOf({leaf, inter, Spec("k", SecretKind::kPrivateKey), Spec("root", SecretKind::kX509Ca),
                                imp, Spec("pw", SecretKind::kAscii), other});
  auto order = GenerationOrder(p);
  ASSERT_TRUE(order.ok()) << order.status().ToString();
  EXPECT_EQ(*order, (std::vector<size_t>{4, 2, 3, 1, 0, 5, 6}));

  // Generating in that order works with nothing but earlier values.
  Values values;
  values.Put("imp", *GenerateSecret(Spec("imp", SecretKind::kX509Ca), {}));
  for (size_t i : *order) {
    if (p.secrets[i].kind == SecretKind::kImported) continue;
    auto v = values.Add(p.secrets[i]);
    ASSERT_TRUE(v.ok()) << p.secrets[i].name << ": " << v.status().ToString();
  }
  EXPECT_EQ(GenerationOrder(SessionOf({}))->size(), 0u);
}

TEST(SecretsTest, GenerationOrderRejectsCycles) {
  policy::Secret a = Spec("a", SecretKind::kX509Ca);
  a.issuer = "b";
  policy::Secret b = Spec("b", SecretKind::kX509Ca);
  b.issuer = "c";
  policy::Secret c = Spec("c", SecretKind::kX509Ca);
  c.issuer = "a";
  policy::Secret d = Spec("d", SecretKind::kX509);
  d.issuer = "a";  // waits for the cycle, but is not in it
  auto order = GenerationOrder(SessionOf({Spec("ok", SecretKind::kAscii), d, a, b, c}));
  ASSERT_EQ(order.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = order.status().message();
  EXPECT_NE(m.find("'a' -> 'b' -> 'c' -> 'a'"), std::string::npos) << m;
  EXPECT_EQ(m.find("'d'"), std::string::npos) << m;

  policy::Secret self = Spec("self", SecretKind::kX509Ca);
  self.issuer = "self";
  order = GenerationOrder(SessionOf({self}));
  ASSERT_EQ(order.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(order.status().message().find("'self' -> 'self'"), std::string::npos) << order.status().message();

  policy::Secret dangling = Spec("x", SecretKind::kX509);
  dangling.issuer = "nowhere";
  order = GenerationOrder(SessionOf({dangling}));
  ASSERT_EQ(order.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(order.status().message().find("'nowhere'"), std::string::npos);
  EXPECT_EQ(GenerationOrder(SessionOf({Spec("x", SecretKind::kAscii), Spec("x", SecretKind::kBinary)}))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(SecretsTest, SubstituteFillsEveryPlaceholder) {
  Values values;
  values.Put("user", Value(SecretKind::kExplicit, "admin"));
  values.Put("pw", Value(SecretKind::kAscii, "p4ss"));
  values.Put("bin", Value(SecretKind::kBinary, std::string("\x01\xab", 2)));
  const std::string text =
      "$$CLOISTER::user$$:$$CLOISTER::pw$$ hex=$$CLOISTER::pw:hex$$ b=$$CLOISTER::bin$$ "
      "b64=$$CLOISTER::bin:base64$$ again=$$CLOISTER::user:raw$$";
  auto out = Substitute(text, values.Resolver());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Text(*out), "admin:p4ss hex=70347373 b=01ab b64=Aas= again=admin");

  EXPECT_EQ(Text(*Substitute("no placeholders $ here", values.Resolver())), "no placeholders $ here");
  EXPECT_EQ(Text(*Substitute("", values.Resolver())), "");

  auto certs = GenerateSecret(Spec("ca", SecretKind::kX509Ca), {});
  ASSERT_TRUE(certs.ok());
  values.Put("ca", *certs);
  EXPECT_EQ(Text(*Substitute("$$CLOISTER::ca$$", values.Resolver())), certs->certificate_pem);
}

TEST(SecretsTest, SubstituteNamesAMissingSecret) {
  Values values;
  values.Put("pw", Value(SecretKind::kAscii, "hunter2-secret"));
  auto out = Substitute("a=$$CLOISTER::pw$$ b=$$CLOISTER::db-password$$", values.Resolver());
  ASSERT_EQ(out.status().code(), StatusCode::kNotFound);
  EXPECT_NE(out.status().message().find("'db-password'"), std::string::npos) << out.status().message();
  EXPECT_EQ(out.status().message().find("hunter2"), std::string::npos);

  out = Substitute("a=$$CLOISTER::pw:pem$$", values.Resolver());
  ASSERT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("'pw'"), std::string::npos) << out.status().message();
  EXPECT_EQ(out.status().message().find("hunter2"), std::string::npos);

  EXPECT_EQ(Substitute("$$CLOISTER::pw$$", {}).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cloister::cas
