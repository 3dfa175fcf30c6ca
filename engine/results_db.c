/* results_db.c: a results database connection's plumbing: clocks,
   errors that name the file and what SQLite said, statements, and write
   transactions (BEGIN IMMEDIATE, retried within the busy timeout). */
#include "results_internal.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ small helpers */

double db_now_unix(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double db_now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ISO-8601 UTC with milliseconds: sorts as text, julianday() reads it. */
void db_iso_time(double t, char out[32]) {
  time_t s = (time_t)floor(t);
  int ms = (int)((t - (double)s) * 1000.0);
  if (ms > 999) ms = 999;
  struct tm tm;
  gmtime_r(&s, &tm);
  if (snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, ms) >= 32)
    snprintf(out, 32, "9999-12-31T23:59:59.999Z");   /* a clock beyond year 9999: the latest time ISO text sorts */
}

void db_sleep_ms(int ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ errors */

static const char *explain(int rc) {
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return "the database is locked by another process";
  case SQLITE_NOTADB: return "not an SQLite database";
  case SQLITE_CORRUPT: return "the database file is corrupted";
  case SQLITE_READONLY: return "the database is read-only (check the permissions of the file and its directory)";
  case SQLITE_CANTOPEN: return "cannot open the file";
  case SQLITE_FULL: return "the disk is full";
  case SQLITE_IOERR: return "I/O error";
  case SQLITE_PERM: return "permission denied";
  case SQLITE_NOMEM: return "out of memory";
  case SQLITE_CONSTRAINT: return "constraint violated";
  default: return NULL;
  }
}

/* "<file>: <what>: <cause> (<sqlite's words>)" with a hint where one helps. */
int db_fail_rc(const char *path, sqlite3 *conn, int rc, double waited, const char *what) {
  const char *msg = conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc);
  const char *why = explain(rc);
  /* The connection's message may be stale by now ("not an error" after a
     failed COMMIT rolled back): the operating system's cause is what tells
     a full disk from a failing one. */
  int os_errno = conn ? sqlite3_system_errno(conn) : 0;
  if (!strcmp(msg, "not an error")) msg = sqlite3_errstr(rc);
  if (os_errno && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_CANTOPEN))
    return fail(LACOS_EDB, "%s: %s: %s: %s", path, what, os_errno == ENOSPC ? "the disk is full" : why ? why : msg,
                strerror(os_errno));
  int prim = rc & 0xff;
  if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
    return fail(LACOS_EDB, "%s: %s: the database is locked by another process (waited %.3g s); another writer "
                "or an open sqlite3 transaction holds it too long (raise LACOS_DB_TIMEOUT to wait longer)",
                path, what, waited);
  if (prim == SQLITE_CORRUPT)
    return fail(LACOS_EDB, "%s: %s: the database file is corrupted (%s); restore a copy or try "
                "`sqlite3 %s .recover`", path, what, msg, path);
  if (prim == SQLITE_NOTADB)
    return fail(LACOS_EDB, "%s: %s: not an SQLite database (%s)", path, what, msg);
  if (why && strcmp(why, msg) != 0)
    return fail(LACOS_EDB, "%s: %s: %s (%s)", path, what, why, msg);
  return fail(LACOS_EDB, "%s: %s: %s", path, what, msg);
}

int db_fail(lacos_db *db, int rc, const char *what) {
  return db_fail_rc(db->path, db->conn, rc, db->timeout_s, what);
}

/* ------------------------------------------------------------------ statements */

/* Runs SQL (possibly several statements) on conn, retrying SQLITE_BUSY until
   the deadline (the busy handler covers most waits; some BUSY returns skip
   it, e.g. while another connection recovers the WAL). */
int db_exec_retry(sqlite3 *conn, const char *sql, double timeout_s) {
  double deadline = db_now_mono() + timeout_s;
  for (int attempt = 0;; attempt++) {
    int rc = sqlite3_exec(conn, sql, NULL, NULL, NULL);
    if ((rc & 0xff) != SQLITE_BUSY || db_now_mono() >= deadline) return rc;
    db_sleep_ms(1 + attempt % 20);
  }
}

int db_prepare(lacos_db *db, sqlite3_stmt **st, const char *sql) {
  int rc = sqlite3_prepare_v2(db->conn, sql, -1, st, NULL);
  if (rc != SQLITE_OK) { *st = NULL; return db_fail(db, rc, "preparing a statement"); }
  return LACOS_OK;
}

