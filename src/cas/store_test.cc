#include "cas/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

namespace fs = std::filesystem;

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

SecretBytes Key(uint8_t seed) {
  SecretBytes k(32);
  for (size_t i = 0; i < 32; ++i) k.UnsafeMutableBytes()[i] = static_cast<uint8_t>(seed + i);
  return k;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cloister-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/cas.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> OpenEncrypted(uint8_t key_seed = 1) {
    auto inner = OpenSqliteStore(path_);
    EXPECT_TRUE(inner.ok()) << inner.status().ToString();
    auto s = NewEncryptedStore(std::move(inner).value(), Key(key_seed));
    EXPECT_TRUE(s.ok());
    return std::move(s).value();
  }

  std::string dir_, path_;
};

TEST_F(StoreTest, PutGetDeleteScanAndPersist) {
  {
    auto s = OpenEncrypted();
    ASSERT_TRUE(s->Apply({{"sessions", "b", B("2")}, {"sessions", "a", B("1")}, {"secrets", "a", B("x")}}).ok());
    EXPECT_EQ(*s->Get("sessions", "a").value(), B("1"));
    EXPECT_FALSE(s->Get("sessions", "zz").value().has_value());
    ASSERT_TRUE(s->Apply({{"sessions", "a", B("1b")}, {"secrets", "a", std::nullopt}}).ok());
    EXPECT_FALSE(s->Get("secrets", "a").value().has_value());
  }
  auto s = OpenEncrypted();
  auto rows = s->Scan("sessions");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].first, "a");
  EXPECT_EQ((*rows)[0].second, B("1b"));
  EXPECT_EQ((*rows)[1].first, "b");
}

TEST_F(StoreTest, CompareAndSwapOnRevisions) {
  auto s = OpenEncrypted();
  // Create only if absent.
  auto r1 = s->Apply({{"sessions", "app", B("v1"), 0}});
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(s->Apply({{"sessions", "app", B("again"), 0}}).status().code(), StatusCode::kFailedPrecondition);
  auto cur = s->GetVersioned("sessions", "app");
  ASSERT_TRUE(cur.ok() && cur->has_value());
  EXPECT_EQ((*cur)->revision, *r1);
  // Update against the revision read; a stale revision changes nothing,
  // not even the other writes of its batch.
  auto r2 = s->Apply({{"sessions", "app", B("v2"), *r1}});
  ASSERT_TRUE(r2.ok());
  EXPECT_GT(*r2, *r1);
  EXPECT_EQ(s->Apply({{"sessions", "app", B("v3"), *r1}, {"history", "x", B("y")}}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_FALSE(s->Get("history", "x").value().has_value());
  EXPECT_EQ(*s->Get("sessions", "app").value(), B("v2"));
  // Delete and re-create: the revision never comes back (no ABA).
  ASSERT_TRUE(s->Apply({{"sessions", "app", std::nullopt, *r2}}).ok());
  auto r4 = s->Apply({{"sessions", "app", B("v4"), 0}});
  ASSERT_TRUE(r4.ok());
  EXPECT_EQ(s->Apply({{"sessions", "app", B("v5"), *r2}}).status().code(), StatusCode::kFailedPrecondition);
  s.reset();
  auto again = OpenEncrypted();
  auto r5 = again->Apply({{"other", "k", B("v")}});
  ASSERT_TRUE(r5.ok());
  EXPECT_GT(*r5, *r4) << "revisions keep growing across restarts";
}

TEST_F(StoreTest, NothingReadableReachesTheDisk) {
  const std::string secret = "S3cr3t-value-4f9a8c1d";
  const std::string name = "production/billing-db";
  {
    auto s = OpenEncrypted();
    ASSERT_TRUE(s->Apply({{"sessions", name, B("policy: " + secret)}}).ok());
    // While open (the WAL holds the data) and after closing.
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::ifstream in(e.path(), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), {});
      EXPECT_EQ(bytes.find(secret), std::string::npos) << e.path();
      EXPECT_EQ(bytes.find(name), std::string::npos) << e.path();
    }
  }
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(bytes.find(secret), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find(name), std::string::npos) << e.path();
  }
}

