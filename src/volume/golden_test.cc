// Golden volumes: volumes written by format version 1 are checked in under
// tests/golden/v1/ and must open, verify and read back exactly, forever.
// To (re)create them after a deliberate format change, which requires a new
// format version and a new directory:
//   CLOISTER_WRITE_GOLDEN=tests/golden/vN ./build/golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "os/env.h"
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
  RETURN_IF_ERROR(WriteFile(v, "/README.txt", Str("Golden volume, format version 1.\nDo not change.\n")));
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

std::string GoldenDir() {
  const char* src = std::getenv("CLOISTER_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/golden/v1";
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
    auto v = Volume::Create(env, dir, key, c);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    if (spec.checkpointed) {
      v->reset();
      OpenOptions o;
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

TEST(GoldenTest, Version1VolumesOpenVerifyAndReadBack) {
  std::ifstream in(GoldenDir() + "/expected.txt");
  if (!in) GTEST_SKIP() << "no golden volumes at " << GoldenDir();
  std::string word, key_hex;
  in >> word >> key_hex;
  ASSERT_EQ(word, "key");
  auto key_bytes = HexDecode(key_hex);
  ASSERT_TRUE(key_bytes.has_value());
  SecretBytes key(key_bytes->data(), key_bytes->size());
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::map<std::string, std::string>> expect;
  std::map<std::string, std::string> tags;
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("volume ", 0) == 0) {
      std::istringstream ls(line);
      ls >> word >> current;
      ls >> tags[current];
    } else if (line.size() > 2) {
      auto sp = line.find(' ', 2);
      expect[current][line.substr(2, sp - 2)] = line.substr(sp + 1);
    }
  }
  ASSERT_EQ(tags.size(), std::size(kSpecs));
  for (const auto& [name, tag_hex] : tags) {
    SCOPED_TRACE(name);
    OpenOptions o;
    o.read_only = true;  // the checked-in files must not change
    o.expected_tag = *TagFromHex(tag_hex);
    auto v = Volume::Open(os::Env::Posix(), GoldenDir() + "/" + name, key, o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    auto desc = Describe(**v);
    ASSERT_TRUE(desc.ok()) << desc.status().ToString();
    EXPECT_EQ(*desc, expect[name]);
    auto report = (*v)->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty());
    EXPECT_GT(report->chunks, 0u);
  }
}

}  // namespace
}  // namespace cloister::volume
