// start_load: what attestation at start costs a protected program, measured
// from outside the program (docs/benchmarks.md, "Attested start";
// bench/start_run.sh starts the CAS and the LAS and runs this).
//
//   start_load MODE [options] -- PROGRAM [ARGS...]
//
// Every start is posix_spawn + waitpid of PROGRAM itself, timed with
// CLOCK_MONOTONIC from just before the spawn until waitpid returns, so a
// start includes the exec, the dynamic loader, the program and its exit.
// A plain start gets this driver's environment without LD_PRELOAD and
// without any CLOISTER_* variable; a protected start gets the same plus
// LD_PRELOAD=--runtime and the CLOISTER_* variables of the options below.
// `cloister run` is not involved: its own exec would be added to every
// protected start. stdin and stdout of the program are /dev/null (stdout a
// pipe in `rss`, stderr a pipe in `trace`), stderr is the driver's.
//
// Modes:
//   latency  --runs N starts plain and N starts protected, alternating
//            (plain first in even rounds, protected first in odd ones), after
//            --warmup of each; prints p50, p99 and the difference, and the
//            median number of minor page faults of each kind of start.
//   trace    --runs N protected starts with CLOISTER_LOG=debug, and N plain
//            ones between them; prints the median time of each step the
//            runtime logs, and what the start costs outside of them.
//   load     --concurrency C threads start the program protected (or plain,
//            with --plain) one after the other for --seconds; prints starts/s,
//            latency and the CPU of the CAS (--cas-pid), the LAS (--las-pid),
//            the started programs, this driver and the rest of the machine.
//   rss      --runs N starts each, plain and protected, of a program that
//            prints lines of its /proc/self/status ("VmHWM:   1234 kB");
//            prints the medians of VmHWM, VmRSS, RssAnon and RssFile.
//   keygen   key generations per second on one thread (openssl speed does
//            not measure them): P-256 and X25519, over EVP as TLS does.
//
// Connection options (all modes but keygen): --runtime LIB --cas-key HEX
// --las SOCKET --config SESSION/SERVICE, and --cas HOST:PORT for direct
// attestation over the program's own TLS connection (without it the LAS
// relays, docs/protocol.md section 6).
// --label TEXT names the program in the tables; --summary FILE appends
// "key=value" lines with the figures (for the script's table of targets).
//
// Output: markdown on stdout, progress on stderr. Exit status 1 if a start
// failed (a status other than 0), a protected start included.
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cloister::bench {
namespace {

struct Options {
  std::string mode;
  std::string runtime, cas, cas_key, las, config;
  std::string label;
  std::string summary;
  int runs = 300;
  int warmup = 10;
  int concurrency = 8;
  double seconds = 5;
  bool plain = false;
  int cas_pid = 0;
  int las_pid = 0;
  std::vector<std::string> program;
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "start_load: %s\n", msg.c_str());
  std::exit(2);
}

void Usage() {
  std::fprintf(stderr,
               "usage: start_load latency|trace|load|rss [--runs N] [--warmup N] [--concurrency C] [--seconds S]\n"
               "         [--plain] [--cas-pid PID] [--las-pid PID] [--label TEXT] [--summary FILE]\n"
               "         --runtime LIB --cas HOST:PORT --cas-key HEX --las SOCKET --config SESSION/SERVICE\n"
               "         -- PROGRAM [ARGS...]\n"
               "       start_load keygen [--seconds S]\n"
               "See the comment at the top of bench/start_load.cc.\n");
}

Options Parse(int argc, char** argv) {
  Options o;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    Usage();
    std::exit(argc < 2 ? 2 : 0);
  }
  o.mode = argv[1];
  int i = 2;
  auto value = [&](const char* name) -> std::string {
    if (i + 1 >= argc) Die(std::string(name) + " needs a value");
    return argv[++i];
  };
  auto number = [&](const char* name) {
    std::string v = value(name);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || !(d >= 0)) Die(std::string(name) + ": not a number: " + v);
    return d;
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) o.program.push_back(argv[i]);
      break;
    }
    if (a == "--runtime") o.runtime = value("--runtime");
    else if (a == "--cas") o.cas = value("--cas");
    else if (a == "--cas-key") o.cas_key = value("--cas-key");
    else if (a == "--las") o.las = value("--las");
    else if (a == "--config") o.config = value("--config");
    else if (a == "--label") o.label = value("--label");
    else if (a == "--summary") o.summary = value("--summary");
    else if (a == "--runs") o.runs = static_cast<int>(number("--runs"));
    else if (a == "--warmup") o.warmup = static_cast<int>(number("--warmup"));
    else if (a == "--concurrency") o.concurrency = static_cast<int>(number("--concurrency"));
    else if (a == "--seconds") o.seconds = number("--seconds");
    else if (a == "--cas-pid") o.cas_pid = static_cast<int>(number("--cas-pid"));
    else if (a == "--las-pid") o.las_pid = static_cast<int>(number("--las-pid"));
    else if (a == "--plain") o.plain = true;
    else Die("unknown option " + a + " (--help lists them)");
  }
  if (o.mode == "keygen") return o;
  if (o.mode != "latency" && o.mode != "trace" && o.mode != "load" && o.mode != "rss") Die("unknown mode " + o.mode);
  if (o.program.empty()) Die("no program after --");
  bool protected_starts = !(o.mode == "load" && o.plain);
  if (protected_starts && (o.runtime.empty() || o.cas_key.empty() || o.las.empty() || o.config.empty())) {
    Die("--runtime, --cas-key, --las and --config are all needed (--cas too, for direct attestation)");
  }
  if (o.runs < 1 || o.concurrency < 1 || o.concurrency > 1024) Die("--runs and --concurrency must be at least 1");
  if (o.label.empty()) o.label = o.program[0];
  return o;
}