TEST_F(StoreTest, SwappedOrMovedRecordsDoNotOpen) {
  {
    auto s = OpenEncrypted();
    ASSERT_TRUE(s->Apply({{"secrets", "alice", B("alice-secret")}, {"secrets", "bob", B("bob-secret")}}).ok());
  }
  // Swap the two sealed values underneath, then copy one into another table.
  {
    auto inner = OpenSqliteStore(path_);
    auto rows = (*inner)->Scan("secrets");
    ASSERT_EQ(rows->size(), 2u);
    auto& r = *rows;
    ASSERT_TRUE((*inner)->Apply({{"secrets", r[0].first, r[1].second},
                                 {"secrets", r[1].first, r[0].second},
                                 {"sessions", r[0].first, r[0].second}}).ok());
  }
  auto s = OpenEncrypted();
  EXPECT_EQ(s->Get("secrets", "alice").status().code(), StatusCode::kIntegrity);
  EXPECT_EQ(s->Get("secrets", "bob").status().code(), StatusCode::kIntegrity);
  EXPECT_EQ(s->Scan("secrets").status().code(), StatusCode::kIntegrity);
  EXPECT_EQ(s->Scan("sessions").status().code(), StatusCode::kIntegrity);
}

TEST_F(StoreTest, WrongKeyOpensNothing) {
  { ASSERT_TRUE(OpenEncrypted(1)->Apply({{"t", "k", B("v")}}).ok()); }
  auto s = OpenEncrypted(2);
  // Another key maps the name to another row: the record is not found by
  // name, and scanning the table fails to authenticate.
  EXPECT_FALSE(s->Get("t", "k").value().has_value());
  EXPECT_EQ(s->Scan("t").status().code(), StatusCode::kIntegrity);
}

TEST_F(StoreTest, AcknowledgedWritesSurviveSigkill) {
  // A child writes records as fast as it can and reports each one after
  // Apply returned. The parent kills it with SIGKILL at a random moment;
  // every reported record must be there after reopening, ten times over.
  std::mt19937 rng(7);
  uint64_t next = 0;
  std::vector<uint64_t> acknowledged;
  for (int round = 0; round < 10; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto inner = OpenSqliteStore(path_);
      if (!inner.ok()) _exit(2);
      auto s = NewEncryptedStore(std::move(inner).value(), Key(1));
      for (uint64_t i = next;; ++i) {
        std::string k = "k" + std::to_string(i);
        if (!(*s)->Apply({{"t", k, B("value-" + std::to_string(i))}}).ok()) _exit(3);
        if (write(fds[1], &i, sizeof(i)) != sizeof(i)) _exit(4);
      }
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 80));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    uint64_t i;
    while (read(fds[0], &i, sizeof(i)) == sizeof(i)) {
      acknowledged.push_back(i);
      next = i + 1;
    }
    close(fds[0]);
    auto s = OpenEncrypted();
    ASSERT_TRUE(s);
    for (uint64_t a : acknowledged) {
      auto v = s->Get("t", "k" + std::to_string(a));
      ASSERT_TRUE(v.ok()) << v.status().ToString();
      ASSERT_TRUE(v->has_value()) << "acknowledged write k" << a << " lost in round " << round;
      ASSERT_EQ(**v, B("value-" + std::to_string(a)));
    }
  }
  EXPECT_GT(acknowledged.size(), 10u);
}

// Counts the reads that reach the store below a cache.
class CountingStore final : public Store {
 public:
  CountingStore(std::unique_ptr<Store> inner, std::atomic<int>* reads) : inner_(std::move(inner)), reads_(reads) {}
  StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) override {
    reads_->fetch_add(1);
    return inner_->GetVersioned(table, key);
  }
  StatusOr<uint64_t> Apply(const std::vector<Write>& batch) override { return inner_->Apply(batch); }
  StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) override {
    return inner_->Scan(table);
  }

 private:
  std::unique_ptr<Store> inner_;
  std::atomic<int>* reads_;
};

