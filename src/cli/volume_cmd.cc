// `cloister volume ...`: seal, unseal, ls, cat, put, rm, tag, verify, recover.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli.h"
#include "cli/keyfile.h"
#include "cloister/volume.h"
#include "os/env.h"

namespace cloister::cli {
namespace {

namespace fs = std::filesystem;
using volume::Volume;

constexpr size_t kIoSize = size_t{1} << 20;

struct Args {
  std::string plain_dir;
  std::string volume_dir;
  std::string out_dir;
  std::string path;
  std::string key_file;
  std::string tag;
  bool json = false;
  bool authenticated_only = false;
  bool recursive = false;
  uint32_t chunk_size = 4096;
};

// Everything a command does goes through a Status; one place turns the
// failure into a line naming the volume.
using Command = Status (*)(const Args&);

StatusOr<std::unique_ptr<Volume>> OpenVolume(const Args& a, bool read_only) {
  ASSIGN_OR_RETURN(SecretBytes key, ReadKeyFile(a.key_file));
  volume::OpenOptions opts;
  opts.read_only = read_only;
  if (!a.tag.empty()) {
    ASSIGN_OR_RETURN(volume::Tag t, volume::TagFromHex(a.tag));
    opts.expected_tag = t;
  }
  return Volume::Open(os::Env::Posix(), a.volume_dir, key, opts);
}

void PrintTag(const Args& a, const volume::Tag& tag) {
  if (a.json) {
    std::printf("%s\n", nlohmann::json{{"tag", volume::TagToHex(tag)}}.dump().c_str());
  } else {
    std::printf("%s\n", volume::TagToHex(tag).c_str());
  }
}

Status WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Copies a plaintext file into the volume.
Status SealFile(Volume& v, const fs::path& src, const std::string& dst, uint32_t mode, Progress& progress) {
  int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus("open " + src.string(), errno);
  volume::OpenFlags flags;
  flags.create = flags.exclusive = true;
  flags.mode = mode;
  auto file = v.OpenFile(dst, flags);
  if (!file.ok()) {
    ::close(fd);
    return file.status();
  }
  std::vector<uint8_t> buf(kIoSize);
  uint64_t off = 0;
  Status s;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      s = ErrnoStatus("read " + src.string(), errno);
      break;
    }
    if (n == 0) break;
    s = (*file)->WriteAt(off, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    if (!s.ok()) break;
    off += static_cast<uint64_t>(n);
    progress.Add(static_cast<uint64_t>(n), 0);
  }
  ::close(fd);
  progress.Add(0, 1);
  return s;
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

Status SealTree(Volume& v, const fs::path& src, const std::string& dst, Progress& progress) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(src, ec)) entries.push_back(e.path());
  if (ec) return IoError("list " + src.string() + ": " + ec.message());
  std::sort(entries.begin(), entries.end());
  for (const fs::path& p : entries) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return ErrnoStatus("stat " + p.string(), errno);
    std::string inner = dst + "/" + p.filename().string();
    uint32_t mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(v.Mkdir(inner, mode));
      RETURN_IF_ERROR(SealTree(v, p, inner, progress));
    } else if (S_ISREG(st.st_mode)) {
      RETURN_IF_ERROR(SealFile(v, p, inner, mode, progress));
    } else if (S_ISLNK(st.st_mode)) {
      std::error_code lec;
      fs::path target = fs::read_symlink(p, lec);
      if (lec) return IoError("readlink " + p.string() + ": " + lec.message());
      RETURN_IF_ERROR(v.Symlink(target.string(), inner));
    } else {
      return InvalidArgument(p.string() + " is a device, socket or pipe; only files, directories "
                             "and symlinks can be sealed");
    }
    RETURN_IF_ERROR(v.SetMtime(inner, MtimeNs(st)));
  }
  return Status::Ok();
}

Status Seal(const Args& a) {
  struct stat st;
  if (::stat(a.plain_dir.c_str(), &st) != 0) return ErrnoStatus(a.plain_dir, errno);
  if (!S_ISDIR(st.st_mode)) return NotADirectory(a.plain_dir + " is not a directory");
  bool created_key = false;
  ASSIGN_OR_RETURN(SecretBytes key, ReadOrCreateKeyFile(a.key_file, &created_key));
  if (created_key) std::fprintf(stderr, "cloister: created a new volume key in %s\n", a.key_file.c_str());
  std::error_code ec_exists;
  bool existed = fs::exists(a.volume_dir, ec_exists);
  volume::CreateOptions opts;
  opts.protection = a.authenticated_only ? volume::Protection::kAuthenticatedOnly
                                         : volume::Protection::kEncrypted;
  opts.chunk_size = a.chunk_size;
  ASSIGN_OR_RETURN(auto v, Volume::Create(os::Env::Posix(), a.volume_dir, key, opts));
  Progress progress("sealed");
  Status s = SealTree(*v, a.plain_dir, "", progress);
  if (s.ok()) s = v->Chmod("/", st.st_mode & 07777);
  if (s.ok()) s = v->SetMtime("/", MtimeNs(st));
  StatusOr<volume::Tag> tag = s.ok() ? v->Commit() : StatusOr<volume::Tag>(s);
  progress.Finish();
  if (!tag.ok()) {
    // Leave nothing half-made behind.
    v.reset();
    std::error_code ec;
    if (existed) {
      for (const auto& e : fs::directory_iterator(a.volume_dir, ec)) fs::remove_all(e.path(), ec);
    } else {
      fs::remove_all(a.volume_dir, ec);
    }
    return tag.status();
  }
  PrintTag(a, *tag);
  return Status::Ok();
}

