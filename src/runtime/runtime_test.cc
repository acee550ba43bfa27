// Unit tests of the runtime's pure parts and its injected-file table. The
// interposition itself (interpose.cc, start.cc) is exercised with the built
// library by runtime_library_test.sh and by the integration tests.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/cas_client.h"
#include "runtime/config.h"
#include "runtime/encoding.h"
#include "runtime/injected_files.h"
#include "runtime/las_client.h"
#include "runtime/paths.h"

namespace cloister::runtime {
namespace {

std::string Normal(std::string_view base, std::string_view path) {
  PathBuffer out;
  if (!NormalizePath(base, path, out)) return "<none>";
  EXPECT_EQ(out.data[out.size], '\0');
  return std::string(out.view());
}

SecretBytes Bytes(std::string_view s) { return SecretBytes(s.begin(), s.end()); }

std::span<const uint8_t> Span(std::string_view s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[7];  // small on purpose: several reads
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// ---- paths ----

TEST(PathTest, NormalizesAbsolutePaths) {
  EXPECT_EQ(Normal("", "/"), "/");
  EXPECT_EQ(Normal("", "/etc/app.conf"), "/etc/app.conf");
  EXPECT_EQ(Normal("", "//etc///app.conf"), "/etc/app.conf");
  EXPECT_EQ(Normal("", "/etc/./app.conf"), "/etc/app.conf");
  EXPECT_EQ(Normal("", "/etc/x/../app.conf"), "/etc/app.conf");
  EXPECT_EQ(Normal("", "/etc/app.conf/"), "/etc/app.conf");
  EXPECT_EQ(Normal("", "/../../etc/../.."), "/");
  EXPECT_EQ(Normal("", "/a/..b/.c"), "/a/..b/.c");
  EXPECT_EQ(Normal("/ignored", "/etc"), "/etc");
}

TEST(PathTest, ResolvesRelativePathsAgainstTheBase) {
  EXPECT_EQ(Normal("/srv/app", "conf/app.conf"), "/srv/app/conf/app.conf");
  EXPECT_EQ(Normal("/srv/app", "../etc/./x"), "/srv/etc/x");
  EXPECT_EQ(Normal("/srv/app/", "."), "/srv/app");
  EXPECT_EQ(Normal("/", "../../x"), "/x");
  EXPECT_EQ(Normal("relative/base", "x"), "<none>");
  EXPECT_EQ(Normal("", "x"), "<none>");
  EXPECT_EQ(Normal("/", ""), "<none>");
}

TEST(PathTest, RefusesPathsThatDoNotFit) {
  std::string long_name(kMaxPath, 'a');
  EXPECT_EQ(Normal("", "/" + long_name), "<none>");
  std::string fits(kMaxPath - 2, 'a');
  EXPECT_EQ(Normal("", "/" + fits), "/" + fits);
  // What would not fit before folding fits after.
  EXPECT_EQ(Normal("", "/" + long_name + "/.."), "<none>");
}

TEST(PathTest, ResolvesAgainstTheWorkingDirectoryAndDirectoryDescriptors) {
  std::string pattern = testing::TempDir() + "cloister-runtime-test-XXXXXX";
  std::vector<char> tmpl(pattern.begin(), pattern.end());
  tmpl.push_back('\0');
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(tmpl.data(), real), nullptr);
  int dir = ::open(tmpl.data(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);

  PathBuffer out;
  ASSERT_TRUE(ResolvePath(dir, "conf/../app.conf", out));
  EXPECT_EQ(out.view(), std::string(real) + "/app.conf");
  ASSERT_TRUE(ResolvePath(dir, "/etc/app.conf", out));  // absolute: dirfd ignored
  EXPECT_EQ(out.view(), "/etc/app.conf");

  char cwd[PATH_MAX];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_TRUE(ResolvePath(AT_FDCWD, "x/./y", out));
  EXPECT_EQ(out.view(), std::string(cwd == std::string("/") ? "" : cwd) + "/x/y");

  // What names a directory, or cannot be known, is left to libc.
  EXPECT_FALSE(ResolvePath(AT_FDCWD, nullptr, out));
  EXPECT_FALSE(ResolvePath(AT_FDCWD, "", out));
  EXPECT_FALSE(ResolvePath(AT_FDCWD, "/etc/app.conf/", out));
  EXPECT_FALSE(ResolvePath(AT_FDCWD, "/etc/app.conf/.", out));
  EXPECT_FALSE(ResolvePath(AT_FDCWD, "/etc/app.conf/x/..", out));
  EXPECT_FALSE(ResolvePath(9999, "app.conf", out));
  errno = 1234;
  EXPECT_FALSE(ResolvePath(9999, "app.conf", out));
  EXPECT_EQ(errno, 1234);

  ::close(dir);
  ::rmdir(tmpl.data());
}

// ---- injected files ----

std::unique_ptr<InjectedFiles> Table(timespec start = {1700000000, 5}) {
  std::vector<InjectedFile> files;
  files.push_back({"/etc/app.conf", 0440, Bytes("password = hunter2\n")});
  files.push_back({"/run/secrets/empty", 0400, Bytes("")});
  files.push_back({"/opt/tool", 0755, Bytes("#!/bin/sh\necho hi\n")});
  auto t = InjectedFiles::New(std::move(files), start);
  EXPECT_TRUE(t.ok()) << t.error();
  return std::move(t.value());
}

TEST(InjectedFilesTest, FindsExactPathsOnly) {
  auto t = Table();
  ASSERT_EQ(t->size(), 3u);
  ASSERT_NE(t->Find("/etc/app.conf"), nullptr);
  EXPECT_EQ(t->Find("/etc/app.conf")->mode, 0440u);
  EXPECT_NE(t->Find("/opt/tool"), nullptr);
  EXPECT_EQ(t->Find("/etc"), nullptr);
  EXPECT_EQ(t->Find("/etc/app.con"), nullptr);
  EXPECT_EQ(t->Find("/etc/app.conf2"), nullptr);
  EXPECT_EQ(t->Find("etc/app.conf"), nullptr);
}

TEST(InjectedFilesTest, RefusesBadTables) {
  auto one = [](std::string path, uint32_t mode) {
    std::vector<InjectedFile> files;
    files.push_back({std::move(path), mode, Bytes("x")});
    return InjectedFiles::New(std::move(files), {});
  };
  EXPECT_FALSE(one("etc/app.conf", 0400).ok());
  EXPECT_FALSE(one("/etc//app.conf", 0400).ok());
  EXPECT_FALSE(one("/etc/../app.conf", 0400).ok());
  EXPECT_FALSE(one("", 0400).ok());
  EXPECT_FALSE(one("/etc/app.conf", 010000).ok());
  EXPECT_TRUE(one("/etc/app.conf", 07777).ok());

  std::vector<InjectedFile> twice;
  twice.push_back({"/a", 0400, Bytes("1")});
  twice.push_back({"/a", 0400, Bytes("2")});
  auto t = InjectedFiles::New(std::move(twice), {});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("twice"), std::string::npos);
}

TEST(InjectedFilesTest, StatDescribesARegularFile) {
  timespec start{1700000000, 123};
  auto t = Table(start);
  const InjectedFile* f = t->Find("/etc/app.conf");
  struct stat st;
  std::memset(&st, 0xff, sizeof(st));
  t->Stat(*f, &st);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0440u);
  EXPECT_EQ(st.st_size, 19);
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(st.st_gid, ::getgid());
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_blksize, 4096);
  EXPECT_EQ(st.st_blocks, 8);
  EXPECT_EQ(st.st_mtim.tv_sec, start.tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, start.tv_nsec);
  EXPECT_EQ(st.st_ctim.tv_sec, start.tv_sec);
  EXPECT_EQ(st.st_atim.tv_sec, start.tv_sec);
  EXPECT_GT(st.st_ino, 0u);

