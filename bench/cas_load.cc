// cas_load: the CAS API under concurrent load, over keep-alive HTTPS
// connections, as the CLI and the workloads' runtime talk to it.
//
//   cas_load --cas HOST:PORT --cas-key HASH --identity DIR [options]
//
// It starts nothing: the CAS must be running, unsealed, and reachable with
// the given pin (hex SHA-256 of its key) and client identity (DIR holds
// identity.key and identity.crt, as `cloister identity create` writes them).
// bench/cas_run.sh starts a CAS, runs this and stops it again.
//
// For each concurrency level of --clients it starts that many threads, each
// holding ONE net::ApiClient (one TLS connection, kept alive), and runs
// these phases one after the other; all threads start a phase together:
//   connect  each thread makes its client and sends GET /healthz: a TLS 1.3
//            handshake with client certificate, then one request;
//   healthz  GET /healthz over the open connections: the HTTP and TLS stack
//            of the CAS without service logic or store (the baseline the
//            other phases are compared with, measured in the same run);
//   create   POST /v1/sessions: new sessions "bench/<run>/<thread>-<i>"
//            with one service, one measurement and an environment variable
//            filled from a generated ascii secret of 16 characters;
//   read     GET /v1/sessions/{name} of the sessions created just before;
//   update   PUT /v1/sessions/{name} naming the current hash as predecessor;
//            each thread updates only the sessions it created, so no update
//            conflicts with another.
// --phases picks some of the phases after connect. Each phase stops at
// --requests requests (all threads together; every thread still makes at
// least one) or after --seconds, whichever comes first. An error is a
// transport failure or an unexpected HTTP status; the first one's body is
// printed.
//
// Per phase it reports requests/s, p50 and p99 latency, the connections the
// driver had to open (0 after connect when keep-alive works), and CPU: the
// CAS's (with --cas-pid; also per request), the driver's, and the rest of
// the machine's, since the CAS and the driver share the machine and a busy
// neighbour shows up in the rates. With --cas-pid it also reports the CAS's
// peak RSS (VmHWM) after each level.
//
// The clients are net::ApiClient as the CLI uses it (TCP_NODELAY set, so a
// request with a body is not held back by Nagle's algorithm).
//
// Output: a markdown table on stdout, progress on stderr. Exit status 1 if
// any request failed.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/tls.h"

