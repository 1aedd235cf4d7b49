#include "sweep/store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "spec/error.hpp"
#include "util/paths.hpp"

namespace xpu::sweep {

namespace {

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return s_ != nullptr; }
  sqlite3_stmt* get() const { return s_; }

  void bind(int i, const Value& v) {
    if (std::holds_alternative<std::monostate>(v)) sqlite3_bind_null(s_, i);
    else if (auto* n = std::get_if<std::int64_t>(&v)) sqlite3_bind_int64(s_, i, *n);
    else if (auto* d = std::get_if<double>(&v)) sqlite3_bind_double(s_, i, *d);
    else {
      const auto& t = std::get<std::string>(v);
      sqlite3_bind_text(s_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
    }
  }
  Value column(int i) const {
    switch (sqlite3_column_type(s_, i)) {
      case SQLITE_NULL: return std::monostate{};
      case SQLITE_INTEGER: return static_cast<std::int64_t>(sqlite3_column_int64(s_, i));
      case SQLITE_FLOAT: return sqlite3_column_double(s_, i);
      default: {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
        return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s_, i)));
      }
    }
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::string create_sql(const TableSchema& t) {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + t.name + " (";
  for (const auto& c : t.columns) sql += c.name + " " + sql_type(c.type) + ", ";
  sql += "PRIMARY KEY (";
  for (size_t i = 0; i < t.primary_key.size(); ++i) sql += (i ? ", " : "") + t.primary_key[i];
  return sql + "))";
}

std::string insert_sql(const TableSchema& t) {
  std::string cols, marks;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    cols += (i ? ", " : "") + t.columns[i].name;
    marks += i ? ", ?" : "?";
  }
  return "INSERT INTO " + t.name + " (" + cols + ") VALUES (" + marks + ")";
}

std::string column_list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

sqlite3* open_db(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw InputError(path, "cannot open database: " + msg);
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

}  // namespace

void Store::fail(const std::string& what) const {
  throw InputError(path_, what + ": " + sqlite3_errmsg(db_));
}

void Store::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw InputError(path_, msg);
  }
}

Store::Store(Store&& o) noexcept
    : db_(o.db_), path_(std::move(o.path_)), lock_fd_(o.lock_fd_), journal_before_(std::move(o.journal_before_)), accepted_(o.accepted_) {
  o.db_ = nullptr;
  o.lock_fd_ = -1;
}