  struct stat empty;
  t->Stat(*t->Find("/run/secrets/empty"), &empty);
  EXPECT_EQ(empty.st_size, 0);
  EXPECT_EQ(empty.st_blocks, 0);
  EXPECT_NE(empty.st_ino, st.st_ino);

  struct statx stx;
  t->Statx(*f, &stx);
  EXPECT_EQ(stx.stx_mask & STATX_BASIC_STATS, static_cast<unsigned>(STATX_BASIC_STATS));
  EXPECT_EQ(stx.stx_mode, S_IFREG | 0440);
  EXPECT_EQ(stx.stx_size, 19u);
  EXPECT_EQ(stx.stx_uid, ::getuid());
  EXPECT_EQ(stx.stx_nlink, 1u);
  EXPECT_EQ(stx.stx_blocks, 8u);
  EXPECT_EQ(stx.stx_mtime.tv_sec, start.tv_sec);
  EXPECT_EQ(stx.stx_btime.tv_nsec, 123u);
  EXPECT_EQ(stx.stx_ino, st.st_ino);
}

TEST(InjectedFilesTest, OpenReturnsASealedCopyWithItsOwnOffset) {
  auto t = Table();
  const InjectedFile& f = *t->Find("/etc/app.conf");
  int a = t->Open(f, O_RDONLY);
  int b = t->Open(f, O_RDONLY | O_CREAT);  // O_CREAT alone on an existing file is a read
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_NE(a, b);
  EXPECT_EQ(ReadAll(a), "password = hunter2\n");
  EXPECT_EQ(ReadAll(b), "password = hunter2\n");  // a's reads did not move b's offset

  // Nothing can change the content.
  EXPECT_EQ(::write(a, "x", 1), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(a, 0), -1);
  EXPECT_EQ(::ftruncate(a, 100), -1);
  EXPECT_EQ(::fcntl(a, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_EQ(::mmap(nullptr, 19, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0), MAP_FAILED);

  // Readable through read-only shared and private mappings.
  for (int flags : {MAP_SHARED, MAP_PRIVATE}) {
    void* m = ::mmap(nullptr, 19, PROT_READ, flags, a, 0);
    ASSERT_NE(m, MAP_FAILED);
    EXPECT_EQ(std::string(static_cast<const char*>(m), 19), "password = hunter2\n");
    ::munmap(m, 19);
  }

  // fstat on the descriptor agrees with stat on the path.
  struct stat st;
  ASSERT_EQ(::fstat(a, &st), 0);
  EXPECT_EQ(st.st_size, 19);
  EXPECT_EQ(st.st_mode & 07777, 0440u);
  ::close(a);
  ::close(b);
}

TEST(InjectedFilesTest, DescriptorsAreTracedBackToTheirFile) {
  auto t = Table();
  const InjectedFile& conf = *t->Find("/etc/app.conf");
  const InjectedFile& tool = *t->Find("/opt/tool");
  int a = t->Open(conf, O_RDONLY);
  int b = t->Open(tool, O_RDONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(t->FindDescriptor(a), &conf);
  EXPECT_EQ(t->FindDescriptor(b), &tool);
  int copy = ::dup(a);
  EXPECT_EQ(t->FindDescriptor(copy), &conf);
  // A memfd is a regular file without links: what the fstat shim looks for.
  struct stat st;
  ASSERT_EQ(::fstat(a, &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_nlink, 0u);

  // Anything else is not an injected file, and errno is left alone.
  int other = ::memfd_create("cloister-injected:x", MFD_CLOEXEC);
  int beyond = ::memfd_create("cloister-injected:99", MFD_CLOEXEC);
  int plain = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  errno = 4321;
  EXPECT_EQ(t->FindDescriptor(other), nullptr);
  EXPECT_EQ(t->FindDescriptor(beyond), nullptr);
  EXPECT_EQ(t->FindDescriptor(plain), nullptr);
  EXPECT_EQ(t->FindDescriptor(-1), nullptr);
  EXPECT_EQ(t->FindDescriptor(999999), nullptr);
  EXPECT_EQ(errno, 4321);
  for (int fd : {a, b, copy, other, beyond, plain}) ::close(fd);
}

TEST(InjectedFilesTest, OpenFollowsOCloexec) {
  auto t = Table();
  const InjectedFile& f = *t->Find("/etc/app.conf");
  int plain = t->Open(f, O_RDONLY);
  int cloexec = t->Open(f, O_RDONLY | O_CLOEXEC);
  ASSERT_GE(plain, 0);
  ASSERT_GE(cloexec, 0);
  EXPECT_EQ(::fcntl(plain, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(::fcntl(cloexec, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ::close(plain);
  ::close(cloexec);
}

TEST(InjectedFilesTest, OpensThatCouldWriteAreRefused) {
  auto t = Table();
  const InjectedFile& f = *t->Find("/etc/app.conf");
  EXPECT_EQ(t->Open(f, O_WRONLY), -EACCES);
  EXPECT_EQ(t->Open(f, O_RDWR), -EACCES);
  EXPECT_EQ(t->Open(f, O_RDONLY | O_TRUNC), -EACCES);
  EXPECT_EQ(t->Open(f, O_RDONLY | O_CREAT | O_EXCL), -EACCES);
  EXPECT_EQ(t->Open(f, O_WRONLY | O_CREAT | O_TRUNC), -EACCES);  // creat()
  EXPECT_EQ(t->Open(f, O_RDWR | O_APPEND), -EACCES);
  EXPECT_EQ(t->Open(f, O_RDONLY | O_DIRECTORY), -ENOTDIR);
}

TEST(InjectedFilesTest, AccessFollowsTheMode) {
  auto t = Table();
  const InjectedFile& conf = *t->Find("/etc/app.conf");  // 0440
  const InjectedFile& tool = *t->Find("/opt/tool");      // 0755
  EXPECT_EQ(InjectedFiles::CheckAccess(conf, F_OK, false), 0);
  EXPECT_EQ(InjectedFiles::CheckAccess(conf, R_OK, false), 0);
  EXPECT_EQ(InjectedFiles::CheckAccess(conf, W_OK, false), EACCES);
  EXPECT_EQ(InjectedFiles::CheckAccess(conf, X_OK, false), EACCES);
  EXPECT_EQ(InjectedFiles::CheckAccess(tool, R_OK | X_OK, true), 0);
  EXPECT_EQ(InjectedFiles::CheckAccess(tool, R_OK | W_OK, true), EACCES);

  std::vector<InjectedFile> files;
  files.push_back({"/x", 0200, Bytes("x")});
  auto table = InjectedFiles::New(std::move(files), {});
  ASSERT_TRUE(table.ok());
  const InjectedFile& unreadable = *table.value()->Find("/x");
  EXPECT_EQ(InjectedFiles::CheckAccess(unreadable, R_OK, false), ::getuid() == 0 ? 0 : EACCES);
  int fd = table.value()->Open(unreadable, O_RDONLY);
  EXPECT_EQ(fd >= 0, ::geteuid() == 0);
  if (fd >= 0) ::close(fd);
}

// ---- settings ----

TEST(SettingsTest, ParsesCasAddresses) {
  auto a = ParseCasAddress("cas.example:18765");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a.value().host, "cas.example");
  EXPECT_EQ(a.value().port, 18765);
  EXPECT_EQ(a.value().text, "cas.example:18765");
  auto v6 = ParseCasAddress("[::1]:443");
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6.value().host, "::1");
  EXPECT_EQ(v6.value().port, 443);
  EXPECT_TRUE(ParseCasAddress("10.0.0.7:1").ok());
  EXPECT_TRUE(ParseCasAddress("[fe80::1%eth0]:65535").ok());
  for (const char* bad : {"", "cas", "cas:", ":18765", "cas:0", "cas:65536", "cas:1x", "cas:+80", "::1:80", "[::1]",
                          "[]:80", "[cas]:80", "ca s:80", "cas:80 ", "[::1:80"}) {
    auto r = ParseCasAddress(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().find("CLOISTER_CAS_ADDR"), std::string::npos);
    }
  }
}

const std::string kKeyHex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

Result<Settings> Read(std::map<std::string, std::string> env) {
  return ReadSettings([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::map<std::string, std::string> GoodEnv() {
  return {{"CLOISTER_CAS_ADDR", "cas:18765"}, {"CLOISTER_CAS_KEY", kKeyHex}, {"CLOISTER_CONFIG_ID", "shop/pki/web"}};
}

TEST(SettingsTest, ReadsTheEnvironment) {
  auto s = Read(GoodEnv());
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s.value().cas.host, "cas");
  EXPECT_EQ(s.value().cas_key[0], 0x00);
  EXPECT_EQ(s.value().cas_key[31], 0xff);
  EXPECT_EQ(s.value().las_socket, kDefaultLasSocket);
  EXPECT_EQ(s.value().config_id, "shop/pki/web");
  EXPECT_EQ(s.value().session, "shop/pki");  // everything before the last '/'
  EXPECT_EQ(s.value().service, "web");
  EXPECT_FALSE(s.value().debug);

  auto env = GoodEnv();
  env["CLOISTER_LAS_SOCKET"] = "/var/run/las.sock";
  env["CLOISTER_LOG"] = "debug";
  s = Read(env);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(s.value().las_socket, "/var/run/las.sock");
  EXPECT_TRUE(s.value().debug);
  EXPECT_FALSE(s.value().relayed);

  // Without an address the LAS relays; everything else is still required.
  env.erase("CLOISTER_CAS_ADDR");
  s = Read(env);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_TRUE(s.value().relayed);
  EXPECT_TRUE(s.value().cas.text.empty());
}

TEST(SettingsTest, NamesTheMissingOrIllFormedVariable) {
  struct Case {
    const char* name;
    const char* value;  // nullptr: unset
  };
  for (Case c :
       std::vector<Case>{{"CLOISTER_CONFIG_ID", nullptr},
                         {"CLOISTER_CONFIG_ID", ""},
                         {"CLOISTER_CONFIG_ID", "noslash"},
                         {"CLOISTER_CONFIG_ID", "/web"},
                         {"CLOISTER_CONFIG_ID", "shop/"},
                         {"CLOISTER_CONFIG_ID", "shop/we b"},
                         {"CLOISTER_CONFIG_ID", "shop/we\"b"},
                         {"CLOISTER_CAS_ADDR", "cas"},
                         {"CLOISTER_CAS_KEY", nullptr},
                         {"CLOISTER_CAS_KEY", "abcd"},
                         {"CLOISTER_CAS_KEY", "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
                         {"CLOISTER_LAS_SOCKET",
                          "/a/very/long/path/that/does/not/fit/into/sun_path/because/"
                          "it/is/longer/than/one/hundred/and/seven/bytes/las.sock"},
                         {"CLOISTER_LOG", "verbose"}}) {
    auto env = GoodEnv();
    if (c.value == nullptr) {
      env.erase(c.name);
    } else {
      env[c.name] = c.value;
    }
    auto s = Read(env);
    ASSERT_FALSE(s.ok()) << c.name << "=" << (c.value ? c.value : "(unset)");
    EXPECT_NE(s.error().find(c.name), std::string::npos) << s.error();
    EXPECT_EQ(s.error().find('\n'), std::string::npos);
  }
}

// ---- the CAS's reply ----

// Evidence bytes as far as the runtime reads them: magic, version, type 1,
// report data, then the two measurements (0x11.. and 0x22..).
std::vector<uint8_t> FakeEvidence() {
  std::vector<uint8_t> e = {0x43, 0x4c, 0x45, 0x56, 1, 0, 1};
  e.resize(7 + 32, 0xaa);
  e.resize(39 + 32, 0x11);
  e.resize(71 + 32, 0x22);
  e.resize(200, 0);
  return e;
}

const std::vector<uint8_t> kEvidence = FakeEvidence();

ReplyContext Ctx() { return ReplyContext{"cas:18765", "shop/web", "sim", kEvidence}; }

const char kGrant[] = R"({
  "evidence": "sim",
  "session": "shop", "session_hash": "abcd", "service": "web",
  "command": ["python3", "/app/main.py", "--port=8080"],
  "environment": {"DB_PASSWORD": "s3cret", "PATH": "/usr/bin", "EMPTY": ""},
  "pwd": "/app",
  "files": [{"path": "/etc/app.conf", "mode": 256, "content": "aGVsbG8K"},
            {"path": "/run//x/../key.pem", "mode": 384, "content": ""}],
  "volumes": [{"name": "data", "path": "/data",
               "key": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
               "tag": "", "update_policy": "rollback-protected"},
              {"name": "logs", "path": "/var/log/app",
               "key": "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
               "tag": "FF0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}],
  "volume_token": "AQIDBAUGBwgJ"
})";

TEST(CasReplyTest, ParsesAGrant) {
  auto g = ParseCasReply(200, Span(kGrant), Ctx());
  ASSERT_TRUE(g.ok()) << g.error();
  const Grant& grant = g.value();
  EXPECT_EQ(grant.evidence, "sim");
  EXPECT_EQ(grant.session, "shop");
  EXPECT_EQ(grant.service, "web");
  EXPECT_EQ(grant.session_hash, "abcd");
  ASSERT_EQ(grant.command.size(), 3u);
  EXPECT_EQ(grant.command[2], "--port=8080");
  ASSERT_EQ(grant.environment.size(), 3u);
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : grant.environment) env[k] = std::string(v.data(), v.size());
  EXPECT_EQ(env["DB_PASSWORD"], "s3cret");
  EXPECT_EQ(env["EMPTY"], "");
  EXPECT_EQ(grant.pwd, "/app");
  ASSERT_EQ(grant.files.size(), 2u);
  EXPECT_EQ(grant.files[0].path, "/etc/app.conf");
  EXPECT_EQ(grant.files[0].mode, 0400u);
  EXPECT_EQ(std::string(grant.files[0].content.begin(), grant.files[0].content.end()), "hello\n");
  EXPECT_EQ(grant.files[1].path, "/run/key.pem");  // normalized
  EXPECT_TRUE(grant.files[1].content.empty());
  ASSERT_EQ(grant.volumes.size(), 2u);
  EXPECT_EQ(grant.volumes[0].name, "data");
  EXPECT_EQ(grant.volumes[0].path, "/data");
  ASSERT_EQ(grant.volumes[0].key.size(), 32u);
  EXPECT_EQ(grant.volumes[0].key[31], 0x1f);
  EXPECT_TRUE(grant.volumes[0].tag.empty());
  EXPECT_EQ(grant.volumes[0].update_policy, "rollback-protected");
  ASSERT_EQ(grant.volumes[1].tag.size(), 32u);
  EXPECT_EQ(grant.volumes[1].tag[0], 0xff);
  EXPECT_EQ(grant.volumes[1].update_policy, "");
  EXPECT_EQ(grant.volume_token, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(CasReplyTest, OptionalPartsMayBeMissing) {
  auto g = ParseCasReply(200, Span(R"({"session":"shop","service":"web"})"), Ctx());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_TRUE(g.value().command.empty());
  EXPECT_TRUE(g.value().environment.empty());
  EXPECT_TRUE(g.value().pwd.empty());
  EXPECT_TRUE(g.value().files.empty());
  EXPECT_TRUE(g.value().volumes.empty());
  EXPECT_TRUE(g.value().volume_token.empty());
  auto empty_token = ParseCasReply(200, Span(R"({"session":"shop","service":"web","volume_token":""})"), Ctx());
  ASSERT_TRUE(empty_token.ok()) << empty_token.error();
  EXPECT_TRUE(empty_token.value().volume_token.empty());
}

TEST(CasReplyTest, RefusesMalformedGrants) {
  const char* kHead = R"({"session":"shop","service":"web",)";
  for (std::string bad : std::vector<std::string>{
           "",
           "not json",
           "[]",
           R"({"session":"shop","service":"api"})",
           R"({"session":"other","service":"web"})",
           R"({"service":"web"})",
           std::string(kHead) + R"("command":"python3"})",
           std::string(kHead) + R"("command":["a",1]})",
           std::string(kHead) + R"("command":["a\u0000b"]})",
           std::string(kHead) + R"("environment":["A=b"]})",
           std::string(kHead) + R"("environment":{"A":1}})",
           std::string(kHead) + R"("environment":{"A=B":"c"}})",
           std::string(kHead) + R"("environment":{"":"c"}})",
           std::string(kHead) + R"("pwd":"app"})",
           std::string(kHead) + R"("pwd":7})",
           std::string(kHead) + R"("files":[{"path":"etc/x","mode":256,"content":""}]})",
           std::string(kHead) + R"("files":[{"path":"/","mode":256,"content":""}]})",
           std::string(kHead) + R"("files":[{"path":"/x","mode":4096,"content":""}]})",
           std::string(kHead) + R"("files":[{"path":"/x","mode":-1,"content":""}]})",
           std::string(kHead) + R"("files":[{"path":"/x","mode":"0400","content":""}]})",
           std::string(kHead) + R"("files":[{"path":"/x","mode":256,"content":"a b"}]})",
           std::string(kHead) + R"("files":[{"path":"/x","mode":256}]})",
           std::string(kHead) + R"("volumes":[{"name":"d","path":"/d","key":"00"}]})",
           std::string(kHead) + R"("volumes":[{"name":"d","path":"d","key":")" + std::string(64, '0') + R"("}]})",
           std::string(kHead) + R"("volumes":[{"name":"d","path":"/d","key":")" + std::string(64, '0') +
               R"(","tag":"00"}]})",
           std::string(kHead) + R"("volume_token":7})",
           std::string(kHead) + R"("volume_token":"AQ"})",
           std::string(kHead) + R"("volume_token":"AR=="})",
           std::string(kHead) + R"("volume_token":")" + std::string(688, 'A') + R"("})",
       }) {
    auto g = ParseCasReply(200, Span(bad), Ctx());
    EXPECT_FALSE(g.ok()) << bad;
    if (!g.ok()) {
      EXPECT_NE(g.error().find("the CAS at cas:18765 sent a malformed grant"), std::string::npos) << g.error();
      EXPECT_NE(g.error().find("(evidence: sim)"), std::string::npos) << g.error();
    }
  }
}

TEST(CasReplyTest, MalformedGrantMessagesDoNotQuoteSecrets) {
  std::string bad = R"({"session":"shop","service":"web","environment":{"DB_PASSWORD":"s3cret","X":1}})";
  auto g = ParseCasReply(200, Span(bad), Ctx());
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().find("s3cret"), std::string::npos);
}

std::string Refusal(int status, const std::string& reason, const std::string& error = "what failed") {
  std::string body = R"({"error": ")" + error + R"(", "reason": ")" + reason + R"(", "evidence": "sim"})";
  auto g = ParseCasReply(status, Span(body), Ctx());
  EXPECT_FALSE(g.ok());
  return g.ok() ? "" : g.error();
}

TEST(CasReplyTest, ExplainsEveryRefusalReason) {
  std::map<std::string, std::string> expected = {
      {"unknown-config", "unknown session or service for CLOISTER_CONFIG_ID=shop/web"},
      {"measurement-not-allowed", "executable " + std::string(64, '1') + ", runtime " + std::string(64, '2')},
      {"evidence-type-not-allowed", "does not allow this evidence type"},
      {"node-not-certified", "no valid certificate from this CAS"},
      {"node-revoked", "revoked"},
      {"evidence-stale", "clocks"},
      {"evidence-not-bound", "not bound"},
      {"evidence-invalid", "invalid: what failed"},
      {"bad-request", "could not read the request: what failed"},
  };
  for (const auto& [reason, phrase] : expected) {
    std::string m = Refusal(reason == "unknown-config" ? 404 : reason == "bad-request" ? 400 : 403, reason);
    EXPECT_NE(m.find("the CAS at cas:18765 refused: "), std::string::npos) << m;
    EXPECT_NE(m.find(phrase), std::string::npos) << reason << ": " << m;
    EXPECT_NE(m.find("(evidence: sim)"), std::string::npos) << m;
  }
  // Each reason has its own text.
  std::set<std::string> distinct;
  for (const auto& entry : expected) distinct.insert(Refusal(403, entry.first));
  EXPECT_EQ(distinct.size(), expected.size());
}

TEST(CasReplyTest, OtherRefusalsQuoteTheCasWithTheStatus) {
  std::string m = Refusal(500, "store-unavailable", "the store is down");
  EXPECT_NE(m.find("the CAS at cas:18765 answered HTTP 500: the store is down"), std::string::npos) << m;
  EXPECT_NE(m.find("(evidence: sim)"), std::string::npos) << m;

  auto g = ParseCasReply(404, Span("<html>not found</html>"), Ctx());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().find("answered HTTP 404 without a reason"), std::string::npos) << g.error();
  EXPECT_NE(g.error().find("attestation endpoint, port 18765"), std::string::npos) << g.error();
  EXPECT_NE(g.error().find("(evidence: sim)"), std::string::npos) << g.error();

  // A peer's text cannot add lines to the one failure line.
  m = Refusal(503, "x", "line one\\nline two\\r");
  EXPECT_EQ(m.find('\n'), std::string::npos);
  EXPECT_EQ(m.find('\r'), std::string::npos);
}

TEST(CasReplyTest, TheRefusalNamesTheEvidenceTypeTheCasSaw) {
  std::string body = R"({"error": "x", "reason": "node-revoked", "evidence": "tdx"})";
  auto g = ParseCasReply(403, Span(body), Ctx());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().find("(evidence: tdx)"), std::string::npos) << g.error();
}

// ---- argv and environment ----

std::vector<std::string> Plain(const std::vector<SecretString>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.emplace_back(s.data(), s.size());
  return out;
}

TEST(LaunchTest, CommandReplacesTheHostArguments) {
  char a0[] = "/usr/bin/python3", a1[] = "--host-flag";
  char* argv[] = {a0, a1, nullptr};
  EXPECT_EQ(Plain(BuildArguments({"python3", "/app/main.py"}, 2, argv)),
            (std::vector<std::string>{"python3", "/app/main.py"}));
  EXPECT_EQ(Plain(BuildArguments({}, 2, argv)), (std::vector<std::string>{"/usr/bin/python3", "--host-flag"}));
}

TEST(LaunchTest, EnvironmentIsTheSessionsPlusTheAllowList) {
  char e0[] = "PATH=/host/bin", e1[] = "LD_PRELOAD=/lib/libcloister-runtime.so", e2[] = "CLOISTER_CONFIG_ID=shop/web",
       e3[] = "TERM=xterm", e4[] = "TZ=Europe/Berlin", e5[] = "TERMINAL=x", e6[] = "HOME=/root",
       e7[] = "CLOISTER_CAS_KEY=00";
  char* host[] = {e0, e1, e2, e3, e4, e5, e6, e7, nullptr};
  std::vector<std::pair<std::string, SecretString>> session = {{"DB_PASSWORD", "s3cret"}, {"PATH", "/usr/bin"}};
  EXPECT_EQ(Plain(BuildEnvironment(session, host)),
            (std::vector<std::string>{"DB_PASSWORD=s3cret", "PATH=/usr/bin", "TERM=xterm", "TZ=Europe/Berlin"}));

  // What the session sets wins, LD_PRELOAD and CLOISTER_* included.
  session = {{"TERM", "dumb"}, {"LD_PRELOAD", "/opt/l.so"}, {"CLOISTER_LOG", "debug"}};
  EXPECT_EQ(Plain(BuildEnvironment(session, host)),
            (std::vector<std::string>{"TERM=dumb", "LD_PRELOAD=/opt/l.so", "CLOISTER_LOG=debug", "TZ=Europe/Berlin"}));

  EXPECT_TRUE(BuildEnvironment({}, nullptr).empty());
  char* none[] = {nullptr};
  EXPECT_TRUE(BuildEnvironment({}, none).empty());
}

// ---- the LAS socket ----

TEST(LasTest, EncodesTheRequest) {
  ReportData rd;
  for (size_t i = 0; i < rd.size(); ++i) rd[i] = static_cast<uint8_t>(i);
  auto r = EncodeLasRequest(rd);
  ASSERT_EQ(r.size(), 40u);
  EXPECT_EQ(std::string(r.begin(), r.begin() + 4), "CLCQ");
  EXPECT_EQ(r[4], 1);
  EXPECT_EQ(r[5], 0);
  EXPECT_EQ(r[6], 1);
  EXPECT_EQ(r[7], 0);
  EXPECT_EQ(r[8], 0);
  EXPECT_EQ(r[39], 31);
}

std::array<uint8_t, kLasResponseHeaderSize> Header(const char magic[5], uint16_t version, uint8_t status,
                                                   uint32_t length) {
  std::array<uint8_t, kLasResponseHeaderSize> h{};
  std::memcpy(h.data(), magic, 4);
  h[4] = static_cast<uint8_t>(version);
  h[5] = static_cast<uint8_t>(version >> 8);
  h[6] = status;
  for (int i = 0; i < 4; ++i) h[8 + i] = static_cast<uint8_t>(length >> (8 * i));
  return h;
}

TEST(LasTest, ParsesResponseHeaders) {
  auto ok = ParseLasResponseHeader(Header("CLCR", 1, 0, 1234));
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_FALSE(ok.value().refused);
  EXPECT_EQ(ok.value().length, 1234u);
  auto refused = ParseLasResponseHeader(Header("CLCR", 1, 1, 10));
  ASSERT_TRUE(refused.ok());
  EXPECT_TRUE(refused.value().refused);
  EXPECT_TRUE(ParseLasResponseHeader(Header("CLCR", 1, 0, kMaxLasEvidence)).ok());
  EXPECT_TRUE(ParseLasResponseHeader(Header("CLCR", 1, 1, kMaxLasMessage)).ok());
  EXPECT_TRUE(ParseLasResponseHeader(Header("CLCR", 1, 1, 0)).ok());  // a refusal without words
}

TEST(LasTest, RefusesBadResponseHeaders) {
  auto bad_magic = ParseLasResponseHeader(Header("CLCQ", 1, 0, 10));
  ASSERT_FALSE(bad_magic.ok());
  EXPECT_NE(bad_magic.error().find("magic"), std::string::npos);
  EXPECT_FALSE(ParseLasResponseHeader(Header("HTTP", 1, 0, 10)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 2, 0, 10)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 3, 10)).ok());
  EXPECT_TRUE(ParseLasResponseHeader(Header("CLCR", 1, 2, 10)).value().relayed);
  EXPECT_TRUE(ParseLasResponseHeader(Header("CLCR", 1, 2, kMaxLasRelayed)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 2, kMaxLasRelayed + 1)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 2, 0)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 0, kMaxLasEvidence + 1)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 1, kMaxLasMessage + 1)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 0, 0xffffffff)).ok());
  EXPECT_FALSE(ParseLasResponseHeader(Header("CLCR", 1, 0, 0)).ok());  // empty evidence
}

