// The embedded store: one SQLite database. SQLite does its own file I/O
// (this is the one place outside os/ that touches files), in WAL mode with
// synchronous=FULL so that a committed transaction is on disk when Apply
// returns.
//
// One connection writes; a few more only read. In WAL mode a reader sees
// every transaction committed before its statement began and never waits
// for a writer's fsync, so reads go on while a write is being made durable.
// Statements are prepared once per connection.
#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "cas/store.h"

namespace cloister::cas {
namespace {

constexpr int kReaders = 4;

// A prepared statement, reset and cleared of bindings when released.
class Statement {
 public:
  Statement() = default;
  ~Statement() { Finalize(); }
  void Finalize() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool Prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) == SQLITE_OK;
  }
  sqlite3_stmt* get() { return stmt_; }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void BindText(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void BindBlob(int i, const Bytes& b) {
    sqlite3_bind_blob(stmt_, i, b.data(), static_cast<int>(b.size()), SQLITE_STATIC);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when a scope ends, so no statement keeps a read
// transaction open between calls.
struct ResetOnExit {
  Statement& s;
  ~ResetOnExit() { s.Reset(); }
};

struct Connection {
  ~Connection() {
    get.Finalize();  // a connection with live statements does not close
    scan.Finalize();
    sqlite3_close(db);
  }
  sqlite3* db = nullptr;
  std::mutex mu;
  Statement get, scan;
};

Status SqlError(sqlite3* db, const char* what) {
  return IoError(std::string("store ") + what + ": " + sqlite3_errmsg(db));
}

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return IoError("store: " + msg);
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Connection>> Connect(const std::string& path, bool read_only) {
  auto c = std::make_unique<Connection>();
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &c->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = c->db ? sqlite3_errmsg(c->db) : "out of memory";
    return IoError("open store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(c->db, 5000);
  return c;
}

Bytes Column(Statement& s, int i) {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s.get(), i));
  return Bytes(p, p + sqlite3_column_bytes(s.get(), i));
}

StatusOr<std::optional<Store::Versioned>> ReadRecord(Connection& c, std::string_view table, std::string_view key) {
  ResetOnExit reset{c.get};
  c.get.BindText(1, table);
  c.get.BindText(2, key);
  int rc = sqlite3_step(c.get.get());
  if (rc == SQLITE_DONE) return std::optional<Store::Versioned>();
  if (rc != SQLITE_ROW) return SqlError(c.db, "read");
  return std::optional<Store::Versioned>(
      Store::Versioned{Column(c.get, 0), static_cast<uint64_t>(sqlite3_column_int64(c.get.get(), 1))});
}

Status PrepareReads(Connection& c) {
  if (!c.get.Prepare(c.db, "SELECT v, rev FROM records WHERE tbl = ?1 AND k = ?2") ||
      !c.scan.Prepare(c.db, "SELECT k, v FROM records WHERE tbl = ?1 ORDER BY k")) {
    return SqlError(c.db, "prepare");
  }
  return Status::Ok();
}

class SqliteStore final : public Store {
 public:
  Status Init(const std::string& path) {
    ASSIGN_OR_RETURN(writer_, Connect(path, /*read_only=*/false));
    // 8 KiB pages: a session record (a few KiB sealed) fits a leaf page
    // instead of spilling into an overflow page of its own. Only takes
    // effect when the database is created.
    const char* setup =
        "PRAGMA page_size=8192;"
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "PRAGMA foreign_keys=OFF;"
        "CREATE TABLE IF NOT EXISTS records ("
        "  tbl TEXT NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL, rev INTEGER NOT NULL,"
        "  PRIMARY KEY (tbl, k)"
        ") WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);";
    RETURN_IF_ERROR(Exec(writer_->db, setup));
    RETURN_IF_ERROR(PrepareReads(*writer_));
    if (!rev_.Prepare(writer_->db, "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value") ||
        !put_.Prepare(writer_->db, "INSERT OR REPLACE INTO records (tbl, k, v, rev) VALUES (?1, ?2, ?3, ?4)") ||
        !del_.Prepare(writer_->db, "DELETE FROM records WHERE tbl = ?1 AND k = ?2")) {
      return SqlError(writer_->db, "prepare");
    }
    for (int i = 0; i < kReaders; ++i) {
      ASSIGN_OR_RETURN(auto r, Connect(path, /*read_only=*/true));
      RETURN_IF_ERROR(PrepareReads(*r));
      readers_.push_back(std::move(r));
    }
    return Status::Ok();
  }

  StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) override {
    Connection& c = Reader();
    std::lock_guard<std::mutex> l(c.mu);
    return ReadRecord(c, table, key);
  }

  StatusOr<uint64_t> Apply(const std::vector<Write>& batch) override {
    std::lock_guard<std::mutex> l(writer_->mu);
    sqlite3* db = writer_->db;
    RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
    uint64_t revision = 0;
    Status st = [&]() -> Status {
      for (const Write& w : batch) {
        if (!w.if_revision) continue;
        ASSIGN_OR_RETURN(auto cur, ReadRecord(*writer_, w.table, w.key));
        uint64_t have = cur ? cur->revision : 0;
        if (have != *w.if_revision) {
          return FailedPrecondition("conflict: the record changed since it was read");
        }
      }
      {
        ResetOnExit reset{rev_};
        if (sqlite3_step(rev_.get()) != SQLITE_ROW) return SqlError(db, "revision");
        revision = static_cast<uint64_t>(sqlite3_column_int64(rev_.get(), 0));
        while (sqlite3_step(rev_.get()) == SQLITE_ROW) {
        }
      }
      for (const Write& w : batch) {
        Statement& s = w.value ? put_ : del_;
        ResetOnExit reset{s};
        s.BindText(1, w.table);
        s.BindText(2, w.key);
        if (w.value) {
          s.BindBlob(3, *w.value);
          sqlite3_bind_int64(s.get(), 4, static_cast<sqlite3_int64>(revision));
        }
        if (sqlite3_step(s.get()) != SQLITE_DONE) return SqlError(db, "write");
      }
      return Status::Ok();
    }();
    if (!st.ok()) {
      Exec(db, "ROLLBACK").ok();
      return st;
    }
    RETURN_IF_ERROR(Exec(db, "COMMIT"));
    return revision;
  }

  StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) override {
    Connection& c = Reader();
    std::lock_guard<std::mutex> l(c.mu);
    ResetOnExit reset{c.scan};
    c.scan.BindText(1, table);
    std::vector<std::pair<std::string, Bytes>> out;
    int rc;
    while ((rc = sqlite3_step(c.scan.get())) == SQLITE_ROW) {
      const unsigned char* k = sqlite3_column_text(c.scan.get(), 0);
      out.emplace_back(std::string(reinterpret_cast<const char*>(k), sqlite3_column_bytes(c.scan.get(), 0)),
                       Column(c.scan, 1));
    }
    if (rc != SQLITE_DONE) return SqlError(c.db, "scan");
    return out;
  }

 private:
  Connection& Reader() { return *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()]; }

  std::unique_ptr<Connection> writer_;  // guarded by writer_->mu
  Statement rev_, put_, del_;           // the writer's; declared after it, so finalized before it closes
  std::vector<std::unique_ptr<Connection>> readers_;
  std::atomic<size_t> next_reader_{0};
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  auto store = std::make_unique<SqliteStore>();
  RETURN_IF_ERROR(store->Init(path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace cloister::cas
