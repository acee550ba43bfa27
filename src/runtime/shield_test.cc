// The file shield's client and volume server together, in one process: the
// server runs on a thread, the client side is installed as before main.
// The shims themselves live only in the library (they would replace
// libc's functions for the test too), so the tests call what they call:
// the real write, then the shield's mark.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/secret.h"
#include "cloister/volume.h"
#include "os/env.h"
#include "runtime/shield_client.h"
#include "runtime/shield_exec.h"
#include "runtime/shield_server.h"
#include "runtime/shield_wire.h"

namespace cloister::runtime::shield {
namespace {

std::string g_mount;
runtime::SecretBytes g_key;
Server* g_server = nullptr;

class ShieldTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (Active()) return;
    char tmpl[] = "/tmp/cloister-shield-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    g_mount = std::string(tmpl) + "/vol";
    g_key.resize(32);
    ASSERT_EQ(RAND_bytes(g_key.data(), 32), 1);
    ServerVolume v;
    v.name = "data";
    v.path = g_mount;
    v.key = g_key;
    Result<std::unique_ptr<Server>> server = Server::Open({v});
    ASSERT_TRUE(server.ok()) << server.error();
    int control[2], conn[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, conn), 0);
    // Serves until the process ends: the client side stays installed.
    static Server* raw = server.value().release();
    g_server = raw;
    std::thread([c = control[1], f = conn[1]] { raw->Serve(c, f); }).detach();
    VolumeMount m;
    m.name = "data";
    m.path = g_mount;
    m.key = g_key;
    m.update_policy = "rollback-protected";
    Result<Done> installed = Install({m}, control[0], conn[0]);
    ASSERT_TRUE(installed.ok()) << installed.error();
  }

  static Target T(const std::string& inner) {
    Target t;
    EXPECT_TRUE(Route(AT_FDCWD, (g_mount + inner).c_str(), &t)) << inner;
    return t;
  }

  // What the shims do for pwrite.
  static void Write(int fd, const std::string& data, off_t at) {
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), at), static_cast<ssize_t>(data.size()));
    Wrote(fd, at, data.size());
  }

  static void Close(int fd) {
    Closing(fd);
    ::close(fd);
  }

  // The file as the volume on disk holds it, read with the volume library.
  static std::string Stored(const std::string& inner) {
    cloister::SecretBytes key(g_key.data(), g_key.size());
    volume::OpenOptions o;
    o.read_only = true;
    auto v = volume::Volume::Open(os::Env::Posix(), g_mount, key, o);
    if (!v.ok()) return "open failed: " + v.status().message();
    auto f = (*v)->OpenFile(inner, volume::OpenFlags{});
    if (!f.ok()) return "no file: " + f.status().message();
    auto st = (*f)->GetStat();
    std::string out(st->size, '\0');
    auto got = (*f)->ReadAt(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size()));
    if (!got.ok()) return "read failed: " + got.status().message();
    out.resize(*got);
    return out;
  }
};

TEST_F(ShieldTest, RoutesOnlyPathsUnderTheMount) {
  Target t;
  EXPECT_TRUE(Route(AT_FDCWD, g_mount.c_str(), &t));
  EXPECT_EQ(t.inner.view(), "/");
  EXPECT_TRUE(Route(AT_FDCWD, (g_mount + "/a/../b//c").c_str(), &t));
  EXPECT_EQ(t.inner.view(), "/b/c");
  EXPECT_FALSE(Route(AT_FDCWD, (g_mount + "x/y").c_str(), &t));
  EXPECT_FALSE(Route(AT_FDCWD, "/etc/passwd", &t));
}

