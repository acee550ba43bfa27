#include "os/env.h"

namespace cloister::os {

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

StatusOr<std::vector<uint8_t>> Env::ReadWholeFile(const std::string& path, uint64_t max_size) {
  ASSIGN_OR_RETURN(auto file, OpenFile(path, OpenMode::kReadOnly));
  ASSIGN_OR_RETURN(uint64_t size, file->Size());
  if (size > max_size) return IntegrityError(path + " is larger than its format allows");
  std::vector<uint8_t> data(size);
  size_t got = 0;
  RETURN_IF_ERROR(file->ReadAt(0, data, &got));
  data.resize(got);
  return data;
}

Status Env::WriteFileAtomically(const std::string& path,
                                std::span<const uint8_t> data) {
  std::string tmp = path + ".tmp";
  {
    ASSIGN_OR_RETURN(auto file, OpenFile(tmp, OpenMode::kCreate));
    RETURN_IF_ERROR(file->Truncate(0));
    RETURN_IF_ERROR(file->WriteAt(0, data));
    RETURN_IF_ERROR(file->Sync());
  }
  RETURN_IF_ERROR(Rename(tmp, path));
  return SyncDir(DirName(path));
}

}  // namespace cloister::os