Status UnsealTree(Volume& v, const std::string& src, const fs::path& dst, Progress& progress) {
  ASSIGN_OR_RETURN(auto entries, v.List(src));
  for (const auto& e : entries) {
    std::string inner = src + "/" + e.name;
    fs::path out = dst / e.name;
    ASSIGN_OR_RETURN(volume::Stat st, v.GetStat(inner));
    if (e.type == volume::FileType::kDirectory) {
      if (::mkdir(out.c_str(), 0700) != 0) return ErrnoStatus("mkdir " + out.string(), errno);
      RETURN_IF_ERROR(UnsealTree(v, inner, out, progress));
      ::chmod(out.c_str(), st.mode);
    } else if (e.type == volume::FileType::kSymlink) {
      ASSIGN_OR_RETURN(std::string target, v.ReadLink(inner));
      if (::symlink(target.c_str(), out.c_str()) != 0) return ErrnoStatus("symlink " + out.string(), errno);
      continue;
    } else {
      volume::OpenFlags flags;
      ASSIGN_OR_RETURN(auto file, v.OpenFile(inner, flags));
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return ErrnoStatus("create " + out.string(), errno);
      std::vector<uint8_t> buf(kIoSize);
      uint64_t off = 0;
      Status s;
      while (s.ok()) {
        auto n = file->ReadAt(off, buf);
        if (!n.ok()) {
          s = n.status();
          break;
        }
        if (*n == 0) break;
        s = WriteAll(fd, buf.data(), *n);
        off += *n;
        progress.Add(*n, 0);
      }
      if (s.ok() && ::fchmod(fd, st.mode) != 0) s = ErrnoStatus("chmod " + out.string(), errno);
      ::close(fd);
      RETURN_IF_ERROR(s);
      progress.Add(0, 1);
    }
    struct timespec times[2] = {{0, UTIME_OMIT}, {st.mtime_ns / 1000000000, st.mtime_ns % 1000000000}};
    ::utimensat(AT_FDCWD, out.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  return Status::Ok();
}

Status Unseal(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, /*read_only=*/true));
  std::error_code ec;
  bool existed = fs::exists(a.out_dir, ec);
  if (existed) {
    if (!fs::is_directory(a.out_dir, ec)) return AlreadyExists(a.out_dir + " exists and is not a directory");
    bool empty = fs::is_empty(a.out_dir, ec);
    if (ec) return IoError(a.out_dir + ": " + ec.message());
    if (!empty) return AlreadyExists(a.out_dir + " exists and is not empty");
  } else if (::mkdir(a.out_dir.c_str(), 0700) != 0) {
    return ErrnoStatus("mkdir " + a.out_dir, errno);
  }
  Progress progress("unsealed");
  Status s = UnsealTree(*v, "", a.out_dir, progress);
  progress.Finish();
  if (!s.ok()) {
    // All or nothing: remove what was extracted before the failure.
    std::error_code ec;
    if (existed) {
      for (const auto& e : fs::directory_iterator(a.out_dir, ec)) fs::remove_all(e.path(), ec);
    } else {
      fs::remove_all(a.out_dir, ec);
    }
    return s;
  }
  return Status::Ok();
}

const char* TypeName(volume::FileType t) {
  switch (t) {
    case volume::FileType::kFile: return "file";
    case volume::FileType::kDirectory: return "dir";
    case volume::FileType::kSymlink: return "symlink";
  }
  return "?";
}

