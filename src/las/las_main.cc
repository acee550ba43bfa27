#include "las/las_main.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "las/cas_node_client.h"
#include "las/evidence_service.h"
#include "las/measure_cache.h"
#include "las/node_evidence.h"
#include "las/node_state.h"
#include "las/process_measurer.h"
#include "las/relay_batcher.h"
#include "las/renewer.h"
#include "las/socket_server.h"
#include "net/http_client.h"
#include "os/daemon.h"
#include "os/secret_file.h"

namespace cloister::las {
namespace {

constexpr size_t kMaxTokenFile = 4096;
// Relay requests out to the CAS at once. Two keep the CAS busy on two
// threads for this node; every further start waits for one of them to come
// back and then goes in the next batch.
constexpr size_t kRelayRequests = 2;
// How long a stop waits for a renewal that is talking to the CAS.
constexpr std::chrono::milliseconds kRenewalStopWait(2000);

struct Flags {
  std::string state_dir;
  std::string cas;
  std::string cas_key;
  std::string socket = "/run/cloister/las.sock";
  std::string token_file;
  std::string name;
  std::string evidence = "token";
  std::string tpm_tcti = kDefaultTpmTcti;
  std::string tsm_dir = kDefaultTsmDir;
  int threads = 8;
  bool log_requests = false;
};

int Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "cloister-las: %s%s%s\n", what.c_str(), what.empty() ? "" : ": ", s.message().c_str());
  return 1;
}

void PrintLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DefaultName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "node";
  return SanitizeNodeName(host);
}

std::string HowJoined(const NodeEvidenceSource* evidence) {
  return evidence != nullptr ? " with " + evidence->type() + " evidence" : std::string();
}

// Joins with the token in `token_file`, and with fresh node evidence when
// `evidence` is not null (docs/protocol.md section 4.1). The token and the
// evidence are secrets: they are held only in SecretBytes (wiped on
// destruction) and never printed.
StatusOr<IssuedCertificate> Join(const Flags& f, const NodeKey& key, const std::string& name,
                                 NodeEvidenceSource* evidence) {
  auto raw = os::ReadPrivateFile(f.token_file, kMaxTokenFile);
  if (!raw.ok()) return raw.status().WithContext("join token file");
  ASSIGN_OR_RETURN(SecretBytes token, ParseJoinToken(*raw));
  ASSIGN_OR_RETURN(auto client, net::ApiClient::New(f.cas, f.cas_key, &key.tls));
  StatusOr<IssuedCertificate> issued = Unavailable("not joined");
  if (evidence != nullptr) {
    auto gathered = GatherNodeEvidence(*client, *evidence, key.node_id);
    if (gathered.ok()) {
      issued = JoinCas(*client, token, name, key.node_id, &*gathered);
    } else {
      issued = gathered.status();
    }
  } else {
    issued = JoinCas(*client, token, name, key.node_id);
  }
  if (!issued.ok() && (issued.status().code() == StatusCode::kUnauthenticated ||
                       issued.status().code() == StatusCode::kPermissionDenied)) {
    return Status(issued.status().code(),
                  "the CAS refused the join" + HowJoined(evidence) + ": " + issued.status().message());
  }
  return issued;
}

// Kept-alive connections to the CAS API, shared by the worker threads: a
// request takes the connection used last (or opens one) and puts it back
// when it is done, so at most as many connections are open as requests
// were out at once, and one when the requests come one by one (a volume's
// commit reports). The CAS keeps a thread per connection that looks at the
// socket every few milliseconds while it sits idle; a connection per
// worker thread cost it some 180 wake-ups a second each. A connection idle
// for kCasLinkIdle is closed by the LAS before the CAS's keep-alive timeout
// (10 s) closes it on the other side.
constexpr auto kCasLinkIdle = std::chrono::seconds(5);

struct CasLink {
  std::unique_ptr<net::ApiClient> client;
  bool reused = false;  // `client` has answered before
  std::chrono::steady_clock::time_point last_used{};
};

