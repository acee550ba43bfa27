// `image protect` on images built here, layer by layer: the merged content
// of a protected directory (whiteouts and opaque directories applied) is
// what its volume holds, nothing of it is left in any layer, everything
// else is unchanged, and the outputs are well-formed images in each form.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/bytes.h"
#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "image/oci.h"
#include "image/protect.h"
#include "os/env.h"
#include "policy/policy.h"

namespace cloister::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Entry {
  std::string name;
  char type = 'f';  // f file, d dir, l symlink, h hard link, w whiteout of name, o opaque marker in name
  std::string data;  // file content, or link target
  uint32_t mode = 0644;
};

std::string Tar(const std::vector<Entry>& entries) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open2(
      a, &out, nullptr,
      [](struct archive*, void* o, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(o)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr, nullptr);
  for (const Entry& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    std::string name = e.name;
    if (e.type == 'w') name = e.name.substr(0, e.name.rfind('/') + 1) + ".wh." + e.name.substr(e.name.rfind('/') + 1);
    if (e.type == 'o') name = e.name + "/.wh..wh..opq";
    archive_entry_set_pathname(ae, name.c_str());
    archive_entry_set_perm(ae, e.mode);
    archive_entry_set_mtime(ae, 1700000000, 0);
    switch (e.type) {
      case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
      case 'l':
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_symlink(ae, e.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_hardlink(ae, e.data.c_str());
        break;
      default:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_size(ae, e.type == 'f' ? static_cast<la_int64_t>(e.data.size()) : 0);
    }
    archive_write_header(a, ae);
    if (e.type == 'f') archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string Gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  inflateInit2(&z, 31);
  std::string out;
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int r;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    r = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  } while (r == Z_OK);
  inflateEnd(&z);
  return out;
}

std::string Digest(const std::string& bytes) { return DigestString(crypto::Sha256(AsBytes(bytes))); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

// The entries of a tar (compressed or not), name -> content ("" for others).
std::map<std::string, std::string> TarEntries(const std::string& bytes) {
  std::map<std::string, std::string> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_open_memory(a, bytes.data(), bytes.size());
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string data;
    char buf[4096];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    out[archive_entry_pathname(e)] = data;
  }
  archive_read_free(a);
  return out;
}

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cloister-image-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    runtime_ = dir_ + "/libcloister-runtime.so";
    WriteAll(runtime_, "not really a runtime library, but bytes to measure and copy");
    fs::create_directories(dir_ + "/work");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // An OCI layout at dir_/NAME holding one image tagged "t".
  std::string Layout(const std::string& name, const std::vector<std::vector<Entry>>& layers,
                     const json& cfg_extra = json::object()) {
    const std::string layout = dir_ + "/" + name;
    fs::create_directories(layout + "/blobs/sha256");
    WriteAll(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    auto blob = [&](const std::string& bytes) {
      const std::string d = Digest(bytes);
      WriteAll(layout + "/blobs/sha256/" + d.substr(7), bytes);
      return d;
    };
    json cfg = {{"architecture", "amd64"},
                {"os", "linux"},
                {"config", {{"Entrypoint", {"/usr/bin/prog"}}, {"Cmd", {"--serve"}}, {"Env", {"PATH=/usr/bin", "MODE=x"}},
                            {"WorkingDir", "/app"}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}},
                {"history", json::array()}};
    cfg["config"].update(cfg_extra);
    json manifest = {{"schemaVersion", 2}, {"mediaType", kOciManifest}, {"layers", json::array()}};
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string tar = Tar(layers[i]);
      cfg["rootfs"]["diff_ids"].push_back(Digest(tar));
      cfg["history"].push_back({{"created_by", "layer " + std::to_string(i)}});
      const bool gz = i % 2 == 0;
      // The third layer's gzip is two members, which decompress as one stream.
      const std::string bytes = !gz ? tar
                                : i == 2 ? Gzip(tar.substr(0, 1536)) + Gzip(tar.substr(1536))
                                         : Gzip(tar);
      manifest["layers"].push_back(
          {{"mediaType", gz ? kOciLayerGzip : kOciLayerTar}, {"digest", blob(bytes)}, {"size", bytes.size()}});
    }
    const std::string c = cfg.dump();
    manifest["config"] = {{"mediaType", kOciConfig}, {"digest", blob(c)}, {"size", c.size()}};
    const std::string m = manifest.dump();
    json index = {{"schemaVersion", 2},
                  {"manifests",
                   {{{"mediaType", kOciManifest},
                     {"digest", blob(m)},
                     {"size", m.size()},
                     {"annotations", {{"org.opencontainers.image.ref.name", "t"}}}}}}};
    WriteAll(layout + "/index.json", index.dump());
    return layout;
  }

  ProtectOptions Options(const std::string& from, const std::string& to) {
    ProtectOptions o;
    o.from = *ParseImageRef(from);
    o.to = *ParseImageRef(to);
    o.dirs = {{"/app", true}};
    o.session = "img/test";
    o.service = "svc";
    o.cas_key = std::string(64, 'a');
    o.runtime_file = runtime_;
    o.allow = {"sim"};
    o.tolerate = {"simulation"};
    o.work_dir = dir_ + "/work";
    return o;
  }

  StatusOr<ProtectResult> Run(const ProtectOptions& o) {
    fs::remove_all(o.work_dir);
    fs::create_directories(o.work_dir);
    return Protect(o, [](uint64_t, uint64_t) {});
  }

  std::string dir_, runtime_;
};