TEST(LasTest, AMissingSocketIsUnreachableAndNamed) {
  auto r = RequestEvidence("/nonexistent/cloister/las.sock", ReportData{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("the LAS at /nonexistent/cloister/las.sock is unreachable"), std::string::npos) << r.error();
}

TEST(LasTest, ReadsTypeAndMeasurementsFromEvidence) {
  EXPECT_EQ(EvidenceTypeName(kEvidence), "sim");
  std::vector<uint8_t> other = kEvidence;
  other[6] = 9;
  EXPECT_EQ(EvidenceTypeName(other), "type 9");
  EXPECT_EQ(EvidenceTypeName(std::span<const uint8_t>(kEvidence.data(), 6)), "");
  std::string exe, rt;
  ASSERT_TRUE(EvidenceMeasurements(kEvidence, &exe, &rt));
  EXPECT_EQ(exe, std::string(64, '1'));
  EXPECT_EQ(rt, std::string(64, '2'));
  EXPECT_FALSE(EvidenceMeasurements(std::span<const uint8_t>(kEvidence.data(), 102), &exe, &rt));
}

// ---- HTTP ----

HttpParse Parse(std::string_view raw, bool eof, HttpResponse* r) { return ParseHttpResponse(Span(raw), eof, r); }

std::string Body(const HttpResponse& r) { return std::string(r.body.begin(), r.body.end()); }

TEST(HttpTest, ParsesContentLengthResponses) {
  HttpResponse r;
  std::string raw = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhello";
  ASSERT_EQ(Parse(raw, false, &r), HttpParse::kComplete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), "hello");
  EXPECT_EQ(Parse(raw.substr(0, raw.size() - 1), false, &r), HttpParse::kIncomplete);
  EXPECT_EQ(Parse(raw.substr(0, raw.size() - 1), true, &r), HttpParse::kIncomplete);  // cut short
  EXPECT_EQ(Parse(raw.substr(0, 20), false, &r), HttpParse::kIncomplete);
  ASSERT_EQ(Parse("HTTP/1.0 403\r\nContent-Length: 0\r\n\r\n", false, &r), HttpParse::kComplete);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r), "");
}