class CasLinkPool {
 public:
  // The connection used last that has not sat idle too long; an empty link
  // if there is none.
  CasLink Take() {
    std::vector<CasLink> stale;
    CasLink link;
    {
      std::lock_guard<std::mutex> l(mu_);
      const auto now = std::chrono::steady_clock::now();
      // Oldest first: a link returned later was used later.
      size_t fresh = 0;
      while (fresh < idle_.size() && now - idle_[fresh].last_used > kCasLinkIdle) ++fresh;
      std::move(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(fresh), std::back_inserter(stale));
      idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(fresh));
      if (!idle_.empty()) {
        link = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    return link;  // `stale` closes its connections outside the lock
  }
  void Return(CasLink link) {
    link.last_used = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> l(mu_);
    idle_.push_back(std::move(link));
  }

 private:
  std::mutex mu_;
  std::vector<CasLink> idle_;
};

// Runs `call` over a kept-alive connection to the CAS. A connection may
// have been closed by the CAS while it sat idle, which shows only when the
// next request fails: that one is sent once more on a new connection.
// Should the CAS have answered the first after all, the request was
// carried twice (a start attested twice, a commit answered as a repeat).
template <typename T, typename Call>
StatusOr<T> OverCasLink(CasLinkPool& pool, const Flags& f, const NodeKey& key, Call call) {
  CasLink link = pool.Take();
  for (int attempt = 0;; ++attempt) {
    if (!link.client) {
      auto made = net::ApiClient::New(f.cas, f.cas_key, &key.tls);
      if (!made.ok()) return made.status();
      link.client = std::move(*made);
      link.reused = false;
    }
    StatusOr<T> result = call(*link.client);
    if (result.ok()) {
      link.reused = true;
      pool.Return(std::move(link));
      return result;
    }
    link.client.reset();
    if (attempt > 0 || !link.reused || result.status().code() == StatusCode::kFailedPrecondition) return result;
  }
}

}  // namespace

