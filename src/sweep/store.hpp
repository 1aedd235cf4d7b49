// The results database of a sweep: one SQLite file with the tables declared in sweep.hpp
// (schema and units in docs/SWEEP.md).
//
// Every finished scenario is written in one transaction (its scenarios row and all its plan
// rows), so a process killed at any moment leaves only whole scenarios behind; a rerun skips the
// keys already present. Errors (cannot open, not a database, a database of another sweep or
// another schema, a failed write) are InputError naming the database path.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sweep/sweep.hpp"

struct sqlite3;

namespace xpu::sweep {

class Store {
 public:
  // Opens (creating when absent) a database for writing and creates missing tables.
  static Store open_for_writing(const std::string& path);
  // Opens an existing database read-only (never creates a file).
  static Store open_read_only(const std::string& path);

  Store(Store&& o) noexcept;
  Store& operator=(Store&&) = delete;
  Store(const Store&) = delete;
  ~Store();

  const std::string& path() const { return path_; }

  // The meta table. On an empty database, writes `identity` and `info`; otherwise checks that
  // every identity entry matches what is stored (a database from another sweep or other search
  // settings is refused) and leaves the table as it is.
  using Entries = std::vector<std::pair<std::string, std::string>>;
  void claim(const Entries& identity, const Entries& info);

  // Keys of the scenarios already written.
  std::set<std::string> keys() const;

  // One transaction: the scenario row and its plans. Refuses a key already present.
  void write(const ScenarioRecord& r);

  // The whole table as CSV (RFC 4180: header line, CRLF line ends), rows in a fixed order.
  std::string export_csv(const TableSchema& t) const;

 private:
  Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const std::string& sql) const;
  [[noreturn]] void fail(const std::string& what) const;
  sqlite3* db_ = nullptr;
  std::string path_;
  int lock_fd_ = -1;  // writer only: an exclusive lock on PATH.lock, released when the process ends
  std::string journal_before_;  // writer only: the journal mode the database had when opened
  bool accepted_ = false;       // writer only: claim() took the database as this sweep's
};

}  // namespace xpu::sweep