TEST(HttpTest, ParsesChunkedAndCloseDelimitedResponses) {
  HttpResponse r;
  std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n";
  ASSERT_EQ(Parse(chunked, false, &r), HttpParse::kComplete);
  EXPECT_EQ(Body(r), "hello!");
  for (size_t cut = 40; cut < chunked.size(); ++cut) {
    EXPECT_EQ(Parse(chunked.substr(0, cut), false, &r), HttpParse::kIncomplete) << cut;
  }
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", false, &r),
            HttpParse::kMalformed);
  EXPECT_EQ(Parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &r), HttpParse::kMalformed);

  std::string plain = "HTTP/1.1 500 Internal Server Error\r\n\r\noops";
  EXPECT_EQ(Parse(plain, false, &r), HttpParse::kIncomplete);
  ASSERT_EQ(Parse(plain, true, &r), HttpParse::kComplete);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Body(r), "oops");
}

TEST(HttpTest, SkipsInterimResponses) {
  HttpResponse r;
  ASSERT_EQ(Parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, &r),
            HttpParse::kComplete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), "ok");
}

TEST(HttpTest, RefusesMalformedResponses) {
  HttpResponse r;
  for (std::string bad :
       {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"}) {
    EXPECT_EQ(Parse(bad, true, &r), HttpParse::kMalformed) << bad;
  }
  std::string endless = "HTTP/1.1 200 OK\r\nX: " + std::string(kMaxHttpHeader, 'a');
  EXPECT_EQ(Parse(endless, false, &r), HttpParse::kMalformed);
}

TEST(HttpTest, BuildsTheAttestRequest) {
  auto cas = ParseCasAddress("[::1]:18765");
  ASSERT_TRUE(cas.ok());
  std::vector<uint8_t> evidence = {1, 2, 3, 4, 250};
  std::string r = BuildAttestRequest(cas.value(), "shop/web", evidence);
  size_t head_end = r.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  std::string head = r.substr(0, head_end + 2), body = r.substr(head_end + 4);
  EXPECT_EQ(head.rfind("POST /v1/attest HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(head.find("\r\nHost: [::1]:18765\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(body, R"({"config_id":"shop/web","evidence":"AQIDBPo="})");
}

// ---- encodings ----

TEST(EncodingTest, HexRoundTrips) {
  std::array<uint8_t, 3> out{};
  ASSERT_TRUE(HexDecode("00aBff", out));
  EXPECT_EQ(HexEncode(out), "00abff");
  EXPECT_FALSE(HexDecode("00aBf", out));
  EXPECT_FALSE(HexDecode("00aBfg", out));
  EXPECT_FALSE(HexDecode("00aBff00", out));
}

TEST(EncodingTest, Base64IsStrict) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    SecretBytes out;
    std::string enc = Base64Encode(Span(s));
    ASSERT_TRUE(Base64Decode(enc, &out)) << enc;
    EXPECT_EQ(std::string(out.begin(), out.end()), s);
  }
  EXPECT_EQ(Base64Encode(Span("foobar")), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(Span("fo")), "Zm8=");
  SecretBytes out;
  for (const char* bad : {"Zm8", "Zm8==", "Z===", "Zm9=Zm8=", "Zm 8", "Zm8\n", "Zm9-", "Zm9_", "Zm9=", "Zh=="}) {
    EXPECT_FALSE(Base64Decode(bad, &out)) << bad;
  }
}

// ---- the fresh key ----

TEST(ClientIdentityTest, TheReportDataIsKnownBeforeTheCertificate) {
  auto key = CreateClientKey();
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(key.value().certificate, nullptr);
  ReportData before = key.value().report_data;
  ASSERT_TRUE(CertifyClientKey(key.value()).ok());
  ASSERT_NE(key.value().certificate, nullptr);
  EXPECT_EQ(key.value().report_data, before);
}

TEST(ClientIdentityTest, ReportDataIsTheHashOfTheCertifiedPublicKey) {
  auto id = CreateClientIdentity();
  ASSERT_TRUE(id.ok()) << id.error();
  auto again = CreateClientIdentity();
  ASSERT_TRUE(again.ok());
  EXPECT_NE(id.value().report_data, again.value().report_data);  // fresh every time

  EVP_PKEY* cert_key = X509_get0_pubkey(id.value().certificate.get());
  ASSERT_NE(cert_key, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(cert_key, id.value().key.get()), 1);
  EXPECT_EQ(X509_verify(id.value().certificate.get(), id.value().key.get()), 1);  // self-signed

  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(id.value().certificate.get()), &der);
  ASSERT_GT(n, 0);
  uint8_t digest[32];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(der, static_cast<size_t>(n), digest, &len, EVP_sha256(), nullptr), 1);
  OPENSSL_free(der);
  EXPECT_EQ(0, std::memcmp(digest, id.value().report_data.data(), 32));

  // The same bytes as the key's own encoding (docs/protocol.md: SHA-256 of
  // the DER SubjectPublicKeyInfo of the fresh key).
  der = nullptr;
  n = i2d_PUBKEY(id.value().key.get(), &der);
  ASSERT_GT(n, 0);
  ASSERT_EQ(EVP_Digest(der, static_cast<size_t>(n), digest, &len, EVP_sha256(), nullptr), 1);
  OPENSSL_free(der);
  EXPECT_EQ(0, std::memcmp(digest, id.value().report_data.data(), 32));
}

