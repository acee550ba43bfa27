// Golden volumes: volumes written by each format version are checked in
// under tests/golden/vN/ and must open, verify and read back exactly,
// forever; version-1 volumes must also stay writable (in version 1).
// To (re)create them after a deliberate format change, which requires a new
// format version and a new directory:
//   CLOISTER_WRITE_GOLDEN=tests/golden/vN ./build/golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "os/env.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace cloister::volume {
namespace {

using namespace testing;  // NOLINT

struct GoldenSpec {
  const char* name;
  Protection protection;
  uint32_t chunk_size;
  bool checkpointed;  // rotate at every commit: base manifest at seq > 0, journal generation > 1
};

constexpr GoldenSpec kSpecs[] = {
    {"encrypted-512", Protection::kEncrypted, 512, false},
    {"authenticated-512", Protection::kAuthenticatedOnly, 512, false},
    {"encrypted-4096", Protection::kEncrypted, 4096, false},
    {"encrypted-512-checkpointed", Protection::kEncrypted, 512, true},
};

Status Populate(Volume& v) {
  RETURN_IF_ERROR(WriteFile(v, "/README.txt", Str("Golden volume, format version " +
                                                 std::to_string(format::kFormatVersion) +
                                                 ".\nDo not change.\n")));
  RETURN_IF_ERROR(v.Mkdir("/data", 0750));
  RETURN_IF_ERROR(WriteFile(v, "/data/big.bin", Pattern(200 * 1024 + 3, 77)));
  RETURN_IF_ERROR(WriteFile(v, "/data/empty", {}));
  OpenFlags c;
  c.create = true;
  ASSIGN_OR_RETURN(auto sparse, v.OpenFile("/data/sparse", c));
  RETURN_IF_ERROR(sparse->WriteAt(50000, Str("after a hole")));
  sparse.reset();
  RETURN_IF_ERROR(v.Mkdir("/dir", 0755));
  RETURN_IF_ERROR(v.Mkdir("/dir/nested", 0700));
  RETURN_IF_ERROR(WriteFile(v, "/dir/nested/deep.txt", Str("deep")));
  RETURN_IF_ERROR(v.Symlink("data/big.bin", "/link"));
  RETURN_IF_ERROR(v.Commit().status());
  // A second commit that overwrites committed data, so the golden volume
  // holds journal page frames too.
  OpenFlags w;
  w.write = true;
  ASSIGN_OR_RETURN(auto big, v.OpenFile("/data/big.bin", w));
  RETURN_IF_ERROR(big->WriteAt(1000, Pattern(3000, 78)));
  big.reset();
  RETURN_IF_ERROR(v.Truncate("/README.txt", 20));
  RETURN_IF_ERROR(v.Chmod("/dir/nested/deep.txt", 0600));
  return v.Commit().status();
}

std::string Digest(const Bytes& b) { return HexEncode(crypto::Sha256(b)); }

StatusOr<std::map<std::string, std::string>> Describe(Volume& v) {
  std::map<std::string, std::string> out;
  std::vector<std::string> dirs{"/"};
  while (!dirs.empty()) {
    std::string d = dirs.back();
    dirs.pop_back();
    ASSIGN_OR_RETURN(auto list, v.List(d));
    for (const auto& e : list) {
      std::string p = (d == "/" ? "" : d) + "/" + e.name;
      ASSIGN_OR_RETURN(Stat st, v.GetStat(p));
      std::ostringstream line;
      line << static_cast<int>(e.type) << " " << std::oct << st.mode << std::dec << " " << st.size;
      if (e.type == FileType::kDirectory) {
        dirs.push_back(p);
      } else if (e.type == FileType::kSymlink) {
        ASSIGN_OR_RETURN(std::string t, v.ReadLink(p));
        line << " -> " << t;
      } else {
        ASSIGN_OR_RETURN(Bytes data, ReadFile(v, p));
        line << " " << Digest(data);
      }
      out[p] = line.str();
    }
  }
  return out;
}

std::string GoldenDir(int version) {
  const char* src = std::getenv("CLOISTER_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/golden/v" + std::to_string(version);
}

struct Golden {
  SecretBytes key;
  std::map<std::string, std::map<std::string, std::string>> expect;
  std::map<std::string, std::string> tags;
};

// Reads DIR/expected.txt; false if there is none.
bool ReadExpected(const std::string& dir, Golden* g) {
  std::ifstream in(dir + "/expected.txt");
  if (!in) return false;
  std::string word, key_hex;
  in >> word >> key_hex;
  EXPECT_EQ(word, "key");
  auto key_bytes = HexDecode(key_hex);
  EXPECT_TRUE(key_bytes.has_value());
  g->key = SecretBytes(key_bytes->data(), key_bytes->size());
  std::string line;
  std::getline(in, line);
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("volume ", 0) == 0) {
      std::istringstream ls(line);
      ls >> word >> current;
      ls >> g->tags[current];
    } else if (line.size() > 2) {
      auto sp = line.find(' ', 2);
      g->expect[current][line.substr(2, sp - 2)] = line.substr(sp + 1);
    }
  }
  return true;
}