Status ListTree(Volume& v, const std::string& dir, nlohmann::json* out, bool json) {
  ASSIGN_OR_RETURN(auto entries, v.List(dir));
  for (const auto& e : entries) {
    std::string inner = dir + "/" + e.name;
    ASSIGN_OR_RETURN(volume::Stat st, v.GetStat(inner));
    if (json) {
      nlohmann::json j{{"path", inner}, {"type", TypeName(e.type)}, {"size", st.size},
                       {"mode", st.mode}, {"mtime_ns", st.mtime_ns}};
      if (e.type == volume::FileType::kSymlink) {
        ASSIGN_OR_RETURN(std::string target, v.ReadLink(inner));
        j["target"] = target;
      }
      out->push_back(j);
    } else {
      char line[64];
      std::snprintf(line, sizeof(line), "%c %04o %12llu ",
                    e.type == volume::FileType::kDirectory ? 'd' : e.type == volume::FileType::kSymlink ? 'l' : '-',
                    st.mode, static_cast<unsigned long long>(st.size));
      std::string text = line + inner;
      if (e.type == volume::FileType::kSymlink) {
        ASSIGN_OR_RETURN(std::string target, v.ReadLink(inner));
        text += " -> " + target;
      }
      std::printf("%s\n", text.c_str());
    }
    if (e.type == volume::FileType::kDirectory) RETURN_IF_ERROR(ListTree(v, inner, out, json));
  }
  return Status::Ok();
}

Status Ls(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, true));
  nlohmann::json entries = nlohmann::json::array();
  RETURN_IF_ERROR(ListTree(*v, "", &entries, a.json));
  if (a.json) {
    nlohmann::json j{{"tag", volume::TagToHex(v->Info().tag)}, {"entries", entries}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  return Status::Ok();
}

Status Cat(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, true));
  ASSIGN_OR_RETURN(auto file, v->OpenFile(a.path, volume::OpenFlags{}));
  std::vector<uint8_t> buf(kIoSize);
  uint64_t off = 0;
  while (true) {
    // Each block is authenticated before any of it is written out.
    ASSIGN_OR_RETURN(size_t n, file->ReadAt(off, buf));
    if (n == 0) break;
    RETURN_IF_ERROR(WriteAll(STDOUT_FILENO, buf.data(), n));
    off += n;
  }
  return Status::Ok();
}

Status MkdirParents(Volume& v, const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    cur = path.substr(0, pos);
    if (cur.empty() || cur == "/") continue;
    auto st = v.GetStat(cur);
    if (st.ok()) {
      if (st->type != volume::FileType::kDirectory) return NotADirectory(cur + ": not a directory");
      continue;
    }
    if (st.status().code() != StatusCode::kNotFound) return st.status();
    RETURN_IF_ERROR(v.Mkdir(cur, 0755));
  }
  return Status::Ok();
}

Status Put(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, false));
  std::string path = a.path.empty() || a.path[0] != '/' ? "/" + a.path : a.path;
  RETURN_IF_ERROR(MkdirParents(*v, path));
  volume::OpenFlags flags;
  flags.create = flags.truncate = true;
  ASSIGN_OR_RETURN(auto file, v->OpenFile(path, flags));
  std::vector<uint8_t> buf(kIoSize);
  uint64_t off = 0;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read standard input", errno);
    }
    if (n == 0) break;
    RETURN_IF_ERROR(file->WriteAt(off, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n))));
    off += static_cast<uint64_t>(n);
  }
  file.reset();
  ASSIGN_OR_RETURN(volume::Tag tag, v->Commit());
  PrintTag(a, tag);
  return Status::Ok();
}

Status RemoveTree(Volume& v, const std::string& path) {
  ASSIGN_OR_RETURN(auto entries, v.List(path));
  for (const auto& e : entries) {
    std::string inner = path + "/" + e.name;
    if (e.type == volume::FileType::kDirectory) {
      RETURN_IF_ERROR(RemoveTree(v, inner));
    } else {
      RETURN_IF_ERROR(v.Remove(inner));
    }
  }
  return v.Rmdir(path);
}

Status Rm(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, false));
  ASSIGN_OR_RETURN(volume::Stat st, v->GetStat(a.path));
  if (st.type == volume::FileType::kDirectory) {
    if (a.recursive) {
      RETURN_IF_ERROR(RemoveTree(*v, a.path));
    } else {
      RETURN_IF_ERROR(v->Rmdir(a.path));
    }
  } else {
    RETURN_IF_ERROR(v->Remove(a.path));
  }
  ASSIGN_OR_RETURN(volume::Tag tag, v->Commit());
  PrintTag(a, tag);
  return Status::Ok();
}

Status TagCmd(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, true));
  PrintTag(a, v->Info().tag);
  return Status::Ok();
}

