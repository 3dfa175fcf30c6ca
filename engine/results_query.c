/* results_query.c: read-only queries (lacos_db_query_*), on a second,
   read-only connection with an authorizer that refuses anything that would
   write. */
#include "results_internal.h"
#include <math.h>

/* ------------------------------------------------------------------ read-only queries */

struct lacos_db_query {
  lacos_db *db;
  sqlite3_stmt *st;
  int done;
};

/* Queries may read anything but attach no other file and run no function
   that touches the outside world. */
static int query_authorizer(void *ctx, int action, const char *a, const char *b, const char *c, const char *d) {
  (void)ctx; (void)a; (void)c; (void)d;
  switch (action) {
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
    return SQLITE_DENY;
  case SQLITE_FUNCTION:
    /* (the function's name comes in the second argument) */
    if (b && (strcmp(b, "load_extension") == 0 || strcmp(b, "readfile") == 0 || strcmp(b, "writefile") == 0 ||
              strcmp(b, "edit") == 0 || strcmp(b, "fts3_tokenizer") == 0))
      return SQLITE_DENY;
    return SQLITE_OK;
  default:
    return SQLITE_OK;
  }
}

static int ro_conn(lacos_db *db) {
  if (db->ro) return LACOS_OK;
  TRY(db_open_conn(&db->ro, db->path, SQLITE_OPEN_READONLY, db->timeout_s));
  sqlite3_set_authorizer(db->ro, query_authorizer, NULL);
  return LACOS_OK;
}

static int only_space_or_comments(const char *p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ';') p++;
    if (p[0] == '-' && p[1] == '-') { while (*p && *p != '\n') p++; continue; }
    if (p[0] == '/' && p[1] == '*') { const char *e = strstr(p + 2, "*/"); if (!e) return 1; p = e + 2; continue; }
    return *p == 0;
  }
}

int lacos_db_query_prepare(lacos_db_query **out, lacos_db *db, const char *sql) {
  if (!out) return fail(LACOS_EINVAL, "lacos_db_query_prepare: out is NULL");
  *out = NULL;
  TRY(db_usable(db, "lacos_db_query_prepare"));
  if (!sql) return fail(LACOS_EINVAL, "%s: query is NULL", db->path);
  TRY(ro_conn(db));
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(db->ro, sql, -1, &st, &tail);
  if (rc != SQLITE_OK) {
    const char *msg = sqlite3_errmsg(db->ro);
    int off = sqlite3_error_offset(db->ro);
    if ((rc & 0xff) == SQLITE_AUTH)
      return fail(LACOS_EDB, "%s: query refused: results queries are read-only and may not attach other files (%s)",
                  db->path, msg);
    if ((rc & 0xff) == SQLITE_ERROR && off >= 0)
      return fail(LACOS_EDB, "%s: bad query: %s (at character %d)", db->path, msg, off + 1);
    if ((rc & 0xff) == SQLITE_ERROR) return fail(LACOS_EDB, "%s: bad query: %s", db->path, msg);
    return db_fail_rc(db->path, db->ro, rc, db->timeout_s, "preparing the query");
  }
  if (!st) return fail(LACOS_EDB, "%s: bad query: it is empty", db->path);
  if (tail && !only_space_or_comments(tail)) {
    sqlite3_finalize(st);
    return fail(LACOS_EDB, "%s: bad query: one statement at a time, found more after the first ('%.40s')", db->path, tail);
  }
  if (!sqlite3_stmt_readonly(st)) {
    sqlite3_finalize(st);
    return fail(LACOS_EDB, "%s: query refused: it would change the database, and results queries are read-only "
                "(use the sqlite3 shell to edit the file)", db->path);
  }
  lacos_db_query *q;
  int s = meta_calloc(&q, 1, sizeof *q, "query");
  if (s) { sqlite3_finalize(st); return s; }
  q->db = db;
  q->st = st;
  db->refs++;
  *out = q;
  return LACOS_OK;
}

int lacos_db_query_params(const lacos_db_query *q) { return q ? sqlite3_bind_parameter_count(q->st) : 0; }

static int bind_check(lacos_db_query *q, int i, int rc) {
  if (rc == SQLITE_RANGE)
    return fail(LACOS_EINVAL, "%s: query parameter %d out of range (the query has %d)", q->db->path, i,
                sqlite3_bind_parameter_count(q->st));
  if (rc != SQLITE_OK) return db_fail_rc(q->db->path, q->db->ro, rc, 0, "binding a query parameter");
  return LACOS_OK;
}

