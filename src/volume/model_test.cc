// Randomized test: long sequences of random operations applied both to a
// volume and to a plain in-memory model, compared after every step. The
// sequences include commits, clean reopens (uncommitted work is dropped),
// and simulated crashes (unsynced data is dropped or partly kept).
#include <gtest/gtest.h>

#include <map>
#include <cstdlib>
#include <iostream>
#include <random>

#include "cloister/volume.h"
#include "volume/test_util.h"

namespace cloister::volume {
namespace {

using namespace testing;  // NOLINT

// The model: path -> contents; directories have no contents.
struct Model {
  std::map<std::string, Bytes> files;
  std::set<std::string> dirs{"/"};
};

std::string Parent(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == 0 ? "/" : p.substr(0, pos);
}

class ModelRun {
 public:
  explicit ModelRun(uint64_t seed) : rng_(seed), env_(seed) {
    // Every third seed fills a journal with each commit, so that journals
    // the running writer filled get checkpointed by it (from what it knows,
    // not by reading them back) between the reopens and crashes.
    opts_.journal_rotate_bytes = seed % 3 == 0 ? 1 : 24 * 1024;
    opts_.cache_bytes = 16 * 512;
    opts_.max_encryptions_per_key = 3000;
    // Format version 3: half of the seeds relocate every rewrite of a
    // settled chunk, and some of them rotate after a few relocations.
    opts_.relocate_min_bytes = seed % 2 == 0 ? 0 : 8 * 512;
    if (seed % 4 == 0) opts_.journal_rotate_relocated_bytes = 16 * 512;
    CreateOptions c;
    c.chunk_size = 512;
    auto v = Volume::Create(env_, "/vol", key_, c, opts_);
    EXPECT_TRUE(v.ok());
    v_ = std::move(v).value();
    tag_ = v_->Info().tag;
  }

  std::vector<std::string> trace;
  void T(const std::string& s) { trace.push_back(s); }

  void Step() {
    int op = static_cast<int>(rng_() % 100);
    if (op < 35) Write();
    else if (op < 45) Truncate();
    else if (op < 52) Create();
    else if (op < 57) Mkdir();
    else if (op < 63) Rename();
    else if (op < 68) Remove();
    else if (op < 85) Commit();
    else if (op < 92) Reopen();
    else Crash();
  }

  void Check() {
    // Every directory lists exactly the model's children.
    for (const auto& d : model_.dirs) {
      auto list = v_->List(d);
      ASSERT_TRUE(list.ok()) << d << ": " << list.status().ToString();
      std::set<std::string> names;
      for (const auto& e : *list) names.insert(e.name);
      std::set<std::string> expect;
      for (const auto& x : model_.dirs) {
        if (x != "/" && Parent(x) == d) expect.insert(x.substr(x.find_last_of('/') + 1));
      }
      for (const auto& [f, _] : model_.files) {
        if (Parent(f) == d) expect.insert(f.substr(f.find_last_of('/') + 1));
      }
      ASSERT_EQ(names, expect) << "listing of " << d;
    }
    for (const auto& [path, data] : model_.files) {
      auto got = ReadFile(*v_, path);
      ASSERT_TRUE(got.ok()) << path << ": " << got.status().ToString();
      ASSERT_EQ(got->size(), data.size()) << path;
      ASSERT_TRUE(*got == data) << "contents of " << path;
    }
  }

  uint64_t steps_with_crash = 0;

 private:
  std::string PickFile() {
    if (model_.files.empty()) return "";
    auto it = model_.files.begin();
    std::advance(it, static_cast<long>(rng_() % model_.files.size()));
    return it->first;
  }
  std::string PickDir() {
    auto it = model_.dirs.begin();
    std::advance(it, static_cast<long>(rng_() % model_.dirs.size()));
    return *it;
  }
  std::string NewName(const std::string& dir) {
    return (dir == "/" ? "" : dir) + "/n" + std::to_string(rng_() % 1000);
  }
  bool Exists(const std::string& p) { return model_.files.count(p) || model_.dirs.count(p); }

  void Write() {
    std::string f = PickFile();
    if (f.empty()) return Create();
    Bytes& data = model_.files[f];
    uint64_t max_off = data.size() + 3000;
    if (rng_() % 20 == 0) max_off = 200 * 1024;  // sometimes far out: holes, deep trees
    uint64_t off = rng_() % (max_off + 1);
    size_t len = 1 + rng_() % (rng_() % 8 == 0 ? 40000 : 1500);
    Bytes patch = Pattern(len, static_cast<uint32_t>(rng_()));
    OpenFlags w;
    w.write = true;
    auto file = v_->OpenFile(f, w);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    T("write " + f + " off " + std::to_string(off) + " len " + std::to_string(len) + " size " + std::to_string(data.size()));
    ASSERT_OK((*file)->WriteAt(off, patch));
    if (data.size() < off + len) data.resize(off + len, 0);
    std::copy(patch.begin(), patch.end(), data.begin() + static_cast<ptrdiff_t>(off));
  }

