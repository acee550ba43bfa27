// volume_bench: throughput of the protected-volume library compared, in one
// run and on the same file system, with plain files and with gocryptfs.
//
//   volume_bench [options] DIR
//
// DIR should be on tmpfs, so that the storage costs nothing and what is
// measured is the work each backend adds on top of it. For every backend
// and every repetition the benchmark
//   1. writes a new file of --size-mib MiB sequentially in --io-kib writes
//      and makes it durable (fsync for files, Volume::Commit for the volume);
//   2. reads it back sequentially in --io-kib reads;
//   3. reads it sequentially once more. On tmpfs the first read of pages
//      that were just written also moves them to the kernel's active LRU
//      list, which makes that read 1.3-1.6x slower than the next one; the
//      second read shows the steady state, where plain reads are a copy;
//   4. reads --random-ops distinct 4 KiB pages chosen at random;
//   5. writes --random-ops distinct 4 KiB pages chosen at random, then makes
//      them durable (fsync / Commit), inside the timed region.
// Before steps 2 to 5 each backend drops what it can cache: the volume
// is closed and opened again (its hash-tree cache starts empty); gocryptfs
// is unmounted and mounted again, which empties the kernel page cache of the
// FUSE mount, so reads really go through gocryptfs' decryption and not
// through a memcpy from the page cache. Plain files on tmpfs *are* the page
// cache, so they are simply reopened. For random reads every file
// descriptor gets POSIX_FADV_RANDOM, so the FUSE mount does not read ahead
// (that would make gocryptfs do more work than asked for, and the volume
// look better than it is). Reads check a stamp that every written 4 KiB
// page carries, so a backend cannot pass by returning the wrong bytes.
//
// The benchmark prints the median over --repeat runs, the ratios volume /
// plain and volume / gocryptfs, and PASS or MISS against the targets. It is
// bounded: sizes are fixed by the options and each random test also stops
// after --random-seconds.
//
// gocryptfs is optional: give --gocryptfs-cipher (an initialised gocryptfs
// directory), --gocryptfs-mount (where it is mounted now) and
// --gocryptfs-passfile (the file holding its password; the password is never
// on a command line). The benchmark remounts it with the same password file.
#include <fcntl.h>
#include <spawn.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "base/secret.h"
#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "os/env.h"

extern char** environ;

namespace cloister::bench {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;
constexpr long kTmpfsMagic = 0x01021994;
constexpr long kFuseMagic = 0x65735546;

struct Options {
  std::string dir;
  uint64_t size = 1024 * kMiB;
  uint64_t io = kMiB;
  uint64_t random_ops = 100000;
  double random_seconds = 30;
  int repeat = 3;
  uint32_t chunk_size = 4096;
  double cipher_seconds = 1;
  std::vector<std::string> backends;
  std::vector<std::string> tests = {"seqwrite", "seqread", "reread", "randread", "randwrite"};
  std::string gocryptfs_cipher;
  std::string gocryptfs_mount;
  std::string gocryptfs_passfile;
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "volume_bench: %s\n", msg.c_str());
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

template <typename T>
T Check(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what + ": " + v.status().ToString());
  return std::move(v).value();
}