StatusOr<uint32_t> HeaderVersion(const std::string& dir) {
  ASSIGN_OR_RETURN(Bytes h, os::Env::Posix().ReadWholeFile(dir + "/" + format::kHeaderFile, 4096));
  ASSIGN_OR_RETURN(format::Header header, format::ParseHeader(h));
  return header.version;
}

TEST(GoldenTest, WriteGoldenVolumesWhenAsked) {
  const char* out = std::getenv("CLOISTER_WRITE_GOLDEN");
  if (out == nullptr) GTEST_SKIP() << "set CLOISTER_WRITE_GOLDEN=DIR to write golden volumes";
  os::Env& env = os::Env::Posix();
  SecretBytes key = TestKey(42);
  std::ofstream expected(std::string(out) + "/expected.txt");
  expected << "key " << HexEncode(key.UnsafeBytes()) << "\n";
  for (const GoldenSpec& spec : kSpecs) {
    CreateOptions c;
    c.protection = spec.protection;
    c.chunk_size = spec.chunk_size;
    std::string dir = std::string(out) + "/" + spec.name;
    // Version 3: every rewrite of committed data is relocated, so the
    // volumes hold alternate data objects (docs/volume-format.md, 19.11).
    OpenOptions o;
    o.relocate_min_bytes = 0;
    auto v = Volume::Create(env, dir, key, c, o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    if (spec.checkpointed) {
      v->reset();
      o.journal_rotate_bytes = 1;
      v = Volume::Open(env, dir, key, o);
      ASSERT_TRUE(v.ok()) << v.status().ToString();
    }
    ASSERT_OK(Populate(**v));
    expected << "volume " << spec.name << " " << TagToHex((*v)->Info().tag) << "\n";
    auto desc = Describe(**v);
    ASSERT_TRUE(desc.ok());
    for (const auto& [path, line] : *desc) expected << "  " << path << " " << line << "\n";
  }
}

class GoldenVersionTest : public ::testing::TestWithParam<int> {};

TEST_P(GoldenVersionTest, VolumesOpenVerifyAndReadBack) {
  const int version = GetParam();
  Golden g;
  if (!ReadExpected(GoldenDir(version), &g)) GTEST_SKIP() << "no golden volumes at " << GoldenDir(version);
  ASSERT_EQ(g.tags.size(), std::size(kSpecs));
  for (const auto& [name, tag_hex] : g.tags) {
    SCOPED_TRACE(name);
    auto v_on_disk = HeaderVersion(GoldenDir(version) + "/" + name);
    ASSERT_TRUE(v_on_disk.ok()) << v_on_disk.status().ToString();
    EXPECT_EQ(*v_on_disk, static_cast<uint32_t>(version));
    OpenOptions o;
    o.read_only = true;  // the checked-in files must not change
    o.expected_tag = *TagFromHex(tag_hex);
    auto v = Volume::Open(os::Env::Posix(), GoldenDir(version) + "/" + name, g.key, o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ((*v)->Info().format_version, static_cast<uint32_t>(version));
    auto desc = Describe(**v);
    ASSERT_TRUE(desc.ok()) << desc.status().ToString();
    EXPECT_EQ(*desc, g.expect[name]);
    auto report = (*v)->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty());
    EXPECT_GT(report->chunks, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, GoldenVersionTest, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return "v" + std::to_string(info.param); });

// A volume of an older version stays writable and stays in its version:
// version 1 commits carry the whole manifest and checkpoints write
// version-1 base manifests; neither version 1 nor 2 relocates a chunk.
class OlderGoldenTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(OlderGoldenTest, VolumesStayWritableInTheirVersion) {
  const uint32_t version = GetParam();
  Golden g;
  if (!ReadExpected(GoldenDir(static_cast<int>(version)), &g)) {
    GTEST_SKIP() << "no golden volumes at " << GoldenDir(static_cast<int>(version));
  }
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("cloister-golden-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  for (const auto& [name, tag_hex] : g.tags) {
    SCOPED_TRACE(name);
    const std::string dir = (tmp / name).string();
    fs::create_directories(tmp);
    fs::copy(GoldenDir(static_cast<int>(version)) + "/" + name, dir, fs::copy_options::recursive);
    OpenOptions o;
    o.expected_tag = *TagFromHex(tag_hex);
    o.journal_rotate_bytes = 1;  // rotate at every commit: checkpoints too
    o.relocate_min_bytes = 0;    // would relocate every rewrite in version 3
    Tag last{};
    {
      auto v = Volume::Open(os::Env::Posix(), dir, g.key, o);
      ASSERT_TRUE(v.ok()) << v.status().ToString();
      for (int i = 0; i < 3; ++i) {
        ASSERT_OK(WriteFile(**v, "/added-" + std::to_string(i), Pattern(3000 + i, 5 + i)));
        if (i == 0) ASSERT_OK((*v)->Remove("/dir/nested/deep.txt"));
        if (i == 1) {  // a rewrite of committed chunks
          OpenFlags w;
          w.write = true;
          auto big = (*v)->OpenFile("/data/big.bin", w);
          ASSERT_TRUE(big.ok()) << big.status().ToString();
          ASSERT_OK((*big)->WriteAt(0, Pattern(100 * 1024, 9)));
        }
        auto t = (*v)->Commit();
        ASSERT_TRUE(t.ok()) << t.status().ToString();
        last = *t;
      }
    }
    auto on_disk = HeaderVersion(dir);
    ASSERT_TRUE(on_disk.ok());
    EXPECT_EQ(*on_disk, version);
    for (const auto& entry : fs::directory_iterator(fs::path(dir) / "objects")) {
      EXPECT_NE(entry.path().extension(), ".b") << "a version-" << version << " volume got " << entry.path();
    }
    OpenOptions again;
    again.expected_tag = last;
    auto v = Volume::Open(os::Env::Posix(), dir, g.key, again);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ((*v)->Info().format_version, version);
    for (int i = 0; i < 3; ++i) {
      auto data = ReadFile(**v, "/added-" + std::to_string(i));
      ASSERT_TRUE(data.ok());
      EXPECT_EQ(*data, Pattern(3000 + i, 5 + i));
    }
    EXPECT_EQ((*v)->GetStat("/dir/nested/deep.txt").status().code(), StatusCode::kNotFound);
    auto big = ReadFile(**v, "/data/big.bin");
    ASSERT_TRUE(big.ok());
    ASSERT_GE(big->size(), 100u * 1024);
    EXPECT_TRUE(std::equal(big->begin(), big->begin() + 100 * 1024, Pattern(100 * 1024, 9).begin()));
    auto report = (*v)->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  }
  fs::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Versions, OlderGoldenTest, ::testing::Values(1u, 2u),
                         [](const auto& info) { return "v" + std::to_string(info.param); });

}  // namespace
}  // namespace cloister::volume