int lacos_db_query_bind_num(lacos_db_query *q, int i, double value) {
  if (!q) return fail(LACOS_EINVAL, "lacos_db_query_bind_num: query is NULL");
  if (value == floor(value) && fabs(value) < 9007199254740992.0) return bind_check(q, i, sqlite3_bind_int64(q->st, i, (sqlite3_int64)value));
  return bind_check(q, i, sqlite3_bind_double(q->st, i, value));
}
int lacos_db_query_bind_text(lacos_db_query *q, int i, const char *value) {
  if (!q) return fail(LACOS_EINVAL, "lacos_db_query_bind_text: query is NULL");
  return bind_check(q, i, value ? sqlite3_bind_text(q->st, i, value, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(q->st, i));
}
int lacos_db_query_bind_null(lacos_db_query *q, int i) {
  if (!q) return fail(LACOS_EINVAL, "lacos_db_query_bind_null: query is NULL");
  return bind_check(q, i, sqlite3_bind_null(q->st, i));
}

int lacos_db_query_step(int *has_row, lacos_db_query *q) {
  if (!has_row) return fail(LACOS_EINVAL, "lacos_db_query_step: has_row is NULL");
  *has_row = 0;
  if (!q) return fail(LACOS_EINVAL, "lacos_db_query_step: query is NULL");
  if (q->done) return LACOS_OK;
  double deadline = db_now_mono() + q->db->timeout_s;
  for (int attempt = 0;; attempt++) {
    int rc = sqlite3_step(q->st);
    if (rc == SQLITE_ROW) { *has_row = 1; return LACOS_OK; }
    if (rc == SQLITE_DONE) {
      q->done = 1;
      sqlite3_reset(q->st);   /* end the read transaction now: a lingering reader blocks checkpoints */
      return LACOS_OK;
    }
    if ((rc & 0xff) == SQLITE_BUSY && db_now_mono() < deadline) { sqlite3_reset(q->st); db_sleep_ms(1 + attempt % 20); continue; }
    q->done = 1;
    sqlite3_reset(q->st);
    if ((rc & 0xff) == SQLITE_ERROR || (rc & 0xff) == SQLITE_MISMATCH || (rc & 0xff) == SQLITE_RANGE)
      return fail(LACOS_EDB, "%s: query failed: %s", q->db->path, sqlite3_errmsg(q->db->ro));
    return db_fail_rc(q->db->path, q->db->ro, rc, q->db->timeout_s, "running the query");
  }
}

int lacos_db_query_columns(const lacos_db_query *q) { return q ? sqlite3_column_count(q->st) : 0; }

const char *lacos_db_query_column_name(const lacos_db_query *q, int i) {
  if (!q || i < 0 || i >= sqlite3_column_count(q->st)) return "";
  const char *n = sqlite3_column_name(q->st, i);
  return n ? n : "";
}

int lacos_db_query_column_type(const lacos_db_query *q, int i) {
  if (!q || i < 0 || i >= sqlite3_column_count(q->st)) return LACOS_DB_NULL;
  switch (sqlite3_column_type(q->st, i)) {
  case SQLITE_INTEGER: return LACOS_DB_INTEGER;
  case SQLITE_FLOAT: return LACOS_DB_REAL;
  case SQLITE_TEXT: return LACOS_DB_TEXT;
  case SQLITE_BLOB: return LACOS_DB_BLOB;
  default: return LACOS_DB_NULL;
  }
}

double lacos_db_query_column_num(const lacos_db_query *q, int i) {
  if (!q || i < 0 || i >= sqlite3_column_count(q->st)) return NAN;
  if (sqlite3_column_type(q->st, i) == SQLITE_NULL) return NAN;
  return sqlite3_column_double(q->st, i);
}

const char *lacos_db_query_column_text(const lacos_db_query *q, int i) {
  if (!q || i < 0 || i >= sqlite3_column_count(q->st)) return NULL;
  return (const char *)sqlite3_column_text(q->st, i);
}

double lacos_db_query_column_bytes(const lacos_db_query *q, int i) {
  if (!q || i < 0 || i >= sqlite3_column_count(q->st)) return 0;
  return (double)sqlite3_column_bytes(q->st, i);
}

void lacos_db_query_free(lacos_db_query *q) {
  if (!q) return;
  sqlite3_finalize(q->st);
  lacos_db *db = q->db;
  mem_free(q);
  db_release(db);
}