void CheckErrno(bool ok, const std::string& what) {
  if (!ok) Die(what + ": " + std::strerror(errno));
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Every 4 KiB page written carries its page number in its first 8 bytes.
void Stamp(uint8_t* page, uint64_t index) { std::memcpy(page, &index, sizeof(index)); }
void CheckStamp(const uint8_t* page, uint64_t index, const char* backend) {
  uint64_t got;
  std::memcpy(&got, page, sizeof(got));
  if (got != index) {
    Die(std::string(backend) + ": page " + std::to_string(index) + " read back wrong contents");
  }
}

// Runs a program (searched in PATH) with stdout to /dev/null and stderr to
// `log`; returns its exit status.
int Run(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

long FsType(const std::string& path) {
  struct statfs st;
  if (::statfs(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.f_type);
}

// ---------------------------------------------------------------------
// Backends

// An open test file: positional I/O and a durability point.
class BenchFile {
 public:
  virtual ~BenchFile() = default;
  // Reads exactly buf.size() bytes.
  virtual void ReadAt(uint64_t off, std::span<uint8_t> buf) = 0;
  virtual void WriteAt(uint64_t off, std::span<const uint8_t> data) = 0;
  // fsync, or Commit for the volume.
  virtual void Sync() = 0;
  virtual void AdviseRandom() {}
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* Name() const = 0;
  // Creates the test file, empty.
  virtual std::unique_ptr<BenchFile> Create() = 0;
  // Opens the test file for reading and writing after dropping what the
  // backend caches. No file of this backend may be open.
  virtual std::unique_ptr<BenchFile> Reopen() = 0;
  // Removes the test file and whatever else Create made.
  virtual void Remove() = 0;
};

class PosixFile final : public BenchFile {
 public:
  PosixFile(int fd, const char* name) : fd_(fd), name_(name) {}
  ~PosixFile() override { ::close(fd_); }
  void ReadAt(uint64_t off, std::span<uint8_t> buf) override {
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      CheckErrno(n >= 0, std::string(name_) + ": pread");
      if (n == 0) Die(std::string(name_) + ": unexpected end of file");
      done += static_cast<size_t>(n);
    }
  }
  void WriteAt(uint64_t off, std::span<const uint8_t> data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      CheckErrno(n > 0, std::string(name_) + ": pwrite");
      done += static_cast<size_t>(n);
    }
  }
  void Sync() override { CheckErrno(::fsync(fd_) == 0, std::string(name_) + ": fsync"); }
  void AdviseRandom() override { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM); }

 private:
  int fd_;
  const char* name_;
};

std::unique_ptr<BenchFile> OpenPosix(const std::string& path, bool create, const char* name) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
  int fd = ::open(path.c_str(), flags, 0600);
  CheckErrno(fd >= 0, std::string(name) + ": open " + path);
  return std::make_unique<PosixFile>(fd, name);
}

class PlainBackend final : public Backend {
 public:
  explicit PlainBackend(const std::string& dir) : dir_(fs::path(dir) / "plain") {}
  const char* Name() const override { return "plain"; }
  std::unique_ptr<BenchFile> Create() override {
    fs::create_directories(dir_);
    return OpenPosix(Path(), true, Name());
  }
  std::unique_ptr<BenchFile> Reopen() override { return OpenPosix(Path(), false, Name()); }
  void Remove() override { fs::remove_all(dir_); }

 private:
  std::string Path() const { return (dir_ / "bench.dat").string(); }
  fs::path dir_;
};

class GocryptfsBackend final : public Backend {
 public:
  GocryptfsBackend(const Options& o)
      : cipher_(o.gocryptfs_cipher), mount_(o.gocryptfs_mount), passfile_(o.gocryptfs_passfile),
        log_((fs::path(o.dir) / "gocryptfs-bench.log").string()) {
    if (FsType(mount_) != kFuseMagic) Die(mount_ + " is not a mounted FUSE file system");
  }
  ~GocryptfsBackend() override { ::unlink(log_.c_str()); }
  const char* Name() const override { return "gocryptfs"; }
  std::unique_ptr<BenchFile> Create() override { return OpenPosix(Path(), true, Name()); }
  std::unique_ptr<BenchFile> Reopen() override {
    Remount();
    return OpenPosix(Path(), false, Name());
  }
  void Remove() override { ::unlink(Path().c_str()); }

 private:
  std::string Path() const { return (fs::path(mount_) / "bench.dat").string(); }
  void Remount() {
    if (Run({"fusermount3", "-u", mount_}, log_) != 0 && Run({"fusermount", "-u", mount_}, log_) != 0 &&
        Run({"umount", mount_}, log_) != 0) {
      Die("cannot unmount " + mount_ + " (see " + log_ + ")");
    }
    // gocryptfs returns once the mount is ready (its daemon signals it).
    if (Run({"gocryptfs", "-q", "-nosyslog", "-passfile", passfile_, cipher_, mount_}, log_) != 0) {
      Die("cannot mount gocryptfs at " + mount_ + " (see " + log_ + ")");
    }
    if (FsType(mount_) != kFuseMagic) Die("gocryptfs did not mount at " + mount_);
  }
  std::string cipher_, mount_, passfile_, log_;
};