TEST_F(StoreTest, CacheServesRepeatedReadsOfItsTablesOnly) {
  std::atomic<int> reads{0};
  auto s = NewCachingStore(std::make_unique<CountingStore>(OpenEncrypted(), &reads), {"sessions"}, 16);
  ASSERT_TRUE(s->Apply({{"sessions", "a", B("1")}, {"secrets", "a", B("x")}}).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(*s->Get("sessions", "a").value(), B("1"));
    EXPECT_EQ(*s->Get("secrets", "a").value(), B("x"));
  }
  EXPECT_EQ(reads.load(), 1 + 3) << "one read of the session, every read of the secret";
  // An absent record is not remembered as absent.
  EXPECT_FALSE(s->Get("sessions", "b").value().has_value());
  ASSERT_TRUE(s->Apply({{"sessions", "b", B("2")}}).ok());
  EXPECT_EQ(*s->Get("sessions", "b").value(), B("2"));
}

TEST_F(StoreTest, CacheForgetsWhatABatchWrites) {
  std::atomic<int> reads{0};
  auto s = NewCachingStore(std::make_unique<CountingStore>(OpenEncrypted(), &reads), {"sessions"}, 16);
  auto first = s->Apply({{"sessions", "a", B("1")}, {"sessions", "b", B("1")}});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(s->GetVersioned("sessions", "a").value()->revision, *first);
  ASSERT_TRUE(s->Get("sessions", "b").ok());
  auto second = s->Apply({{"sessions", "a", B("2"), *first}});
  ASSERT_TRUE(second.ok());
  auto a = s->GetVersioned("sessions", "a").value();
  EXPECT_EQ(a->value, B("2"));
  EXPECT_EQ(a->revision, *second) << "the revision read back is the one a compare-and-swap needs";
  // A stale revision still conflicts, and the cached record is unchanged.
  EXPECT_EQ(s->Apply({{"sessions", "a", B("3"), *first}}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*s->Get("sessions", "a").value(), B("2"));
  ASSERT_TRUE(s->Apply({{"sessions", "a", std::nullopt}}).ok());
  EXPECT_FALSE(s->Get("sessions", "a").value().has_value());
  EXPECT_EQ(*s->Get("sessions", "b").value(), B("1"));
  // Past its bound the cache starts over instead of growing.
  auto small = NewCachingStore(OpenEncrypted(), {"sessions"}, 2);
  for (const char* k : {"a", "b", "c", "d"}) ASSERT_TRUE(small->Apply({{"sessions", k, B(k)}}).ok());
  for (int round = 0; round < 2; ++round) {
    for (const char* k : {"a", "b", "c", "d"}) EXPECT_EQ(*small->Get("sessions", k).value(), B(k));
  }
}

// Readers racing a writer never see a value older than one whose write had
// already returned when their read began.
TEST_F(StoreTest, CacheNeverServesAValueOlderThanTheLastCompletedWrite) {
  auto s = NewCachingStore(OpenEncrypted(), {"sessions"}, 16);
  ASSERT_TRUE(s->Apply({{"sessions", "n", B("0")}}).ok());
  std::atomic<int> committed{0};
  std::atomic<bool> stale{false};
  constexpr int kWrites = 200;
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (committed.load() < kWrites) {
        const int floor = committed.load();
        auto v = s->Get("sessions", "n");
        if (!v.ok() || !*v) {
          stale = true;
          return;
        }
        if (std::stoi(std::string((*v)->begin(), (*v)->end())) < floor) stale = true;
      }
    });
  }
  for (int i = 1; i <= kWrites; ++i) {
    ASSERT_TRUE(s->Apply({{"sessions", "n", B(std::to_string(i))}}).ok());
    committed = i;
  }
  for (auto& r : readers) r.join();
  EXPECT_FALSE(stale.load());
  EXPECT_EQ(*s->Get("sessions", "n").value(), B(std::to_string(kWrites)));
}

}  // namespace
}  // namespace cloister::cas