const std::vector<Entry> kBase = {
    {"usr/", 'd', "", 0755},           {"usr/bin/", 'd', "", 0755},
    {"usr/bin/prog", 'f', "\x7f" "ELF program bytes", 0755},
    {"usr/bin/alias", 'l', "prog"},    {"etc/", 'd', "", 0755},
    {"etc/motd", 'f', "welcome"},
};
const std::vector<Entry> kApp = {
    {"app/", 'd', "", 0750},
    {"app/data.csv", 'f', "id,secret\n1,PLAINTEXT-MARKER-ONE\n", 0640},
    {"app/old.txt", 'f', "PLAINTEXT-MARKER-OLD"},
    {"app/cache/", 'd', "", 0755},
    {"app/cache/c1", 'f', "PLAINTEXT-MARKER-CACHE"},
    {"app/link", 'l', "data.csv"},
    {"app/hard", 'h', "app/old.txt"},
    {"etc/app.conf", 'f', "outside the protected directory"},
};
const std::vector<Entry> kChange = {
    {"app/data.csv", 'f', "id,secret\n2,PLAINTEXT-MARKER-TWO\n", 0600},
    {"app/old.txt", 'w'},
    {"app/cache", 'o'},
    {"app/cache/cachefile-two", 'f', "PLAINTEXT-MARKER-NEW-CACHE"},
    {"etc/motd", 'f', "changed welcome"},
};

// Reads the volume at `dir` with the key and tag of the session.
std::map<std::string, std::string> VolumeFiles(const std::string& dir, const std::string& session_yaml) {
  policy::ParseResult p = policy::Parse(session_yaml);
  EXPECT_TRUE(p.errors.empty());
  std::map<std::string, std::string> out;
  if (!p.policy) return out;
  const auto& v = p.policy->volumes.at(0);
  volume::OpenOptions oo;
  oo.read_only = true;
  oo.expected_tag = *volume::TagFromHex(v.tag);
  auto vol = volume::Volume::Open(os::Env::Posix(), dir, *v.key, oo);
  EXPECT_TRUE(vol.ok()) << vol.status().ToString();
  if (!vol.ok()) return out;
  std::function<void(const std::string&)> walk = [&](const std::string& d) {
    for (const auto& e : *(*vol)->List(d)) {
      const std::string p = d + "/" + e.name;
      if (e.type == volume::FileType::kDirectory) {
        out[p + "/"] = "";
        walk(p);
      } else if (e.type == volume::FileType::kSymlink) {
        out[p] = "-> " + *(*vol)->ReadLink(p);
      } else {
        auto f = (*vol)->OpenFile(p, volume::OpenFlags{});
        std::vector<uint8_t> buf(1 << 16);
        size_t n = *(*f)->ReadAt(0, buf);
        out[p] = std::string(reinterpret_cast<char*>(buf.data()), n);
      }
    }
  };
  walk("");
  return out;
}

