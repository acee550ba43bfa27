// TPM 2.0 evidence (DESIGN.md section 2, evidence type `tpm`): a quote that
// the node's attestation key (AK) signed over the boot PCRs and a nonce the
// verifier chose, the checks that tie that AK to the TPM's endorsement key
// (EK) and the EK to its manufacturer, and the server side of credential
// activation, with which a CAS learns that an AK lives in the same TPM as a
// certified EK.
//
// Everything here is pure: it parses TPM 2.0 structures (big-endian, as the
// TPM 2.0 Library specification Part 2 marshals them) with bounds checks on
// every length, refuses trailing bytes, and does its cryptography through
// OpenSSL 3. Nothing reads files, clocks or the network; time is passed in.
//
// Errors: anything in the evidence that is malformed, does not verify or
// does not match what the caller expects is kIntegrity with a message that
// starts with "tpm: " and names what failed (e.g. "tpm: extraData is not the
// expected nonce"). A caller mistake (no AK given, a credential that is too
// long) is kInvalidArgument.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attest/hardware.h"
#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/x509.h"

namespace cloister::attest {

// ---- constants of the TPM 2.0 specification (Part 2) ----

inline constexpr uint32_t kTpmGeneratedValue = 0xFF544347;  // TPM_GENERATED_VALUE, "\xffTCG"
inline constexpr uint16_t kTpmStAttestQuote = 0x8018;       // TPM_ST_ATTEST_QUOTE

// TPM_ALG_ID values used here.
inline constexpr uint16_t kTpmAlgRsa = 0x0001;
inline constexpr uint16_t kTpmAlgSha1 = 0x0004;
inline constexpr uint16_t kTpmAlgAes = 0x0006;
inline constexpr uint16_t kTpmAlgSha256 = 0x000B;
inline constexpr uint16_t kTpmAlgSha384 = 0x000C;
inline constexpr uint16_t kTpmAlgNull = 0x0010;
inline constexpr uint16_t kTpmAlgRsassa = 0x0014;
inline constexpr uint16_t kTpmAlgRsaes = 0x0015;
inline constexpr uint16_t kTpmAlgRsapss = 0x0016;
inline constexpr uint16_t kTpmAlgOaep = 0x0017;
inline constexpr uint16_t kTpmAlgEcdsa = 0x0018;
inline constexpr uint16_t kTpmAlgEcdh = 0x0019;
inline constexpr uint16_t kTpmAlgEcdaa = 0x001A;
inline constexpr uint16_t kTpmAlgEcc = 0x0023;
inline constexpr uint16_t kTpmAlgCfb = 0x0043;

// TPM_ECC_CURVE values.
inline constexpr uint16_t kTpmEccNistP256 = 0x0003;
inline constexpr uint16_t kTpmEccNistP384 = 0x0004;

// TPMA_OBJECT bits.
inline constexpr uint32_t kTpmaFixedTpm = 1u << 1;
inline constexpr uint32_t kTpmaStClear = 1u << 2;
inline constexpr uint32_t kTpmaFixedParent = 1u << 4;
inline constexpr uint32_t kTpmaSensitiveDataOrigin = 1u << 5;
inline constexpr uint32_t kTpmaUserWithAuth = 1u << 6;
inline constexpr uint32_t kTpmaAdminWithPolicy = 1u << 7;
inline constexpr uint32_t kTpmaNoDa = 1u << 10;
inline constexpr uint32_t kTpmaEncryptedDuplication = 1u << 11;
inline constexpr uint32_t kTpmaRestricted = 1u << 16;
inline constexpr uint32_t kTpmaDecrypt = 1u << 17;
inline constexpr uint32_t kTpmaSign = 1u << 18;
// What an attestation key must have: created inside this TPM, never
// duplicable, and restricted, so the TPM signs with it only structures it
// produced itself (starting with TPM_GENERATED_VALUE), never outside data
// made to look like a quote.
inline constexpr uint32_t kTpmAkRequiredAttributes =
    kTpmaFixedTpm | kTpmaFixedParent | kTpmaSensitiveDataOrigin | kTpmaRestricted | kTpmaSign;

// ---- parsed structures ----

// One TPMS_PCR_SELECTION: a bank and the PCRs selected in it.
struct TpmPcrSelection {
  uint16_t hash = 0;            // TPM_ALG_ID of the bank
  std::vector<uint32_t> pcrs;   // selected PCR indices, ascending
};

// A TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE.
struct TpmsAttest {
  Bytes qualified_signer;  // TPM2B_NAME contents: the AK's qualified name
  Bytes extra_data;        // TPM2B_DATA contents: the caller's nonce
  uint64_t clock = 0;      // TPMS_CLOCK_INFO
  uint32_t reset_count = 0;
  uint32_t restart_count = 0;
  bool safe = false;
  uint64_t firmware_version = 0;
  std::vector<TpmPcrSelection> pcr_selection;  // TPML_PCR_SELECTION, in order
  Bytes pcr_digest;                            // TPM2B_DIGEST contents
};

// Parses a marshalled TPMS_ATTEST (what TPM2_Quote returns in its
// TPM2B_ATTEST, and what `tpm2_quote -m` writes). Refuses another magic or
// type, a length that runs past the end or beyond the structure's maximum,
// more than 16 banks or more than 4 bytes of PCR bitmap per bank (32 PCRs),
// the same bank twice, and trailing bytes. Says nothing about authenticity.
StatusOr<TpmsAttest> ParseTpmsAttest(std::span<const uint8_t> attest);

// A TPMT_SIGNATURE of one of the algorithms a quote can be verified with.
struct TpmSignature {
  uint16_t sig_alg = 0;  // kTpmAlgEcdsa, kTpmAlgRsassa or kTpmAlgRsapss
  crypto::HashAlg hash = crypto::HashAlg::kSha256;
  Bytes ecdsa_r, ecdsa_s;  // ECDSA: big-endian, possibly shorter than the curve
  Bytes rsa_signature;     // RSASSA, RSAPSS
};

// Parses a marshalled TPMT_SIGNATURE (what `tpm2_quote -s` writes by
// default, "-f tss"). Supported: ECDSA, RSASSA and RSAPSS with SHA-256 or
// SHA-384; anything else is kIntegrity naming the algorithm. Trailing bytes
// are refused.
StatusOr<TpmSignature> ParseTpmtSignature(std::span<const uint8_t> signature);

// A TPMT_PUBLIC of an asymmetric key (AK or EK).
struct TpmPublic {
  uint16_t type = 0;      // kTpmAlgRsa or kTpmAlgEcc
  uint16_t name_alg = 0;  // kTpmAlgSha256 or kTpmAlgSha384
  uint32_t object_attributes = 0;
  Bytes auth_policy;
  // TPMT_SYM_DEF_OBJECT: kTpmAlgNull, or e.g. AES / 128 / CFB for an EK.
  uint16_t symmetric_alg = kTpmAlgNull;
  uint16_t symmetric_bits = 0;
  uint16_t symmetric_mode = 0;
  // The key's scheme (kTpmAlgNull when any is allowed) and its hash (0 if
  // the scheme has none).
  uint16_t scheme = kTpmAlgNull;
  uint16_t scheme_hash = 0;
  // RSA: key size in bits (2048 or 3072), exponent (65537 when the
  // structure says 0), modulus.
  uint16_t rsa_bits = 0;
  uint32_t rsa_exponent = 0;
  Bytes rsa_modulus;
  // ECC: curve (kTpmEccNistP256 or kTpmEccNistP384), KDF scheme, point as
  // marshalled (coordinates exactly as in the structure).
  uint16_t ecc_curve = 0;
  uint16_t ecc_kdf = kTpmAlgNull;
  Bytes ecc_x, ecc_y;

