// The embedded store: one SQLite database. SQLite does its own file I/O
// (this is the one place outside os/ that touches files), in WAL mode with
// synchronous=FULL so that a committed transaction is on disk when Apply
// returns.
#include <sqlite3.h>

#include <mutex>

#include "cas/store.h"

namespace cloister::cas {
namespace {

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { ok_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK; }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return ok_; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const Bytes& b) {
    sqlite3_bind_blob(stmt_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override { sqlite3_close(db_); }

  Status Init() {
    const char* setup =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "PRAGMA foreign_keys=OFF;"
        "CREATE TABLE IF NOT EXISTS records ("
        "  tbl TEXT NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL, rev INTEGER NOT NULL,"
        "  PRIMARY KEY (tbl, k)"
        ") WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);";
    return Exec(setup);
  }

  StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) override {
    std::lock_guard<std::mutex> l(mu_);
    return Read(table, key);
  }

  StatusOr<uint64_t> Apply(const std::vector<Write>& batch) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    uint64_t revision = 0;
    Status st = [&]() -> Status {
      for (const Write& w : batch) {
        if (!w.if_revision) continue;
        ASSIGN_OR_RETURN(auto cur, Read(w.table, w.key));
        uint64_t have = cur ? cur->revision : 0;
        if (have != *w.if_revision) {
          return FailedPrecondition("conflict: the record changed since it was read");
        }
      }
      Statement rev(db_, "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value");
      if (!rev.ok() || sqlite3_step(rev.get()) != SQLITE_ROW) return Error("revision");
      revision = static_cast<uint64_t>(sqlite3_column_int64(rev.get(), 0));
      Statement put(db_, "INSERT OR REPLACE INTO records (tbl, k, v, rev) VALUES (?1, ?2, ?3, ?4)");
      Statement del(db_, "DELETE FROM records WHERE tbl = ?1 AND k = ?2");
      if (!put.ok() || !del.ok()) return Error("prepare");
      for (const Write& w : batch) {
        Statement& s = w.value ? put : del;
        sqlite3_reset(s.get());
        s.BindText(1, w.table);
        s.BindText(2, w.key);
        if (w.value) {
          s.BindBlob(3, *w.value);
          sqlite3_bind_int64(s.get(), 4, static_cast<sqlite3_int64>(revision));
        }
        if (sqlite3_step(s.get()) != SQLITE_DONE) return Error("write");
      }
      return Status::Ok();
    }();
    if (!st.ok()) {
      Exec("ROLLBACK").ok();
      return st;
    }
    RETURN_IF_ERROR(Exec("COMMIT"));
    return revision;
  }

  StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) override {
    std::lock_guard<std::mutex> l(mu_);
    Statement s(db_, "SELECT k, v FROM records WHERE tbl = ?1 ORDER BY k");
    if (!s.ok()) return Error("prepare");
    s.BindText(1, table);
    std::vector<std::pair<std::string, Bytes>> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const unsigned char* k = sqlite3_column_text(s.get(), 0);
      out.emplace_back(std::string(reinterpret_cast<const char*>(k), sqlite3_column_bytes(s.get(), 0)), Column(s, 1));
    }
    if (rc != SQLITE_DONE) return Error("scan");
    return out;
  }

 private:
  StatusOr<std::optional<Versioned>> Read(std::string_view table, std::string_view key) {
    Statement s(db_, "SELECT v, rev FROM records WHERE tbl = ?1 AND k = ?2");
    if (!s.ok()) return Error("prepare");
    s.BindText(1, table);
    s.BindText(2, key);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) return std::optional<Versioned>();
    if (rc != SQLITE_ROW) return Error("read");
    return std::optional<Versioned>(
        Versioned{Column(s, 0), static_cast<uint64_t>(sqlite3_column_int64(s.get(), 1))});
  }
  static Bytes Column(Statement& s, int i) {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s.get(), i));
    return Bytes(p, p + sqlite3_column_bytes(s.get(), i));
  }
  Status Error(const char* what) {
    return IoError(std::string("store ") + what + ": " + sqlite3_errmsg(db_));
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return IoError("store: " + msg);
    }
    return Status::Ok();
  }

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return IoError("open store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  auto store = std::make_unique<SqliteStore>(db);
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace cloister::cas
