// The libc functions that start other programs, interposed so that a
// program a protected process starts is protected too and joins its file
// shield (shield_exec.h, docs/runtime.md "Programs that exec").
//
// Every exec goes through shield::PrepareExec: a connection with a ticket
// for the new program, and the environment that names it and brings the
// runtime back in. glibc's popen and system start their shell from inside
// libc (posix_spawn's internal exec), where no interposition reaches, so
// they are done here on top of the interposed posix_spawn. vfork becomes
// fork: a vforked child would share this process's memory while it
// prepares the exec.
//
// Without an active shield (no volume mounted) every call goes unchanged
// to libc, as before.

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "runtime/shield_client.h"

#define CLOISTER_EXPORT extern "C" __attribute__((visibility("default")))

extern char** environ;

namespace cloister::runtime {
namespace {

template <typename Fn>
Fn Next(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = ::dlsym(RTLD_NEXT, name);
    slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(p);
}

#define NEXT(name) ::cloister::runtime::Next<decltype(&::name)>(::cloister::runtime::g_next_##name, #name)
#define SLOT(name) std::atomic<void*> g_next_##name{nullptr};
SLOT(execve)
SLOT(execvpe)
SLOT(fexecve)
SLOT(posix_spawn)
SLOT(posix_spawnp)
SLOT(popen)
SLOT(pclose)
SLOT(system)
SLOT(close_range)
SLOT(closefrom)
#undef SLOT

__attribute__((constructor)) void ResolveExecFunctions() {
  (void)NEXT(execve);
  (void)NEXT(execvpe);
  (void)NEXT(fexecve);
  (void)NEXT(posix_spawn);
  (void)NEXT(posix_spawnp);
  (void)NEXT(popen);
  (void)NEXT(pclose);
  (void)NEXT(system);
  (void)NEXT(close_range);
  (void)NEXT(closefrom);
}

// The arguments of execl and friends as a vector, up to the null pointer.
std::vector<char*> ListArguments(const char* first, va_list ap) {
  std::vector<char*> args{const_cast<char*>(first)};
  while (args.back() != nullptr) args.push_back(va_arg(ap, char*));
  return args;
}

// An exec by this process (the new program takes its place): `real`
// with the plan's environment; back here only if it failed.
template <typename Fn, typename What>
int ExecInPlace(Fn real, What what, char* const argv[], char* const envp[]) {
  shield::ExecPlan plan;
  if (shield::PrepareExec(argv, envp, /*in_place=*/true, &plan) != 0) return -1;
  int r = real(what, argv, plan.envp != nullptr ? plan.envp : envp);
  shield::EndExec(&plan);
  return r;
}

using SpawnFn = int (*)(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*,
                        char* const[], char* const[]);

int Spawn(SpawnFn real, pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
          const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  shield::ExecPlan plan;
  if (shield::PrepareExec(argv, envp, /*in_place=*/false, &plan) != 0) return errno;
  int r = real(pid, path, actions, attr, argv, plan.envp != nullptr ? plan.envp : envp);
  // posix_spawn returns once the child has exec'd (or failed to): the
  // connection is the child's now.
  shield::EndExec(&plan);
  return r;
}

// The streams popen made here, and their shells.
struct Piped {
  FILE* stream;
  pid_t pid;
};
pthread_mutex_t g_piped_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<Piped>* g_piped = nullptr;

// The shell that popen and system run, as glibc runs it.
constexpr char kShell[] = "/bin/sh";

FILE* ShieldedPopen(const char* command, const char* mode) {
  bool read = false, write = false, cloexec = false;
  for (const char* m = mode; *m != '\0'; ++m) {
    if (*m == 'r') read = true;
    if (*m == 'w') write = true;
    if (*m == 'e') cloexec = true;
  }
  if (read == write) {
    errno = EINVAL;
    return nullptr;
  }
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return nullptr;
  int mine = read ? p[0] : p[1];
  int theirs = read ? p[1] : p[0];
  const int target = read ? STDOUT_FILENO : STDIN_FILENO;
  posix_spawn_file_actions_t actions;
  if (::posix_spawn_file_actions_init(&actions) != 0) {
    ::close(p[0]);
    ::close(p[1]);
    errno = ENOMEM;
    return nullptr;
  }
  if (theirs == target) {
    // dup2 onto itself would keep close-on-exec: move it out of the way.
    int moved = ::fcntl(theirs, F_DUPFD_CLOEXEC, 3);
    ::close(theirs);
    theirs = moved;
  }
  int rc = theirs < 0 ? errno : ::posix_spawn_file_actions_adddup2(&actions, theirs, target);
  pid_t pid = -1;
  if (rc == 0) {
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(command), nullptr};
    rc = Spawn(NEXT(posix_spawn), &pid, kShell, &actions, nullptr, argv, environ);
  }
  ::posix_spawn_file_actions_destroy(&actions);
  if (theirs >= 0) ::close(theirs);
  if (rc != 0) {
    ::close(mine);
    errno = rc;
    return nullptr;
  }
  // As glibc leaves it: close-on-exec only with "e".
  if (!cloexec) ::fcntl(mine, F_SETFD, 0);
  FILE* f = ::fdopen(mine, read ? "r" : "w");
  if (f == nullptr) {
    int e = errno;
    ::close(mine);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    errno = e;
    return nullptr;
  }
  pthread_mutex_lock(&g_piped_mu);
  if (g_piped == nullptr) g_piped = new std::vector<Piped>;
  g_piped->push_back(Piped{f, pid});
  pthread_mutex_unlock(&g_piped_mu);
  return f;
}

// The shell's pid if `f` came from ShieldedPopen (and forgets it).
pid_t TakePiped(FILE* f) {
  pid_t pid = -1;
  pthread_mutex_lock(&g_piped_mu);
  if (g_piped != nullptr) {
    for (auto it = g_piped->begin(); it != g_piped->end(); ++it) {
      if (it->stream == f) {
        pid = it->pid;
        g_piped->erase(it);
        break;
      }
    }
  }
  pthread_mutex_unlock(&g_piped_mu);
  return pid;
}

int ShieldedSystem(const char* command) {
  if (command == nullptr) return ::access(kShell, X_OK) == 0 ? 1 : 0;
  // As POSIX asks of system: SIGINT and SIGQUIT ignored and SIGCHLD
  // blocked in the caller while the command runs; the child gets the
  // caller's dispositions and mask back.
  struct sigaction ignore {}, old_int {}, old_quit {};
  ignore.sa_handler = SIG_IGN;
  ::sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  sigset_t chld, old_mask;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &old_mask);
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  sigset_t defaults;
  ::sigemptyset(&defaults);
  if (old_int.sa_handler != SIG_IGN) ::sigaddset(&defaults, SIGINT);
  if (old_quit.sa_handler != SIG_IGN) ::sigaddset(&defaults, SIGQUIT);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);
  ::posix_spawnattr_setsigmask(&attr, &old_mask);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(command), nullptr};
  pid_t pid = -1;
  int rc = Spawn(NEXT(posix_spawn), &pid, kShell, nullptr, &attr, argv, environ);
  ::posix_spawnattr_destroy(&attr);
  int status = -1;
  if (rc == 0) {
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        status = -1;
        break;
      }
    }
  } else {
    // As glibc: the shell could not be started.
    status = W_EXITCODE(127, 0);
  }
  int e = errno;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  errno = e;
  return status;
}

