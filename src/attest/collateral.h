// Collateral an operator provides for hardware evidence: what Intel's PCS
// (or a PCCS) serves for DCAP quotes, and what AMD's KDS serves for SEV-SNP
// reports. Files are recognised by their content, not their names, so a
// directory filled by hand, by a PCCS client or by copying a cache works
// alike. Pure: the caller reads the files; nothing here is trusted yet (the
// verifiers check every signature).
#pragma once

#include <string>
#include <vector>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "base/bytes.h"
#include "cloister/status.h"

namespace cloister::attest {

struct CollateralFile {
  std::string name;  // for messages only
  Bytes bytes;
};

struct CollateralSet {
  // DCAP: responses as served ({"tcbInfo":...,"signature":...} and
  // {"enclaveIdentity":...}), possibly for several FMSPCs and TEE types.
  std::vector<std::string> tcb_infos;
  std::vector<std::string> qe_identities;
  Bytes tcb_signing_chain;  // Intel SGX TCB Signing + root
  Bytes pck_certificates;   // PCK certificates and their CAs (for PPID-only quotes)
  Bytes intel_root_ca_crl;
  std::vector<Bytes> intel_pck_crls;  // Processor CA and/or Platform CA
  // SEV-SNP: VCEK/VLEK and the ASK/ASVK/ARK certificates, and the CRLs of
  // the ARKs, each as the file held them.
  std::vector<Bytes> amd_certificates;
  std::vector<Bytes> amd_crls;
  // Files that are none of these (reported, never used).
  std::vector<std::string> unrecognised;
};

// Sorts the files into a CollateralSet. Fails only on a file that claims to
// be collateral and is malformed (a JSON object that is not, a PEM block
// that does not parse).
StatusOr<CollateralSet> ClassifyCollateral(const std::vector<CollateralFile>& files);

// The collateral for one quote: the TCB Info for its FMSPC and TEE type
// ("SGX" or "TDX"), the QE Identity of its quoting enclave ("QE" or
// "TD_QE"), the CRLs and chains. kNotFound, naming what is missing, when the
// set holds no TCB Info or QE Identity for it.
StatusOr<DcapCollateral> SelectDcapCollateral(const CollateralSet& set, const std::string& fmspc_hex, bool tdx);

// The collateral for an SEV-SNP report: the one VCEK or VLEK among the AMD
// certificates (a file may hold it together with its CAs), every AMD CA
// certificate (each once), and the AMD CRLs. kNotFound when there is no
// VCEK/VLEK; kInvalidArgument when there are several different ones (keep
// one node's per directory).
StatusOr<SnpCollateral> SelectSnpCollateral(const CollateralSet& set);

}  // namespace cloister::attest