class VolumeFile final : public BenchFile {
 public:
  VolumeFile(volume::Volume& v, std::unique_ptr<volume::File> f) : v_(v), f_(std::move(f)) {}
  void ReadAt(uint64_t off, std::span<uint8_t> buf) override {
    size_t n = Check(f_->ReadAt(off, buf), "volume: ReadAt");
    if (n != buf.size()) Die("volume: unexpected end of file");
  }
  void WriteAt(uint64_t off, std::span<const uint8_t> data) override {
    Check(f_->WriteAt(off, data), "volume: WriteAt");
  }
  void Sync() override { Check(v_.Commit().status(), "volume: Commit"); }

 private:
  volume::Volume& v_;
  std::unique_ptr<volume::File> f_;
};

class VolumeBackend final : public Backend {
 public:
  VolumeBackend(const std::string& dir, uint32_t chunk_size)
      : dir_((fs::path(dir) / "volume").string()), chunk_size_(chunk_size),
        key_(Check(crypto::RandomSecret(volume::kVolumeKeySize), "random key")) {}
  const char* Name() const override { return "volume"; }
  std::unique_ptr<BenchFile> Create() override {
    v_.reset();
    fs::remove_all(dir_);
    volume::CreateOptions co;
    co.chunk_size = chunk_size_;
    v_ = Check(volume::Volume::Create(os::Env::Posix(), dir_, key_, co), "volume: Create");
    volume::OpenFlags flags;
    flags.create = flags.truncate = true;
    return std::make_unique<VolumeFile>(*v_, Check(v_->OpenFile(kPath, flags), "volume: OpenFile"));
  }
  std::unique_ptr<BenchFile> Reopen() override {
    v_.reset();
    v_ = Check(volume::Volume::Open(os::Env::Posix(), dir_, key_, volume::OpenOptions{}),
               "volume: Open");
    volume::OpenFlags flags;
    flags.write = true;
    return std::make_unique<VolumeFile>(*v_, Check(v_->OpenFile(kPath, flags), "volume: OpenFile"));
  }
  void Remove() override {
    v_.reset();
    fs::remove_all(dir_);
  }

 private:
  static constexpr char kPath[] = "/bench.dat";
  std::string dir_;
  uint32_t chunk_size_;
  SecretBytes key_;
  std::unique_ptr<volume::Volume> v_;
};

// ---------------------------------------------------------------------
// Tests

