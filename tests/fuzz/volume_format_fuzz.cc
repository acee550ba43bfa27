// libFuzzer target over every parser of on-disk volume structures: the
// header, the manifest file and the manifest encoding, journal frames, the
// journal scanner, manifest deltas and their application to a state, and
// opening a volume whose (correctly sealed) manifest holds arbitrary bytes,
// as a buggy or hostile key holder could write.
//
//   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCLOISTER_FUZZ=ON -DCLOISTER_TESTS=OFF
//   make -C build-fuzz volume_format_fuzz && ./build-fuzz/volume_format_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "os/mem_env.h"
#include "volume/format.h"
#include "volume/volume_internal.h"

using namespace cloister;  // NOLINT

namespace {

SecretBytes FixedKey() {
  SecretBytes k(32);
  for (size_t i = 0; i < 32; ++i) k.UnsafeMutableBytes()[i] = static_cast<uint8_t>(i);
  return k;
}

void FuzzOpenWithManifest(std::span<const uint8_t> data) {
  os::MemEnv env;
  SecretBytes key = FixedKey();
  volume::CreateOptions c;
  c.chunk_size = 512;
  auto v = volume::Volume::Create(env, "/v", key, c);
  if (!v.ok()) __builtin_trap();
  v->reset();
  auto header_bytes = env.Contents("/v/cloister-volume");
  auto header = volume::format::ParseHeader(*header_bytes);
  uint64_t seq = 0;
  auto aead = crypto::Aead::New(*volume::format::DeriveManifestKey(key, header->volume_id, seq));
  // Version 2: the plaintext is the state's tag (32 bytes), then the manifest.
  auto sealed = (*aead)->SealRecord(volume::format::ManifestAad(header->volume_id, seq, header->version), data);
  (void)env.SetContents("/v/manifest", volume::format::EncodeManifestFile(seq, *sealed, header->version));
  volume::OpenOptions o;
  o.read_only = true;
  auto opened = volume::Volume::Open(env, "/v", key, o);
  if (!opened.ok()) return;
  auto list = (*opened)->List("/");
  if (!list.ok()) __builtin_trap();  // a decoded manifest always has a root
  for (const auto& e : *list) {
    if (e.type != volume::FileType::kFile) continue;
    auto f = (*opened)->OpenFile("/" + e.name, volume::OpenFlags{});
    if (!f.ok()) continue;
    uint8_t buf[4096];
    (void)(*f)->ReadAt(0, buf);  // objects are missing: must fail cleanly
  }
  (void)(*opened)->Verify();
}

void FuzzJournal(std::span<const uint8_t> data) {
  os::MemEnv env;
  {
    auto f = env.OpenFile("/j", os::OpenMode::kCreate);
    (void)(*f)->WriteAt(0, data);
  }
  auto f = env.OpenFile("/j", os::OpenMode::kReadOnly);
  auto aead = crypto::Aead::New(FixedKey());
  volume::format::Id id{};
  uint64_t end = 0, size = 0;
  (void)volume::internal::ScanJournal(
      **f, id, volume::format::kFormatVersion, 1, 512, **aead, [](volume::internal::ScannedTxn&&) { return Status::Ok(); }, &end, &size);
  if (end > size) __builtin_trap();
}

// A small state: /d (2), /d/f (3, a file), /l (4, a symlink).
volume::format::Manifest SampleManifest() {
  using volume::format::InodeRecord;
  using volume::format::InodeType;
  volume::format::Manifest m;
  m.next_ino = 5;
  InodeRecord root;
  root.ino = 1;
  root.type = InodeType::kDirectory;
  InodeRecord d{.ino = 2, .parent = 1, .type = InodeType::kDirectory, .name = "d"};
  InodeRecord f{.ino = 3, .parent = 2, .type = InodeType::kFile, .name = "f"};
  f.size = 1000;
  f.object_id[0] = 1;
  f.root.resize(2);
  f.root[1][0] = 9;
  InodeRecord l{.ino = 4, .parent = 1, .type = InodeType::kSymlink, .name = "l"};
  l.target = "d/f";
  m.inodes = {root, d, f, l};
  return m;
}

// Whatever delta applies must leave a manifest that decodes: Apply checks
// incrementally what DecodeManifest checks as a whole.
void FuzzDelta(std::span<const uint8_t> data) {
  auto d = volume::format::DecodeDelta(data, 512);
  if (!d.ok()) return;
  if (volume::format::EncodeDelta(*d) != std::vector<uint8_t>(data.begin(), data.end())) __builtin_trap();
  auto state = volume::format::ManifestState::FromManifest(SampleManifest());
  if (!state.ok()) __builtin_trap();
  if (!state->Apply(*d).ok()) return;
  auto encoded = volume::format::EncodeManifest(state->ToManifest());
  if (!volume::format::DecodeManifest(encoded, 512).ok()) __builtin_trap();
  if (encoded.size() != state->encoded_size()) __builtin_trap();
}

// Seeds from a real volume, so the fuzzer starts past the magic numbers.
void WriteSeeds(const std::string& dir) {
  os::MemEnv env;
  SecretBytes key = FixedKey();
  volume::CreateOptions c;
  c.chunk_size = 512;
  auto v = volume::Volume::Create(env, "/v", key, c);
  volume::OpenFlags f;
  f.create = true;
  (void)(*v)->Mkdir("/d", 0755);
  auto file = (*v)->OpenFile("/d/file", f);
  std::vector<uint8_t> data(20000, 7);
  (void)(*file)->WriteAt(0, data);
  (void)(*v)->Symlink("d/file", "/l");
  (void)(*v)->Commit();
  (void)(*file)->WriteAt(100, std::span<const uint8_t>(data.data(), 600));
  file->reset();
  (void)(*v)->Commit();
  v->reset();
  auto header = *env.Contents("/v/cloister-volume");
  auto mf = *env.Contents("/v/manifest");
  const uint32_t version = volume::format::ParseHeader(header)->version;
  auto parsed = volume::format::ParseManifestFile(mf, version);
  auto aead = crypto::Aead::New(
      *volume::format::DeriveManifestKey(key, volume::format::ParseHeader(header)->volume_id, parsed->seq));
  auto plain = (*aead)->OpenRecord(
      volume::format::ManifestAad(volume::format::ParseHeader(header)->volume_id, parsed->seq, version),
      parsed->sealed);
  // A delta that renames, changes and removes something in the sample.
  volume::format::ManifestDelta delta;
  delta.seq = 1;
  delta.next_ino = 6;
  auto sample = SampleManifest();
  sample.inodes[2].name = "g";
  sample.inodes[2].size = 5000;
  sample.inodes[2].root.resize(10);
  volume::format::InodeRecord added{.ino = 5, .parent = 2, .type = volume::format::InodeType::kDirectory, .name = "e"};
  delta.records = {sample.inodes[2], added};
  delta.removed = {4};
  std::vector<uint8_t> journal;
  for (const auto& n : *env.ListDir("/v")) {
    if (n.rfind("journal.", 0) == 0) journal = *env.Contents("/v/" + n);
  }
  auto put = [&](int mode, const std::vector<uint8_t>& bytes) {
    std::vector<uint8_t> out{static_cast<uint8_t>(mode)};
    out.insert(out.end(), bytes.begin(), bytes.end());
    std::string path = dir + "/seed-" + std::to_string(mode);
    if (FILE* fp = std::fopen(path.c_str(), "wb")) {
      std::fwrite(out.data(), 1, out.size(), fp);
      std::fclose(fp);
    }
  };
  put(0, header);
  put(1, *plain);
  put(2, journal);
  put(3, mf);
  put(4, journal);
  put(5, *plain);
  put(6, volume::format::EncodeDelta(delta));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("CLOISTER_FUZZ_SEEDS")) WriteSeeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> data(bytes + 1, size - 1);
  switch (bytes[0] % 7) {
    case 0: {
      auto h = volume::format::ParseHeader(data);
      if (h.ok()) (void)volume::format::VerifyHeader(data, FixedKey());
      break;
    }
    case 1: {
      auto m = volume::format::DecodeManifest(data, 512);
      if (m.ok()) {
        // What decodes must re-encode to the same bytes.
        auto again = volume::format::EncodeManifest(*m);
        auto m2 = volume::format::DecodeManifest(again, 512);
        if (!m2.ok() || volume::format::EncodeManifest(*m2) != again) __builtin_trap();
      }
      break;
    }
    case 2: {
      size_t off = 0;
      while (off < data.size()) {
        auto f = volume::format::ParseFrame(data.subspan(off), 512, volume::format::kFormatVersion);
        if (!f) break;
        if (f->total_size == 0 || f->total_size > data.size() - off) __builtin_trap();
        off += f->total_size;
      }
      break;
    }
    case 3: (void)volume::format::ParseManifestFile(data, volume::format::kFormatVersion); break;
    case 4: FuzzJournal(data); break;
    case 5: FuzzOpenWithManifest(data); break;
    case 6: FuzzDelta(data); break;
  }
  return 0;
}