Store::~Store() {
  // The writer leaves a plain rollback-journal database: a WAL one needs its -shm file written
  // even to be read, which a read-only share or another user's export cannot do. Best effort: a
  // reader still attached keeps it in WAL mode until the next sweep ends.
  // A database this sweep refused (another sweep's, an older schema) goes back to the mode it had.
  if (db_ && lock_fd_ >= 0) {
    const std::string mode = accepted_ || journal_before_.empty() ? "DELETE" : journal_before_;
    sqlite3_exec(db_, ("PRAGMA journal_mode=" + mode).c_str(), nullptr, nullptr, nullptr);
  }
  sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Store Store::open_for_writing(const std::string& path) {
  // One writer per database: a second sweep into it would claim the same scenarios and stop on a
  // constraint error part-way. The lock is the kernel's (flock), so a killed sweep leaves none.
  // Keyed on the file itself: two spellings of one database (a symbolic link) share the lock.
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path, "is a directory, not a database file");
  // A dangling link is followed too (weakly_canonical keeps its name): the sweep creates its target.
  const fs::path target = follow_links(path);
  const fs::path real = fs::weakly_canonical(target, ec);
  const std::string lock_path = (ec ? target.string() : real.string()) + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(lock_path, std::string("cannot create the lock file beside the database: ") + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw InputError(path, "another sweep is writing to this database (it holds " + lock_path + "); wait for it or use another --db");
  }
  sqlite3* db = nullptr;
  try {
    db = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  } catch (...) {
    ::close(fd);
    throw;
  }
  Store s(db, path);
  s.lock_fd_ = fd;
  // WAL: commits survive the process being killed (synchronous=NORMAL syncs at checkpoints), and
  // readers (sqlite3, an export) can watch a running sweep.
  {  // the mode it had, to leave a database this sweep refuses as it found it
    Stmt q(s.db_, "PRAGMA journal_mode");
    if (q.ok() && sqlite3_step(q.get()) == SQLITE_ROW) {
      const auto v = q.column(0);
      if (std::holds_alternative<std::string>(v)) s.journal_before_ = std::get<std::string>(v);
    }
  }
  s.exec("PRAGMA journal_mode=WAL");
  s.exec("PRAGMA synchronous=NORMAL");
  s.exec("BEGIN IMMEDIATE");
  try {
    {  // A database holding tables of its own is somebody else's: the sweep's would go beside them.
      std::set<std::string> ours;
      for (const auto* t : all_tables()) ours.insert(t->name);
      Stmt q(s.db_, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name");
      if (!q.ok()) s.fail("cannot read the schema");
      std::string other;
      while (sqlite3_step(q.get()) == SQLITE_ROW) {
        const std::string name = std::get<std::string>(q.column(0));
        if (!ours.count(name)) other += (other.empty() ? "" : ", ") + name;
      }
      if (!other.empty())
        throw InputError(path, "is not a sweep database (it holds table " + other + "); use another --db");
    }
    for (const auto* t : all_tables()) {
      std::vector<std::string> have;
      {
        Stmt q(s.db_, "PRAGMA table_info(" + t->name + ")");
        if (!q.ok()) s.fail("cannot read the schema");
        while (sqlite3_step(q.get()) == SQLITE_ROW) have.push_back(std::get<std::string>(q.column(1)));
      }
      std::vector<std::string> want;
      for (const auto& c : t->columns) want.push_back(c.name);
      if (have.empty()) s.exec(create_sql(*t));
      else if (have != want)
        throw InputError(path, "table " + t->name + " has columns (" + column_list(have) + "), expected (" +
                                   column_list(want) + "): not a database of this xpuplan version; use another --db");
    }
    s.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return s;
}

Store Store::open_read_only(const std::string& path) {
  Store s(open_db(path, SQLITE_OPEN_READONLY), path);
  for (const auto* t : all_tables()) {
    Stmt q(s.db_, "PRAGMA table_info(" + t->name + ")");
    if (!q.ok()) s.fail("cannot read the schema");
    if (sqlite3_step(q.get()) != SQLITE_ROW)
      throw InputError(path, "not a sweep database (no table " + t->name + ")");
  }
  return s;
}

void Store::claim(const Entries& identity, const Entries& info) {
  std::map<std::string, std::string> have;
  {
    Stmt q(db_, "SELECT key, value FROM meta");
    if (!q.ok()) fail("cannot read meta");
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW)
      have[std::get<std::string>(q.column(0))] = std::holds_alternative<std::string>(q.column(1))
                                                     ? std::get<std::string>(q.column(1))
                                                     : std::string();
    if (rc != SQLITE_DONE) fail("cannot read meta");
  }
  if (!have.empty()) {
    for (const auto& [k, v] : identity) {
      auto it = have.find(k);
      const std::string stored = it == have.end() ? "(none)" : "'" + it->second + "'";
      if (it == have.end() || it->second != v) {
        if (k == "inputs_fingerprint")
          throw InputError(path_, "holds results computed from other inputs: the catalog, a --price quote, a model or system file, or the "
                                  "xpuplan version changed since (inputs_fingerprint " + stored + " there, '" + v +
                                  "' here); use another --db");
        throw InputError(path_, "holds results of another sweep or other search settings: " + k + " is " + stored +
                                    " there, '" + v + "' here; use another --db");
      }
    }
    accepted_ = true;
    return;
  }
  exec("BEGIN IMMEDIATE");
  try {
    Stmt ins(db_, insert_sql(meta_table()));
    if (!ins.ok()) fail("cannot write meta");
    for (const auto* list : {&identity, &info})
      for (const auto& [k, v] : *list) {
        sqlite3_reset(ins.get());
        ins.bind(1, k);
        ins.bind(2, v);
        if (sqlite3_step(ins.get()) != SQLITE_DONE) fail("cannot write meta");
      }
    exec("COMMIT");
    accepted_ = true;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::set<std::string> Store::keys() const {
  std::set<std::string> out;
  Stmt q(db_, "SELECT key FROM scenarios");
  if (!q.ok()) fail("cannot read scenarios");
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out.insert(std::get<std::string>(q.column(0)));
  if (rc != SQLITE_DONE) fail("cannot read scenarios");
  return out;
}

void Store::write(const ScenarioRecord& r) {
  exec("BEGIN IMMEDIATE");
  try {
    auto insert = [&](const TableSchema& t, const std::vector<Row>& rows) {
      if (rows.empty()) return;
      Stmt ins(db_, insert_sql(t));
      if (!ins.ok()) fail("cannot write " + t.name);
      for (const auto& row : rows) {
        sqlite3_reset(ins.get());
        for (size_t i = 0; i < row.size(); ++i) ins.bind(static_cast<int>(i) + 1, row[i]);
        if (sqlite3_step(ins.get()) != SQLITE_DONE) fail("cannot write scenario '" + r.key + "' to " + t.name);
      }
    };
    insert(scenarios_table(), {r.scenario});
    insert(best_plans_table(), r.best);
    insert(pareto_plans_table(), r.pareto);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::string Store::export_csv(const TableSchema& t) const {
  std::string cols, out;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    cols += (i ? ", p." : "p.") + t.columns[i].name;
    out += (i ? "," : "") + csv_field(t.columns[i].name);
  }
  out += "\r\n";
  Stmt q(db_, "SELECT " + cols + " FROM " + t.name + " AS p ORDER BY " + t.order_by);
  if (!q.ok()) fail("cannot read " + t.name);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    for (int i = 0; i < static_cast<int>(t.columns.size()); ++i) out += (i ? "," : "") + csv_field(q.column(i));
    out += "\r\n";
  }
  if (rc != SQLITE_DONE) fail("cannot read " + t.name);
  return out;
}

}  // namespace xpu::sweep