namespace cloister::bench {
namespace {

using nlohmann::json;

struct Options {
  std::string cas;
  std::string cas_key;
  std::string identity_dir;
  std::vector<int> clients = {1, 16, 64};
  double seconds = 5;
  uint64_t requests = 20000;
  int cas_pid = 0;
  // Phases after connect (which always runs); update needs create.
  std::vector<std::string> phases = {"healthz", "create", "read", "update"};
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "cas_load: %s\n", msg.c_str());
  std::exit(1);
}

template <typename T>
T Check(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what + ": " + v.status().ToString());
  return std::move(v).value();
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------
// The session document. Kept in one place so it is easy to change with the
// policy language (docs/policy.md, src/policy/policy.h).

constexpr char kMeasurement[] = "5b8ee5c6bd21c8f5c2a0f9e1d4a3b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d";

std::string Document(const std::string& name, const std::string& predecessor) {
  std::string d = "name: " + name + "\n";
  if (!predecessor.empty()) d += "predecessor: " + predecessor + "\n";
  d += "services:\n"
       "  - name: app\n"
       "    measurements:\n"
       "      - " + std::string(kMeasurement) + "\n"
       "    command: /usr/bin/app --serve\n"
       "    environment:\n"
       "      API_TOKEN: \"$$CLOISTER::api_token$$\"\n"
       "secrets:\n"
       "  - name: api_token\n"
       "    kind: ascii\n"
       "    size: 16\n";
  return json{{"document", d}}.dump();
}

// ---------------------------------------------------------------------
// What the operating system says about the processes and the machine.

// user + system CPU seconds of this process.
double SelfCpuSeconds() {
  struct rusage ru;
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// user + system CPU seconds of another process, or -1.
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  size_t close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(line.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // Fields 3.. of proc(5); utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && (fields >> f); ++i) {
    if (i == 14) utime = std::strtoull(f.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(f.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU seconds all processes of the machine have used so far (/proc/stat:
// everything but idle and iowait), or -1.
double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long v[8] = {};
  if (!(in >> cpu) || cpu != "cpu") return -1;
  for (unsigned long long& x : v) {
    if (!(in >> x)) return -1;
  }
  // user nice system idle iowait irq softirq steal
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "VmHWM:" or "VmRSS:" value of /proc/PID/status in KiB, or -1.
long ProcessMemKib(int pid, const char* field) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtol(line.c_str() + n, nullptr, 10);
  }
  return -1;
}

// The sockets this process holds: inode by descriptor. The driver holds
// no sockets but its clients' connections, so a new inode between two
// phases is a connection that was opened (or replaced) in between.
std::map<int, uint64_t> OwnSockets() {
  std::map<int, uint64_t> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    char target[64];
    ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:[", 8) != 0) continue;
    out[std::atoi(e->d_name)] = std::strtoull(target + 8, nullptr, 10);
  }
  ::closedir(d);
  return out;
}

long NewSockets(const std::map<int, uint64_t>& before, const std::map<int, uint64_t>& after) {
  std::set<uint64_t> old;
  for (const auto& [fd, inode] : before) old.insert(inode);
  long n = 0;
  for (const auto& [fd, inode] : after) n += old.count(inode) == 0 ? 1 : 0;
  return n;
}

// ---------------------------------------------------------------------
// Phases

enum class Op { kConnect, kHealth, kCreate, kRead, kUpdate, kStop };

struct PhaseInfo {
  Op op;
  const char* name;
  const char* what;
};
constexpr PhaseInfo kPhases[] = {
    {Op::kConnect, "connect", "new client, TLS handshake, GET /healthz"},
    {Op::kHealth, "healthz", "GET /healthz (baseline)"},
    {Op::kCreate, "create", "POST /v1/sessions"},
    {Op::kRead, "read", "GET /v1/sessions/{name}"},
    {Op::kUpdate, "update", "PUT /v1/sessions/{name}"},
};

struct OwnedSession {
  std::string name;
  std::string hash;
};

struct Worker {
  int index = 0;
  std::unique_ptr<net::ApiClient> client;
  std::vector<OwnedSession> sessions;
  size_t next_update = 0;
  // Per phase:
  std::vector<double> latency_ms;
  uint64_t errors = 0;
};

struct PhaseResult {
  std::string phase;
  int clients = 0;
  uint64_t ok = 0;
  uint64_t errors = 0;
  double seconds = 0;
  double p50 = 0, p99 = 0;
  long new_connections = 0;
  double cas_cores = -1, driver_cores = 0;
  double other_cores = -1;  // the rest of the machine: what else ran
  double ops() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

// Shared by the threads of one concurrency level.
class Level {
 public:
  Level(const Options& o, const net::TlsIdentity& id, int clients, std::string run)
      : o_(o), id_(id), clients_(clients), run_(std::move(run)), sync_(clients + 1) {}

  std::vector<PhaseResult> Run();
  // "<clients> clients, <phase>: <status or HTTP status and body>", or "".
  std::string first_error() {
    std::lock_guard<std::mutex> l(mu_);
    return first_error_;
  }

 private:
  void Thread(Worker& w);
  // One request of the current phase; false when it failed.
  bool Request(Worker& w, uint64_t i);
  // Records the first failure of the level; returns false.
  bool Fail(const char* phase, const std::string& detail);

  const Options& o_;
  const net::TlsIdentity& id_;
  const int clients_;
  const std::string run_;
  std::barrier<> sync_;  // twice per phase: start, end
  // Set by the main thread between phases (the barrier orders the writes).
  Op op_ = Op::kConnect;
  double deadline_ = 0;
  uint64_t limit_ = 0;
  std::vector<std::string> read_pool_;
  std::atomic<uint64_t> tickets_{0};
  std::mutex mu_;
  std::string first_error_;  // guarded by mu_
};

bool Level::Fail(const char* phase, const std::string& detail) {
  std::lock_guard<std::mutex> l(mu_);
  if (first_error_.empty()) {
    first_error_ = std::to_string(clients_) + " clients, " + phase + ": " + detail;
    std::fprintf(stderr, "cas_load: first error (%s)\n", first_error_.c_str());
  }
  return false;
}

std::string Describe(const net::HttpResponse& r) {
  std::string body = r.body;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return "HTTP " + std::to_string(r.status) + " " + body;
}

bool Level::Request(Worker& w, uint64_t i) {
  switch (op_) {
    case Op::kConnect:
    case Op::kHealth: {
      if (!w.client) {
        auto made = net::ApiClient::New(o_.cas, o_.cas_key, &id_);
        if (!made.ok()) return Fail("connect", made.status().ToString());
        w.client = std::move(made).value();
      }
      auto r = w.client->Get("/healthz");
      if (!r.ok()) return Fail("healthz", r.status().ToString());
      if (r->status != 200) return Fail("healthz", Describe(*r));
      return true;
    }
    case Op::kCreate: {
      std::string name = "bench/" + run_ + "/" + std::to_string(w.index) + "-" + std::to_string(i);
      auto r = w.client->Post("/v1/sessions", Document(name, ""));
      if (!r.ok()) return Fail("create", r.status().ToString());
      json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
      if (r->status != 201 || !j.is_object() || !j.contains("hash") || !j["hash"].is_string()) {
        return Fail("create", Describe(*r));
      }
      w.sessions.push_back({name, j["hash"].get<std::string>()});
      return true;
    }
    case Op::kRead: {
      const std::string& name = read_pool_[(static_cast<size_t>(w.index) * read_pool_.size() / clients_ + i) %
                                           read_pool_.size()];
      auto r = w.client->Get("/v1/sessions/" + net::EncodePathSegment(name));
      if (!r.ok()) return Fail("read", r.status().ToString());
      json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
      auto got = j.is_object() ? j.find("name") : j.end();
      if (r->status != 200 || got == j.end() || !got->is_string() || got->get<std::string>() != name) {
        return Fail("read", Describe(*r));
      }
      return true;
    }
    case Op::kUpdate: {
      OwnedSession& s = w.sessions[w.next_update++ % w.sessions.size()];
      auto r = w.client->Put("/v1/sessions/" + net::EncodePathSegment(s.name), Document(s.name, s.hash));
      if (!r.ok()) return Fail("update", r.status().ToString());
      json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
      if (r->status != 200 || !j.is_object() || !j.contains("hash") || !j["hash"].is_string()) {
        return Fail("update", Describe(*r));
      }
      s.hash = j["hash"].get<std::string>();
      return true;
    }
    case Op::kStop:
      break;
  }
  return false;
}

void Level::Thread(Worker& w) {
  for (;;) {
    sync_.arrive_and_wait();  // start of a phase
    if (op_ == Op::kStop) return;
    w.latency_ms.clear();
    w.errors = 0;
    // Without a client (its connect failed) only connect runs.
    bool can_run = op_ == Op::kConnect || w.client != nullptr;
    if (op_ == Op::kRead) can_run = can_run && !read_pool_.empty();
    if (op_ == Op::kUpdate) can_run = can_run && !w.sessions.empty();
    for (uint64_t i = 0; can_run; ++i) {
      uint64_t ticket = tickets_.fetch_add(1, std::memory_order_relaxed);
      if (i > 0 && (ticket >= limit_ || Now() >= deadline_)) break;
      double t0 = Now();
      bool ok = Request(w, i);
      double t1 = Now();
      if (ok) {
        w.latency_ms.push_back((t1 - t0) * 1e3);
      } else {
        ++w.errors;
        if (!w.client) break;
      }
      if (op_ == Op::kConnect) break;
    }
    sync_.arrive_and_wait();  // end of the phase
  }
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::vector<PhaseResult> Level::Run() {
  std::vector<Worker> workers(static_cast<size_t>(clients_));
  std::vector<std::thread> threads;
  for (int t = 0; t < clients_; ++t) {
    workers[t].index = t;
    threads.emplace_back([this, &w = workers[t]] { Thread(w); });
  }
  std::vector<PhaseResult> results;
  std::map<int, uint64_t> sockets = OwnSockets();
  for (const PhaseInfo& ph : kPhases) {
    if (ph.op != Op::kConnect && std::find(o_.phases.begin(), o_.phases.end(), ph.name) == o_.phases.end()) {
      continue;
    }
    op_ = ph.op;
    limit_ = ph.op == Op::kConnect ? static_cast<uint64_t>(clients_) : o_.requests;
    tickets_.store(0);
    if (ph.op == Op::kRead) {
      read_pool_.clear();
      for (const Worker& w : workers) {
        for (const OwnedSession& s : w.sessions) read_pool_.push_back(s.name);
      }
    }
    std::fprintf(stderr, "cas_load: %d clients: %s\n", clients_, ph.what);
    double cas0 = ProcessCpuSeconds(o_.cas_pid), self0 = SelfCpuSeconds(), busy0 = MachineBusySeconds();
    double t0 = Now();
    deadline_ = t0 + o_.seconds;
    sync_.arrive_and_wait();  // start
    sync_.arrive_and_wait();  // every thread has finished
    double t1 = Now();
    double cas1 = ProcessCpuSeconds(o_.cas_pid), self1 = SelfCpuSeconds(), busy1 = MachineBusySeconds();
    std::map<int, uint64_t> sockets_after = OwnSockets();

    PhaseResult r;
    r.phase = ph.name;
    r.clients = clients_;
    r.seconds = t1 - t0;
    std::vector<double> all;
    for (const Worker& w : workers) {
      all.insert(all.end(), w.latency_ms.begin(), w.latency_ms.end());
      r.errors += w.errors;
    }
    std::sort(all.begin(), all.end());
    r.ok = all.size();
    r.p50 = Percentile(all, 0.50);
    r.p99 = Percentile(all, 0.99);
    r.new_connections = NewSockets(sockets, sockets_after);
    sockets = std::move(sockets_after);
    if (cas0 >= 0 && cas1 >= 0) r.cas_cores = (cas1 - cas0) / r.seconds;
    r.driver_cores = (self1 - self0) / r.seconds;
    if (r.cas_cores >= 0 && busy0 >= 0 && busy1 >= 0) {
      r.other_cores = std::max(0.0, (busy1 - busy0) / r.seconds - r.cas_cores - r.driver_cores);
    }
    results.push_back(r);
  }
  op_ = Op::kStop;
  sync_.arrive_and_wait();
  for (std::thread& t : threads) t.join();
  return results;
}

// ---------------------------------------------------------------------
// Report

std::string Fmt(double v) {
  char b[32];
  if (v >= 100) {
    std::snprintf(b, sizeof(b), "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(b, sizeof(b), "%.1f", v);
  } else {
    std::snprintf(b, sizeof(b), "%.2f", v);
  }
  // Thousands separators in the integer part.
  std::string in = b, out;
  size_t digits = std::min(in.find('.'), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (i > 0 && i < digits && (digits - i) % 3 == 0) out += ',';
    out += in[i];
  }
  return out;
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: cas_load --cas HOST:PORT --cas-key HASH --identity DIR [options]\n"
               "  --clients LIST     concurrency levels, comma-separated (default 1,16,64)\n"
               "  --seconds S        time limit of each phase (default 5)\n"
               "  --requests N       request limit of each phase, all threads together (default 20000)\n"
               "  --cas-pid PID      the CAS process: report its CPU use and peak RSS (VmHWM)\n"
               "  --phases LIST      of healthz,create,read,update (default all; read and update need create)\n");
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    auto number = [&]() -> double {
      std::string v = value();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || d <= 0) Usage();
      return d;
    };
    if (a == "--cas") {
      o.cas = value();
    } else if (a == "--cas-key") {
      o.cas_key = value();
    } else if (a == "--identity") {
      o.identity_dir = value();
    } else if (a == "--seconds") {
      o.seconds = number();
    } else if (a == "--requests") {
      o.requests = static_cast<uint64_t>(number());
    } else if (a == "--cas-pid") {
      o.cas_pid = static_cast<int>(number());
    } else if (a == "--phases") {
      o.phases.clear();
      std::stringstream list(value());
      std::string item;
      while (std::getline(list, item, ',')) {
        if (item != "healthz" && item != "create" && item != "read" && item != "update") Usage();
        o.phases.push_back(item);
      }
    } else if (a == "--clients") {
      o.clients.clear();
      std::stringstream list(value());
      std::string item;
      while (std::getline(list, item, ',')) {
        int n = std::atoi(item.c_str());
        if (n < 1 || n > 1024) Usage();
        o.clients.push_back(n);
      }
      if (o.clients.empty()) Usage();
    } else {
      Usage();
    }
  }
  if (o.cas.empty() || o.cas_key.empty() || o.identity_dir.empty() || o.requests < 1) Usage();
  auto has = [&o](const char* p) { return std::find(o.phases.begin(), o.phases.end(), p) != o.phases.end(); };
  if ((has("read") || has("update")) && !has("create")) Die("--phases: read and update need create");
  return o;
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  net::TlsIdentity id = Check(net::LoadTlsIdentity(o.identity_dir, "identity"), "client identity");
  {
    // Fail early, with a clear message, if the CAS is not there or not ready.
    auto c = Check(net::ApiClient::New(o.cas, o.cas_key, &id), "client");
    auto r = Check(c->Get("/readyz"), "GET /readyz");
    if (r.status != 200) Die("the CAS is not ready (unsealed?): " + Describe(r));
  }
  // Session names of this run: unique across runs against the same CAS.
  char run[32];
  std::snprintf(run, sizeof(run), "%lx-%d",
                static_cast<unsigned long>(std::chrono::system_clock::now().time_since_epoch().count() / 1000000),
                static_cast<int>(::getpid()));

  std::vector<PhaseResult> all;
  std::vector<std::pair<int, long>> rss_after;  // clients, VmHWM KiB after that level
  std::string first_error;
  for (int clients : o.clients) {
    Level level(o, id, clients, std::string(run) + "-c" + std::to_string(clients));
    for (PhaseResult& r : level.Run()) all.push_back(r);
    if (first_error.empty()) first_error = level.first_error();
    rss_after.emplace_back(clients, ProcessMemKib(o.cas_pid, "VmHWM:"));
  }

  std::printf("### CAS API under load (`cas_load --clients");
  for (size_t i = 0; i < o.clients.size(); ++i) std::printf("%s%d", i ? "," : " ", o.clients[i]);
  std::printf(" --seconds %g --requests %" PRIu64, o.seconds, o.requests);
  std::string phases;
  for (const std::string& p : o.phases) phases += (phases.empty() ? "" : ",") + p;
  if (phases != "healthz,create,read,update") std::printf(" --phases %s", phases.c_str());
  std::printf("`)\n\n");
  std::printf("One keep-alive TLS connection (net::ApiClient) per client thread. ops/s counts successful\n"
              "requests over the phase's wall time; \"vs healthz\" is that rate over the GET /healthz rate at\n"
              "the same level; \"new conns\" counts connections the driver opened during the phase; CPU is in\n"
              "cores (CPU-seconds per second of the phase); \"other CPU\" is what the rest of the machine used.\n\n");
  std::printf("| clients | phase | requests | errors | ops/s | vs healthz | p50 ms | p99 ms | new conns |"
              " CAS CPU | CAS CPU ms/req | driver CPU | other CPU |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<int, double> health_rate;
  uint64_t errors = 0;
  for (const PhaseResult& r : all) {
    if (r.phase == "healthz") health_rate[r.clients] = r.ops();
  }
  for (const PhaseResult& r : all) {
    errors += r.errors;
    std::string vs = "-";
    if (r.phase != "connect" && r.phase != "healthz" && health_rate[r.clients] > 0) {
      char b[32];
      std::snprintf(b, sizeof(b), "%.2fx", r.ops() / health_rate[r.clients]);
      vs = b;
    }
    std::string per_request = "-";
    // The kernel counts CPU time in ticks of 10 ms: below 5 ticks the
    // figure would be mostly rounding.
    double cas_seconds = r.cas_cores * r.seconds;
    if (r.cas_cores >= 0 && r.ok > 0 && cas_seconds >= 0.05) {
      per_request = Fmt(cas_seconds * 1e3 / static_cast<double>(r.ok));
    }
    std::printf("| %d | %s | %" PRIu64 " | %" PRIu64 " | %s | %s | %s | %s | %ld | %s | %s | %s | %s |\n", r.clients,
                r.phase.c_str(), r.ok + r.errors, r.errors, Fmt(r.ops()).c_str(), vs.c_str(), Fmt(r.p50).c_str(),
                Fmt(r.p99).c_str(), r.new_connections, r.cas_cores >= 0 ? Fmt(r.cas_cores).c_str() : "-",
                per_request.c_str(), Fmt(r.driver_cores).c_str(),
                r.other_cores >= 0 ? Fmt(r.other_cores).c_str() : "-");
  }

  long peak_kib = -1;
  if (o.cas_pid > 0) {
    std::printf("\nCAS memory (/proc/%d/status):", o.cas_pid);
    for (auto& [clients, kib] : rss_after) {
      std::printf(" VmHWM after %d clients %s MiB;", clients, kib >= 0 ? Fmt(kib / 1024.0).c_str() : "?");
      peak_kib = std::max(peak_kib, kib);
    }
    long rss = ProcessMemKib(o.cas_pid, "VmRSS:");
    std::printf(" VmRSS now %s MiB.\n", rss >= 0 ? Fmt(rss / 1024.0).c_str() : "?");
  }

  // Targets: the best level for throughput; keep-alive means no new
  // connection after the connect phase.
  auto best = [&](const char* phase) {
    const PhaseResult* b = nullptr;
    for (const PhaseResult& r : all) {
      if (r.phase == phase && (b == nullptr || r.ops() > b->ops())) b = &r;
    }
    return b;
  };
  std::printf("\n| target | measured | result |\n|---|---|---|\n");
  struct Target {
    const char* phase;
    double rate;
    const char* text;
  };
  for (const Target& t : {Target{"read", 5000, "reads >= 5,000/s"}, Target{"create", 1000, "creates >= 1,000/s"}}) {
    const PhaseResult* b = best(t.phase);
    if (b == nullptr) continue;
    std::printf("| %s | %s/s at %d clients (best level) | %s |\n", t.text, Fmt(b->ops()).c_str(), b->clients,
                b->ops() >= t.rate ? "PASS" : "MISS");
  }
  if (peak_kib >= 0) {
    std::printf("| CAS peak RSS <= 256 MiB | %s MiB (VmHWM) | %s |\n", Fmt(peak_kib / 1024.0).c_str(),
                peak_kib <= 256 * 1024 ? "PASS" : "MISS");
  }
  long reconnects = 0;
  for (const PhaseResult& r : all) {
    if (r.phase != "connect") reconnects += r.new_connections;
  }
  std::printf("| keep-alive: no connection opened after connect | %ld opened | %s |\n", reconnects,
              reconnects == 0 ? "PASS" : "MISS");
  if (errors > 0) {
    std::printf("\n%" PRIu64 " requests failed; the first: %s\n", errors, first_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cloister::bench

int main(int argc, char** argv) { return cloister::bench::Main(argc, argv); }
