// attest_load: how many attestations per second the CAS sustains, without
// starting a process for each (docs/benchmarks.md, "Attested start";
// bench/start_run.sh starts the CAS and the LAS and runs this).
//
//   attest_load --cas HOST:PORT --cas-key HEX --config SESSION/SERVICE
//               --node-dir LAS_STATE_DIR --executable FILE --runtime LIB
//               [--concurrency C] [--seconds S] [--cas-pid PID] [--summary FILE]
//               [--label TEXT] [--healthz] [--relay API-HOST:PORT [--batch N]]
//
// Each of C threads repeats what the runtime does in a starting program
// after it has its evidence: a TCP connection to the attestation port, a
// full TLS 1.3 handshake with a fresh key's self-signed certificate as
// client certificate (the same client code as libcloister-runtime.so), the
// POST /v1/attest, and the response, which must be a grant. The work that
// belongs to the program and the LAS is done ahead: every thread holds
// keys made before the clock starts, and their sim evidence is signed here
// with the LAS's node key (read from its state directory, so this needs
// the same rights as the LAS) over the measurements of --executable and
// --runtime, as the LAS would have measured a program started with the
// runtime. A thread cycles through its keys and signs new evidence for a
// key when its evidence is older than 20 s (the CAS accepts 60 s).
//
// So the CAS does per attestation exactly what it does for a real start,
// and the driver does the client's half of the handshake and nothing more.
// With --healthz the same connections ask GET /healthz instead: what the
// handshake and an HTTP exchange cost the CAS without the attestation.
// With --relay each thread is a LAS worker instead: it keeps one TLS
// connection to the CAS's API (the node key as client certificate) and
// posts each start's evidence and fresh public key to /v1/attest/relay
// (docs/protocol.md section 6); the reply must verify against the pinned
// key and open with the start's key, as the runtime checks it. With
// --batch N a worker posts N starts at a time to /v1/attest/relay/batch,
// as a LAS does with the starts that queued up while its previous request
// was out; every start's latency is that of its batch.
// Output: a markdown table row on stdout (--label in its first column; the
// CAS's CPU from /proc); --summary appends "alone.KIND.C.rate=..." lines.
// Exit status 1 if any request failed or was not answered with 200.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "attest/evidence.h"
#include "attest/measure.h"
#include "base/bytes.h"
#include <nlohmann/json.hpp>

#include "crypto/signature.h"
#include "net/http_client.h"
#include "runtime/cas_client.h"
#include "runtime/config.h"
#include "runtime/relayed.h"

namespace cloister::bench {
namespace {

constexpr int kKeysPerThread = 8;
constexpr double kEvidenceMaxAge = 20;

struct Options {
  std::string cas, cas_key, config, node_dir, executable, runtime, summary, label = "POST /v1/attest";
  std::string relay;  // the CAS API address: relayed attestations
  int batch = 0;      // --relay: starts per request to /v1/attest/relay/batch (0: /v1/attest/relay)
  int concurrency = 8;
  double seconds = 10;
  int cas_pid = 0;
  bool healthz = false;  // GET /healthz instead of the attestation: the handshake's cost alone
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "attest_load: %s\n", message.c_str());
  std::exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--cas") o.cas = value();
    else if (a == "--cas-key") o.cas_key = value();
    else if (a == "--config") o.config = value();
    else if (a == "--node-dir") o.node_dir = value();
    else if (a == "--executable") o.executable = value();
    else if (a == "--runtime") o.runtime = value();
    else if (a == "--summary") o.summary = value();
    else if (a == "--label") o.label = value();
    else if (a == "--concurrency") o.concurrency = std::atoi(value().c_str());
    else if (a == "--seconds") o.seconds = std::atof(value().c_str());
    else if (a == "--cas-pid") o.cas_pid = std::atoi(value().c_str());
    else if (a == "--healthz") o.healthz = true;
    else if (a == "--relay") o.relay = value();
    else if (a == "--batch") o.batch = std::atoi(value().c_str());
    else if (a == "--help" || a == "-h") {
      std::printf("see the comment at the top of bench/attest_load.cc\n");
      std::exit(0);
    } else {
      Die("unknown option " + a);
    }
  }
  if (o.cas.empty() || o.cas_key.empty() || o.config.empty() || o.node_dir.empty() || o.executable.empty() ||
      o.runtime.empty())
    Die("--cas, --cas-key, --config, --node-dir, --executable and --runtime are required");
  if (o.concurrency < 1 || o.seconds <= 0) Die("--concurrency and --seconds must be positive");
  if (o.batch < 0 || o.batch > static_cast<int>(relay::kMaxBatch) || (o.batch > 0 && o.relay.empty()))
    Die("--batch needs --relay and is at most " + std::to_string(relay::kMaxBatch));
  return o;
}

