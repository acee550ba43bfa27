// Env: the only door to the operating system's files. Volume code reaches
// the disk exclusively through this interface, so tests can substitute an
// in-memory file system that forgets unsynced writes (MemEnv) and thereby
// simulate crashes and power loss at any point.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cloister/status.h"

namespace cloister::os {

// A file opened for positional I/O. Implementations are safe for concurrent
// ReadAt/WriteAt on disjoint ranges.
class File {
 public:
  virtual ~File() = default;
  // Reads up to buf.size() bytes at `offset`; `*got` is less than requested
  // only at end of file.
  virtual Status ReadAt(uint64_t offset, std::span<uint8_t> buf, size_t* got) = 0;
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual StatusOr<uint64_t> Size() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  // Makes the file's contents durable (fdatasync semantics are not enough
  // when the size changed, so implementations use fsync).
  virtual Status Sync() = 0;
  // The same without the metadata that reading the contents back does not
  // need (fdatasync: the size and the blocks are made durable, the
  // modification time is not).
  virtual Status DataSync() { return Sync(); }
};

// Held while alive; released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class OpenMode {
  kReadOnly,      // must exist
  kReadWrite,     // must exist
  kCreate,        // read-write, created (mode 0600) if missing
  kCreateNew,     // read-write, fails with kAlreadyExists if present
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX implementation.
  static Env& Posix();

  virtual StatusOr<std::unique_ptr<File>> OpenFile(const std::string& path,
                                                   OpenMode mode) = 0;
  virtual Status CreateDir(const std::string& path) = 0;  // mode 0700
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status RemoveDir(const std::string& path) = 0;
  // Atomically replaces `to` if it exists.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Names in a directory, without "." and "..", in no particular order.
  virtual StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Makes creations, removals and renames inside `path` durable.
  virtual Status SyncDir(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual bool DirExists(const std::string& path) = 0;
  // Takes an exclusive, advisory lock on an existing file without waiting;
  // kFailedPrecondition if another holder (any process) has it.
  virtual StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;

  // Reads or replaces (write temp, sync, rename, sync dir) a whole small file.
  // Files larger than `max_size` are refused (kIntegrity: a volume's own
  // small files never grow beyond their format's bounds).
  StatusOr<std::vector<uint8_t>> ReadWholeFile(const std::string& path, uint64_t max_size);
  Status WriteFileAtomically(const std::string& path,
                             std::span<const uint8_t> data);
};

// "a/b" + "c" -> "a/b/c"
std::string JoinPath(const std::string& dir, const std::string& name);
// Directory part of a path ("a/b/c" -> "a/b", "c" -> ".").
std::string DirName(const std::string& path);

}  // namespace cloister::os