double NowSeconds() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// ---------------------------------------------------------------------------
// Environments and starts.

// A null-terminated array of C strings over `strings`, which must outlive it.
struct Env {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  void Seal() {
    pointers.clear();
    for (std::string& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  char* const* get() const { return const_cast<char* const*>(pointers.data()); }
};

Env PlainEnv() {
  Env e;
  for (char** p = environ; *p != nullptr; ++p) {
    std::string_view v(*p);
    if (v.rfind("LD_PRELOAD=", 0) == 0 || v.rfind("CLOISTER_", 0) == 0) continue;
    e.strings.emplace_back(v);
  }
  e.Seal();
  return e;
}

Env ProtectedEnv(const Options& o, bool debug) {
  Env e = PlainEnv();
  e.strings.push_back("LD_PRELOAD=" + o.runtime);
  if (!o.cas.empty()) e.strings.push_back("CLOISTER_CAS_ADDR=" + o.cas);  // without it the LAS relays
  e.strings.push_back("CLOISTER_CAS_KEY=" + o.cas_key);
  e.strings.push_back("CLOISTER_LAS_SOCKET=" + o.las);
  e.strings.push_back("CLOISTER_CONFIG_ID=" + o.config);
  if (debug) e.strings.push_back("CLOISTER_LOG=debug");
  e.Seal();
  return e;
}

struct Argv {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  explicit Argv(const std::vector<std::string>& program) : strings(program) {
    for (std::string& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  char* const* get() const { return const_cast<char* const*>(pointers.data()); }
};

struct StartResult {
  double seconds = 0;
  int status = -1;  // the exit status, or 128 + signal
  std::string out;  // the captured stream, if one was asked for
  long minor_faults = 0;  // the program's page faults served without I/O
};

// Reads `fd` to its end into `out`.
void Drain(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    out->append(buf, static_cast<size_t>(n));
  }
}

// One start of the program; `capture` is -1 (nothing), STDOUT_FILENO or
// STDERR_FILENO: that stream comes back in `out`. Reading a pipe costs the
// driver a little, so the timed modes capture nothing.
StartResult Start(const Argv& argv, const Env& env, int capture = -1) {
  StartResult r;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  int pipe_fds[2] = {-1, -1};
  if (capture >= 0) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe: " + std::string(std::strerror(errno)));
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], capture);
  }
  if (capture != STDOUT_FILENO) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  double t0 = NowSeconds();
  int rc = ::posix_spawn(&pid, argv.strings[0].c_str(), &actions, nullptr, argv.get(), env.get());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) Die("cannot start " + argv.strings[0] + ": " + std::strerror(rc));
  if (capture >= 0) {
    ::close(pipe_fds[1]);
    Drain(pipe_fds[0], &r.out);
    ::close(pipe_fds[0]);
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) Die("wait4: " + std::string(std::strerror(errno)));
  }
  r.seconds = NowSeconds() - t0;
  r.minor_faults = usage.ru_minflt;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// ---------------------------------------------------------------------------