double Now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

attest::Sha256Value Measurement(const std::string& path) {
  auto m = attest::MeasureFile(path);
  if (!m.ok()) Die(path + ": " + m.status().message());
  auto bytes = HexDecode(m->sha256);
  attest::Sha256Value v{};
  if (!bytes || bytes->size() != v.size()) Die(path + ": bad measurement");
  std::copy(bytes->begin(), bytes->end(), v.begin());
  return v;
}

// The CPU time of a process so far, in seconds (utime + stime).
double ProcessCpu(int pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i)
    if (i == 14 || i == 15) ticks += std::atof(f.c_str());
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double SelfCpu() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Signer {
  std::unique_ptr<crypto::P256Signer> key;
  std::string node_id, certificate_pem;
  attest::Sha256Value executable{}, runtime{};
};

// One pre-made start: a fresh key with its certificate, and its request.
struct Prepared {
  runtime::ClientIdentity identity;
  std::string request;
  double signed_at = 0;
};

void Sign(const Signer& signer, const runtime::Settings& settings, bool healthz, bool relay, Prepared& p) {
  attest::SimClaims claims;
  claims.report_data = p.identity.report_data;
  claims.executable = signer.executable;
  claims.runtime = signer.runtime;
  claims.pid = static_cast<uint32_t>(::getpid());
  claims.uid = static_cast<uint32_t>(::getuid());
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  claims.issued_at_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
  claims.node_id = signer.node_id;
  claims.node_certificate_pem = signer.certificate_pem;
  auto evidence = attest::SignSimEvidence(claims, *signer.key);
  if (!evidence.ok()) Die("signing evidence: " + evidence.status().message());
  if (relay) {
    nlohmann::json body = {{"config_id", settings.config_id},
                           {"evidence", Base64Encode(*evidence)},
                           {"key", Base64Encode(p.identity.point)}};
    p.request = body.dump();
  } else {
    p.request = healthz ? "GET /healthz HTTP/1.1\r\nHost: " + settings.cas.text + "\r\nConnection: close\r\n\r\n"
                        : runtime::BuildAttestRequest(settings.cas, settings.config_id, *evidence);
  }
  p.signed_at = Now();
}

// One relayed attestation on `api` (made on first use, with the LAS's key
// and certificate `node`): the reply must be a grant that verifies and
// opens as the runtime requires. "" or the error.
std::string Relay(std::unique_ptr<net::ApiClient>& api, const Options& o, const net::TlsIdentity& node,
                  const runtime::Settings& settings, const Prepared& p) {
  if (!api) {
    auto made = net::ApiClient::New(o.relay, o.cas_key, &node);
    if (!made.ok()) return made.status().message();
    api = std::move(*made);
  }
  auto response = api->Post("/v1/attest/relay", p.request);
  if (!response.ok()) return response.status().message();
  if (response->status != 200) return "HTTP " + std::to_string(response->status);
  std::span<const uint8_t> reply(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size());
  auto opened = runtime::OpenRelayedReply(reply, settings, p.identity);
  if (!opened.ok()) return opened.error();
  if (opened.value().status != 200) return "refused: HTTP " + std::to_string(opened.value().status);
  return "";
}

