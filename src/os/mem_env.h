// MemEnv: an in-memory Env that models what a crash does to a real file
// system, for crash-consistency tests (the idea of LevelDB's
// fault_injection_test, made stricter).
//
// Model:
//  - File contents: each file has a durable image (as of its last Sync) and
//    the writes/truncations issued since. A crash keeps the durable image
//    plus, depending on the mode, none or a random subset of those pending
//    operations (applied in order), so torn multi-write updates happen.
//  - Names: creations, removals and renames form a log, as a journaling file
//    system orders them. SyncDir makes everything logged so far durable; a
//    crash keeps the durable part plus none or a random prefix of the rest.
//    A file whose name did not survive is gone, however often it was synced.
//  - After Crash(), handles opened before it fail with kIoError.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "os/env.h"

namespace cloister::os {

class MemEnv final : public Env {
 public:
  enum class CrashMode {
    kDropUnsynced,  // keep exactly what was made durable
    kRandom,        // keep a random part of what was not
  };

  explicit MemEnv(uint64_t seed = 1);
  ~MemEnv() override;

  StatusOr<std::unique_ptr<File>> OpenFile(const std::string& path,
                                           OpenMode mode) override;
  Status CreateDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  Status RemoveDir(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  bool DirExists(const std::string& path) override;
  StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  // Simulates power loss. Returns the number of pending operations dropped.
  size_t Crash(CrashMode mode);

  // Direct access for tamper tests: the current bytes of a file.
  StatusOr<std::vector<uint8_t>> Contents(const std::string& path);
  Status SetContents(const std::string& path, std::vector<uint8_t> data);

  // Fails every write-like call after `n` more succeed (n < 0: never).
  void FailWritesAfter(int64_t n);

  struct Node;
  struct Op;

 private:
  friend class MemFile;
  Status CheckWritable();
  using Namespace = std::map<std::string, std::shared_ptr<Node>>;  // nullptr: dir
  static std::string Normalize(const std::string& path);
  static void Apply(Namespace& ns, const Op& op);

  std::mutex mu_;
  std::mt19937_64 rng_;
  uint64_t generation_ = 0;
  int64_t writes_left_ = -1;
  Namespace live_;
  Namespace durable_;
  std::vector<Op> pending_ops_;
  std::set<std::string> locks_;
};

}  // namespace cloister::os