std::string SessionText(const ProtectResult& r) {
  return std::string(reinterpret_cast<const char*>(r.session_yaml.UnsafeBytes().data()), r.session_yaml.size());
}

TEST_F(ImageTest, ProtectsMergedContentAndLeavesNoPlaintext) {
  const std::string src = Layout("src", {kBase, kApp, kChange});
  auto r = Run(Options("oci:" + src + ":t", "oci:" + dir_ + "/out:p"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layers, 3u);
  EXPECT_EQ(r->layers_rewritten, 2u);  // the base layer holds nothing of /app
  EXPECT_EQ(r->binary, "/usr/bin/prog");
  EXPECT_EQ(r->binary_sha256, HexEncode(crypto::Sha256(AsBytes("\x7f" "ELF program bytes"))));

  // The output reads back as an image, every digest checked.
  fs::create_directories(dir_ + "/work2");
  auto out = ReadImage(*ParseImageRef("oci:" + dir_ + "/out:p"), dir_ + "/work2");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->layers.size(), 4u);
  auto in = ReadImage(*ParseImageRef("oci:" + src + ":t"), dir_ + "/work2");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(out->layers[0].digest, in->layers[0].digest);  // untouched layers are copied as they are

  // No plaintext, no name of a protected file, in any blob, compressed or not.
  for (const auto& e : fs::directory_iterator(dir_ + "/out/blobs/sha256")) {
    std::string bytes = ReadAll(e.path());
    if (bytes.size() > 2 && bytes[0] == '\x1f' && bytes[1] == '\x8b') bytes = Gunzip(bytes);
    for (const char* secret : {"PLAINTEXT-MARKER", "data.csv", "old.txt", "cache/c1", "cachefile-two"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in blob " << e.path();
    }
  }

  // Outside /app: each layer's entries are those of the source.
  for (size_t i = 0; i < 3; ++i) {
    auto before = TarEntries(ReadAll(in->layers[i].path));
    auto after = TarEntries(ReadAll(out->layers[i].path));
    std::erase_if(before, [](const auto& kv) { return kv.first.rfind("app", 0) == 0; });
    EXPECT_EQ(before, after) << "layer " << i;
  }
  EXPECT_EQ(out->config["rootfs"]["diff_ids"].size(), 4u);
  EXPECT_EQ(out->config["history"].size(), 4u);
  auto env = out->config["config"]["Env"];
  EXPECT_NE(std::find(env.begin(), env.end(), "LD_PRELOAD=" + std::string(kRuntimeInImage)), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "CLOISTER_CONFIG_ID=img/test/svc"), env.end());

  // The new layer: the volume at /app and the runtime.
  auto top = TarEntries(ReadAll(out->layers[3].path));
  EXPECT_TRUE(top.count("app/cloister-volume"));
  EXPECT_EQ(top["opt/cloister/lib/libcloister-runtime.so"], ReadAll(runtime_));
  fs::create_directories(dir_ + "/vol");
  for (const auto& [name, data] : top) {
    if (name.rfind("app/", 0) != 0 || name.back() == '/') continue;
    fs::create_directories(fs::path(dir_ + "/vol/" + name.substr(4)).parent_path());
    WriteAll(dir_ + "/vol/" + name.substr(4), data);
  }
  auto files = VolumeFiles(dir_ + "/vol", SessionText(*r));
  std::map<std::string, std::string> want = {
      {"/data.csv", "id,secret\n2,PLAINTEXT-MARKER-TWO\n"},
      {"/cache/", ""},
      {"/cache/cachefile-two", "PLAINTEXT-MARKER-NEW-CACHE"},
      {"/link", "-> data.csv"},
      {"/hard", "PLAINTEXT-MARKER-OLD"},  // a hard link becomes a copy, and outlives the removed name
  };
  EXPECT_EQ(files, want);
  // Times are the image's, directories' included (adding their entries does not move them).
  policy::ParseResult p = policy::Parse(SessionText(*r));
  volume::OpenOptions oo;
  oo.read_only = true;
  auto vol = volume::Volume::Open(os::Env::Posix(), dir_ + "/vol", *p.policy->volumes.at(0).key, oo);
  ASSERT_TRUE(vol.ok());
  for (const char* path : {"/", "/cache", "/data.csv"}) {
    auto st = (*vol)->GetStat(path);
    ASSERT_TRUE(st.ok()) << path;
    EXPECT_EQ(st->mtime_ns, int64_t{1700000000} * 1000000000) << path;
  }
}