// ---- relayed request to the LAS (docs/protocol.md section 6) ----

TEST(LasTest, RelayedRequestHasTheDocumentedLayout) {
  ReportData report_data;
  for (size_t i = 0; i < report_data.size(); ++i) report_data[i] = static_cast<uint8_t>(0x10 + i);
  relay::Point point;
  point[0] = 0x04;
  for (size_t i = 1; i < point.size(); ++i) point[i] = static_cast<uint8_t>(0x80 + i);
  // 300 bytes: both bytes of the length are non-zero, so their order shows.
  std::string config_id = "shop/" + std::string(295, 'w');

  std::vector<uint8_t> r = EncodeRelayedLasRequest(report_data, point, config_id);
  ASSERT_EQ(r.size(), 40u + 65u + 2u + 300u);
  const uint8_t head[] = {'C', 'L', 'C', 'Q', 1, 0, 2, 0};  // magic, version 1 LE, kind 2, reserved
  EXPECT_EQ(std::memcmp(r.data(), head, sizeof(head)), 0);
  EXPECT_EQ(std::memcmp(r.data() + 8, report_data.data(), 32), 0);    // bytes 8..39
  EXPECT_EQ(std::memcmp(r.data() + 40, point.data(), 65), 0);         // bytes 40..104
  EXPECT_EQ(r[105], 300 & 0xff);                                      // length, little-endian
  EXPECT_EQ(r[106], 300 >> 8);
  EXPECT_EQ(std::string(r.begin() + 107, r.end()), config_id);

  // The header is the plain request's but for the kind.
  auto plain = EncodeLasRequest(report_data);
  EXPECT_EQ(std::memcmp(r.data(), plain.data(), 6), 0);
  EXPECT_EQ(std::memcmp(r.data() + 7, plain.data() + 7, plain.size() - 7), 0);

  std::vector<uint8_t> short_id = EncodeRelayedLasRequest(report_data, point, "a/b");
  ASSERT_EQ(short_id.size(), 40u + 65u + 2u + 3u);
  EXPECT_EQ(short_id[105], 3);
  EXPECT_EQ(short_id[106], 0);
  EXPECT_EQ(std::string(short_id.begin() + 107, short_id.end()), "a/b");
}

}  // namespace
}  // namespace cloister::runtime