int LasMain(int argc, char** argv) {
  Flags f;
  CLI::App app{"cloister-las: the Cloister local attestation service (one per node)"};
  app.add_option("--state-dir", f.state_dir, "State directory: node key and certificates (created 0700)")->required();
  app.add_option("--cas", f.cas, "CAS API address HOST:PORT")
      ->required()
      ->check(CLI::Validator(
          [](std::string& v) {
            auto hp = net::ParseHostPort(v);
            if (!hp.ok()) return hp.status().message();
            return hp->port == 0 ? std::string("the CAS port must not be 0") : std::string();
          },
          "HOST:PORT"));
  app.add_option("--cas-key", f.cas_key, "Pinned CAS key: hex SHA-256 of its public key (printed by cloister-cas)")
      ->required()
      ->check(CLI::Validator(
          [](std::string& v) {
            auto raw = HexDecode(v);
            return raw && raw->size() == 32 ? std::string() : std::string("the CAS key must be 64 hex digits");
          },
          "HEX64"));
  app.add_option("--socket", f.socket, "Unix socket for evidence requests")->capture_default_str();
  app.add_option("--join-token-file", f.token_file,
                 "File (mode 0600) holding a join token from `cloister cas join-token create`; used on first start");
  app.add_option("--name", f.name, "Node name shown to CAS operators (default: the host name)")
      ->check(CLI::Validator(
          [](std::string& v) {
            return IsValidNodeName(v) ? std::string() : std::string("a node name is [A-Za-z0-9._-]{1,64}");
          },
          "NAME"));
  app.add_option("--evidence", f.evidence,
                 "How the node proves what it is at its join and every renewal: token (the join token alone), "
                 "tpm, tdx or snp")
      ->check(CLI::IsMember({"token", "tpm", "tdx", "snp"}))
      ->capture_default_str();
  app.add_option("--tpm-tcti", f.tpm_tcti, "The TPM for --evidence tpm, as a TCTI configuration")
      ->capture_default_str();
  app.add_option("--tsm-dir", f.tsm_dir, "configfs-tsm report directory for --evidence tdx and snp")
      ->capture_default_str();
  app.add_option("--threads", f.threads, "Requests served at once")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_flag("--log-requests", f.log_requests, "Log one line per evidence request on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (f.name.empty()) f.name = DefaultName();
  // tpm2-tss writes its own warnings and errors to stderr; the LAS reports
  // what failed itself, in one line. (Before any thread starts.)
  if (f.evidence == "tpm") ::setenv("TSS2_LOG", "all+none", /*overwrite=*/0);
  auto evidence = NewNodeEvidenceSource(f.evidence, f.tpm_tcti, f.tsm_dir);
  if (!evidence.ok()) return Die("", evidence.status());

  // The LAS holds the node key, which can sign evidence for any program.
  // The socket and its directory get their modes explicitly.
  sigset_t stop = os::PrepareServiceProcess();

  auto state = StateDir::Open(f.state_dir);
  if (!state.ok()) return Die("", state.status());
  bool created = false;
  auto key = state->LoadOrCreateNodeKey(&created);
  if (!key.ok()) return Die("node key", key.status());
  if (created) std::fprintf(stderr, "cloister-las: created the node key in %s\n", f.state_dir.c_str());
  PrintLine("LAS node " + key->node_id);

  // Each renewal gets its own client: renewals are hours apart, and an
  // ApiClient belongs to one thread. A node with hardware evidence gathers
  // it afresh for every renewal.
  NodeEvidenceSource* source = evidence->get();
  auto renew = [&f, &key, source]() -> StatusOr<IssuedCertificate> {
    ASSIGN_OR_RETURN(auto client, net::ApiClient::New(f.cas, f.cas_key, &key->tls));
    if (source == nullptr) return RenewWithCas(*client, key->node_id);
    ASSIGN_OR_RETURN(SecretBytes gathered, GatherNodeEvidence(*client, *source, key->node_id));
    return RenewWithCas(*client, key->node_id, &gathered);
  };

  auto loaded = state->LoadNodeCertificate(key->node_id);
  if (!loaded.ok()) return Die("node certificate", loaded.status());
  NodeCertificate cert;
  if (loaded->has_value()) {
    cert = std::move(**loaded);
    if (!f.token_file.empty()) {
      std::fprintf(stderr, "cloister-las: this node has joined already; %s is not used\n", f.token_file.c_str());
    }
    if (source != nullptr) {
      // The node may have booted other software since its last evidence:
      // it proves what it is now before it signs for any program. A CAS
      // that refuses the evidence stops the LAS; one that cannot be reached
      // leaves the stored certificate in use until the renewer gets through.
      auto renewed = renew();
      if (renewed.ok()) {
        if (Status s = state->StoreCertificates(renewed->certificate.pem, renewed->ca_certificate_pem); !s.ok()) {
          return Die("storing the node certificate", s);
        }
        cert = std::move(renewed->certificate);
        cert.received_at = NowSeconds();
        PrintLine("attested again at start" + HowJoined(source) + "; certificate valid until " +
                  Rfc3339(cert.validity.not_after));
      } else if (renewed.status().code() == StatusCode::kPermissionDenied ||
                 renewed.status().code() == StatusCode::kUnauthenticated ||
                 renewed.status().code() == StatusCode::kIntegrity) {
        return Die("", Status(renewed.status().code(), "the CAS refused this node's " + source->type() +
                                                           " evidence at start: " + renewed.status().message()));
      } else {
        std::fprintf(stderr, "cloister-las: could not attest again at start (%s); using the stored certificate\n",
                     renewed.status().message().c_str());
      }
    }
    if (NowSeconds() > cert.validity.not_after) {
      PrintLine("certificate expired at " + Rfc3339(cert.validity.not_after) + "; renewing");
    } else {
      PrintLine("certificate valid until " + Rfc3339(cert.validity.not_after));
    }
  } else {
    if (f.token_file.empty()) {
      return Die("", FailedPrecondition("this node has not joined the CAS: create a token with `cloister cas "
                                        "join-token create` and pass --join-token-file"));
    }
    auto issued = Join(f, *key, f.name, evidence->get());
    if (!issued.ok()) return Die("", issued.status());
    if (Status s = state->StoreCertificates(issued->certificate.pem, issued->ca_certificate_pem); !s.ok()) {
      return Die("storing the node certificate", s);
    }
    cert = std::move(issued->certificate);
    cert.received_at = NowSeconds();
    PrintLine("joined the CAS as " + f.name + (*evidence ? HowJoined(evidence->get()) : " with a join token") +
              "; certificate valid until " + Rfc3339(cert.validity.not_after));
  }

  NodeCredentials credentials(key->tls.private_key_pem, key->node_id, std::move(cert));
  MeasurementCache cache;
  ProcessMeasurer measurer(cache);
  // Relayed attestations go to the CAS in batches (RelayBatcher): a start
  // goes at once when one of kRelayRequests request slots is free, and
  // starts arriving meanwhile wait and go together. A request is sent over
  // a kept-alive connection of the pool (OverCasLink).
  CasLinkPool links;
  RelayBatcher batcher(
      [&f, &key, &links](const std::vector<const RelayStart*>& starts) -> std::vector<StatusOr<Bytes>> {
        auto replies = OverCasLink<std::vector<StatusOr<Bytes>>>(
            links, f, *key, [&starts](net::ApiClient& client) { return RelayBatchToCas(client, starts); });
        if (replies.ok()) return std::move(*replies);
        return std::vector<StatusOr<Bytes>>(
            starts.size(), replies.status().WithContext("the LAS could not relay to the CAS at " + f.cas));
      },
      kRelayRequests, relay::kMaxBatch);
  auto relay = [&batcher](const std::string& config_id, std::span<const uint8_t> evidence,
                          const relay::Point& point) -> StatusOr<Bytes> {
    return batcher.Relay(RelayStart{config_id, evidence, point});
  };
  // Volume commit reports go to the CAS one by one, over the same
  // connections. A repeated report is harmless: the CAS answers a commit it
  // already recorded as it did the first time.
  auto commit = [&f, &key, &links](const std::string& report) -> StatusOr<CasAnswer> {
    auto answer = OverCasLink<CasAnswer>(
        links, f, *key, [&report](net::ApiClient& client) { return CommitVolumeToCas(client, report, kMaxCasAnswerBody); });
    if (!answer.ok()) return answer.status().WithContext("the LAS could not carry the commit to the CAS at " + f.cas);
    return answer;
  };
  EvidenceService service(credentials, measurer, {}, relay, commit);
  SocketServerOptions socket_options;
  socket_options.path = f.socket;
  socket_options.threads = f.threads;
  socket_options.log_requests = f.log_requests;
  auto server = SocketServer::Listen(socket_options, service);
  if (!server.ok()) return Die("socket", server.status());
  (*server)->Start();
  PrintLine("listening on " + f.socket);

  Renewer renewer(credentials, *state, renew, {}, source != nullptr ? source->type() : std::string());
  renewer.Start();

  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "cloister-las: stopping (signal %d)\n", sig);
  (*server)->Stop();
  RelayBatcher::Counts relayed = batcher.counts();
  if (relayed.requests > 0) {
    std::fprintf(stderr, "cloister-las: relayed %llu starts to the CAS in %llu requests (at most %zu in one)\n",
                 static_cast<unsigned long long>(relayed.starts), static_cast<unsigned long long>(relayed.requests),
                 relayed.largest);
  }
  if (!renewer.Stop(kRenewalStopWait)) {
    // A renewal is waiting on the CAS. Its file writes are atomic, so
    // leaving now loses nothing but that renewal.
    std::fprintf(stderr, "cloister-las: not waiting for a renewal in progress\n");
    std::fflush(stderr);
    std::fflush(stdout);
    ::_exit(0);
  }
  return 0;
}

}  // namespace cloister::las