// close_range and closefrom close descriptors wholesale (Python does so in
// the child before every exec): the shield's own are skipped, and the
// slots of shielded ones released, as close does one by one.
int CloseRangeSkippingInternal(unsigned first, unsigned last, int flags) {
  auto real = NEXT(close_range);
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  if (!shield::Active()) return real(first, last, flags);
  if ((flags & CLOSE_RANGE_CLOEXEC) == 0) {
    const unsigned stop = last < 65536u ? last : 65535u;
    for (unsigned fd = first; fd <= stop; ++fd) {
      if (shield::IsShielded(static_cast<int>(fd))) shield::Closing(static_cast<int>(fd));
    }
  }
  // The shield's descriptors are few and below 65536: close around them.
  unsigned from = first;
  for (unsigned fd = first; fd <= last && fd < 65536u; ++fd) {
    if (!shield::IsInternal(static_cast<int>(fd))) continue;
    if (fd > from && real(from, fd - 1, flags) != 0) return -1;
    from = fd + 1;
  }
  if (from <= last && real(from, last, flags) != 0) return -1;
  return 0;
}

}  // namespace
}  // namespace cloister::runtime

using cloister::runtime::ListArguments;
namespace shield = cloister::runtime::shield;

CLOISTER_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  return cloister::runtime::ExecInPlace(NEXT(execve), path, argv, envp);
}

CLOISTER_EXPORT int execv(const char* path, char* const argv[]) { return execve(path, argv, environ); }

CLOISTER_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return cloister::runtime::ExecInPlace(NEXT(execvpe), file, argv, envp);
}

CLOISTER_EXPORT int execvp(const char* file, char* const argv[]) { return execvpe(file, argv, environ); }

CLOISTER_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  return cloister::runtime::ExecInPlace(NEXT(fexecve), fd, argv, envp);
}

CLOISTER_EXPORT int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> args = ListArguments(arg, ap);
  va_end(ap);
  return execve(path, args.data(), environ);
}

CLOISTER_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> args = ListArguments(arg, ap);
  va_end(ap);
  return execvpe(file, args.data(), environ);
}

CLOISTER_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> args = ListArguments(arg, ap);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return execve(path, args.data(), envp);
}

CLOISTER_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                                const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return cloister::runtime::Spawn(NEXT(posix_spawn), pid, path, actions, attr, argv, envp);
}

CLOISTER_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return cloister::runtime::Spawn(NEXT(posix_spawnp), pid, file, actions, attr, argv, envp);
}

CLOISTER_EXPORT FILE* popen(const char* command, const char* mode) {
  if (!shield::Active()) return NEXT(popen)(command, mode);
  return cloister::runtime::ShieldedPopen(command, mode);
}

CLOISTER_EXPORT int pclose(FILE* stream) {
  pid_t pid = cloister::runtime::TakePiped(stream);
  if (pid < 0) return NEXT(pclose)(stream);
  ::fclose(stream);
  int status = -1;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

CLOISTER_EXPORT int system(const char* command) {
  if (!shield::Active()) return NEXT(system)(command);
  return cloister::runtime::ShieldedSystem(command);
}

// Every vfork is a fork: the child prepares the exec in memory of its own.
CLOISTER_EXPORT pid_t vfork(void) { return ::fork(); }

CLOISTER_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
  return cloister::runtime::CloseRangeSkippingInternal(first, last, flags);
}

CLOISTER_EXPORT void closefrom(int lowest) {
  if (!shield::Active()) return NEXT(closefrom)(lowest);
  if (lowest < 0) lowest = 0;
  (void)cloister::runtime::CloseRangeSkippingInternal(static_cast<unsigned>(lowest), ~0u, 0);
}