  void Truncate() {
    std::string f = PickFile();
    if (f.empty()) return;
    Bytes& data = model_.files[f];
    uint64_t size = rng_() % (data.size() + 5000);
    T("truncate " + f + " " + std::to_string(data.size()) + " -> " + std::to_string(size));
    ASSERT_OK(v_->Truncate(f, size));
    data.resize(size, 0);
  }

  void Create() {
    std::string p = NewName(PickDir());
    if (Exists(p)) return;
    ASSERT_OK(WriteFile(*v_, p, {}));
    model_.files[p] = {};
  }

  void Mkdir() {
    std::string p = NewName(PickDir());
    if (Exists(p)) return;
    ASSERT_OK(v_->Mkdir(p, 0755));
    model_.dirs.insert(p);
  }

  void Rename() {
    std::string from = PickFile();
    if (from.empty()) return;
    std::string to = rng_() % 2 ? NewName(PickDir()) : PickFile();
    if (model_.dirs.count(to)) return;
    T("rename " + from + " " + to);
    ASSERT_OK(v_->Rename(from, to));
    if (from == to) return;
    Bytes data = std::move(model_.files[from]);
    model_.files.erase(from);
    model_.files[to] = std::move(data);
  }

  void Remove() {
    if (rng_() % 3 == 0) {
      // An empty directory, if there is one.
      for (const auto& d : model_.dirs) {
        if (d == "/") continue;
        bool empty = true;
        for (const auto& x : model_.dirs) empty &= !(x != d && Parent(x) == d);
        for (const auto& [f, _] : model_.files) empty &= Parent(f) != d;
        if (empty) {
          ASSERT_OK(v_->Rmdir(d));
          model_.dirs.erase(d);
          return;
        }
      }
      return;
    }
    std::string f = PickFile();
    if (f.empty()) return;
    ASSERT_OK(v_->Remove(f));
    model_.files.erase(f);
  }

  void Commit() {
    T("commit");
    auto t = v_->Commit();
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    committed_ = model_;
    tag_ = *t;
  }

  void Reopen() {
    T("reopen");
    v_.reset();
    OpenOptions o = opts_;
    o.expected_tag = tag_;
    auto v = Volume::Open(env_, "/vol", key_, o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    v_ = std::move(v).value();
    model_ = committed_;
  }

  void Crash() {
    v_.reset();
    T("crash");
    env_.Crash(rng_() % 2 ? os::MemEnv::CrashMode::kRandom : os::MemEnv::CrashMode::kDropUnsynced);
    ++steps_with_crash;
    OpenOptions o = opts_;
    o.expected_tag = tag_;
    auto v = Volume::Open(env_, "/vol", key_, o);
    ASSERT_TRUE(v.ok()) << "after crash: " << v.status().ToString();
    v_ = std::move(v).value();
    model_ = committed_;
    auto report = v_->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_TRUE(report->problems.empty()) << report->problems[0];
  }

  std::mt19937_64 rng_;
  os::MemEnv env_;
  SecretBytes key_ = TestKey();
  OpenOptions opts_;
  std::unique_ptr<Volume> v_;
  Model model_, committed_;
  Tag tag_{};
};

TEST(ModelTest, RandomOperationsMatchThePlainModel) {
  // CLOISTER_MODEL_SEEDS / CLOISTER_MODEL_FIRST_SEED run longer searches.
  uint64_t seeds = std::getenv("CLOISTER_MODEL_SEEDS") ? std::stoull(std::getenv("CLOISTER_MODEL_SEEDS")) : 24;
  uint64_t first = std::getenv("CLOISTER_MODEL_FIRST_SEED") ? std::stoull(std::getenv("CLOISTER_MODEL_FIRST_SEED")) : 1;
  uint64_t crashes = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    ModelRun run(seed);
    for (int i = 0; i < 1000; ++i) {
      run.Step();
      if (::testing::Test::HasFatalFailure()) {
        for (size_t k = run.trace.size() > 40 ? run.trace.size() - 40 : 0; k < run.trace.size(); ++k) std::cerr << run.trace[k] << "\n";
        FAIL() << "seed " << seed << " step " << i;
      }
      run.Check();
      if (::testing::Test::HasFatalFailure()) {
        FAIL() << "seed " << seed << " step " << i;
      }
    }
    crashes += run.steps_with_crash;
  }
  // About one step in 200 crashes the writer (24 seeds gave well over 100).
  EXPECT_GT(crashes, 4 * seeds);
}

}  // namespace
}  // namespace cloister::volume
