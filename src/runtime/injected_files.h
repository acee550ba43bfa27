// Injected files: files the session gives the program (configuration,
// keys, certificates) that exist only in this process's memory. They are
// never written to disk; each open returns a new sealed memfd with the
// content (see InjectedFiles::Open for why).
//
// The table is built once, before main, and read-only afterwards, so the
// interposed functions read it from any thread without locks. Lookups,
// stat and access answers allocate nothing.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/result.h"
#include "runtime/secret.h"

namespace cloister::runtime {

struct InjectedFile {
  std::string path;   // absolute and normal (see NormalizePath)
  uint32_t mode = 0;  // permission bits, at most 07777
  SecretBytes content;
};

class InjectedFiles {
 public:
  // Validates and indexes `files`. Refused: a path that is not absolute and
  // normal, a path given twice, a mode above 07777. `start` becomes every
  // file's access, modification, change and birth time.
  static Result<std::unique_ptr<InjectedFiles>> New(std::vector<InjectedFile> files, timespec start);

  size_t size() const { return files_.size(); }

  // The file at the normal absolute `path`, or nullptr.
  const InjectedFile* Find(std::string_view path) const;

  // What stat(2)/statx(2) report: a regular file with the file's mode and
  // size, owned by the caller's real uid and gid, one link, the start time
  // for all times, 4096-byte blocks, inode numbers 1, 2, ... on device 0.
  void Stat(const InjectedFile& file, struct stat* st) const;
  void Statx(const InjectedFile& file, struct statx* stx) const;

  // 0 if access(2) with `mode` (F_OK or R_OK|W_OK|X_OK) is allowed, else the
  // errno. Writing is never allowed; reading and executing follow the
  // owner's bits of the mode (the caller owns the file), and root may read
  // anything and execute what has any execute bit, as with real files.
  // `effective`: check the effective uid (eaccess) instead of the real one.
  static int CheckAccess(const InjectedFile& file, int mode, bool effective);

  // Opens `file` (one of this table's) as open(2) with `flags` would: a new
  // memfd holding the content, sealed against any change, with the file's
  // mode, positioned at 0, close-on-exec only if O_CLOEXEC is in `flags`.
  // Returns the descriptor or -errno:
  //  - EACCES for any open that could write (O_WRONLY, O_RDWR, O_TRUNC,
  //    O_CREAT|O_EXCL), or for reading a file whose mode forbids it;
  //  - ENOTDIR for O_DIRECTORY;
  //  - the errno of memfd_create/write/fcntl (e.g. EMFILE).
  // A descriptor per open gives every open its own offset, and there is no
  // long-lived descriptor a program closing "all other descriptors" (as
  // daemons do) could break.
  int Open(const InjectedFile& file, int flags) const;

  // The file whose memfd `fd` is (as Open made it; dup'ed and inherited
  // descriptors included), or nullptr. A memfd's name is the only mark it
  // carries, so Open names each one after its file's place in the table,
  // and this reads the name back from /proc/self/fd. Only worth asking for
  // descriptors that fstat reports as regular files without links (as
  // memfds are). Preserves errno.
  const InjectedFile* FindDescriptor(int fd) const;

 private:
  InjectedFiles() = default;

  std::vector<InjectedFile> files_;  // sorted by path
  timespec start_{};
};

// The process's table: installed at most once, before main, and never
// removed (programs may hold paths to it until they exit). Until then, and
// when the session injects no file, Installed...() returns nullptr and the
// interposed functions pass every call on to libc.
void InstallInjectedFiles(std::unique_ptr<InjectedFiles> table);
const InjectedFiles* InstalledInjectedFiles();

}  // namespace cloister::runtime
