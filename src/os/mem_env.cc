#include "os/mem_env.h"

#include <algorithm>
#include <cstring>

namespace cloister::os {

struct MemEnv::Node {
  std::vector<uint8_t> data;
  std::vector<uint8_t> durable;
  struct Pending {
    bool truncate;
    uint64_t offset;  // write offset, or new size for truncate
    std::vector<uint8_t> bytes;
  };
  std::vector<Pending> pending;
};

struct MemEnv::Op {
  enum Kind { kCreate, kMkdir, kRemove, kRename } kind;
  std::string path;
  std::string to;
  std::shared_ptr<Node> node;
};

namespace {

void ApplyWrite(std::vector<uint8_t>& data, uint64_t offset,
                const std::vector<uint8_t>& bytes) {
  if (data.size() < offset + bytes.size()) data.resize(offset + bytes.size());
  std::copy(bytes.begin(), bytes.end(), data.begin() + static_cast<ptrdiff_t>(offset));
}

}  // namespace

class MemFile final : public File {
 public:
  MemFile(MemEnv* env, std::shared_ptr<MemEnv::Node> node, uint64_t gen,
          bool writable)
      : env_(env), node_(std::move(node)), gen_(gen), writable_(writable) {}

  Status ReadAt(uint64_t offset, std::span<uint8_t> buf, size_t* got) override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(CheckLive());
    const auto& d = node_->data;
    size_t n = offset >= d.size() ? 0 : std::min<size_t>(buf.size(), d.size() - offset);
    if (n > 0) std::memcpy(buf.data(), d.data() + offset, n);
    *got = n;
    return Status::Ok();
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(CheckLive());
    if (!writable_) return PermissionDenied("file opened read-only");
    RETURN_IF_ERROR(env_->CheckWritable());
    std::vector<uint8_t> bytes(data.begin(), data.end());
    ApplyWrite(node_->data, offset, bytes);
    node_->pending.push_back({false, offset, std::move(bytes)});
    return Status::Ok();
  }

  StatusOr<uint64_t> Size() override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(CheckLive());
    return static_cast<uint64_t>(node_->data.size());
  }

  Status Truncate(uint64_t size) override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(CheckLive());
    if (!writable_) return PermissionDenied("file opened read-only");
    RETURN_IF_ERROR(env_->CheckWritable());
    node_->data.resize(size);
    node_->pending.push_back({true, size, {}});
    return Status::Ok();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(CheckLive());
    RETURN_IF_ERROR(env_->CheckWritable());
    node_->durable = node_->data;
    node_->pending.clear();
    return Status::Ok();
  }

 private:
  Status CheckLive() {
    if (gen_ != env_->generation_) return IoError("stale handle after simulated crash");
    return Status::Ok();
  }
  MemEnv* env_;
  std::shared_ptr<MemEnv::Node> node_;
  uint64_t gen_;
  bool writable_;
};

MemEnv::MemEnv(uint64_t seed) : rng_(seed) {
  live_["/"] = nullptr;
  durable_["/"] = nullptr;
}
MemEnv::~MemEnv() = default;

std::string MemEnv::Normalize(const std::string& path) {
  std::string out = "/";
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      if (out.size() > 1) out += "/";
      out += part;
    }
    i = j + 1;
  }
  return out;
}

Status MemEnv::CheckWritable() {
  if (writes_left_ == 0) return IoError("injected write failure");
  if (writes_left_ > 0) --writes_left_;
  return Status::Ok();
}

void MemEnv::FailWritesAfter(int64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  writes_left_ = n;
}

void MemEnv::Apply(Namespace& ns, const Op& op) {
  switch (op.kind) {
    case Op::kCreate: ns[op.path] = op.node; break;
    case Op::kMkdir: ns[op.path] = nullptr; break;
    case Op::kRemove: ns.erase(op.path); break;
    case Op::kRename: {
      // Moves the entry and, for a directory, everything below it.
      std::vector<std::pair<std::string, std::shared_ptr<Node>>> moved;
      std::string prefix = op.path + "/";
      for (auto it = ns.begin(); it != ns.end();) {
        if (it->first == op.path || it->first.compare(0, prefix.size(), prefix) == 0) {
          moved.emplace_back(op.to + it->first.substr(op.path.size()), it->second);
          it = ns.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [k, v] : moved) ns[k] = v;
      break;
    }
  }
}

StatusOr<std::unique_ptr<File>> MemEnv::OpenFile(const std::string& raw,
                                                 OpenMode mode) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  auto it = live_.find(path);
  if (it != live_.end() && it->second == nullptr) return IsADirectory("open " + path);
  if (it == live_.end()) {
    if (mode == OpenMode::kReadOnly || mode == OpenMode::kReadWrite) {
      return NotFound("open " + path + ": No such file or directory");
    }
    auto parent = live_.find(DirName(path));
    if (parent == live_.end() || parent->second != nullptr) {
      return NotFound("open " + path + ": No such file or directory");
    }
    RETURN_IF_ERROR(CheckWritable());
    Op op{Op::kCreate, path, "", std::make_shared<Node>()};
    Apply(live_, op);
    pending_ops_.push_back(op);
    it = live_.find(path);
  } else if (mode == OpenMode::kCreateNew) {
    return AlreadyExists("open " + path + ": File exists");
  }
  return std::unique_ptr<File>(
      new MemFile(this, it->second, generation_, mode != OpenMode::kReadOnly));
}

Status MemEnv::CreateDir(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  if (live_.count(path)) return AlreadyExists("mkdir " + path + ": File exists");
  auto parent = live_.find(DirName(path));
  if (parent == live_.end() || parent->second != nullptr) return NotFound("mkdir " + path);
  RETURN_IF_ERROR(CheckWritable());
  Op op{Op::kMkdir, path, "", nullptr};
  Apply(live_, op);
  pending_ops_.push_back(op);
  return Status::Ok();
}

