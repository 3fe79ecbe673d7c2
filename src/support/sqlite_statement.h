// SQLite for the stores (results, captures): databases and prepared statements owned, bound and
// stepped, with errors that name the database file.
#pragma once

#include "support/error.h"

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace switchyard::sqlite {

struct Close {
    void operator()(sqlite3 * db) const { sqlite3_close(db); }
};
using Database = std::unique_ptr<sqlite3, Close>;

// Opens PATH with sqlite3_open_v2's FLAGS; an Error names the file and WHAT it was to be.
inline Database open(const std::filesystem::path & path, int flags, const std::string & what) {
    sqlite3 * raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Database db(raw);
    if (rc != SQLITE_OK)
        throw Error("{}: cannot open the {}: {}", path.string(), what,
                    raw != nullptr ? sqlite3_errmsg(raw) : "out of memory");
    return db;
}

struct Finalize {
    void operator()(sqlite3_stmt * s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

inline Error failure(sqlite3 * db) {
    const char * file = sqlite3_db_filename(db, "main");
    return Error("{}: {}", file != nullptr && *file ? file : "database", sqlite3_errmsg(db));
}

inline Statement prepare(sqlite3 * db, const char * sql) {
    sqlite3_stmt * s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) throw failure(db);
    return Statement(s);
}

// Named bind_value, not bind: an unqualified bind(...) with a std::string argument finds
// std::bind by argument-dependent lookup, which wins for rvalues and silently binds nothing.
inline void bind_value(sqlite3_stmt * s, int i, const std::string & v) {
    sqlite3_bind_text(s, i, v.c_str(), -1, SQLITE_TRANSIENT);
}
inline void bind_value(sqlite3_stmt * s, int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); }
inline void bind_value(sqlite3_stmt * s, int i, double v) { sqlite3_bind_double(s, i, v); }

// Runs SQL without results (schema, BEGIN, COMMIT); throws an Error naming the file.
inline void exec(sqlite3 * db, const char * sql) {
    char * message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        const char * file = sqlite3_db_filename(db, "main");
        const std::string why = message != nullptr ? message : sqlite3_errmsg(db);
        sqlite3_free(message);
        throw Error("{}: {}", file != nullptr && *file ? file : "database", why);
    }
}

inline void step_done(sqlite3 * db, sqlite3_stmt * s) {
    if (sqlite3_step(s) != SQLITE_DONE) throw failure(db);
}

inline std::string text(sqlite3_stmt * s, int column) {
    const auto * v = sqlite3_column_text(s, column);
    return v != nullptr ? reinterpret_cast<const char *>(v) : "";
}

}  // namespace switchyard::sqlite