  // The key, ready to verify signatures or encrypt to.
  std::shared_ptr<const crypto::PublicKey> key;
  // The object's Name: nameAlg (big-endian u16) || H_nameAlg(TPMT_PUBLIC),
  // what the TPM binds the key to (tpm2_createak -n writes it).
  Bytes name;
  // The marshalled TPMT_PUBLIC the name was computed over.
  Bytes tpmt_public;
};

// Parses a TPM2B_PUBLIC (u16 size, then a TPMT_PUBLIC: what tpm2_createek
// -u and tpm2_createak -u write) or a bare TPMT_PUBLIC. Supports RSA 2048
// and 3072 and ECC NIST P-256 and P-384 keys with nameAlg SHA-256 or
// SHA-384; anything else, a size that does not match, or trailing bytes is
// kIntegrity. Checks no attributes (see CheckAkAttributes).
StatusOr<TpmPublic> ParseTpmPublic(std::span<const uint8_t> tpm2b_public);
StatusOr<TpmPublic> ParseTpmtPublic(std::span<const uint8_t> tpmt_public);

// OK when `ak` has every bit of kTpmAkRequiredAttributes and not decrypt;
// kIntegrity naming the missing attributes otherwise.
Status CheckAkAttributes(const TpmPublic& ak);

// ---- tpm2-tools' PCR file ----

// PCR values as the node claims them, per bank: PCR index -> digest.
struct TpmPcrValues {
  std::map<uint32_t, Bytes> sha256;
  std::map<uint32_t, Bytes> sha384;
};

// Reads the file `tpm2_quote -o` / `tpm2_pcrread -o` write in their default
// "serialized" format. That is no TPM structure but a dump of tpm2-tools'
// C structures in little-endian byte order with the C padding: a
// TPML_PCR_SELECTION of 16 fixed 8-byte slots (u32 count; each slot u16 hash,
// u8 sizeofSelect, 4 bitmap bytes, 1 pad), a u32 number of TPML_DIGEST
// lists, and that many lists of 532 bytes (u32 count; 8 slots of u16 size
// and a 64-byte buffer). The digests fill the selection in order (bank by
// bank, PCR index ascending). Only SHA-256 and SHA-384 banks are supported;
// anything malformed is kIntegrity.
StatusOr<TpmPcrValues> ParseTpm2ToolsPcrsFile(std::span<const uint8_t> file);

// ---- quote verification ----

enum class TpmSignatureFormat {
  kTpmt,      // TPMT_SIGNATURE (tpm2_quote -f tss, the default)
  kEcdsaDer,  // DER ECDSA-Sig-Value (tpm2_quote -f plain with an ECC AK)
};

struct TpmQuoteInput {
  // The AK, exactly one of: a public key the caller already trusts as this
  // node's AK (borrowed; must outlive the call), or its TPM2B_PUBLIC, which
  // must also carry kTpmAkRequiredAttributes.
  const crypto::PublicKey* ak_key = nullptr;
  Bytes ak_public;
  // The raw TPMS_ATTEST the TPM signed, and its signature.
  Bytes attest;
  Bytes signature;
  TpmSignatureFormat signature_format = TpmSignatureFormat::kTpmt;
  // The hash of a kEcdsaDer signature (that format does not name it); the
  // quote's pcrDigest uses it too. Ignored for kTpmt.
  crypto::HashAlg der_signature_hash = crypto::HashAlg::kSha256;
  // The PCR values the node claims; the quote's selection must name
  // exactly these PCRs, no more and no fewer.
  TpmPcrValues pcrs;
  // The nonce the verifier chose for this quote (non-empty).
  Bytes nonce;
};

// Verifies a quote and returns what it proves. In order, each a line of
// `checks`: the TPMS_ATTEST parses (magic, type, bounds); the AK's public
// area, if given, is a restricted signing key; the signature by the AK over
// the raw TPMS_ATTEST with the hash the signature names (ECDSA r and s may
// be shorter than the curve; RSASSA-PSS with the salt as long as the hash,
// or the longest the key allows); extraData equals the nonce (constant
// time); the PCR selection covers exactly the supplied PCRs; pcrDigest is
// the signature's hash over the supplied values concatenated in selection
// order. Claims (see hardware.h): nonce, pcr_digest, pcr<N> for the SHA-256
// bank and pcr<N>_sha384 for the SHA-384 bank, ak (hex SHA-256 of its
// SubjectPublicKeyInfo), clock, reset_count, restart_count, firmware.
// tcb_status stays kNotEvaluated; a clock the TPM does not call safe is a
// warning. Whether those PCR values are acceptable is the policy's call.
StatusOr<HardwareVerdict> VerifyTpmQuote(const TpmQuoteInput& input);

// ---- the EK and its certificate ----

// Checks `ek_certificate` up to one of `trusted_roots` (the TPM
// manufacturers' CA certificates the caller pins) through `intermediates`
// (CA certificates only, in any order): each certificate issued by the
// next (name and signature), each valid at `now_unix`, at most 6 links.
// Returns the EK certificate's public key. kIntegrity when no chain to a
// trusted root exists; kFailedPrecondition (from Certificate::CheckValidAt)
// when a certificate of the chain is not valid at `now_unix`.
StatusOr<std::unique_ptr<crypto::PublicKey>> VerifyEkCertificate(
    const crypto::Certificate& ek_certificate,
    std::span<const std::shared_ptr<const crypto::Certificate>> intermediates,
    std::span<const std::shared_ptr<const crypto::Certificate>> trusted_roots, int64_t now_unix);

// OK when the EK public area's key is `certified_key` (same
// SubjectPublicKeyInfo); kIntegrity otherwise.
Status CheckEkMatchesCertificate(const TpmPublic& ek, const crypto::PublicKey& certified_key);

// ---- credential activation, the server's side ----

struct TpmCredential {
  Bytes credential_blob;   // TPM2B_ID_OBJECT, with its u16 size
  Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET, with its u16 size
};

// TPM2_MakeCredential done outside the TPM (TPM 2.0 Part 1, "Credential
// Protection" and "Secret Sharing"): protects `secret` so that only the TPM
// holding `ek`'s private key, and only for an object loaded there whose Name
// is `ak_name`, can recover it with TPM2_ActivateCredential. A fresh seed is
// drawn for every call: for an RSA EK it is encrypted with RSA-OAEP (the
// EK's nameAlg, label "IDENTITY\0"); for an ECC EK it comes from ECDH with
// a fresh ephemeral key and KDFe, and the ephemeral point is the encrypted
// secret. The seed gives, through KDFa, an AES key ("STORAGE", bound to
// `ak_name`) that encrypts the credential in CFB mode and an HMAC key
// ("INTEGRITY") for the outer HMAC over the ciphertext and `ak_name`.
//
// `ek` must be a restricted decryption key with an AES-128 or AES-256 CFB
// symmetric definition (the standard EK templates); `ak_name` a Name with
// SHA-256 or SHA-384; `secret` 1 to digest-size-of-the-EK's-nameAlg bytes
// (what the TPM accepts). kInvalidArgument otherwise. Intermediate keys are
// wiped; `secret` is never logged or copied into unwiped memory.
StatusOr<TpmCredential> MakeCredential(const TpmPublic& ek, std::span<const uint8_t> ak_name,
                                       const SecretBytes& secret);

}  // namespace cloister::attest