Status MemEnv::RemoveFile(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  auto it = live_.find(path);
  if (it == live_.end()) return NotFound("unlink " + path);
  if (it->second == nullptr) return IsADirectory("unlink " + path);
  RETURN_IF_ERROR(CheckWritable());
  Op op{Op::kRemove, path, "", nullptr};
  Apply(live_, op);
  pending_ops_.push_back(op);
  return Status::Ok();
}

Status MemEnv::RemoveDir(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  auto it = live_.find(path);
  if (it == live_.end()) return NotFound("rmdir " + path);
  if (it->second != nullptr) return NotADirectory("rmdir " + path);
  auto next = std::next(it);
  if (next != live_.end() && next->first.compare(0, path.size() + 1, path + "/") == 0) {
    return DirectoryNotEmpty("rmdir " + path);
  }
  RETURN_IF_ERROR(CheckWritable());
  Op op{Op::kRemove, path, "", nullptr};
  Apply(live_, op);
  pending_ops_.push_back(op);
  return Status::Ok();
}

Status MemEnv::Rename(const std::string& raw_from, const std::string& raw_to) {
  std::lock_guard<std::mutex> l(mu_);
  std::string from = Normalize(raw_from), to = Normalize(raw_to);
  if (!live_.count(from)) return NotFound("rename " + from);
  RETURN_IF_ERROR(CheckWritable());
  if (live_.count(to)) {
    Op rm{Op::kRemove, to, "", nullptr};
    Apply(live_, rm);
    // A replacing rename is one atomic operation; log it as a single rename
    // whose application overwrites the target.
  }
  Op op{Op::kRename, from, to, nullptr};
  Apply(live_, op);
  pending_ops_.push_back(op);
  return Status::Ok();
}

StatusOr<std::vector<std::string>> MemEnv::ListDir(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  auto it = live_.find(path);
  if (it == live_.end()) return NotFound("list " + path);
  if (it->second != nullptr) return NotADirectory("list " + path);
  std::string prefix = path == "/" ? "/" : path + "/";
  std::vector<std::string> names;
  for (auto i = live_.lower_bound(prefix); i != live_.end(); ++i) {
    if (i->first.compare(0, prefix.size(), prefix) != 0) break;
    std::string rest = i->first.substr(prefix.size());
    if (!rest.empty() && rest.find('/') == std::string::npos) names.push_back(rest);
  }
  return names;
}

Status MemEnv::SyncDir(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  auto it = live_.find(path);
  if (it == live_.end() || it->second != nullptr) return NotFound("fsync " + path);
  RETURN_IF_ERROR(CheckWritable());
  for (const Op& op : pending_ops_) Apply(durable_, op);
  pending_ops_.clear();
  return Status::Ok();
}

bool MemEnv::FileExists(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(Normalize(raw));
  return it != live_.end() && it->second != nullptr;
}

bool MemEnv::DirExists(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(Normalize(raw));
  return it != live_.end() && it->second == nullptr;
}

namespace {
class MemLock final : public FileLock {
 public:
  MemLock(std::mutex* mu, std::set<std::string>* locks, std::string path)
      : mu_(mu), locks_(locks), path_(std::move(path)) {}
  ~MemLock() override {
    std::lock_guard<std::mutex> l(*mu_);
    locks_->erase(path_);
  }

 private:
  std::mutex* mu_;
  std::set<std::string>* locks_;
  std::string path_;
};
}  // namespace

StatusOr<std::unique_ptr<FileLock>> MemEnv::LockFile(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  std::string path = Normalize(raw);
  if (!live_.count(path)) return NotFound("lock " + path);
  if (!locks_.insert(path).second) return FailedPrecondition(path + " is locked by another process");
  return std::unique_ptr<FileLock>(new MemLock(&mu_, &locks_, path));
}

size_t MemEnv::Crash(CrashMode mode) {
  std::lock_guard<std::mutex> l(mu_);
  size_t dropped = 0;
  size_t keep_ops = 0;
  if (mode == CrashMode::kRandom && !pending_ops_.empty()) {
    keep_ops = std::uniform_int_distribution<size_t>(0, pending_ops_.size())(rng_);
  }
  for (size_t i = 0; i < keep_ops; ++i) Apply(durable_, pending_ops_[i]);
  dropped += pending_ops_.size() - keep_ops;
  pending_ops_.clear();
  live_ = durable_;
  for (auto& [path, node] : live_) {
    if (!node) continue;
    std::vector<uint8_t> data = node->durable;
    for (auto& p : node->pending) {
      bool keep = mode == CrashMode::kRandom && (rng_() & 1);
      if (!keep) {
        ++dropped;
        continue;
      }
      if (p.truncate) {
        data.resize(p.offset);
      } else {
        ApplyWrite(data, p.offset, p.bytes);
      }
    }
    node->data = data;
    node->durable = std::move(data);
    node->pending.clear();
  }
  ++generation_;
  return dropped;
}

StatusOr<std::vector<uint8_t>> MemEnv::Contents(const std::string& raw) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(Normalize(raw));
  if (it == live_.end() || !it->second) return NotFound(raw);
  return it->second->data;
}

Status MemEnv::SetContents(const std::string& raw, std::vector<uint8_t> data) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(Normalize(raw));
  if (it == live_.end() || !it->second) return NotFound(raw);
  it->second->data = data;
  it->second->durable = std::move(data);
  it->second->pending.clear();
  return Status::Ok();
}

}  // namespace cloister::os