// Relayed attestations of `batch` in one POST /v1/attest/relay/batch; every
// reply must be a grant that verifies and opens. "" or the error.
std::string RelayBatch(std::unique_ptr<net::ApiClient>& api, const Options& o, const net::TlsIdentity& node,
                       const runtime::Settings& settings, const std::vector<const Prepared*>& batch) {
  if (!api) {
    auto made = net::ApiClient::New(o.relay, o.cas_key, &node);
    if (!made.ok()) return made.status().message();
    api = std::move(*made);
  }
  std::string body = "{\"starts\":[";
  for (size_t i = 0; i < batch.size(); ++i) body += (i > 0 ? "," : "") + batch[i]->request;
  body += "]}";
  auto response = api->Post("/v1/attest/relay/batch", body);
  if (!response.ok()) return response.status().message();
  if (response->status != 200) return "HTTP " + std::to_string(response->status);
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size());
  std::vector<std::span<const uint8_t>> replies;
  std::string error;
  if (!relay::DecodeBatch(bytes, batch.size(), &replies, &error)) return error;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto opened = runtime::OpenRelayedReply(replies[i], settings, batch[i]->identity);
    if (!opened.ok()) return opened.error();
    if (opened.value().status != 200) return "refused: HTTP " + std::to_string(opened.value().status);
  }
  return "";
}

struct Totals {
  std::mutex mu;
  std::vector<double> latencies;
  std::map<std::string, int> failures;
};

