// The file shield, as the program's processes see it: which paths belong
// to a protected volume, the descriptors opened on them, and the calls
// that go to the volume server (shield_server.h).
//
// A file under a mount path is opened by asking the server, which answers
// with a memfd holding the file's plaintext; the process gets its own open
// file description of that memfd (so offsets and flags are its own), and
// from then on reads, writes, mmap, locks and stdio work on it directly.
// The shims of shield_interpose.cc only mark the chunks a write touched,
// and turn fsync and the last close into requests for a commit. A
// directory under a mount path is a placeholder descriptor the shims
// answer for (fstat, getdents64, openat relative to it, fchdir).
//
// All functions follow libc's conventions: -1 (or null) with errno set on
// failure. None of them may be called before Start or in the server.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/paths.h"
#include "runtime/result.h"
#include "runtime/shield_exec.h"
#include "runtime/shield_report.h"
#include "runtime/volumes.h"

struct statx;

namespace cloister::runtime::shield {

// Forks the volume server for `mounts`, waits until it has opened every
// volume, and installs the shield in this process. A failure (a stale or
// damaged volume, say) is a one-line reason; the caller fails closed.
// Called once, before main, single-threaded.
// `reporting` says how to report commits to the CAS; the server takes the
// key, this process frees its copy.
Result<Done> Start(const std::vector<VolumeMount>& mounts, Reporting reporting);

// Installs the client side in this process, connected to a server that
// already opened `mounts` (Start does this after the fork; tests run the
// server on a thread). Takes ownership of both descriptors.
Result<Done> Install(const std::vector<VolumeMount>& mounts, int control, int conn);

// True once the shield is installed in this process (one atomic load).
bool Active();

// ---- exec (shield_exec.h) ----

// The variables a program exec'd by this one needs to attest as the same
// service ("NAME=value": LD_PRELOAD and the CLOISTER_* settings). Set once
// before main.
void SetExecVariables(std::vector<std::string> variables);

// What an exec uses instead of the caller's environment.
struct ExecPlan {
  char** envp = nullptr;  // null: exec as the caller asked (no shield here)
  int conn = -1;          // the new program's connection, not close-on-exec
  std::vector<std::string> variables;
  std::vector<const char*> env;
};
// Before an exec of `argv` with `envp`: a connection for the new program
// with its ticket on it, and the environment that names it. `in_place`:
// this process execs (execve), rather than a child it spawns. -1 with errno
// set if the server cannot be reached; the exec must not happen then.
int PrepareExec(char* const argv[], char* const envp[], bool in_place, ExecPlan* plan);
// After the exec failed, or in the parent once a spawned child has exec'd:
// closes this process's copy of the connection. Preserves errno.
void EndExec(ExecPlan* plan);

// In a program started by an exec (CLOISTER_SHIELD=`conn`): proves to the
// server that this program holds the volume keys of its grant and checks
// the server's proof and its ticket against `digest` (ExecDigest of the
// arguments and environment this program received). Then installs the
// shield as Start does, in the working directory the ticket names, with
// the shielded files this program inherited. A failure is a one-line
// reason; the caller fails closed.
Result<Done> Join(const std::vector<VolumeMount>& mounts, int conn, const JoinDigest& digest);

// A path under a mount: the volume and the path inside it ("/" for the
// mount point itself).
struct Target {
  int volume = -1;
  PathBuffer inner;
};

// Resolves `path` as an *at() call with `dirfd` would and says whether it
// lies on a protected volume. Preserves errno.
bool Route(int dirfd, const char* path, Target* out);

// ---- calls on paths ----
int Open(const Target& t, int flags, mode_t mode);
int Stat(const Target& t, struct stat* buf, bool follow);
int Statx(const Target& t, struct statx* buf, bool follow);
int Access(const Target& t, int mode);
int Mkdir(const Target& t, mode_t mode);
int Rmdir(const Target& t);
int Unlink(const Target& t);
int Rename(const Target& from, const Target& to, unsigned flags);
int Symlink(const char* target, const Target& at);
ssize_t Readlink(const Target& t, char* buf, size_t size);
int Chmod(const Target& t, mode_t mode);
int SetTimes(const Target& t, const struct timespec times[2]);
int Truncate(const Target& t, off_t size);
int Chdir(const Target& t);
// realpath(3) of a path on a volume: lexical, and the path must exist.
char* Realpath(const Target& t, char* resolved);
// A relative `path` made absolute against a working directory on a
// volume; false if the working directory is not on one (or `path` is
// absolute).
bool AbsoluteFromVirtualCwd(const char* path, PathBuffer* out);

// ---- calls on descriptors ----
// Whether `fd` is a shielded file or directory (one load).
bool IsShielded(int fd);
bool IsShieldedDirectory(int fd);
// After a write of `written` bytes through `fd` that left the offset at
// `after` (-1: positional write at `at`).
void Wrote(int fd, int64_t at, uint64_t written);
void WroteAppend(int fd, int64_t before, int64_t after, uint64_t written);
void Shrunk(int fd, uint64_t size);
// Writes the process cannot see (stdio, shared writable mappings).
void WritesUnseen(int fd, bool mapping);
// After the kernel copied data into `fd` (sendfile, splice, ...).
void CopiedInto(int fd);
int Sync(int fd);
int SyncAll();
// Before the real close of `fd`.
void Closing(int fd);
// After the real dup of `from` succeeded as `to`.
void Duplicated(int from, int to);
int Fstat(int fd, struct stat* buf);
int Fstatx(int fd, struct statx* buf);
ssize_t Getdents(int fd, void* buf, size_t size);
int Fchdir(int fd);
int Fchmod(int fd, mode_t mode);
int Futimens(int fd, const struct timespec times[2]);

// ---- directory streams ----
DIR* OpenDir(const Target& t);
DIR* FdOpenDir(int fd);
bool IsShieldDir(DIR* d);
struct dirent64* ReadDir(DIR* d);
int CloseDir(DIR* d);
int DirFd(DIR* d);
void RewindDir(DIR* d);

// The shield's own descriptors, which the program must not close.
bool IsInternal(int fd);

// ---- working directory ----
// The working directory when it is on a volume (else null).
char* Getcwd(char* buf, size_t size, bool* handled);
void LeftVolumeCwd();

}  // namespace cloister::runtime::shield