Status VerifyCmd(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, true));
  ASSIGN_OR_RETURN(volume::VerifyReport r, v->Verify());
  volume::VolumeInfo info = v->Info();
  if (a.json) {
    nlohmann::json j{{"ok", r.problems.empty()},
                     {"tag", volume::TagToHex(info.tag)},
                     {"commit", info.seq},
                     {"format_version", info.format_version},
                     {"files", r.files},
                     {"directories", r.directories},
                     {"symlinks", r.symlinks},
                     {"chunks", r.chunks},
                     {"bytes", r.bytes},
                     {"problems", r.problems}};
    std::printf("%s\n", j.dump(2).c_str());
  } else if (r.problems.empty()) {
    std::printf("ok: %llu files, %llu directories, %s authenticated; format version %u, commit %llu, tag %s\n",
                static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.directories),
                HumanBytes(static_cast<double>(r.bytes)).c_str(), info.format_version,
                static_cast<unsigned long long>(info.seq), volume::TagToHex(info.tag).c_str());
  }
  if (!r.problems.empty()) {
    for (const auto& p : r.problems) std::fprintf(stderr, "cloister: volume %s: %s\n", a.volume_dir.c_str(), p.c_str());
    return IntegrityError(std::to_string(r.problems.size()) +
                          " unexpected item(s) on disk; contents authenticate. `cloister volume recover` "
                          "removes what an interrupted write left");
  }
  return Status::Ok();
}

Status Recover(const Args& a) {
  ASSIGN_OR_RETURN(auto v, OpenVolume(a, false));
  PrintTag(a, v->Info().tag);
  return Status::Ok();
}

struct Sub {
  const char* name;
  const char* help;
  Command run;
  // Which arguments the subcommand takes.
  enum : unsigned { kPlain = 1, kOut = 2, kPath = 4, kTag = 8, kJson = 16, kSealOpts = 32, kRecursive = 64 };
  unsigned args;
};

constexpr Sub kSubs[] = {
    {"seal", "Seal a plaintext directory into a new protected volume; prints its tag", Seal,
     Sub::kPlain | Sub::kJson | Sub::kSealOpts},
    {"unseal", "Extract a volume into a new plaintext directory (all or nothing)", Unseal, Sub::kOut | Sub::kTag},
    {"ls", "List the files in a volume", Ls, Sub::kTag | Sub::kJson},
    {"cat", "Write a file's plaintext to standard output", Cat, Sub::kPath | Sub::kTag},
    {"put", "Store standard input as a file in the volume; prints the new tag", Put,
     Sub::kPath | Sub::kTag | Sub::kJson},
    {"rm", "Remove a file or directory; prints the new tag", Rm,
     Sub::kPath | Sub::kTag | Sub::kJson | Sub::kRecursive},
    {"tag", "Print the volume's current tag", TagCmd, Sub::kJson},
    {"verify", "Authenticate every byte of the volume and look for leftovers", VerifyCmd,
     Sub::kTag | Sub::kJson},
    {"recover", "Finish recovery after a crash: drop interrupted writes; prints the tag", Recover,
     Sub::kTag | Sub::kJson},
};

}  // namespace

void RegisterVolumeCommands(CLI::App& app, int* exit_code) {
  for (const Sub& s : kSubs) {
    auto args = std::make_shared<Args>();
    CLI::App* c = app.add_subcommand(s.name, s.help);
    if (s.args & Sub::kPlain) c->add_option("PLAIN_DIR", args->plain_dir, "Directory to seal")->required();
    c->add_option("VOLUME_DIR", args->volume_dir, "The volume's directory")->required();
    if (s.args & Sub::kOut) c->add_option("OUT_DIR", args->out_dir, "Where to extract (new or empty)")->required();
    if (s.args & Sub::kPath) c->add_option("PATH", args->path, "Path inside the volume")->required();
    c->add_option("--key-file", args->key_file, "File holding the volume key (mode 0600)")->required();
    if (s.args & Sub::kTag) {
      c->add_option("--tag", args->tag, "Refuse unless the volume is in the state with this tag")
          ->check(CLI::Validator(
              [](std::string& v) {
                return volume::TagFromHex(v).ok() ? std::string() : std::string("a tag is 64 hexadecimal digits");
              },
              "TAG"));
    }
    if (s.args & Sub::kJson) c->add_flag("--json", args->json, "Machine-readable output");
    if (s.args & Sub::kSealOpts) {
      c->add_flag("--authenticated-only", args->authenticated_only,
                  "Store contents in the clear, authenticated (for code that need not be secret)");
      c->add_option("--chunk-size", args->chunk_size, "Chunk size in bytes (power of two, 512..65536)")
          ->capture_default_str()
          ->check(CLI::IsMember({512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}));
    }
    if (s.args & Sub::kRecursive) c->add_flag("-r,--recursive", args->recursive, "Remove directories and their contents");
    Command run = s.run;
    c->callback([args, run, exit_code]() {
      Status st = run(*args);
      if (!st.ok()) *exit_code = Fail("volume " + args->volume_dir, st);
    });
  }
}

}  // namespace cloister::cli