int Main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  std::map<std::string, std::string> env = {{"CLOISTER_CAS_ADDR", o.cas},
                                            {"CLOISTER_CAS_KEY", o.cas_key},
                                            {"CLOISTER_CONFIG_ID", o.config}};
  auto settings = runtime::ReadSettings([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  if (!settings.ok()) Die(settings.error());
  settings.value().las_socket = "(attest_load)";

  const bool relayed = !o.relay.empty();
  Signer signer;
  net::TlsIdentity node;  // --relay: the LAS's key and certificate, as a LAS worker connects
  std::string key_text = ReadFile(o.node_dir + "/node.key");
  node.private_key_pem = SecretBytes(reinterpret_cast<const uint8_t*>(key_text.data()), key_text.size());
  std::fill(key_text.begin(), key_text.end(), '\0');
  auto key = crypto::P256Signer::New(node.private_key_pem);
  if (!key.ok()) Die("node.key: " + key.status().message());
  signer.key = std::move(*key);
  signer.node_id = signer.key->id();
  signer.certificate_pem = ReadFile(o.node_dir + "/node.crt");
  node.certificate_pem = signer.certificate_pem;
  signer.executable = Measurement(o.executable);
  signer.runtime = Measurement(o.runtime);

  std::vector<std::vector<Prepared>> keys(static_cast<size_t>(o.concurrency));
  for (auto& thread_keys : keys) {
    for (int k = 0; k < std::max(kKeysPerThread, o.batch); ++k) {
      auto identity = runtime::CreateClientIdentity();
      if (!identity.ok()) Die(identity.error());
      Prepared p;
      p.identity = std::move(identity.value());
      Sign(signer, settings.value(), o.healthz, relayed, p);
      thread_keys.push_back(std::move(p));
    }
  }

  Totals totals;
  std::atomic<bool> stop{false};
  double cas_cpu0 = o.cas_pid > 0 ? ProcessCpu(o.cas_pid) : 0;
  double self_cpu0 = SelfCpu();
  double t0 = Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.concurrency; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double> mine;
      std::map<std::string, int> failed;
      std::unique_ptr<net::ApiClient> api;  // --relay: this worker's connection
      auto& mine_keys = keys[static_cast<size_t>(t)];
      for (size_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        Prepared& p = mine_keys[n % mine_keys.size()];
        if (Now() - p.signed_at > kEvidenceMaxAge) Sign(signer, settings.value(), o.healthz, relayed, p);
        double start = Now();
        std::string error;
        if (relayed && o.batch > 0) {
          std::vector<const Prepared*> batch = {&p};
          while (batch.size() < static_cast<size_t>(o.batch)) {
            Prepared& next = mine_keys[++n % mine_keys.size()];
            if (Now() - next.signed_at > kEvidenceMaxAge) Sign(signer, settings.value(), o.healthz, relayed, next);
            batch.push_back(&next);
          }
          start = Now();
          error = RelayBatch(api, o, node, settings.value(), batch);
          if (!error.empty()) api.reset();
          if (error.empty()) mine.insert(mine.end(), batch.size(), Now() - start);
          else failed[error] += static_cast<int>(batch.size());
          continue;
        }
        if (relayed) {
          error = Relay(api, o, node, settings.value(), p);
          if (!error.empty()) api.reset();
          if (error.empty()) mine.push_back(Now() - start);
          else ++failed[error];
          continue;
        }
        auto cas = runtime::CasConnection::Begin(settings.value());
        if (!cas.ok()) {
          error = cas.error();
        } else if (auto hs = cas.value()->Handshake(p.identity); !hs.ok()) {
          error = hs.error();
        } else if (auto response = cas.value()->Exchange(p.request); !response.ok()) {
          error = response.error();
        } else if (response.value().status != 200) {
          error = "HTTP " + std::to_string(response.value().status);
        }
        if (error.empty()) mine.push_back(Now() - start);
        else ++failed[error];
      }
      std::lock_guard<std::mutex> lock(totals.mu);
      totals.latencies.insert(totals.latencies.end(), mine.begin(), mine.end());
      for (auto& [what, count] : failed) totals.failures[what] += count;
    });
  }
  while (Now() - t0 < o.seconds) ::usleep(20000);
  stop = true;
  for (auto& th : threads) th.join();
  double elapsed = Now() - t0;
  double cas_cpu = o.cas_pid > 0 ? ProcessCpu(o.cas_pid) - cas_cpu0 : 0;
  double self_cpu = SelfCpu() - self_cpu0;

  size_t done = totals.latencies.size();
  int failed = 0;
  for (auto& [what, count] : totals.failures) {
    failed += count;
    std::fprintf(stderr, "attest_load: %d x %s\n", count, what.c_str());
  }
  double rate = static_cast<double>(done) / elapsed;
  double per = done > 0 ? 1000 * cas_cpu / static_cast<double>(done) : 0;
  double driver_per = done > 0 ? 1000 * self_cpu / static_cast<double>(done) : 0;
  std::printf("| %s | %d | %.1f | %zu | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |\n", o.label.c_str(), o.concurrency,
              elapsed, done, failed, rate, 1000 * Percentile(totals.latencies, 50),
              1000 * Percentile(totals.latencies, 99), cas_cpu / elapsed, self_cpu / elapsed, per, driver_per,
              per > 0 ? 1000 * static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN)) / per : 0);
  if (!o.summary.empty()) {
    std::ofstream s(o.summary, std::ios::app);
    std::string key = std::string("alone.") +
                      (relayed ? (o.batch > 0 ? "relaybatch" + std::to_string(o.batch) + "." : "relay.")
                               : o.healthz ? "healthz." : "attest.") +
                      std::to_string(o.concurrency);
    s << key << ".rate=" << rate << "\n" << key << ".cas_ms=" << per << "\n" << key << ".driver_ms=" << driver_per << "\n";
  }
  return failed > 0 || done == 0 ? 1 : 0;
}

}  // namespace
}  // namespace cloister::bench

int main(int argc, char** argv) { return cloister::bench::Main(argc, argv); }