TEST_F(ImageTest, SessionNamesCommandEnvironmentAndVolume) {
  const std::string src = Layout("src", {kBase, kApp});
  ProtectOptions o = Options("oci:" + src + ":t", "oci:" + dir_ + "/out");
  o.env = {{"MODE", "protected"}, {"TOKEN", "$$CLOISTER::token$$"}};
  o.secrets = {{"token", "ascii"}};
  auto r = Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string doc = SessionText(*r);
  policy::ParseResult p = policy::Parse(doc);
  ASSERT_TRUE(p.errors.empty()) << policy::FormatError(p.errors[0]);
  const auto& s = p.policy->services.at(0);
  EXPECT_EQ(s.name, "svc");
  EXPECT_EQ(s.measurements.size(), 2u);
  EXPECT_EQ(s.command, (std::vector<std::string>{"/usr/bin/prog", "--serve"}));
  EXPECT_EQ(s.pwd, "/app");
  ASSERT_EQ(s.mounts.size(), 1u);
  EXPECT_EQ(s.mounts[0].path, "/app");
  EXPECT_EQ(p.policy->volumes.at(0).name, "app");
  EXPECT_TRUE(p.policy->volumes.at(0).key.has_value());
  EXPECT_NE(doc.find("\"MODE\": \"protected\""), std::string::npos);
}