TEST_F(ShieldTest, SyncedWritesReachTheVolume) {
  int fd = Open(T("/synced.txt"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(IsShielded(fd));
  Write(fd, "hello, volume", 0);
  Write(fd, std::string(10000, 'z'), 20000);
  ASSERT_EQ(Sync(fd), 0);
  std::string want = "hello, volume" + std::string(20000 - 13, '\0') + std::string(10000, 'z');
  EXPECT_EQ(Stored("/synced.txt"), want);
  struct stat st;
  ASSERT_EQ(Fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 30000);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  struct stat by_path;
  ASSERT_EQ(Stat(T("/synced.txt"), &by_path, true), 0);
  EXPECT_EQ(by_path.st_ino, st.st_ino);
  EXPECT_EQ(by_path.st_dev, st.st_dev);
  EXPECT_EQ(by_path.st_size, 30000);
  Close(fd);
}

TEST_F(ShieldTest, TheVolumeIsAFileSystemOfItsOwn) {
  struct stat host {};
  ASSERT_EQ(::stat(g_mount.c_str(), &host), 0);
  struct stat root, file;
  ASSERT_EQ(Stat(T("/"), &root, true), 0);
  int fd = Open(T("/identity.txt"), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(Fstat(fd, &file), 0);
  Close(fd);
  // Not the host's device: the volume's small inode numbers must not name
  // host files. The root is the mount directory's inode, so two volumes'
  // roots differ.
  EXPECT_NE(root.st_dev, host.st_dev);
  EXPECT_EQ(major(root.st_dev), 0u);
  EXPECT_EQ(file.st_dev, root.st_dev);
  EXPECT_EQ(root.st_ino, host.st_ino);
  EXPECT_NE(file.st_ino, root.st_ino);
}

TEST_F(ShieldTest, TwoDescriptorsSeeEachOthersWritesAtOnce) {
  int a = Open(T("/shared.txt"), O_CREAT | O_RDWR, 0600);
  int b = Open(T("/shared.txt"), O_RDONLY, 0);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  Write(a, "written through a", 0);
  char buf[32] = {};
  EXPECT_EQ(::pread(b, buf, sizeof(buf), 0), 17);
  EXPECT_STREQ(buf, "written through a");
  // Each has its own offset.
  EXPECT_EQ(::lseek(a, 0, SEEK_CUR), 0);
  EXPECT_EQ(::read(b, buf, 7), 7);
  EXPECT_EQ(::lseek(a, 0, SEEK_CUR), 0);
  EXPECT_EQ(::write(b, "x", 1), -1) << "opened read-only";
  Close(a);
  Close(b);
}

TEST_F(ShieldTest, ShrinkThenGrowLeavesZeros) {
  int fd = Open(T("/cut.bin"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  Write(fd, std::string(10000, 'x'), 0);
  ASSERT_EQ(Sync(fd), 0);
  // Cut and grown back to the same size before the next commit: the
  // volume must not keep the old bytes past the cut.
  ASSERT_EQ(::ftruncate(fd, 5000), 0);
  Shrunk(fd, 5000);
  ASSERT_EQ(::ftruncate(fd, 10000), 0);
  Shrunk(fd, 10000);
  ASSERT_EQ(Sync(fd), 0);
  EXPECT_EQ(Stored("/cut.bin"), std::string(5000, 'x') + std::string(5000, '\0'));
  Close(fd);
}

// Bytes held in the volume directory's objects/ (data and node objects).
uint64_t ObjectBytes(const std::string& dir) {
  uint64_t total = 0;
  DIR* d = ::opendir((dir + "/objects").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    struct stat st {};
    if (e->d_name[0] != '.' && ::stat((dir + "/objects/" + e->d_name).c_str(), &st) == 0) {
      total += static_cast<uint64_t>(st.st_size);
    }
  }
  ::closedir(d);
  return total;
}

TEST_F(ShieldTest, LargeWritesAreWrittenBehindBeforeTheSync) {
  int fd = Open(T("/behind.bin"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(Sync(fd), 0);
  const uint64_t before = ObjectBytes(g_mount);
  // 1 MiB in 16 KiB writes and no sync: past kWriteBehindBytes the client
  // asks the server to write what it has while the writes go on.
  std::string want;
  for (int i = 0; i < 64; ++i) {
    std::string block(16384, static_cast<char>('A' + i % 26));
    Write(fd, block, static_cast<off_t>(want.size()));
    want += block;
  }
  uint64_t grown = 0;
  for (int i = 0; i < 500 && grown < kWriteBehindBytes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    grown = ObjectBytes(g_mount) - before;
  }
  EXPECT_GE(grown, kWriteBehindBytes) << "the server wrote nothing of the file before its sync";
  // Chunks written again after they were written behind: the sync takes
  // the newer bytes.
  std::string again(5000, 'z');
  Write(fd, again, 100);
  want.replace(100, again.size(), again);
  ASSERT_EQ(Sync(fd), 0);
  EXPECT_TRUE(Stored("/behind.bin") == want) << "the volume does not hold the file's last bytes";
  Close(fd);
}

TEST_F(ShieldTest, WritesThroughASharedMappingAreFound) {
  int fd = Open(T("/mapped.bin"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  WritesUnseen(fd, /*mapping=*/true);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memcpy(static_cast<char*>(p) + 4096, "via mmap", 8);
  ASSERT_EQ(Sync(fd), 0);
  std::string want(8192, '\0');
  want.replace(4096, 8, "via mmap");
  EXPECT_EQ(Stored("/mapped.bin"), want);
  ::munmap(p, 8192);
  Close(fd);
}

TEST_F(ShieldTest, AnFsyncOfACommittedFileGoesToTheSyncLog) {
  int fd = Open(T("/logged.bin"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  Write(fd, std::string(8192, 'a'), 0);
  ASSERT_EQ(Sync(fd), 0);  // a new file: its first fsync commits its creation
  const uint64_t seq = g_server->Info(0).seq;
  std::string b(5000, 'b');
  Write(fd, b, 6000);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(Sync(fd), 0);
  const uint64_t seq_after = g_server->Info(0).seq;
  std::string want(8192, 'a');
  want.resize(11000);
  want.replace(6000, b.size(), b);
  // Durable on return: the volume on disk, read with its sync log, holds it.
  EXPECT_EQ(Stored("/logged.bin"), want);
  if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(kFoldDelayMs - 10)) {
    EXPECT_EQ(seq_after, seq) << "the fsync made a commit instead of a record";
  }
  // The server commits the record soon after.
  for (int i = 0; i < 400 && g_server->Info(0).seq == seq; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(g_server->Info(0).seq, seq);
  EXPECT_EQ(Stored("/logged.bin"), want);
  // The next record goes to the next log; a shrink is a commit again.
  Write(fd, "c", 10999);
  want[10999] = 'c';
  ASSERT_EQ(Sync(fd), 0);
  EXPECT_EQ(Stored("/logged.bin"), want);
  ASSERT_EQ(::ftruncate(fd, 100), 0);
  Shrunk(fd, 100);
  const uint64_t before_shrink = g_server->Info(0).seq;
  ASSERT_EQ(Sync(fd), 0);
  EXPECT_GT(g_server->Info(0).seq, before_shrink);
  EXPECT_EQ(Stored("/logged.bin"), want.substr(0, 100));
  Close(fd);
}

TEST_F(ShieldTest, ThreadsWriteAndSyncTogether) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  int fd0 = Open(T("/threads.bin"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd0, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i] {
      int fd = Open(T("/threads.bin"), O_RDWR, 0);
      ASSERT_GE(fd, 0);
      for (int r = 0; r < kRounds; ++r) {
        std::string block(4096, static_cast<char>('a' + i));
        block[0] = static_cast<char>('0' + r % 10);
        Write(fd, block, static_cast<off_t>((r * kThreads + i) * 4096));
        ASSERT_EQ(Sync(fd), 0);
      }
      Close(fd);
    });
  }
  for (auto& t : threads) t.join();
  std::string stored = Stored("/threads.bin");
  ASSERT_EQ(stored.size(), size_t{kThreads * kRounds * 4096});
  for (int r = 0; r < kRounds; ++r) {
    for (int i = 0; i < kThreads; ++i) {
      size_t at = static_cast<size_t>((r * kThreads + i) * 4096);
      EXPECT_EQ(stored[at], static_cast<char>('0' + r % 10));
      EXPECT_EQ(stored[at + 1], static_cast<char>('a' + i));
    }
  }
  Close(fd0);
}

TEST_F(ShieldTest, NamespaceCalls) {
  ASSERT_EQ(Mkdir(T("/dir"), 0700), 0);
  EXPECT_EQ(Mkdir(T("/dir"), 0700), -1);
  EXPECT_EQ(errno, EEXIST);
  int fd = Open(T("/dir/one"), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  Write(fd, "1", 0);
  Close(fd);
  ASSERT_EQ(Rename(T("/dir/one"), T("/dir/two"), 0), 0);
  fd = Open(T("/dir/three"), O_CREAT | O_WRONLY | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  Close(fd);
  EXPECT_EQ(Open(T("/dir/three"), O_CREAT | O_WRONLY | O_EXCL, 0600), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(Rename(T("/dir/two"), T("/dir/three"), 1 /* RENAME_NOREPLACE */), -1);
  EXPECT_EQ(errno, EEXIST);

  DIR* d = OpenDir(T("/dir"));
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(IsShieldDir(d));
  std::vector<std::string> names;
  while (struct dirent64* e = ReadDir(d)) names.push_back(e->d_name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "three", "two"}));
  EXPECT_EQ(CloseDir(d), 0);

  // A removed file stays readable through a descriptor opened before.
  fd = Open(T("/dir/two"), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(Unlink(T("/dir/two")), 0);
  char c = 0;
  EXPECT_EQ(::pread(fd, &c, 1, 0), 1);
  EXPECT_EQ(c, '1');
  Close(fd);
  struct stat st;
  EXPECT_EQ(Stat(T("/dir/two"), &st, true), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Rmdir(T("/dir")), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(Unlink(T("/dir/three")), 0);
  EXPECT_EQ(Rmdir(T("/dir")), 0);
}

TEST_F(ShieldTest, DirectoryDescriptorsAnchorRelativePaths) {
  ASSERT_EQ(Mkdir(T("/anchor"), 0700), 0);
  int dfd = Open(T("/anchor"), O_RDONLY | O_DIRECTORY, 0);
  ASSERT_GE(dfd, 0);
  EXPECT_TRUE(IsShieldedDirectory(dfd));
  Target t;
  ASSERT_TRUE(Route(dfd, "inside.txt", &t));
  EXPECT_EQ(t.inner.view(), "/anchor/inside.txt");
  struct stat st;
  ASSERT_EQ(Fstat(dfd, &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Open(T("/anchor"), O_RDWR, 0), -1);
  EXPECT_EQ(errno, EISDIR);
  Close(dfd);
}


TEST(ShieldExecTest, TheDigestKeepsEntriesApart) {
  const char* ab_c[] = {"ab", "c", nullptr};
  const char* a_bc[] = {"a", "bc", nullptr};
  const char* a[] = {"a", nullptr};
  const char* b[] = {"b", nullptr};
  const char* a_b[] = {"a", "b", nullptr};
  const char* none[] = {nullptr};
  EXPECT_NE(ExecDigest(ab_c, none), ExecDigest(a_bc, none));
  EXPECT_NE(ExecDigest(a, b), ExecDigest(a_b, none));
  EXPECT_NE(ExecDigest(a, b), ExecDigest(b, a));
  EXPECT_EQ(ExecDigest(a_b, a), ExecDigest(a_b, a));
}

TEST(ShieldExecTest, TheEnvironmentGetsTheRuntimeVariablesOnce) {
  const char* envp[] = {"PATH=/bin", "LD_PRELOAD=/elsewhere.so", "CLOISTER_CONFIG_ID=other/one", "HOME=/root",
                        nullptr};
  std::vector<std::string> runtime = {"CLOISTER_CONFIG_ID=s/svc", "LD_PRELOAD=/lib/rt.so"};
  std::vector<const char*> env = ExecEnvironment(envp, runtime);
  std::vector<std::string> got;
  for (const char* e : env) {
    if (e != nullptr) got.emplace_back(e);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"PATH=/bin", "HOME=/root", "CLOISTER_CONFIG_ID=s/svc",
                                           "LD_PRELOAD=/lib/rt.so"}));
  EXPECT_EQ(env.back(), nullptr);
}

// A program exec'd from this one, played by a forked child: it joins with
// the connection and digest it got, and reports through a pipe.
class ShieldExecJoinTest : public ShieldTest {
 protected:
  static VolumeMount Mount() {
    VolumeMount m;
    m.name = "data";
    m.path = g_mount;
    m.key = g_key;
    m.update_policy = "rollback-protected";
    return m;
  }

  // Is every other thread of this process asleep in a system call, where it
  // holds no lock of the allocator: waiting for a message (read, recvfrom,
  // recvmsg), on a futex, or in poll without a timeout? The volume server of
  // this suite runs on a thread of the test process; after a client falls
  // quiet it commits on a timer (a poll with a timeout), so that is not idle.
  static bool OtherThreadsIdle() {
    const std::string self = std::to_string(::gettid());
    DIR* d = ::opendir("/proc/self/task");
    if (d == nullptr) return true;
    bool idle = true;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' || self == e->d_name) continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/syscall");
      std::string nr, a0, a1, a2;
      in >> nr >> a0 >> a1 >> a2;
      bool infinite_poll = nr == "7" && (a2 == "0xffffffff" || a2 == "0xffffffffffffffff");
      bool infinite_ppoll = nr == "271" && a2 == "0x0";
      bool waiting = nr == "0" || nr == "45" || nr == "47" || nr == "202" || nr == "219";
      if (!(infinite_poll || infinite_ppoll || waiting)) idle = false;
    }
    ::closedir(d);
    return idle;
  }

  // Runs `child` in a forked process; returns what it wrote to the pipe.
  // A child forked while another thread holds a lock of the sanitizers'
  // allocator would wait for it for ever: the fork waits (up to 5 s) until
  // the other threads are idle.
  template <typename Fn>
  static std::string InChild(Fn child) {
    for (int i = 0; i < 5000 && !(OtherThreadsIdle() && OtherThreadsIdle()); ++i) ::usleep(1000);
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      std::string out = child();
      (void)!::write(p[1], out.data(), out.size());
      ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
  }

  // One request on `sock`, as a client that knows no better would send it.
  static Reply Ask(int sock, Op op, const std::string& path = "") {
    Request req{};
    req.op = op;
    req.path_len = static_cast<uint16_t>(path.size());
    std::string msg(reinterpret_cast<const char*>(&req), sizeof(req));
    msg += path;
    EXPECT_TRUE(SendDatagram(sock, msg.data(), msg.size(), nullptr, 0, nullptr, 0));
    std::vector<char> buf(kMaxMessage);
    int fds[2];
    int nfds = 0;
    ssize_t n = ReceiveDatagram(sock, buf.data(), buf.size(), fds, &nfds);
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    Reply r{};
    r.error = -1;
    if (n >= static_cast<ssize_t>(sizeof(Reply))) std::memcpy(&r, buf.data(), sizeof(r));
    return r;
  }
};

TEST_F(ShieldExecJoinTest, AnExecdProgramJoinsAndKeepsWritingToInheritedFiles) {
  int fd = Open(T("/inherited.txt"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  Write(fd, "parent ", 0);
  SetExecVariables({"CLOISTER_CONFIG_ID=s/svc"});
  char* argv[] = {const_cast<char*>("prog"), const_cast<char*>("--flag"), nullptr};
  char* envp[] = {const_cast<char*>("HOME=/"), nullptr};
  ExecPlan plan;
  ASSERT_EQ(PrepareExec(argv, envp, /*in_place=*/false, &plan), 0);
  ASSERT_NE(plan.envp, nullptr);
  JoinDigest digest = ExecDigest(argv, plan.env.data());
  std::string got = InChild([&] {
    Result<Done> joined = Join({Mount()}, plan.conn, digest);
    if (!joined.ok()) return "join failed: " + joined.error();
    if (!IsShielded(fd)) return std::string("the inherited descriptor is not shielded");
    const std::string more = "and child";
    if (::pwrite(fd, more.data(), more.size(), 7) != static_cast<ssize_t>(more.size())) return std::string("write");
    Wrote(fd, 7, more.size());
    if (Sync(fd) != 0) return std::string("sync failed");
    return std::string("ok");
  });
  EndExec(&plan);
  EXPECT_EQ(got, "ok");
  EXPECT_EQ(Stored("/inherited.txt"), "parent and child");
  Close(fd);
}

TEST_F(ShieldExecJoinTest, OtherArgumentsThanTheTicketsAreRefused) {
  SetExecVariables({"CLOISTER_CONFIG_ID=s/svc"});
  char* argv[] = {const_cast<char*>("prog"), nullptr};
  char* other[] = {const_cast<char*>("prog"), const_cast<char*>("--evil"), nullptr};
  ExecPlan plan;
  ASSERT_EQ(PrepareExec(argv, nullptr, false, &plan), 0);
  JoinDigest digest = ExecDigest(other, plan.env.data());
  std::string got = InChild([&] {
    Result<Done> joined = Join({Mount()}, plan.conn, digest);
    return joined.ok() ? std::string("joined") : joined.error();
  });
  EndExec(&plan);
  EXPECT_NE(got.find("not those the program that exec'd it asked for"), std::string::npos) << got;
}

TEST_F(ShieldExecJoinTest, OtherVolumeKeysCannotJoin) {
  SetExecVariables({"CLOISTER_CONFIG_ID=s/svc"});
  char* argv[] = {const_cast<char*>("prog"), nullptr};
  ExecPlan plan;
  ASSERT_EQ(PrepareExec(argv, nullptr, false, &plan), 0);
  JoinDigest digest = ExecDigest(argv, plan.env.data());
  VolumeMount wrong = Mount();
  wrong.key[0] ^= 1;
  std::string got = InChild([&] {
    Result<Done> joined = Join({wrong}, plan.conn, digest);
    return joined.ok() ? std::string("joined") : joined.error();
  });
  EndExec(&plan);
  EXPECT_NE(got.find("did not prove that it holds"), std::string::npos) << got;
}

TEST_F(ShieldExecJoinTest, AServerWithoutTheKeysIsRefused) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  const char* argv[] = {"prog", nullptr};
  JoinDigest digest = ExecDigest(argv, nullptr);
  // Answers the join with the right ticket but no knowledge of the keys.
  std::thread fake([s = pair[1], digest] {
    std::vector<char> buf(kMaxMessage);
    int fds[2];
    int nfds = 0;
    if (ReceiveDatagram(s, buf.data(), buf.size(), fds, &nfds) <= 0) return;
    Reply r{};
    std::string data(64, 'x');
    data.append(reinterpret_cast<const char*>(digest.data()), digest.size());
    r.data_len = static_cast<uint32_t>(data.size());
    (void)SendDatagram(s, &r, sizeof(r), data.data(), data.size(), nullptr, 0);
  });
  std::string got = InChild([&] {
    Result<Done> joined = Join({Mount()}, pair[0], digest);
    return joined.ok() ? std::string("joined") : joined.error();
  });
  fake.join();
  ::close(pair[0]);
  ::close(pair[1]);
  EXPECT_NE(got.find("did not prove that it holds"), std::string::npos) << got;
}

TEST_F(ShieldExecJoinTest, ATicketConnectionServesNothingButTheJoinAndOneTry) {
  SetExecVariables({"CLOISTER_CONFIG_ID=s/svc"});
  char* argv[] = {const_cast<char*>("prog"), nullptr};
  ExecPlan plan;
  ASSERT_EQ(PrepareExec(argv, nullptr, false, &plan), 0);
  EXPECT_EQ(Ask(plan.conn, Op::kStat, "/").error, EACCES);
  EXPECT_EQ(Ask(plan.conn, Op::kAdopt).error, EACCES);
  std::string nonce(kJoinNonceBytes, 'n');
  EXPECT_EQ(Ask(plan.conn, Op::kJoin, nonce).error, 0);
  EXPECT_EQ(Ask(plan.conn, Op::kJoinProof, std::string(32, 'p')).error, EACCES);
  // Locked for good: not even a second join.
  EXPECT_EQ(Ask(plan.conn, Op::kJoin, nonce).error, EACCES);
  EXPECT_EQ(Ask(plan.conn, Op::kStat, "/").error, EACCES);
  EndExec(&plan);
}

}  // namespace
}  // namespace cloister::runtime::shield