// Numbers.

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p% of all at or below it.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 50); }

std::string Ms(double seconds) {
  char b[32];
  double ms = seconds * 1e3;
  std::snprintf(b, sizeof(b), std::fabs(ms) >= 100 ? "%.0f" : std::fabs(ms) >= 10 ? "%.1f" : "%.2f", ms);
  return b;
}

std::string Fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.*f", digits, v);
  return b;
}

// 12345.6 -> "12,346".
std::string Thousands(double v) {
  std::string digits = Fixed(v, 0), out;
  size_t first = digits[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    // A comma before every group of three digits counted from the right.
    if (i > first && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

void Summary(const Options& o, const std::string& key, double value) {
  if (o.summary.empty()) return;
  FILE* f = std::fopen(o.summary.c_str(), "a");
  if (f == nullptr) Die("cannot write " + o.summary);
  std::fprintf(f, "%s=%.6g\n", key.c_str(), value);
  std::fclose(f);
}

// ---------------------------------------------------------------------------
// CPU, from the kernel's accounting (10 ms ticks).

double ClockTicks() { return static_cast<double>(::sysconf(_SC_CLK_TCK)); }

// user + system CPU seconds of a process (its threads included), or 0.
double ProcessCpu(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  size_t paren = line.rfind(')');  // the name may hold spaces and parentheses
  if (paren == std::string::npos) return 0;
  std::istringstream rest(line.substr(paren + 1));
  std::string field;
  double utime = 0, stime = 0;
  // After the name: field 3 (state) onwards; utime is field 14, stime 15.
  for (int n = 3; n <= 15 && (rest >> field); ++n) {
    if (n == 14) utime = std::atof(field.c_str());
    if (n == 15) stime = std::atof(field.c_str());
  }
  return (utime + stime) / ClockTicks();
}

// CPU seconds used by the whole machine (everything but idle and iowait).
double MachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {};
  in >> cpu;
  for (double& x : v) in >> x;
  // user nice system idle iowait irq softirq steal
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / ClockTicks();
}

double RusageCpu(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

struct CpuSample {
  double wall, machine, cas, las, self, children;
  static CpuSample Take(const Options& o) {
    return {NowSeconds(), MachineCpu(), ProcessCpu(o.cas_pid), ProcessCpu(o.las_pid), RusageCpu(RUSAGE_SELF),
            RusageCpu(RUSAGE_CHILDREN)};
  }
};

// ---------------------------------------------------------------------------
// Modes.

int Latency(const Options& o) {
  Argv argv(o.program);
  Env plain = PlainEnv(), prot = ProtectedEnv(o, false);
  std::vector<double> p, q, p_faults, q_faults;
  int failed = 0;
  auto one = [&](bool is_protected, std::vector<double>* into) {
    StartResult r = Start(argv, is_protected ? prot : plain);
    if (into != nullptr) (is_protected ? q_faults : p_faults).push_back(static_cast<double>(r.minor_faults));
    if (r.status != 0) {
      if (++failed <= 3) {
        std::fprintf(stderr, "start_load: a %s start of %s ended with status %d\n",
                     is_protected ? "protected" : "plain", o.label.c_str(), r.status);
      }
    } else if (into != nullptr) {
      into->push_back(r.seconds);
    }
  };
  for (int i = 0; i < o.warmup; ++i) {
    one(false, nullptr);
    one(true, nullptr);
  }
  for (int i = 0; i < o.runs; ++i) {
    if (i % 2 == 0) {
      one(false, &p);
      one(true, &q);
    } else {
      one(true, &q);
      one(false, &p);
    }
  }
  double p50 = Median(p), p99 = Percentile(p, 99), q50 = Median(q), q99 = Percentile(q, 99);
  std::printf("| %s | %zu + %zu | %s | %s | %s | %s | %s | %s | **%s** | %s | %.0f | %.0f | %d |\n", o.label.c_str(),
              p.size(), q.size(), Ms(Percentile(p, 0)).c_str(), Ms(p50).c_str(), Ms(p99).c_str(),
              Ms(Percentile(q, 0)).c_str(), Ms(q50).c_str(), Ms(q99).c_str(), Ms(q50 - p50).c_str(),
              Ms(q99 - p99).c_str(), Median(p_faults), Median(q_faults), failed);
  std::string k = "latency." + o.label + ".";
  Summary(o, k + "plain_p50_ms", p50 * 1e3);
  Summary(o, k + "plain_p99_ms", p99 * 1e3);
  Summary(o, k + "protected_p50_ms", q50 * 1e3);
  Summary(o, k + "protected_p99_ms", q99 * 1e3);
  Summary(o, k + "added_p50_ms", (q50 - p50) * 1e3);
  Summary(o, k + "added_p99_ms", (q99 - p99) * 1e3);
  Summary(o, k + "failed", failed);
  Summary(o, k + "plain_faults", Median(p_faults));
  Summary(o, k + "protected_faults", Median(q_faults));
  return failed == 0 ? 0 : 1;
}

// "cloister-runtime: debug:    2.76 ms: sent the TLS ClientHello to the CAS"
struct TraceLine {
  double ms;
  std::string text;
};

std::vector<TraceLine> ParseTrace(const std::string& err) {
  std::vector<TraceLine> out;
  std::istringstream in(err);
  std::string line;
  const std::string prefix = "cloister-runtime: debug:";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    const char* p = line.c_str() + prefix.size();
    char* end = nullptr;
    double ms = std::strtod(p, &end);
    const char* text = std::strstr(end, "ms: ");
    if (end == p || text == nullptr) continue;
    out.push_back({ms, text + 4});
  }
  return out;
}

// A step's name for the table: the runtime's message up to the first
// detail (an address, a path, a count in parentheses).
std::string StepName(const std::string& text) {
  std::string s = text;
  for (const char* cut : {" with the LAS at", " at /", " at 127.", " (", ": "}) {
    size_t at = s.find(cut);
    if (at != std::string::npos) s.resize(at);
  }
  return s;
}

int Trace(const Options& o) {
  Argv argv(o.program);
  Env plain = PlainEnv(), prot = ProtectedEnv(o, true);
  std::vector<std::vector<TraceLine>> traces;
  std::vector<double> walls, plain_walls;
  int failed = 0;
  for (int i = 0; i < o.warmup; ++i) Start(argv, prot, STDERR_FILENO);
  for (int i = 0; i < o.runs; ++i) {
    plain_walls.push_back(Start(argv, plain).seconds);
    StartResult r = Start(argv, prot, STDERR_FILENO);
    std::vector<TraceLine> t = ParseTrace(r.out);
    if (r.status != 0 || t.empty()) {
      if (++failed <= 3) std::fprintf(stderr, "start_load: a traced start ended with status %d: %s", r.status, r.out.c_str());
      continue;
    }
    if (!traces.empty() && t.size() != traces[0].size()) {
      std::fprintf(stderr, "start_load: a trace had %zu steps instead of %zu; left out\n", t.size(), traces[0].size());
      continue;
    }
    traces.push_back(std::move(t));
    walls.push_back(r.seconds);
  }
  if (traces.empty()) Die("no traced start succeeded");
  std::printf("| step (the runtime's debug line) | at, ms (median) | since the step before, ms (median) |\n");
  std::printf("|---|---:|---:|\n");
  for (size_t s = 0; s < traces[0].size(); ++s) {
    std::vector<double> at, delta;
    for (const auto& t : traces) {
      at.push_back(t[s].ms);
      delta.push_back(s == 0 ? t[s].ms : t[s].ms - t[s - 1].ms);
    }
    std::printf("| %s | %.2f | %.2f |\n", StepName(traces[0][s].text).c_str(), Median(at), Median(delta));
    Summary(o, "trace.step" + std::to_string(s) + "_ms", Median(delta));
  }
  std::vector<double> outside;
  for (size_t i = 0; i < traces.size(); ++i) outside.push_back(walls[i] - traces[i].back().ms / 1e3);
  double wall = Median(walls), out = Median(outside), pw = Median(plain_walls);
  double inside = Median([&] {
    std::vector<double> v;
    for (const auto& t : traces) v.push_back(t.back().ms);
    return v;
  }());
  std::printf("\n%zu traced starts of %s (%d failed), each after a plain one:\n\n", traces.size(), o.label.c_str(),
              failed);
  std::printf("| part of a start | ms (median) |\n|---|---:|\n");
  std::printf("| whole protected start, with the trace (driver's clock) | %s |\n", Ms(wall).c_str());
  std::printf("| from the runtime's first line to \"calling main\" | %.2f |\n", inside);
  std::printf("| the rest: spawn, exec, loading, glibc start-up, main, exit | %s |\n", Ms(out).c_str());
  std::printf("| a plain start (spawn, exec, loading, main, exit) | %s |\n", Ms(pw).c_str());
  std::printf("| the rest minus a plain start: loading the runtime, its constructors, exit | %s |\n",
              Ms(out - pw).c_str());
  Summary(o, "trace.inside_ms", inside);
  Summary(o, "trace.outside_extra_ms", (out - pw) * 1e3);
  return failed == 0 ? 0 : 1;
}

int Load(const Options& o) {
  Argv argv(o.program);
  Env env = o.plain ? PlainEnv() : ProtectedEnv(o, false);
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<int> failed{0};
  std::atomic<bool> go{false};
  const double seconds = o.seconds;
  std::vector<std::thread> threads;
  double deadline = 0;
  std::atomic<int> ready{0};
  for (int t = 0; t < o.concurrency; ++t) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      ++ready;
      while (!go.load()) std::this_thread::yield();
      while (NowSeconds() < deadline) {
        StartResult r = Start(argv, env);
        if (r.status != 0) {
          if (failed.fetch_add(1) < 3) std::fprintf(stderr, "start_load: a start ended with status %d\n", r.status);
        } else {
          mine.push_back(r.seconds);
        }
      }
      std::lock_guard<std::mutex> l(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  while (ready.load() < o.concurrency) std::this_thread::yield();
  CpuSample a = CpuSample::Take(o);
  deadline = a.wall + seconds;
  go.store(true);
  for (auto& t : threads) t.join();
  CpuSample b = CpuSample::Take(o);
  double wall = b.wall - a.wall;
  double n = static_cast<double>(latencies.size());
  double cas = (b.cas - a.cas) / wall, las = (b.las - a.las) / wall;
  double children = (b.children - a.children) / wall, self = (b.self - a.self) / wall;
  double busy = (b.machine - a.machine) / wall;
  double other = std::max(0.0, busy - cas - las - children - self);
  auto per = [&](double cores) { return n > 0 ? Fixed(cores * wall / n * 1e3, 2) : std::string("-"); };
  std::printf("| %s | %d | %.1f | %zu | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
              o.plain ? "plain" : "protected", o.concurrency, wall, latencies.size(), failed.load(),
              Thousands(n / wall).c_str(), Ms(Median(latencies)).c_str(), Ms(Percentile(latencies, 99)).c_str(),
              Fixed(busy, 2).c_str(), Fixed(cas, 2).c_str(), Fixed(las, 2).c_str(), Fixed(children, 2).c_str(),
              Fixed(self, 2).c_str(), Fixed(other, 2).c_str(), per(cas).c_str(), per(las).c_str(),
              per(children).c_str());
  std::string k = std::string("load.") + (o.plain ? "plain" : "protected") + "." + std::to_string(o.concurrency) + ".";
  Summary(o, k + "starts", n);
  Summary(o, k + "seconds", wall);
  Summary(o, k + "rate", n / wall);
  Summary(o, k + "failed", failed.load());
  Summary(o, k + "busy", busy);
  Summary(o, k + "cas_ms", n > 0 ? cas * wall / n * 1e3 : 0);
  Summary(o, k + "las_ms", n > 0 ? las * wall / n * 1e3 : 0);
  Summary(o, k + "program_ms", n > 0 ? children * wall / n * 1e3 : 0);
  Summary(o, k + "driver_ms", n > 0 ? self * wall / n * 1e3 : 0);
  Summary(o, k + "other", other);
  return failed.load() == 0 ? 0 : 1;
}

// "VmHWM:\t    1234 kB" lines of the program's output, in KiB.
std::map<std::string, double> StatusFields(const std::string& out) {
  std::map<std::string, double> f;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos || line.find("kB") == std::string::npos) continue;
    f[line.substr(0, colon)] = std::atof(line.c_str() + colon + 1);
  }
  return f;
}

int Rss(const Options& o) {
  Argv argv(o.program);
  Env plain = PlainEnv(), prot = ProtectedEnv(o, false);
  const char* fields[] = {"VmHWM", "VmRSS", "RssAnon", "RssFile"};
  std::map<std::string, std::vector<double>> p, q;
  int failed = 0;
  for (int i = 0; i < o.runs; ++i) {
    for (bool is_protected : {false, true}) {
      StartResult r = Start(argv, is_protected ? prot : plain, STDOUT_FILENO);
      auto f = StatusFields(r.out);
      if (r.status != 0 || f.count("VmHWM") == 0) {
        if (++failed <= 3) std::fprintf(stderr, "start_load: a start ended with status %d and no VmHWM line\n", r.status);
        continue;
      }
      for (const char* name : fields) (is_protected ? q : p)[name].push_back(f[name]);
    }
  }
  auto mib = [](double kib) { return Fixed(kib / 1024, 1); };
  for (const char* name : fields) {
    double a = Median(p[name]), b = Median(q[name]);
    std::printf("| %s | %s | %s | %s | %s |\n", o.label.c_str(), name, mib(a).c_str(), mib(b).c_str(),
                mib(b - a).c_str());
    Summary(o, "rss." + o.label + "." + name + "_added_mib", (b - a) / 1024);
    Summary(o, "rss." + o.label + "." + name + "_plain_mib", a / 1024);
    Summary(o, "rss." + o.label + "." + name + "_protected_mib", b / 1024);
  }
  return failed == 0 ? 0 : 1;
}

// Key generations per second on this thread, for `seconds`.
double KeygenRate(const char* type, const char* group, double seconds) {
  double start = NowSeconds(), end = start + seconds;
  long n = 0;
  while (NowSeconds() < end) {
    for (int i = 0; i < 50; ++i) {
      EVP_PKEY* k = group != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, group)
                                     : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
      if (k == nullptr) Die(std::string("cannot make a ") + type + " key");
      EVP_PKEY_free(k);
    }
    n += 50;
  }
  return static_cast<double>(n) / (NowSeconds() - start);
}

int Keygen(const Options& o) {
  double seconds = o.seconds > 0 ? o.seconds : 1;
  double p256 = KeygenRate("EC", "P-256", seconds);
  double x25519 = KeygenRate("X25519", nullptr, seconds);
  std::printf("P-256 keygen/s %.0f\nX25519 keygen/s %.0f\n", p256, x25519);
  Summary(o, "keygen.p256", p256);
  Summary(o, "keygen.x25519", x25519);
  return 0;
}

int Main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  if (o.mode == "keygen") return Keygen(o);
  if (o.mode == "latency") return Latency(o);
  if (o.mode == "trace") return Trace(o);
  if (o.mode == "load") return Load(o);
  return Rss(o);
}

}  // namespace
}  // namespace cloister::bench

int main(int argc, char** argv) { return cloister::bench::Main(argc, argv); }