TEST_F(ImageTest, PlaceholderWithoutSecretIsRefused) {
  const std::string src = Layout("src", {kBase, kApp});
  ProtectOptions o = Options("oci:" + src + ":t", "oci:" + dir_ + "/out");
  o.env = {{"TOKEN", "$$CLOISTER::token$$"}};
  auto r = Run(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--secret NAME:KIND"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(fs::exists(dir_ + "/out/index.json")) << "a refused protect wrote an image";
}

TEST_F(ImageTest, ProgramFoundOnThePathThroughSymlinks) {
  const std::string src = Layout("src", {kBase, kApp}, {{"Entrypoint", {"alias"}}, {"Cmd", nullptr}});
  auto r = Run(Options("oci:" + src + ":t", "oci:" + dir_ + "/out"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->binary, "/usr/bin/prog");
}

TEST_F(ImageTest, ArchivesInAndOut) {
  const std::string src = Layout("src", {kBase, kApp, kChange});
  auto r = Run(Options("oci:" + src + ":t", "docker-archive:" + dir_ + "/d.tar:localhost/x:1"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto r2 = Run(Options("docker-archive:" + dir_ + "/d.tar:localhost/x:1", "oci-archive:" + dir_ + "/o.tar:v2"));
  // /app is a volume now: protecting it again would seal the volume's files.
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  fs::create_directories(dir_ + "/work3");
  auto back = ReadImage(*ParseImageRef("oci-archive:" + dir_ + "/o.tar:v2"), dir_ + "/work3");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->layers.size(), 5u);
}

TEST_F(ImageTest, AuthenticatedDirectoryIsIntegrityOnly) {
  const std::string src = Layout("src", {kBase, kApp});
  ProtectOptions o = Options("oci:" + src + ":t", "oci:" + dir_ + "/out");
  o.dirs = {{"/app", false}};
  auto r = Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->volumes.size(), 1u);
  EXPECT_FALSE(r->volumes[0].encrypt);
  EXPECT_NE(SessionText(*r).find("# authenticated, at /app"), std::string::npos);
  fs::create_directories(dir_ + "/work2");
  auto out = ReadImage(*ParseImageRef("oci:" + dir_ + "/out"), dir_ + "/work2");
  ASSERT_TRUE(out.ok());
  auto top = TarEntries(ReadAll(out->layers.back().path));
  fs::create_directories(dir_ + "/vol");
  std::string all;
  for (const auto& [name, data] : top) {
    if (name.rfind("app/", 0) != 0 || name.back() == '/') continue;
    fs::create_directories(fs::path(dir_ + "/vol/" + name.substr(4)).parent_path());
    WriteAll(dir_ + "/vol/" + name.substr(4), data);
    all += data;
  }
  // Contents in the clear (authenticated), names encrypted.
  EXPECT_NE(all.find("PLAINTEXT-MARKER-ONE"), std::string::npos);
  EXPECT_EQ(all.find("data.csv"), std::string::npos);
  policy::ParseResult p = policy::Parse(SessionText(*r));
  volume::OpenOptions oo;
  oo.read_only = true;
  auto vol = volume::Volume::Open(os::Env::Posix(), dir_ + "/vol", *p.policy->volumes.at(0).key, oo);
  ASSERT_TRUE(vol.ok()) << vol.status().ToString();
  EXPECT_EQ((*vol)->Info().protection, volume::Protection::kAuthenticatedOnly);
}

TEST_F(ImageTest, WhiteoutOfTheDirectoryItselfStartsOver) {
  const std::vector<Entry> gone = {{"app", 'w'}, {"app/", 'd', "", 0700}, {"app/fresh", 'f', "fresh"}};
  const std::string src = Layout("src", {kBase, kApp, gone});
  auto r = Run(Options("oci:" + src + ":t", "oci:" + dir_ + "/out"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->volumes.size(), 1u);
  EXPECT_EQ(r->volumes[0].files, 1u);
}

TEST_F(ImageTest, RefusesWhatCannotBeProtected) {
  auto fails_with = [&](const std::vector<std::vector<Entry>>& layers, const std::string& dir, const std::string& want,
                        const json& cfg = json::object()) {
    const std::string src = Layout("src-" + std::to_string(std::hash<std::string>{}(want)), layers, cfg);
    ProtectOptions o = Options("oci:" + src + ":t", "oci:" + dir_ + "/refused");
    o.dirs = {{dir, true}};
    auto r = Run(o);
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().ToString();
  };
  fails_with({kBase, kApp}, "/nosuch", "/nosuch is not in the image");
  fails_with({kBase, kApp}, "/etc/motd", "not a directory");
  fails_with({kBase, {{"srv/", 'd'}, {"srv/app/", 'd'}, {"app", 'l', "srv/app"}}}, "/app", "symbolic link");
  fails_with({kBase, {{"app/", 'd'}, {"app/x", 'f', "x"}, {"etc/x", 'h', "app/x"}}}, "/app", "crosses the boundary");
  fails_with({kBase, kApp}, "/usr", "inside the protected directory");
  fails_with({kBase, kApp, {{"usr/bin/run.sh", 'f', "#!/bin/sh\nexec prog\n", 0755}}}, "/app", "is a script",
             {{"Entrypoint", {"/usr/bin/run.sh"}}});
  fails_with({kBase, kApp}, "/app", "is not on the image's PATH", {{"Entrypoint", {"nothere"}}});
  ProtectOptions o = Options("oci:" + Layout("src", {kBase, kApp}) + ":nosuch", "oci:" + dir_ + "/x");
  auto r = Run(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no image tagged nosuch"), std::string::npos) << r.status().ToString();
}

// A 64-bit ELF header with one PT_INTERP program header naming `interp`,
// or none if `interp` is empty (a statically linked program).
std::string Elf(const std::string& interp) {
  std::string h(64, '\0');
  h.replace(0, 4, "\x7f" "ELF");
  h[4] = 2;  // ELFCLASS64
  h[5] = 1;  // little-endian
  h[32] = 64;  // e_phoff
  h[54] = 56;  // e_phentsize
  h[56] = interp.empty() ? 0 : 1;  // e_phnum
  if (interp.empty()) return h + "static program";
  std::string ph(56, '\0');
  ph[0] = 3;         // PT_INTERP
  ph[8] = 64 + 56;   // p_offset
  ph[32] = static_cast<char>(interp.size() + 1);  // p_filesz
  return h + ph + interp + std::string(1, '\0') + "code";
}

TEST_F(ImageTest, ProgramsTheRuntimeCannotBeLoadedIntoAreRefused) {
  auto program = [&](const std::string& bytes) {
    std::vector<Entry> base = kBase;
    base[2].data = bytes;  // usr/bin/prog
    return base;
  };
  auto run = [&](const std::vector<Entry>& base) {
    const std::string src = Layout("src-" + std::to_string(std::hash<std::string>{}(base[2].data)), {base, kApp});
    return Run(Options("oci:" + src + ":t", "oci:" + dir_ + "/out"));
  };
  auto r = run(program(Elf("")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("statically linked"), std::string::npos) << r.status().ToString();
  r = run(program(Elf("/lib/ld-musl-x86_64.so.1")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("musl"), std::string::npos) << r.status().ToString();
  r = run(program(Elf("/lib64/ld-linux-x86-64.so.2")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not in the image"), std::string::npos) << r.status().ToString();
  r = run(program("just text"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not an ELF program"), std::string::npos) << r.status().ToString();
  std::vector<Entry> with_loader = program(Elf("/lib64/ld-linux-x86-64.so.2"));
  with_loader.push_back({"lib64/", 'd', "", 0755});
  with_loader.push_back({"lib64/ld-linux-x86-64.so.2", 'f', "the loader", 0755});
  r = run(with_loader);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->binary_sha256, HexEncode(crypto::Sha256(AsBytes(Elf("/lib64/ld-linux-x86-64.so.2")))));
}

TEST_F(ImageTest, TamperedSourceBlobIsRefused) {
  const std::string src = Layout("src", {kBase, kApp});
  auto in = ReadImage(*ParseImageRef("oci:" + src + ":t"), dir_ + "/work");
  ASSERT_TRUE(in.ok());
  std::string bytes = ReadAll(in->layers[1].path);
  bytes[bytes.size() / 2] ^= 1;
  WriteAll(in->layers[1].path, bytes);
  auto r = Run(Options("oci:" + src + ":t", "oci:" + dir_ + "/out"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIntegrity) << r.status().ToString();
}

TEST(ImageRefTest, Parses) {
  auto r = ParseImageRef("oci:/x/y:v1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path, "/x/y");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_TRUE(ParseImageRef("docker-archive:a.tar:localhost/app:1").ok());
  EXPECT_FALSE(ParseImageRef("docker-archive:a.tar:app").ok());
  EXPECT_FALSE(ParseImageRef("docker://busybox").ok());
  EXPECT_FALSE(ParseImageRef("oci:").ok());
  EXPECT_EQ(VolumeNameFor("/var/lib/mysql"), "var_lib_mysql");
}

}  // namespace
}  // namespace cloister::image