struct Sample {
  double seconds = 0;
  uint64_t bytes = 0;
  uint64_t ops = 0;
  double MBps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
  double Iops() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

// A buffer of pseudo-random bytes (incompressible, not all zeros).
std::vector<uint8_t> RandomBuffer(size_t n, uint64_t seed) {
  std::vector<uint8_t> b(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  return b;
}

// `n` distinct page numbers below `pages`, in random order.
std::vector<uint64_t> RandomPages(uint64_t pages, uint64_t n, uint64_t seed) {
  std::vector<uint64_t> all(pages);
  for (uint64_t i = 0; i < pages; ++i) all[i] = i;
  std::mt19937_64 rng(seed);
  n = std::min(n, pages);
  for (uint64_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<uint64_t> d(i, pages - 1);
    std::swap(all[i], all[d(rng)]);
  }
  all.resize(n);
  return all;
}

Sample SeqWrite(BenchFile& f, const Options& o, std::vector<uint8_t>& buf) {
  const uint64_t per_io = o.io / kPage;
  double t0 = Now();
  for (uint64_t off = 0; off < o.size; off += o.io) {
    for (uint64_t p = 0; p < per_io; ++p) Stamp(buf.data() + p * kPage, off / kPage + p);
    f.WriteAt(off, buf);
  }
  f.Sync();
  return Sample{Now() - t0, o.size, o.size / o.io};
}

Sample SeqRead(BenchFile& f, const Options& o, std::vector<uint8_t>& buf, const char* name) {
  const uint64_t per_io = o.io / kPage;
  double t0 = Now();
  for (uint64_t off = 0; off < o.size; off += o.io) {
    f.ReadAt(off, buf);
    for (uint64_t p = 0; p < per_io; ++p) CheckStamp(buf.data() + p * kPage, off / kPage + p, name);
  }
  return Sample{Now() - t0, o.size, o.size / o.io};
}

Sample RandomIo(BenchFile& f, const Options& o, const std::vector<uint64_t>& pages, bool write,
                const char* name) {
  std::vector<uint8_t> page = RandomBuffer(kPage, 7);
  f.AdviseRandom();
  const double t0 = Now();
  const double deadline = t0 + o.random_seconds;
  uint64_t done = 0;
  for (uint64_t p : pages) {
    if (write) {
      Stamp(page.data(), p);
      f.WriteAt(p * kPage, page);
    } else {
      f.ReadAt(p * kPage, page);
      CheckStamp(page.data(), p, name);
    }
    ++done;
    if ((done & 1023) == 0 && Now() > deadline) break;
  }
  if (write) f.Sync();
  return Sample{Now() - t0, done * kPage, done};
}

// In-process AES-256-GCM over 4 KiB chunks through the same wrapper the
// volume uses: the ceiling for a single thread that encrypts 4 KiB chunks.
struct CipherRates {
  double seal_mbps = 0;
  double open_mbps = 0;
};

// The machine may be shared: the best of ten slices is reported, which is
// the closest estimate of what the core can do.
CipherRates MeasureCipher(double seconds) {
  CipherRates r;
  if (seconds <= 0) return r;
  SecretBytes key = Check(crypto::RandomSecret(crypto::kAeadKeySize), "random key");
  auto aead = Check(crypto::Aead::New(key), "Aead::New");
  std::vector<uint8_t> buf = RandomBuffer(kPage, 3);
  std::vector<uint8_t> out(kPage);
  std::vector<uint8_t> aad(40, 0);
  crypto::Nonce nonce;
  crypto::AeadTag tag;
  std::vector<uint8_t> sealed(kPage);
  Check(aead->Seal(aad, buf, sealed, nonce, tag), "Seal");
  const double slice = seconds / 20;
  for (int i = 0; i < 20; ++i) {
    const bool open = i % 2 == 1;
    uint64_t n = 0;
    double t0 = Now(), t = t0;
    while (t - t0 < slice) {
      for (int k = 0; k < 64; ++k) {
        if (open) {
          Check(aead->Open(aad, nonce, tag, sealed, out), "Open");
        } else {
          crypto::Nonce n2;
          crypto::AeadTag t2;
          Check(aead->Seal(aad, buf, out, n2, t2), "Seal");
        }
      }
      n += 64;
      t = Now();
    }
    double mbps = static_cast<double>(n * kPage) / (t - t0) / 1e6;
    double& best = open ? r.open_mbps : r.seal_mbps;
    best = std::max(best, mbps);
  }
  return r;
}

// ---------------------------------------------------------------------
// Reporting

const char* kTestNames[] = {"seqwrite", "seqread", "reread", "randread", "randwrite"};

struct TestInfo {
  const char* row;
  bool iops;
};
std::map<std::string, TestInfo> kTests = {
    {"seqwrite", {"sequential write, 1 MiB I/O (MB/s)", false}},
    {"seqread", {"sequential read, 1 MiB I/O (MB/s)", false}},
    {"reread", {"sequential read again (storage pages warm) (MB/s)", false}},
    {"randread", {"random read, 4 KiB (IOPS)", true}},
    {"randwrite", {"random write, 4 KiB + fsync/commit (IOPS)", true}},
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string Fmt(double v) {
  char b[32];
  if (v >= 100) {
    std::snprintf(b, sizeof(b), "%.0f", v);
  } else {
    std::snprintf(b, sizeof(b), "%.1f", v);
  }
  return b;
}

std::string Ratio(double a, double b) {
  if (a <= 0 || b <= 0) return "n/a";
  char s[32];
  std::snprintf(s, sizeof(s), "%.2fx", a / b);
  return s;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

void Usage() {
  std::fprintf(stderr,
               "usage: volume_bench [options] DIR\n"
               "  DIR                       scratch directory, ideally on tmpfs\n"
               "  --size-mib N              size of the test file (default 1024)\n"
               "  --io-kib N                sequential I/O size (default 1024)\n"
               "  --random-ops N            random 4 KiB operations per test (default 100000)\n"
               "  --random-seconds S        time limit of each random test (default 30)\n"
               "  --repeat N                runs; the median is reported (default 3)\n"
               "  --chunk-size N            volume chunk size (default 4096)\n"
               "  --cipher-seconds S        in-process AES-GCM measurement, 0 to skip (default 1)\n"
               "  --backends LIST           plain,volume,gocryptfs (default: all available)\n"
               "  --tests LIST              seqwrite,seqread,reread,randread,randwrite (default: all)\n"
               "  --gocryptfs-cipher DIR    initialised gocryptfs cipher directory\n"
               "  --gocryptfs-mount DIR     where it is mounted\n"
               "  --gocryptfs-passfile F    file holding its password\n");
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  std::string backends;
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
      if (end == v.c_str() || *end != '\0' || d < 0) Usage();
      return d;
    };
    if (a == "--size-mib") o.size = static_cast<uint64_t>(number()) * kMiB;
    else if (a == "--io-kib") o.io = static_cast<uint64_t>(number()) * 1024;
    else if (a == "--random-ops") o.random_ops = static_cast<uint64_t>(number());
    else if (a == "--random-seconds") o.random_seconds = number();
    else if (a == "--repeat") o.repeat = static_cast<int>(number());
    else if (a == "--chunk-size") o.chunk_size = static_cast<uint32_t>(number());
    else if (a == "--cipher-seconds") o.cipher_seconds = number();
    else if (a == "--backends") backends = value();
    else if (a == "--tests") o.tests = Split(value());
    else if (a == "--gocryptfs-cipher") o.gocryptfs_cipher = value();
    else if (a == "--gocryptfs-mount") o.gocryptfs_mount = value();
    else if (a == "--gocryptfs-passfile") o.gocryptfs_passfile = value();
    else if (a == "-h" || a == "--help") Usage();
    else if (!a.empty() && a[0] == '-') Usage();
    else if (o.dir.empty()) o.dir = a;
    else Usage();
  }
  if (o.dir.empty() || o.repeat < 1) Usage();
  if (o.io < kPage || o.io % kPage != 0 || o.size < o.io || o.size % o.io != 0) {
    Die("--size-mib must be a multiple of --io-kib, and --io-kib a multiple of 4");
  }
  for (const auto& t : o.tests) {
    if (!kTests.count(t)) Die("unknown test " + t);
  }
  bool have_gocryptfs = !o.gocryptfs_mount.empty();
  if (have_gocryptfs && (o.gocryptfs_cipher.empty() || o.gocryptfs_passfile.empty())) {
    Die("--gocryptfs-mount needs --gocryptfs-cipher and --gocryptfs-passfile (to remount it)");
  }
  o.backends = backends.empty() ? std::vector<std::string>{"plain", "volume"} : Split(backends);
  if (backends.empty() && have_gocryptfs) o.backends.push_back("gocryptfs");
  for (const auto& b : o.backends) {
    if (b != "plain" && b != "volume" && b != "gocryptfs") Die("unknown backend " + b);
    if (b == "gocryptfs" && !have_gocryptfs) Die("backend gocryptfs needs --gocryptfs-mount");
  }
  return o;
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  fs::create_directories(o.dir);
  if (FsType(o.dir) != kTmpfsMagic) {
    std::fprintf(stderr, "volume_bench: warning: %s is not on tmpfs; results include the disk\n",
                 o.dir.c_str());
  }
  if (!o.gocryptfs_cipher.empty() && FsType(o.gocryptfs_cipher) != FsType(o.dir)) {
    std::fprintf(stderr, "volume_bench: warning: the gocryptfs cipher directory is on another file system\n");
  }
  struct statvfs vs;
  CheckErrno(::statvfs(o.dir.c_str(), &vs) == 0, "statvfs " + o.dir);
  // One backend's file exists at a time; the volume adds its hash tree and
  // a journal of at most a few hundred MiB.
  uint64_t need = o.size + o.size / 8 + 512 * kMiB;
  if (static_cast<uint64_t>(vs.f_bavail) * vs.f_frsize < need) {
    Die("not enough free space in " + o.dir + ": need " + std::to_string(need / kMiB) + " MiB");
  }

  std::vector<std::unique_ptr<Backend>> backends;
  for (const auto& b : o.backends) {
    if (b == "plain") backends.push_back(std::make_unique<PlainBackend>(o.dir));
    if (b == "volume") backends.push_back(std::make_unique<VolumeBackend>(o.dir, o.chunk_size));
    if (b == "gocryptfs") backends.push_back(std::make_unique<GocryptfsBackend>(o));
  }

  std::vector<uint8_t> buf = RandomBuffer(o.io, 1);
  const uint64_t pages = o.size / kPage;
  std::vector<uint64_t> read_pages = RandomPages(pages, o.random_ops, 11);
  std::vector<uint64_t> write_pages = RandomPages(pages, o.random_ops, 13);
  // rate[backend][test] over the repetitions
  std::map<std::string, std::map<std::string, std::vector<double>>> rate;
  std::map<std::string, std::map<std::string, uint64_t>> ops_done;

  for (int rep = 0; rep < o.repeat; ++rep) {
    for (auto& b : backends) {
      const char* name = b->Name();
      auto record = [&](const char* test, const Sample& s) {
        double v = kTests.at(test).iops ? s.Iops() : s.MBps();
        rate[name][test].push_back(v);
        ops_done[name][test] = s.ops;
        std::fprintf(stderr, "run %d/%d %-9s %-9s %10.1f %s (%.2f s)\n", rep + 1, o.repeat, name, test, v,
                     kTests.at(test).iops ? "IOPS" : "MB/s", s.seconds);
      };
      // The file is always written: the other tests need it.
      {
        auto f = b->Create();
        Sample s = SeqWrite(*f, o, buf);
        if (Has(o.tests, "seqwrite")) record("seqwrite", s);
      }
      if (Has(o.tests, "seqread")) {
        auto f = b->Reopen();
        record("seqread", SeqRead(*f, o, buf, name));
      }
      if (Has(o.tests, "reread")) {
        auto f = b->Reopen();
        record("reread", SeqRead(*f, o, buf, name));
      }
      if (Has(o.tests, "randread")) {
        auto f = b->Reopen();
        record("randread", RandomIo(*f, o, read_pages, false, name));
      }
      if (Has(o.tests, "randwrite")) {
        auto f = b->Reopen();
        record("randwrite", RandomIo(*f, o, write_pages, true, name));
      }
      b->Remove();
    }
  }

  auto med = [&](const char* backend, const char* test) -> double {
    auto b = rate.find(backend);
    if (b == rate.end()) return 0;
    auto t = b->second.find(test);
    return t == b->second.end() ? 0 : Median(t->second);
  };

  std::printf("### Throughput (median of %d runs; %" PRIu64 " MiB file; %" PRIu64
              " random 4 KiB operations per test, at most %.0f s)\n\n",
              o.repeat, o.size / kMiB, o.random_ops, o.random_seconds);
  std::printf("| test | plain | volume | gocryptfs | volume/plain | volume/gocryptfs |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const char* t : kTestNames) {
    if (!Has(o.tests, t)) continue;
    double p = med("plain", t), v = med("volume", t), g = med("gocryptfs", t);
    auto cell = [](double x) { return x > 0 ? Fmt(x) : std::string("-"); };
    std::printf("| %s | %s | %s | %s | %s | %s |\n", kTests.at(t).row, cell(p).c_str(), cell(v).c_str(),
                cell(g).c_str(), Ratio(v, p).c_str(), Ratio(v, g).c_str());
  }
  for (const auto& [backend, tests] : ops_done) {
    for (const char* t : {"randread", "randwrite"}) {
      auto it = tests.find(t);
      if (it != tests.end() && it->second < std::min(o.random_ops, pages)) {
        std::printf("\n(%s %s stopped at the time limit after %" PRIu64 " operations)\n", backend.c_str(),
                    t, it->second);
      }
    }
  }

  struct Target {
    const char* test;
    const char* baseline;
    double ratio;
    const char* text;
  };
  const Target targets[] = {
      {"seqwrite", "gocryptfs", 1.5, "sequential write >= 1.5x gocryptfs"},
      {"seqwrite", "plain", 0.5, "sequential write >= 50% of plain"},
      {"seqread", "gocryptfs", 1.5, "sequential read >= 1.5x gocryptfs"},
      {"seqread", "plain", 0.5, "sequential read >= 50% of plain"},
      {"reread", "gocryptfs", 1.5, "sequential read again >= 1.5x gocryptfs"},
      {"reread", "plain", 0.5, "sequential read again >= 50% of plain"},
      {"randread", "gocryptfs", 2.0, "random 4 KiB read >= 2x gocryptfs"},
  };
  // The backends run back to back within a repetition, so the ratio of one
  // repetition compares like with like; its spread shows how much of a
  // margin is noise.
  auto range = [&](const char* test, const char* baseline) -> std::string {
    auto v = rate.find("volume");
    auto b = rate.find(baseline);
    if (v == rate.end() || b == rate.end() || !v->second.count(test) || !b->second.count(test)) return "-";
    const auto& vs = v->second.at(test);
    const auto& bs = b->second.at(test);
    double lo = 1e300, hi = 0;
    for (size_t i = 0; i < vs.size() && i < bs.size(); ++i) {
      if (bs[i] <= 0) continue;
      lo = std::min(lo, vs[i] / bs[i]);
      hi = std::max(hi, vs[i] / bs[i]);
    }
    if (hi <= 0) return "-";
    char r[48];
    std::snprintf(r, sizeof(r), "%.2f-%.2fx", lo, hi);
    return r;
  };
  std::printf("\n### Targets\n\n| target | volume / baseline (medians) | per-run range | result |\n"
              "|---|---:|---:|---|\n");
  for (const Target& t : targets) {
    if (!Has(o.tests, t.test)) continue;
    double v = med("volume", t.test), b = med(t.baseline, t.test);
    const char* result = (v <= 0 || b <= 0) ? "not measured" : v / b >= t.ratio ? "PASS" : "MISS";
    std::printf("| %s | %s | %s | %s |\n", t.text, Ratio(v, b).c_str(), range(t.test, t.baseline).c_str(),
                result);
  }

  CipherRates c = MeasureCipher(o.cipher_seconds);
  if (c.seal_mbps > 0) {
    std::printf("\n### AES-256-GCM in process: crypto::Aead on 4 KiB chunks, one thread, best of 10\n\n");
    std::printf("| operation | MB/s | volume throughput as a share of it |\n|---|---:|---|\n");
    double vw = med("volume", "seqwrite"), vr = med("volume", "seqread");
    auto share = [](double v, double c, const char* what) {
      if (v <= 0 || c <= 0) return std::string("-");
      char s[64];
      std::snprintf(s, sizeof(s), "%s: %.0f%%", what, 100 * v / c);
      return std::string(s);
    };
    std::printf("| Seal (encrypt) | %s | %s |\n", Fmt(c.seal_mbps).c_str(),
                share(vw, c.seal_mbps, "sequential write").c_str());
    std::printf("| Open (decrypt) | %s | %s |\n", Fmt(c.open_mbps).c_str(),
                share(vr, c.open_mbps, "sequential read").c_str());
  }
  return 0;
}

}  // namespace
}  // namespace cloister::bench

int main(int argc, char** argv) { return cloister::bench::Main(argc, argv); }