void db_bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}
void db_bind_num(sqlite3_stmt *st, int i, double v) {
  if (isnan(v)) sqlite3_bind_null(st, i);
  else sqlite3_bind_double(st, i, v);
}
/* Integral doubles go in as INTEGER (STRICT columns check it). */
void db_bind_int(sqlite3_stmt *st, int i, double v) {
  if (isnan(v)) sqlite3_bind_null(st, i);
  else sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

/* Steps a write statement to completion. */
int db_step_done(lacos_db *db, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return LACOS_OK;
  return db_fail(db, rc, what);
}

int db_tx_begin(lacos_db *db, const char *what) {
  if (db->readonly) return fail(LACOS_ESTATE, "%s: %s: the database was opened read-only", db->path, what);
  int rc = db_exec_retry(db->conn, "BEGIN IMMEDIATE", db->timeout_s);
  if (rc != SQLITE_OK) return db_fail(db, rc, what);
  return LACOS_OK;
}

int db_tx_commit(lacos_db *db, const char *what) {
  int rc = db_exec_retry(db->conn, "COMMIT", db->timeout_s);
  if (rc != SQLITE_OK) {
    int s = db_fail(db, rc, what);
    sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    return s;
  }
  return LACOS_OK;
}

void db_tx_rollback(lacos_db *db) {
  if (!sqlite3_get_autocommit(db->conn)) sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* LACOS_DB_TIMEOUT in seconds; -1 (and the error) when it is set but not a
   number of seconds, so a typo is not silently the default. */
int db_env_timeout(double *seconds) {
  *seconds = DEFAULT_TIMEOUT_S;
  const char *e = getenv("LACOS_DB_TIMEOUT");
  if (e && *e) {
    char *end = (char *)e;
    double v = (*e >= '0' && *e <= '9') || *e == '.' ? strtod(e, &end) : -1;
    if (!(v >= 0 && isfinite(v) && end != e && *end == 0))
      return fail(LACOS_EINVAL, "LACOS_DB_TIMEOUT=%s is not a number of seconds (e.g. 30 or 0.5)", e);
    *seconds = v;
  }
  return LACOS_OK;
}

void db_destroy(lacos_db *db) {
  if (!db) return;
  if (db->ro) sqlite3_close_v2(db->ro);
  if (db->conn) {
    if (!db->readonly) {
      /* Fold the WAL back if nobody else is reading; never wait for it. */
      sqlite3_busy_timeout(db->conn, 0);
      sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    sqlite3_close_v2(db->conn);
  }
  mem_free(db->path);
  mem_free(db);
}

/* SQLite's busy timeout is int milliseconds: a longer wait (24 days and
   more) is as good as forever. */
static int busy_ms(double seconds) {
  return seconds * 1000 < (double)INT_MAX ? (int)(seconds * 1000) : INT_MAX;
}

/* A database on a read-only file system cannot get the -shm file WAL mode
   needs, so SQLite cannot open it at all: it is read there as an immutable
   file (no locks, no WAL: nobody can write it), through a URI. A WAL that
   still holds changes (a writer was killed) would be ignored that way, so
   that is an error instead. *uri is the URI to open, or NULL (the normal
   path). */
static int readonly_fs_uri(char **uri, const char *path) {
  *uri = NULL;
  struct statvfs vfs;
  if (statvfs(path, &vfs) != 0 || !(vfs.f_flag & ST_RDONLY)) return LACOS_OK;
  char wal[4200];
  struct stat st;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (stat(wal, &st) == 0 && st.st_size > 0)
    return fail(LACOS_EDB, "%s: the database is on a read-only file system and its write-ahead log (%s-wal) holds "
                "changes not yet in the file; open it once where it can be written", path, path);
  size_t n = strlen(path);
  TRY(meta_alloc(uri, n * 3 + 32, "database URI"));
  char *p = *uri + sprintf(*uri, "file:");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f) p += sprintf(p, "%%%02X", c);
    else *p++ = (char)c;
  }
  strcpy(p, "?immutable=1");
  return LACOS_OK;
}

/* Opens a connection with the engine's settings. */
int db_open_conn(sqlite3 **out, const char *path, int oflags, double timeout_s) {
  if (oflags & SQLITE_OPEN_READONLY) {
    char *uri;
    TRY(readonly_fs_uri(&uri, path));
    if (uri) {
      int rc = sqlite3_open_v2(uri, out, oflags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
      mem_free(uri);
      if (rc != SQLITE_OK) {
        int s = db_fail_rc(path, *out, rc, timeout_s, "opening the database");
        sqlite3_close_v2(*out);
        *out = NULL;
        return s;
      }
      sqlite3_extended_result_codes(*out, 1);
      return LACOS_OK;
    }
  }
  int rc = sqlite3_open_v2(path, out, oflags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int s = db_fail_rc(path, *out, rc, timeout_s, "opening the database");
    sqlite3_close_v2(*out);
    *out = NULL;
    return s;
  }
  sqlite3_extended_result_codes(*out, 1);
  sqlite3_busy_timeout(*out, busy_ms(timeout_s));
  return LACOS_OK;
}

void db_release(lacos_db *db) {
  if (db && --db->refs == 0) db_destroy(db);
}

void lacos_db_close(lacos_db *db) {
  if (!db || db->closed) return;
  db->closed = 1;
  db_release(db);
}

const char *lacos_db_path(const lacos_db *db) { return db ? db->path : ""; }
int lacos_db_schema_version(const lacos_db *db) { return db ? db->version : 0; }

int lacos_db_set_timeout(lacos_db *db, double seconds) {
  if (!db) return fail(LACOS_EINVAL, "lacos_db_set_timeout: db is NULL");
  if (!(seconds >= 0) || !isfinite(seconds)) return fail(LACOS_EINVAL, "%s: timeout must be a non-negative number of seconds", db->path);
  db->timeout_s = seconds;
  sqlite3_busy_timeout(db->conn, busy_ms(seconds));
  if (db->ro) sqlite3_busy_timeout(db->ro, busy_ms(seconds));
  return LACOS_OK;
}

int db_usable(const lacos_db *db, const char *fn) {
  if (!db) return fail(LACOS_EINVAL, "%s: db is NULL", fn);
  if (db->closed) return fail(LACOS_ESTATE, "%s: %s: the database handle is closed", db->path, fn);
  return LACOS_OK;
}

