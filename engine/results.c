/* results.c: the results database (SQLite): schema and migrations, run
   logging, read-only queries.

   Conventions follow SQLite's own advice for several writers on one host
   (https://www.sqlite.org/wal.html, https://www.sqlite.org/lang_transaction.html):
   WAL journal, a busy timeout on every connection, every write transaction
   opened with BEGIN IMMEDIATE (a deferred read->write upgrade fails with
   SQLITE_BUSY at once, ignoring the timeout), short transactions, metrics
   buffered in memory and flushed in batches, one migrator at a time under
   BEGIN EXCLUSIVE. The tables mirror what MLflow and Sacred record (typed
   params, metrics with is_finite, heartbeats, git commit + dirty flag,
   script text), see USERS.md sections 2, 3 and 5. Table rebuilds in
   migrations follow SQLite's 12-step ALTER TABLE procedure. */
#include "engine.h"
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DB_PATH "results/lacos.db"
#define DEFAULT_TIMEOUT_S 30.0
#define DEAD_AFTER_S 60.0
#define SCRIPT_MAX_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------------ small helpers */

static double now_unix(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ISO-8601 UTC with milliseconds: sorts as text, julianday() reads it. */
static void iso_time(double t, char out[32]) {
  time_t s = (time_t)floor(t);
  int ms = (int)((t - (double)s) * 1000.0);
  if (ms > 999) ms = 999;
  struct tm tm;
  gmtime_r(&s, &tm);
  if (snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, ms) >= 32)
    snprintf(out, 32, "9999-12-31T23:59:59.999Z");   /* a clock beyond year 9999: the latest time ISO text sorts */
}

static void sleep_ms(int ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p; b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Shortest text that reads back as exactly v; integral values below 2^53
   without fraction or exponent (so 1.0, 1 and 1e0 are all "1"). */
static void format_number(double v, char out[40]) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, 40, "%.0f", v == 0 ? 0.0 : v);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, 40, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

/* A decimal number as people write one: [+-]digits[.digits][e[+-]digits].
   Hex, inf, nan and surrounding spaces stay text. */
static bool parse_decimal(const char *s, double *v) {
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  int digits = 0;
  while (*p >= '0' && *p <= '9') { p++; digits++; }
  if (*p == '.') { p++; while (*p >= '0' && *p <= '9') { p++; digits++; } }
  if (!digits) return false;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
  }
  if (*p) return false;
  errno = 0;
  double d = strtod(s, NULL);
  if (!isfinite(d)) return false;
  *v = d;
  return true;
}

/* ------------------------------------------------------------------ canonical JSON */

static int canon_value(sbuf *b, json_t *v) {
  char num[40];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    size_t n = json_object_size(v), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return fail(LACOS_ENOMEM, "canonical JSON: out of memory");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) keys[i++] = k;
    /* Bytewise order, the same as Lua's table.sort on strings. */
    for (size_t a = 1; a < n; a++) {
      const char *t = keys[a];
      size_t c = a;
      while (c > 0 && strcmp(keys[c - 1], t) > 0) { keys[c] = keys[c - 1]; c--; }
      keys[c] = t;
    }
    sb_puts(b, "{");
    for (i = 0; i < n; i++) {
      if (i) sb_puts(b, ",");
      json_t *ks = json_string(keys[i]);
      char *kt = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
      json_decref(ks);
      if (!kt) { free(keys); return fail(LACOS_ENOMEM, "canonical JSON: out of memory"); }
      sb_puts(b, kt);
      free(kt);
      sb_puts(b, ":");
      int s = canon_value(b, json_object_get(v, keys[i]));
      if (s) { free(keys); return s; }
    }
    sb_puts(b, "}");
    free(keys);
    return LACOS_OK;
  }
  case JSON_ARRAY:
    sb_puts(b, "[");
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) sb_puts(b, ",");
      TRY(canon_value(b, json_array_get(v, i)));
    }
    sb_puts(b, "]");
    return LACOS_OK;
  case JSON_INTEGER: {
    json_int_t iv = json_integer_value(v);
    if (iv > -9007199254740992LL && iv < 9007199254740992LL) snprintf(num, sizeof num, "%lld", (long long)iv);
    else format_number((double)iv, num);   /* what a Lua number would hold */
    sb_puts(b, num);
    return LACOS_OK;
  }
  case JSON_REAL:
    format_number(json_real_value(v), num);
    sb_puts(b, num);
    return LACOS_OK;
  case JSON_STRING: {
    char *t = json_dumps(v, JSON_ENCODE_ANY);
    if (!t) return fail(LACOS_ENOMEM, "canonical JSON: out of memory");
    sb_puts(b, t);
    free(t);
    return LACOS_OK;
  }
  case JSON_TRUE: sb_puts(b, "true"); return LACOS_OK;
  case JSON_FALSE: sb_puts(b, "false"); return LACOS_OK;
  case JSON_NULL: sb_puts(b, "null"); return LACOS_OK;
  }
  return fail(LACOS_EFORMAT, "canonical JSON: unknown value type");
}

static int json_parse(json_t **out, const char *text, const char *what) {
  json_error_t err;
  *out = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!*out) return fail(LACOS_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", what, err.line, err.column, err.text);
  return LACOS_OK;
}

static int canonical_of(char **out, char *sha, json_t *root) {
  sbuf b = { 0 };
  int s = canon_value(&b, root);
  if (!s && b.oom) s = fail(LACOS_ENOMEM, "canonical JSON: out of memory");
  if (!s && !b.p) sb_puts(&b, "");
  if (s) { free(b.p); return s; }
  if (sha) {
    s = lacos_sha256_buffer(b.p, (double)b.n, sha);
    if (s) { free(b.p); return s; }
  }
  *out = b.p;
  return LACOS_OK;
}

int lacos_db_canonical_json(char **out, char *sha256_hex, const char *json) {
  if (!out) return fail(LACOS_EINVAL, "lacos_db_canonical_json: out is NULL");
  *out = NULL;
  if (!json) return fail(LACOS_EINVAL, "lacos_db_canonical_json: json is NULL");
  json_t *root;
  TRY(json_parse(&root, json, "config"));
  int s = canonical_of(out, sha256_hex, root);
  json_decref(root);
  return s;
}

void lacos_db_text_free(char *text) { free(text); }

/* ------------------------------------------------------------------ schema */

/* Every released schema, as the ordered migrations that reach it. A fresh
   database runs all of them, so "fresh" and "migrated" are one code path.
   Never edit a released step: append a new one. */
static const char *const MIGRATION_1 =
  "CREATE TABLE schema_version (\n"
  "  version INTEGER PRIMARY KEY,\n"
  "  applied_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "CREATE TABLE experiments (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  name TEXT NOT NULL UNIQUE,\n"
  "  script_path TEXT,\n"
  "  script_sha256 TEXT,\n"
  "  script_text TEXT,\n"
  "  axes_json TEXT CHECK (axes_json IS NULL OR json_valid(axes_json)),\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "CREATE TABLE runs (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  uuid TEXT NOT NULL UNIQUE,\n"
  "  experiment_id INTEGER REFERENCES experiments(id),\n"
  "  name TEXT,\n"
  "  status TEXT NOT NULL CHECK (status IN ('queued','running','done','failed','interrupted')),\n"
  "  message TEXT,\n"
  "  config_json TEXT NOT NULL,\n"
  "  config_sha256 TEXT NOT NULL,\n"
  "  seed INTEGER,\n"
  "  git_commit TEXT,\n"
  "  git_dirty INTEGER,\n"
  "  host TEXT,\n"
  "  cpu TEXT,\n"
  "  gpu TEXT,\n"
  "  lacos_version TEXT,\n"
  "  created_at TEXT NOT NULL,\n"
  "  started_at TEXT,\n"
  "  ended_at TEXT,\n"
  "  heartbeat_at TEXT\n"
  ") STRICT;\n"
  "CREATE TABLE params (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  key TEXT NOT NULL,\n"
  "  value TEXT NOT NULL,\n"
  "  PRIMARY KEY (run_id, key)\n"
  ") STRICT;\n"
  "CREATE TABLE metrics (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  step INTEGER NOT NULL,\n"
  "  key TEXT NOT NULL,\n"
  "  value REAL,\n"
  "  wall_time REAL NOT NULL\n"
  ") STRICT;\n"
  "CREATE TABLE sts (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  dataset TEXT NOT NULL,\n"
  "  language TEXT,\n"
  "  split TEXT NOT NULL,\n"
  "  n_pairs INTEGER,\n"
  "  spearman REAL,\n"
  "  pearson REAL,\n"
  "  pooling TEXT,\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "CREATE TABLE artifacts (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  kind TEXT NOT NULL,\n"
  "  path TEXT NOT NULL,\n"
  "  sha256 TEXT,\n"
  "  bytes INTEGER,\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "CREATE TABLE tags (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  key TEXT NOT NULL,\n"
  "  value TEXT,\n"
  "  PRIMARY KEY (run_id, key)\n"
  ") STRICT;\n";

/* Version 2: typed params (text that reads as a decimal number becomes
   value_num), metrics with is_finite (version 1 stored NaN as a bare NULL),
   runs gain the dead status, exit reason, pid, threads, build and the
   script version they ran (every script text kept in `scripts`), STS rows
   gain every field that moves a score, plus timings, the run_summary view
   and the indexes the listings need. */
static const char *const MIGRATION_2 =
  "CREATE TABLE scripts (\n"
  "  sha256 TEXT PRIMARY KEY,\n"
  "  path TEXT,\n"
  "  bytes INTEGER NOT NULL,\n"
  "  text TEXT NOT NULL,\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "INSERT OR IGNORE INTO scripts (sha256, path, bytes, text, created_at)\n"
  "  SELECT script_sha256, script_path, length(CAST(script_text AS BLOB)), script_text, created_at\n"
  "  FROM experiments WHERE script_sha256 IS NOT NULL AND script_text IS NOT NULL;\n"
  "ALTER TABLE experiments ADD COLUMN updated_at TEXT;\n"
  "UPDATE experiments SET updated_at = created_at;\n"
  "CREATE TABLE runs_v2 (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  uuid TEXT NOT NULL UNIQUE,\n"
  "  experiment_id INTEGER REFERENCES experiments(id),\n"
  "  parent_run_id INTEGER REFERENCES runs(id),\n"
  "  name TEXT,\n"
  "  status TEXT NOT NULL CHECK (status IN ('queued','running','done','failed','interrupted','dead')),\n"
  "  exit_reason TEXT,\n"
  "  error TEXT,\n"
  "  config_json TEXT NOT NULL CHECK (json_valid(config_json)),\n"
  "  config_sha256 TEXT NOT NULL,\n"
  "  seed INTEGER,\n"
  "  script_sha256 TEXT,\n"
  "  git_commit TEXT,\n"
  "  git_dirty INTEGER CHECK (git_dirty IN (0, 1)),\n"
  "  host TEXT,\n"
  "  pid INTEGER,\n"
  "  cpu TEXT,\n"
  "  gpu TEXT,\n"
  "  threads INTEGER,\n"
  "  lacos_version TEXT,\n"
  "  lacos_build TEXT,\n"
  "  created_at TEXT NOT NULL,\n"
  "  started_at TEXT,\n"
  "  ended_at TEXT,\n"
  "  heartbeat_at TEXT\n"
  ") STRICT;\n"
  "INSERT INTO runs_v2 (id, uuid, experiment_id, name, status, error, config_json, config_sha256, seed,\n"
  "    script_sha256, git_commit, git_dirty, host, cpu, gpu, lacos_version, created_at, started_at,\n"
  "    ended_at, heartbeat_at)\n"
  "  SELECT r.id, r.uuid, r.experiment_id, r.name, r.status, r.message, r.config_json, r.config_sha256,\n"
  "    r.seed, e.script_sha256, r.git_commit, r.git_dirty, r.host, r.cpu, r.gpu, r.lacos_version,\n"
  "    r.created_at, r.started_at, r.ended_at, r.heartbeat_at\n"
  "  FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id;\n"
  "DROP TABLE runs;\n"
  "ALTER TABLE runs_v2 RENAME TO runs;\n"
  "CREATE TABLE params_v2 (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  key TEXT NOT NULL,\n"
  "  value_num REAL,\n"
  "  value_text TEXT,\n"
  "  CHECK ((value_num IS NULL) <> (value_text IS NULL)),\n"
  "  PRIMARY KEY (run_id, key)\n"
  ") STRICT;\n"
  "INSERT INTO params_v2 (run_id, key, value_num, value_text)\n"
  "  SELECT run_id, key, lacos_decimal(value), CASE WHEN lacos_decimal(value) IS NULL THEN value END FROM params;\n"
  "DROP TABLE params;\n"
  "ALTER TABLE params_v2 RENAME TO params;\n"
  "CREATE TABLE metrics_v2 (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  key TEXT NOT NULL,\n"
  "  step INTEGER NOT NULL,\n"
  "  value REAL,\n"
  "  is_finite INTEGER NOT NULL CHECK (is_finite IN (0, 1)),\n"
  "  wall_time REAL NOT NULL,\n"
  "  CHECK (is_finite = (value IS NOT NULL AND abs(value) < 9e999))\n"
  ") STRICT;\n"
  "INSERT INTO metrics_v2 (run_id, key, step, value, is_finite, wall_time)\n"
  "  SELECT run_id, key, step, value, value IS NOT NULL AND abs(value) < 9e999, wall_time FROM metrics ORDER BY rowid;\n"
  "DROP TABLE metrics;\n"
  "ALTER TABLE metrics_v2 RENAME TO metrics;\n"
  "CREATE TABLE sts_results (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  step INTEGER NOT NULL DEFAULT -1,\n"
  "  dataset TEXT NOT NULL,\n"
  "  language TEXT,\n"
  "  split TEXT NOT NULL,\n"
  "  n_pairs INTEGER,\n"
  "  spearman REAL,\n"
  "  pearson REAL,\n"
  "  similarity TEXT,\n"
  "  pooling TEXT,\n"
  "  text_variant TEXT,\n"
  "  aggregation TEXT,\n"
  "  model TEXT,\n"
  "  adapter TEXT,\n"
  "  quantisation TEXT,\n"
  "  dtype TEXT,\n"
  "  batch_size INTEGER,\n"
  "  dataset_sha256 TEXT,\n"
  "  lacos_version TEXT,\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "INSERT INTO sts_results (run_id, step, dataset, language, split, n_pairs, spearman, pearson, pooling,\n"
  "    lacos_version, created_at)\n"
  "  SELECT s.run_id, -1, s.dataset, s.language, s.split, s.n_pairs, s.spearman, s.pearson, s.pooling,\n"
  "    r.lacos_version, s.created_at\n"
  "  FROM sts s LEFT JOIN runs r ON r.id = s.run_id ORDER BY s.rowid;\n"
  "DROP TABLE sts;\n"
  "ALTER TABLE artifacts ADD COLUMN step INTEGER NOT NULL DEFAULT -1;\n"
  "CREATE TABLE timings (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
  "  phase TEXT NOT NULL,\n"
  "  step INTEGER NOT NULL DEFAULT -1,\n"
  "  device TEXT,\n"
  "  threads INTEGER,\n"
  "  repetitions INTEGER,\n"
  "  n_items INTEGER,\n"
  "  n_tokens INTEGER,\n"
  "  avg_ns REAL,\n"
  "  stddev_ns REAL,\n"
  "  peak_bytes INTEGER,\n"
  "  optimizer_state_bytes INTEGER,\n"
  "  created_at TEXT NOT NULL\n"
  ") STRICT;\n"
  "CREATE INDEX runs_by_claim ON runs (experiment_id, config_sha256, seed);\n"
  "CREATE INDEX runs_by_status ON runs (status, id);\n"
  "CREATE INDEX runs_by_created ON runs (created_at);\n"
  "CREATE INDEX metrics_by_run ON metrics (run_id, key, step);\n"
  "CREATE INDEX params_by_key ON params (key, value_num, value_text);\n"
  "CREATE INDEX sts_by_run ON sts_results (run_id, step);\n"
  "CREATE INDEX sts_by_task ON sts_results (dataset, language, split);\n"
  "CREATE INDEX timings_by_run ON timings (run_id, phase);\n"
  "CREATE INDEX artifacts_by_run ON artifacts (run_id);\n"
  /* One row per run for listings. status says dead for a running run whose
     heartbeat is older than 60 s; loss is the last 'loss' metric ('NaN' when
     it was NaN); sts_* the latest final test-split STS score. */
  "CREATE VIEW run_summary AS\n"
  "SELECT r.id, r.uuid, e.name AS experiment, r.name,\n"
  "  CASE WHEN r.status = 'running' AND julianday(coalesce(r.heartbeat_at, r.started_at, r.created_at))\n"
  "         < julianday('now') - 60.0 / 86400.0 THEN 'dead' ELSE r.status END AS status,\n"
  "  r.seed,\n"
  "  (SELECT coalesce(p.value_text, p.value_num) FROM params p WHERE p.run_id = r.id AND p.key = 'model') AS model,\n"
  "  (SELECT CASE WHEN m.value IS NULL THEN 'NaN' ELSE m.value END FROM metrics m\n"
  "     WHERE m.run_id = r.id AND m.key = 'loss' ORDER BY m.step DESC, m.rowid DESC LIMIT 1) AS loss,\n"
  "  s.dataset AS sts_dataset, s.language AS sts_language, s.spearman AS sts_spearman,\n"
  "  r.created_at, r.started_at, r.ended_at,\n"
  "  round((julianday(CASE WHEN r.ended_at IS NOT NULL THEN r.ended_at\n"
  "                        WHEN r.status = 'running' THEN 'now' ELSE r.heartbeat_at END)\n"
  "         - julianday(r.started_at)) * 86400.0, 1) AS duration_s,\n"
  "  r.exit_reason, r.config_sha256, r.git_commit, r.git_dirty, r.host, r.experiment_id\n"
  "FROM runs r\n"
  "LEFT JOIN experiments e ON e.id = r.experiment_id\n"
  "LEFT JOIN sts_results s ON s.id = (SELECT s2.id FROM sts_results s2\n"
  "  WHERE s2.run_id = r.id AND s2.step = -1 AND s2.split = 'test' ORDER BY s2.id DESC LIMIT 1);\n";

#include "results_views.h"   /* version 3: the report views */
static const char *const MIGRATIONS[] = { NULL, MIGRATION_1, MIGRATION_2, LACOS_DB_MIGRATION_VIEWS };
enum { MIGRATION_COUNT = (int)(sizeof MIGRATIONS / sizeof *MIGRATIONS) - 1 };
_Static_assert((int)MIGRATION_COUNT == (int)LACOS_DB_SCHEMA_VERSION, "one migration per schema version");

/* ------------------------------------------------------------------ handles */

typedef struct metric_row { double step, value, wall; char *key; } metric_row;

struct lacos_db {
  sqlite3 *conn;
  sqlite3 *ro;              /* read-only connection for lacos_db_query_* (opened lazily) */
  char *path;
  int flags;
  int readonly;
  int version;
  int closed;
  int refs;                 /* 1 for the user's handle + 1 per live run */
  double timeout_s;
};

struct lacos_run {
  lacos_db *db;
  int64_t id;
  char uuid[40];
  int status;
  int owned;                /* this handle runs it and may log */
  int finished;
  metric_row *rows;
  int nrows, caprows;
  int flush_rows;
  double flush_seconds, last_flush;
  sqlite3_stmt *metric_stmt;
  /* heartbeat thread */
  int hb_running;
  double hb_period;
  pthread_t hb_thread;
  pthread_mutex_t hb_mu;
  pthread_cond_t hb_cv;
  int hb_stop;
  struct lacos_run *next_open;   /* the registry of owned runs, for exit */
};

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
static int db_fail_rc(const char *path, sqlite3 *conn, int rc, double waited, const char *what) {
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

static int db_fail(lacos_db *db, int rc, const char *what) {
  return db_fail_rc(db->path, db->conn, rc, db->timeout_s, what);
}

/* ------------------------------------------------------------------ statements */

/* Runs SQL (possibly several statements) on conn, retrying SQLITE_BUSY until
   the deadline (the busy handler covers most waits; some BUSY returns skip
   it, e.g. while another connection recovers the WAL). */
static int exec_retry(sqlite3 *conn, const char *sql, double timeout_s) {
  double deadline = now_mono() + timeout_s;
  for (int attempt = 0;; attempt++) {
    int rc = sqlite3_exec(conn, sql, NULL, NULL, NULL);
    if ((rc & 0xff) != SQLITE_BUSY || now_mono() >= deadline) return rc;
    sleep_ms(1 + attempt % 20);
  }
}

static int prepare(lacos_db *db, sqlite3_stmt **st, const char *sql) {
  int rc = sqlite3_prepare_v2(db->conn, sql, -1, st, NULL);
  if (rc != SQLITE_OK) { *st = NULL; return db_fail(db, rc, "preparing a statement"); }
  return LACOS_OK;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}
static void bind_num_or_null(sqlite3_stmt *st, int i, double v) {
  if (isnan(v)) sqlite3_bind_null(st, i);
  else sqlite3_bind_double(st, i, v);
}
/* Integral doubles go in as INTEGER (STRICT columns check it). */
static void bind_int_or_null(sqlite3_stmt *st, int i, double v) {
  if (isnan(v)) sqlite3_bind_null(st, i);
  else sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

/* Steps a write statement to completion. */
static int step_done(lacos_db *db, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return LACOS_OK;
  return db_fail(db, rc, what);
}

static int tx_begin(lacos_db *db, const char *what) {
  if (db->readonly) return fail(LACOS_ESTATE, "%s: %s: the database was opened read-only", db->path, what);
  int rc = exec_retry(db->conn, "BEGIN IMMEDIATE", db->timeout_s);
  if (rc != SQLITE_OK) return db_fail(db, rc, what);
  return LACOS_OK;
}

static int tx_commit(lacos_db *db, const char *what) {
  int rc = exec_retry(db->conn, "COMMIT", db->timeout_s);
  if (rc != SQLITE_OK) {
    int s = db_fail(db, rc, what);
    sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    return s;
  }
  return LACOS_OK;
}

static void tx_rollback(lacos_db *db) {
  if (!sqlite3_get_autocommit(db->conn)) sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ open and migrate */

static void sql_decimal(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  double v;
  const unsigned char *t = sqlite3_value_text(argv[0]);
  if (sqlite3_value_type(argv[0]) == SQLITE_TEXT && t && parse_decimal((const char *)t, &v)) sqlite3_result_double(ctx, v);
  else if (sqlite3_value_type(argv[0]) == SQLITE_INTEGER || sqlite3_value_type(argv[0]) == SQLITE_FLOAT)
    sqlite3_result_double(ctx, sqlite3_value_double(argv[0]));
  else sqlite3_result_null(ctx);
}

static int mkdir_db_parents(const char *path) {
  char *copy = strdup(path);
  if (!copy) return fail(LACOS_ENOMEM, "out of memory");
  char *dir = dirname(copy);
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", dir);
  free(copy);
  struct stat st;
  if (stat(buf, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return fail(LACOS_EIO, "%s: cannot create the results database there: not a directory", buf);
    if (access(buf, W_OK | X_OK) != 0) return fail_errno("%s: cannot create the results database in this directory", buf);
    return LACOS_OK;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode))
      return fail(LACOS_EIO, "%s: cannot create the results database below it: it is a file, not a directory", buf);
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory for the results database", buf);
    *p = '/';
  }
  if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode))
    return fail(LACOS_EIO, "%s: cannot create the results database below it: it is a file, not a directory", buf);
  if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory for the results database", buf);
  return LACOS_OK;
}

/* The schema version of an open file: 0 for an empty database, -1 for a
   database with tables but no schema_version (not ours). */
static int read_version(lacos_db *db, int *version) {
  sqlite3_stmt *st = NULL;
  double deadline = now_mono() + db->timeout_s;
  int rc;
  for (int attempt = 0;; attempt++) {
    rc = sqlite3_prepare_v2(db->conn,
                            "SELECT (SELECT count(*) FROM sqlite_schema),"
                            " (SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version')",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) break;
      sqlite3_finalize(st);
      st = NULL;
    }
    if ((rc & 0xff) != SQLITE_BUSY || now_mono() >= deadline) return db_fail(db, rc, "reading the schema");
    sleep_ms(1 + attempt % 20);
  }
  int objects = sqlite3_column_int(st, 0), has_version = sqlite3_column_int(st, 1);
  sqlite3_finalize(st);
  if (!has_version) { *version = objects ? -1 : 0; return LACOS_OK; }
  rc = sqlite3_prepare_v2(db->conn, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) { sqlite3_finalize(st); return db_fail(db, rc, "reading the schema version"); }
  *version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return LACOS_OK;
}

static int check_version(lacos_db *db, int v) {
  if (v < 0)
    return fail(LACOS_EDB, "%s: not a lacos results database (it holds tables but no schema_version table); "
                "refusing to add tables to it, choose another file with --db or LACOS_DB", db->path);
  if (v > LACOS_DB_SCHEMA_VERSION)
    return fail(LACOS_EDB, "%s: the database has schema version %d, newer than this lacos %s knows (%d); "
                "it was written by a newer lacos: upgrade lacos to use it (the file was not changed)",
                db->path, v, LACOS_VERSION, LACOS_DB_SCHEMA_VERSION);
  return LACOS_OK;
}

/* Applies migrations (have, target]. One migrator at a time: BEGIN
   EXCLUSIVE, then the version is read again, so processes racing to open a
   fresh file migrate it once. Foreign keys are off during the rebuilds (the
   pragma is a no-op inside a transaction) and checked before commit. */
static int migrate(lacos_db *db, int target) {
  if (db->readonly && access(db->path, W_OK) != 0)
    return fail(LACOS_EDB, "%s: the database has schema version %d and needs migrating to %d, but the file is "
                "read-only; open it once with write access", db->path, db->version, target);
  sqlite3_exec(db->conn, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL);
  int rc = exec_retry(db->conn, "BEGIN EXCLUSIVE", db->timeout_s);
  if (rc != SQLITE_OK) { sqlite3_exec(db->conn, "PRAGMA foreign_keys = ON", NULL, NULL, NULL); return db_fail(db, rc, "migrating the schema"); }
  int have = 0, s = read_version(db, &have);
  if (!s) s = check_version(db, have);
  for (int v = have + 1; !s && v <= target; v++) {
    char *err = NULL;
    rc = sqlite3_exec(db->conn, MIGRATIONS[v], NULL, NULL, &err);
    if (rc != SQLITE_OK) {
      s = fail(LACOS_EDB, "%s: migrating the schema from version %d to %d failed: %s", db->path, v - 1, v,
               err ? err : sqlite3_errmsg(db->conn));
      sqlite3_free(err);
      break;
    }
    char when[32], sql[160];
    iso_time(now_unix(), when);
    snprintf(sql, sizeof sql, "INSERT INTO schema_version (version, applied_at) VALUES (%d, '%s')", v, when);
    rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) s = db_fail(db, rc, "recording the schema version");
  }
  if (!s) {
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db->conn, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      s = fail(LACOS_EDB, "%s: migrating the schema left a dangling reference in table %s; nothing was changed",
               db->path, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  if (!s) s = tx_commit(db, "migrating the schema");
  else tx_rollback(db);
  sqlite3_exec(db->conn, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  if (!s) db->version = target;
  return s;
}

/* LACOS_DB_TIMEOUT in seconds; -1 (and the error) when it is set but not a
   number of seconds, so a typo is not silently the default. */
static double env_timeout(void) {
  const char *e = getenv("LACOS_DB_TIMEOUT");
  if (e && *e) {
    char *end;
    double v = (*e >= '0' && *e <= '9') || *e == '.' ? strtod(e, &end) : -1;
    if (v >= 0 && isfinite(v) && end != e && *end == 0) return v;
    fail(LACOS_EINVAL, "LACOS_DB_TIMEOUT=%s is not a number of seconds (e.g. 30 or 0.5)", e);
    return -1;
  }
  return DEFAULT_TIMEOUT_S;
}

static void db_destroy(lacos_db *db) {
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
  free(db->path);
  free(db);
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
   that is an error instead. Returns the URI to open, or NULL (normal path). */
static char *readonly_fs_uri(const char *path, int *refuse) {
  *refuse = 0;
  struct statvfs vfs;
  if (statvfs(path, &vfs) != 0 || !(vfs.f_flag & ST_RDONLY)) return NULL;
  char wal[4200];
  struct stat st;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (stat(wal, &st) == 0 && st.st_size > 0) { *refuse = 1; return NULL; }
  size_t n = strlen(path);
  char *uri = malloc(n * 3 + 32);
  if (!uri) return NULL;
  char *p = uri + sprintf(uri, "file:");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f) p += sprintf(p, "%%%02X", c);
    else *p++ = (char)c;
  }
  strcpy(p, "?immutable=1");
  return uri;
}

/* Opens a connection with the engine's settings. */
static int open_conn(sqlite3 **out, const char *path, int oflags, double timeout_s) {
  if (oflags & SQLITE_OPEN_READONLY) {
    int refuse;
    char *uri = readonly_fs_uri(path, &refuse);
    if (refuse)
      return fail(LACOS_EDB, "%s: the database is on a read-only file system and its write-ahead log (%s-wal) holds "
                  "changes not yet in the file; open it once where it can be written", path, path);
    if (uri) {
      int rc = sqlite3_open_v2(uri, out, oflags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
      free(uri);
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

/* Removes a database file this process just created, and its companions. */
static void remove_new_db(const char *path) {
  static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
  char p[4200];
  for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    unlink(p);
  }
}

int lacos_db_open(lacos_db **out, const char *path, int flags) {
  if (!out) return fail(LACOS_EINVAL, "lacos_db_open: out is NULL");
  *out = NULL;
  if (!path || !*path) {
    const char *e = getenv("LACOS_DB");
    path = (e && *e) ? e : DEFAULT_DB_PATH;
  }
  lacos_db *db = calloc(1, sizeof *db);
  if (!db) return fail(LACOS_ENOMEM, "out of memory");
  db->path = strdup(path);
  db->flags = flags;
  db->refs = 1;
  db->timeout_s = env_timeout();
  if (db->timeout_s < 0) { int s = lacos_last_status(); free(db->path); free(db); return s; }
  if (!db->path) { free(db); return fail(LACOS_ENOMEM, "out of memory"); }

  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) { db_destroy(db); return fail(LACOS_EIO, "%s: is a directory, expected a results database file", path); }
  if (!exists && (flags & (LACOS_DB_NOCREATE | LACOS_DB_READONLY))) {
    db_destroy(db);
    return fail(LACOS_ENOTFOUND, "%s: no results database there (nothing logged yet; choose one with --db or LACOS_DB)", path);
  }
  int s;
  if (!exists && (s = mkdir_db_parents(path))) { db_destroy(db); return s; }
  if (exists && access(path, R_OK) != 0) { db_destroy(db); return fail_errno("%s: cannot read the results database", path); }

  int writable = !exists || access(path, W_OK) == 0;
  if (!writable && !(flags & LACOS_DB_READONLY)) {
    int rofs = errno == EROFS;
    db_destroy(db);
    if (rofs)
      return fail(LACOS_EDB, "%s: the database is on a read-only file system; lacos needs to write to it to log "
                  "runs: use another file with --db or LACOS_DB (reading it works: lacos results)", path);
    return fail(LACOS_EDB, "%s: the database file is read-only (permission denied); lacos needs to write to it "
                "to log runs: fix its permissions or use another file with --db or LACOS_DB", path);
  }
  db->readonly = (flags & LACOS_DB_READONLY) != 0;
  int oflags = writable ? SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE) : SQLITE_OPEN_READONLY;
  /* a database this call creates and cannot finish (a full disk) is removed
     again with its -wal and -shm: no empty file is left to be taken for one */
  int created = !exists;
#define OPEN_FAILED(status) do { int st_ = (status); db_destroy(db); if (created) remove_new_db(path); return st_; } while (0)
  if ((s = open_conn(&db->conn, path, oflags, db->timeout_s))) OPEN_FAILED(s);
  sqlite3_create_function(db->conn, "lacos_decimal", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_decimal, NULL, NULL);

  /* Look before touching: a foreign, corrupt or newer file is refused
     before anything (even the journal mode) is written to it. */
  int v = 0;
  if ((s = read_version(db, &v)) || (s = check_version(db, v))) OPEN_FAILED(s);
  db->version = v;
  if (writable) {
    int rc = exec_retry(db->conn, (flags & LACOS_DB_ROLLBACK) ? "PRAGMA journal_mode = DELETE" : "PRAGMA journal_mode = WAL", db->timeout_s);
    if (rc != SQLITE_OK) OPEN_FAILED(db_fail(db, rc, "switching to WAL mode"));
  }
  sqlite3_exec(db->conn, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  if (v < LACOS_DB_SCHEMA_VERSION && (s = migrate(db, LACOS_DB_SCHEMA_VERSION))) OPEN_FAILED(s);
#undef OPEN_FAILED
  *out = db;
  return LACOS_OK;
}

static void db_release(lacos_db *db) {
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

static int db_usable(const lacos_db *db, const char *fn) {
  if (!db) return fail(LACOS_EINVAL, "%s: db is NULL", fn);
  if (db->closed) return fail(LACOS_ESTATE, "%s: %s: the database handle is closed", db->path, fn);
  return LACOS_OK;
}

/* ------------------------------------------------------------------ run status names */

static const char *const STATUS_NAMES[] = { "queued", "running", "done", "failed", "interrupted", "dead" };

const char *lacos_run_status_name(int status) {
  if (status < 0 || status >= (int)(sizeof STATUS_NAMES / sizeof *STATUS_NAMES)) return "unknown";
  return STATUS_NAMES[status];
}

int lacos_run_status_from_name(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < (int)(sizeof STATUS_NAMES / sizeof *STATUS_NAMES); i++)
    if (strcmp(name, STATUS_NAMES[i]) == 0) return i;
  return -1;
}

/* ------------------------------------------------------------------ experiments */

static int read_script(const char *script_path, char sha[65], char **text, size_t *len) {
  TRY(file_read_all(script_path, SCRIPT_MAX_BYTES, text, len));
  int s = lacos_sha256_buffer(*text, (double)*len, sha);
  if (s) { free(*text); *text = NULL; }
  return s;
}

int lacos_db_experiment(double *id, lacos_db *db, const char *name, const char *script_path, const char *axes_json) {
  if (!id) return fail(LACOS_EINVAL, "lacos_db_experiment: id is NULL");
  *id = 0;
  TRY(db_usable(db, "lacos_db_experiment"));
  if (!name || !*name) return fail(LACOS_EINVAL, "%s: an experiment needs a non-empty name", db->path);
  char sha[65] = { 0 }, *text = NULL, *axes = NULL, *abs_script = NULL;
  size_t len = 0;
  int s = LACOS_OK;
  if (script_path && *script_path) {
    s = read_script(script_path, sha, &text, &len);
    if (s) return fail_context("experiment '%s': cannot record its script", name);
    abs_script = realpath(script_path, NULL);
  }
  if (axes_json && (s = lacos_db_canonical_json(&axes, NULL, axes_json))) {
    free(text); free(abs_script);
    return fail_context("experiment '%s': axes", name);
  }
  const char *spath = abs_script ? abs_script : script_path;
  char when[32];
  iso_time(now_unix(), when);
  sqlite3_stmt *st = NULL;
  if ((s = tx_begin(db, "recording the experiment"))) goto out;
  if ((s = prepare(db, &st, "SELECT id, script_sha256 FROM experiments WHERE name = ?"))) goto out;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *id = (double)sqlite3_column_int64(st, 0);
    const char *old = (const char *)sqlite3_column_text(st, 1);
    int changed = text && (!old || strcmp(old, sha) != 0);
    sqlite3_finalize(st);
    st = NULL;
    if (changed || axes) {
      /* The experiment's row shows its newest script; older texts stay in scripts. */
      if ((s = prepare(db, &st,
                       "UPDATE experiments SET script_path = coalesce(?2, script_path), script_sha256 = coalesce(?3, script_sha256),"
                       " script_text = coalesce(?4, script_text), axes_json = coalesce(?5, axes_json), updated_at = ?6 WHERE id = ?1")))
        goto out;
      sqlite3_bind_int64(st, 1, (sqlite3_int64)*id);
      bind_text_or_null(st, 2, text ? spath : NULL);
      bind_text_or_null(st, 3, text ? sha : NULL);
      if (text) sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 4);
      bind_text_or_null(st, 5, axes);
      sqlite3_bind_text(st, 6, when, -1, SQLITE_TRANSIENT);
      if ((s = step_done(db, st, "updating the experiment"))) goto out;
    }
  } else if (rc == SQLITE_DONE) {
    sqlite3_finalize(st);
    st = NULL;
    if ((s = prepare(db, &st,
                     "INSERT INTO experiments (name, script_path, script_sha256, script_text, axes_json, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)")))
      goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    bind_text_or_null(st, 2, text ? spath : NULL);
    bind_text_or_null(st, 3, text ? sha : NULL);
    if (text) sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 4);
    bind_text_or_null(st, 5, axes);
    sqlite3_bind_text(st, 6, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, when, -1, SQLITE_TRANSIENT);
    if ((s = step_done(db, st, "creating the experiment"))) goto out;
    *id = (double)sqlite3_last_insert_rowid(db->conn);
  } else {
    s = db_fail(db, rc, "looking up the experiment");
    goto out;
  }
  if (text) {
    sqlite3_finalize(st);
    if ((s = prepare(db, &st, "INSERT OR IGNORE INTO scripts (sha256, path, bytes, text, created_at) VALUES (?, ?, ?, ?, ?)"))) goto out;
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    bind_text_or_null(st, 2, spath);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
    sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, when, -1, SQLITE_TRANSIENT);
    if ((s = step_done(db, st, "storing the script"))) goto out;
  }
  sqlite3_finalize(st);
  st = NULL;
  s = tx_commit(db, "recording the experiment");
out:
  sqlite3_finalize(st);
  if (s) { tx_rollback(db); *id = 0; }
  free(text);
  free(axes);
  free(abs_script);
  return s;
}

/* ------------------------------------------------------------------ provenance */

/* Runs argv (PATH lookup) with stdout captured into out (first line, at most
   cap-1 bytes kept; *any says whether there was any output at all) and
   stderr discarded. Returns the exit status, or -1 if it could not run. */
static int capture(char *const argv[], char *out, size_t cap, int *any) {
  int fd[2];
  out[0] = 0;
  if (any) *any = 0;
  if (pipe(fd) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
  posix_spawn_file_actions_addclose(&fa, fd[0]);
  posix_spawn_file_actions_addclose(&fa, fd[1]);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  extern char **environ;
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fd[1]);
  if (rc != 0) { close(fd[0]); return -1; }
  size_t n = 0;
  char buf[4096];
  ssize_t got;
  while ((got = read(fd[0], buf, sizeof buf)) != 0) {
    if (got < 0) { if (errno == EINTR) continue; break; }
    if (any) *any = 1;
    for (ssize_t i = 0; i < got && n + 1 < cap; i++) out[n++] = buf[i];
  }
  close(fd[0]);
  out[n] = 0;
  char *nl = strchr(out, '\n');
  if (nl) *nl = 0;
  int status;
  while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* git commit and dirty flag of the repository holding dir; no git, or not a
   repository: commit[0] = 0, *dirty = -1. */
static void git_info(const char *dir, char commit[64], int *dirty) {
  commit[0] = 0;
  *dirty = -1;
  char *rev[] = { "git", "--no-optional-locks", "-C", (char *)dir, "rev-parse", "--verify", "-q", "HEAD", NULL };
  if (capture(rev, commit, 64, NULL) != 0 || strlen(commit) < 7) { commit[0] = 0; return; }
  char line[256];
  int any = 0;
  char *stat_argv[] = { "git", "--no-optional-locks", "-C", (char *)dir, "status", "--porcelain", "--untracked-files=no", NULL };
  if (capture(stat_argv, line, sizeof line, &any) == 0) *dirty = any;
}

static void cpu_model(char *out, size_t cap) {
  out[0] = 0;
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0) {
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(out, cap, "%s", c);
        break;
      }
    }
    fclose(f);
  }
  if (!out[0]) {
    struct utsname u;
    if (uname(&u) == 0) snprintf(out, cap, "%s", u.machine);
  }
}

static int make_uuid(char out[40]) {
  unsigned char b[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
  if (fd >= 0) close(fd);
  if (got != (ssize_t)sizeof b) {
    /* No /dev/urandom: time, pid and a counter are unique enough per host. */
    static unsigned counter;
    uint64_t a = rng_u64((uint64_t)getpid(), (uint64_t)(now_unix() * 1e6)), c = rng_u64(a, ++counter);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return LACOS_OK;
}

/* ------------------------------------------------------------------ params */

/* Inserts one typed param inside the caller's transaction. */
static int param_put(lacos_db *db, int64_t run_id, const char *key, const double *num, const char *text) {
  sqlite3_stmt *st = NULL;
  TRY(prepare(db, &st, "INSERT INTO params (run_id, key, value_num, value_text) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (run_id, key) DO NOTHING"));
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  if (num) { sqlite3_bind_double(st, 3, *num); sqlite3_bind_null(st, 4); }
  else { sqlite3_bind_null(st, 3); sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT); }
  int s = step_done(db, st, "recording a param");
  sqlite3_finalize(st);
  if (s || sqlite3_changes(db->conn) == 1) return s;
  /* Already there: the same value is fine, another one is refused. */
  TRY(prepare(db, &st, "SELECT value_num, value_text FROM params WHERE run_id = ? AND key = ?"));
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_ROW) { sqlite3_finalize(st); return db_fail(db, SQLITE_ERROR, "reading a param"); }
  char old[64];
  int same;
  if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
    double o = sqlite3_column_double(st, 0);
    same = num && o == *num;
    format_number(o, old);
  } else {
    const char *o = (const char *)sqlite3_column_text(st, 1);
    same = text && strcmp(o, text) == 0;
    snprintf(old, sizeof old, "'%.50s'", o);
  }
  sqlite3_finalize(st);
  if (same) return LACOS_OK;
  char neu[64];
  if (num) format_number(*num, neu); else snprintf(neu, sizeof neu, "'%.50s'", text);
  return fail(LACOS_EINVAL, "%s: run %lld: param '%s' is already %s and cannot change to %s (params are fixed for a run; "
              "log values that change as metrics or tags)", db->path, (long long)run_id, key, old, neu);
}

/* Flattens a config object into params: nested objects give dotted keys,
   numbers stay numbers, strings and booleans text, arrays their canonical
   JSON, nulls nothing. */
static int flatten_params(lacos_db *db, int64_t run_id, json_t *v, char *prefix, size_t plen) {
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      size_t kl = strlen(k), need = plen + (plen ? 1 : 0) + kl;
      if (need >= 1024) return fail(LACOS_EINVAL, "%s: config key '%.60s...' is nested too deeply (over 1023 characters)", db->path, prefix);
      if (plen) prefix[plen] = '.';
      memcpy(prefix + plen + (plen ? 1 : 0), k, kl + 1);
      int s = flatten_params(db, run_id, x, prefix, need);
      prefix[plen] = 0;
      TRY(s);
    }
    return LACOS_OK;
  }
  if (!plen) return LACOS_OK;   /* a bare scalar config has no key */
  if (json_is_number(v)) { double d = json_number_value(v); return param_put(db, run_id, prefix, &d, NULL); }
  if (json_is_string(v)) return param_put(db, run_id, prefix, NULL, json_string_value(v));
  if (json_is_boolean(v)) return param_put(db, run_id, prefix, NULL, json_is_true(v) ? "true" : "false");
  if (json_is_array(v)) {
    char *t = NULL;
    TRY(canonical_of(&t, NULL, v));
    int s = param_put(db, run_id, prefix, NULL, t);
    free(t);
    return s;
  }
  return LACOS_OK;
}

/* ------------------------------------------------------------------ runs */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static lacos_run *registry;
static int registry_hooked;
static void finish_all_at_exit(void);

static void registry_add(lacos_run *r) {
  pthread_mutex_lock(&registry_mu);
  r->next_open = registry;
  registry = r;
  if (!registry_hooked) { registry_hooked = 1; atexit(finish_all_at_exit); }
  pthread_mutex_unlock(&registry_mu);
}

static void registry_remove(lacos_run *r) {
  pthread_mutex_lock(&registry_mu);
  for (lacos_run **p = &registry; *p; p = &(*p)->next_open)
    if (*p == r) { *p = r->next_open; break; }
  pthread_mutex_unlock(&registry_mu);
}

void lacos_run_options_init(lacos_run_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
}

/* The heartbeat thread: its own connection, one tiny write every period. */
static void *heartbeat_main(void *arg) {
  lacos_run *r = arg;
  sqlite3 *conn = NULL;
  if (open_conn(&conn, r->db->path, SQLITE_OPEN_READWRITE, r->db->timeout_s) != LACOS_OK) return NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(conn, "UPDATE runs SET heartbeat_at = ?, status = 'running' WHERE id = ? AND status IN ('running', 'dead')",
                     -1, &st, NULL);
  pthread_mutex_lock(&r->hb_mu);
  while (!r->hb_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = ts.tv_sec + ts.tv_nsec * 1e-9 + r->hb_period;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&r->hb_cv, &r->hb_mu, &ts);
    if (r->hb_stop || !st) break;
    pthread_mutex_unlock(&r->hb_mu);
    char when[32];
    iso_time(now_unix(), when);
    if (sqlite3_exec(conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
      sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, r->id);
      sqlite3_step(st);
      sqlite3_reset(st);
      if (sqlite3_exec(conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_lock(&r->hb_mu);
  }
  pthread_mutex_unlock(&r->hb_mu);
  sqlite3_finalize(st);
  sqlite3_close_v2(conn);
  return NULL;
}

static void heartbeat_start(lacos_run *r, double period) {
  if (period < 0) return;
  r->hb_period = period == 0 ? 10.0 : period;
  pthread_mutex_init(&r->hb_mu, NULL);
  pthread_cond_init(&r->hb_cv, NULL);
  r->hb_stop = 0;
  if (pthread_create(&r->hb_thread, NULL, heartbeat_main, r) == 0) r->hb_running = 1;
  else { pthread_mutex_destroy(&r->hb_mu); pthread_cond_destroy(&r->hb_cv); }
}

static void heartbeat_stop(lacos_run *r) {
  if (!r->hb_running) return;
  pthread_mutex_lock(&r->hb_mu);
  r->hb_stop = 1;
  pthread_cond_signal(&r->hb_cv);
  pthread_mutex_unlock(&r->hb_mu);
  pthread_join(r->hb_thread, NULL);
  pthread_mutex_destroy(&r->hb_mu);
  pthread_cond_destroy(&r->hb_cv);
  r->hb_running = 0;
}

static int run_new_handle(lacos_run **out, lacos_db *db, int64_t id, const char *uuid, int status, int owned) {
  lacos_run *r = calloc(1, sizeof *r);
  if (!r) return fail(LACOS_ENOMEM, "out of memory");
  r->db = db;
  db->refs++;
  r->id = id;
  snprintf(r->uuid, sizeof r->uuid, "%s", uuid);
  r->status = status;
  r->owned = owned;
  r->finished = !owned;
  r->last_flush = now_mono();
  *out = r;
  return LACOS_OK;
}

/* Canonical config and hash from opt (NULL config = {}). */
static int run_config(lacos_db *db, const lacos_run_options *opt, json_t **root, char **canon, char sha[65]) {
  const char *cfg = opt && opt->config_json ? opt->config_json : "{}";
  int s = json_parse(root, cfg, "config");
  if (s) return fail_context("%s", db->path);
  if ((s = canonical_of(canon, sha, *root))) { json_decref(*root); *root = NULL; }
  return s;
}

static int validate_run_options(lacos_db *db, const lacos_run_options *o) {
  if (!o) return LACOS_OK;
  if (o->experiment_id < 0 || o->experiment_id != floor(o->experiment_id))
    return fail(LACOS_EINVAL, "%s: experiment id must be a positive whole number", db->path);
  if (o->has_seed && (!isfinite(o->seed) || o->seed != floor(o->seed) || fabs(o->seed) >= 9007199254740992.0))
    return fail(LACOS_EINVAL, "%s: seed must be a whole number below 2^53, got %g", db->path, o->seed);
  if (o->heartbeat_seconds > 30)
    return fail(LACOS_EINVAL, "%s: heartbeat period must be at most 30 s (a run is dead after %g s without one)", db->path, DEAD_AFTER_S);
  if (o->flush_rows < 0 || o->flush_seconds < 0 || !isfinite(o->flush_seconds))
    return fail(LACOS_EINVAL, "%s: flush_rows and flush_seconds must be non-negative", db->path);
  return LACOS_OK;
}

/* Finds an existing run for (experiment, config hash, seed) in the current
   transaction: done, queued, or running with a fresh heartbeat. Running runs
   with a stale heartbeat are marked dead on the way. */
static int find_claimable(lacos_db *db, const lacos_run_options *o, const char *sha, int64_t *id, char uuid[40], int *status) {
  *id = 0;
  char cutoff[32];
  iso_time(now_unix() - DEAD_AFTER_S, cutoff);
  sqlite3_stmt *st = NULL;
  TRY(prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'stale heartbeat')"
                       " WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ? AND status = 'running'"
                       " AND coalesce(heartbeat_at, started_at, created_at) < ?"));
  if (o->experiment_id > 0) sqlite3_bind_int64(st, 1, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
  if (o->has_seed) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 3);
  sqlite3_bind_text(st, 4, cutoff, -1, SQLITE_TRANSIENT);
  int s = step_done(db, st, "marking stale runs dead");
  sqlite3_finalize(st);
  TRY(s);
  /* On this host a run whose process is gone is dead at once: a SIGKILL
     leaves no other trace, and waiting for its heartbeat to go stale would
     make a rerun skip the point. (A recycled pid only delays this to the
     heartbeat rule.) */
  struct utsname u;
  if (uname(&u) == 0) {
    TRY(prepare(db, &st, "SELECT id, pid FROM runs WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ?"
                         " AND status = 'running' AND host = ? AND pid IS NOT NULL"));
    if (o->experiment_id > 0) sqlite3_bind_int64(st, 1, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
    if (o->has_seed) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, u.nodename, -1, SQLITE_TRANSIENT);
    int64_t gone[64];
    int ngone = 0;
    while (sqlite3_step(st) == SQLITE_ROW && ngone < 64) {
      long pid = (long)sqlite3_column_int64(st, 1);
      if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH) gone[ngone++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < ngone; i++) {
      TRY(prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'process gone') WHERE id = ?"));
      sqlite3_bind_int64(st, 1, (sqlite3_int64)gone[i]);
      s = step_done(db, st, "marking a run dead");
      sqlite3_finalize(st);
      TRY(s);
    }
  }
  TRY(prepare(db, &st, "SELECT id, uuid, status FROM runs WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ?"
                       " AND status IN ('done', 'running', 'queued')"
                       " ORDER BY CASE status WHEN 'done' THEN 0 WHEN 'running' THEN 1 ELSE 2 END, id DESC LIMIT 1"));
  if (o->experiment_id > 0) sqlite3_bind_int64(st, 1, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
  if (o->has_seed) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 3);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
    snprintf(uuid, 40, "%s", (const char *)sqlite3_column_text(st, 1));
    *status = lacos_run_status_from_name((const char *)sqlite3_column_text(st, 2));
  } else if (rc != SQLITE_DONE) s = db_fail(db, rc, "looking up the run");
  sqlite3_finalize(st);
  return s;
}

typedef struct provenance {
  char host[256], cpu[256], commit[64], script_sha[65];
  int dirty, has_script;
} provenance;

static void gather_provenance(lacos_db *db, const lacos_run_options *o, provenance *p) {
  memset(p, 0, sizeof *p);
  p->dirty = -1;
  struct utsname u;
  if (uname(&u) == 0) snprintf(p->host, sizeof p->host, "%s", u.nodename);
  cpu_model(p->cpu, sizeof p->cpu);
  /* The experiment's current script: its directory is where git is asked. */
  char dir[PATH_MAX] = "";
  if (o && o->workdir && *o->workdir) snprintf(dir, sizeof dir, "%s", o->workdir);
  if (o && o->experiment_id > 0) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->conn, "SELECT script_path, script_sha256 FROM experiments WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
      sqlite3_bind_int64(st, 1, (sqlite3_int64)o->experiment_id);
      if (sqlite3_step(st) == SQLITE_ROW) {
        const char *sp = (const char *)sqlite3_column_text(st, 0), *sh = (const char *)sqlite3_column_text(st, 1);
        if (sh) { snprintf(p->script_sha, sizeof p->script_sha, "%s", sh); p->has_script = 1; }
        if (sp && !dir[0]) {
          char *c = strdup(sp);
          if (c) { snprintf(dir, sizeof dir, "%s", dirname(c)); free(c); }
        }
      }
      sqlite3_finalize(st);
    }
  }
  if (!dir[0] && !getcwd(dir, sizeof dir)) snprintf(dir, sizeof dir, ".");
  struct stat stt;
  if (stat(dir, &stt) != 0 || !S_ISDIR(stt.st_mode)) snprintf(dir, sizeof dir, ".");
  git_info(dir, p->commit, &p->dirty);
}

static int insert_run(lacos_db *db, const lacos_run_options *o, const char *canon, const char *sha, const provenance *p,
                      const char *status, const char *uuid, int64_t *id) {
  char when[32];
  iso_time(now_unix(), when);
  int running = strcmp(status, "running") == 0;
  sqlite3_stmt *st = NULL;
  TRY(prepare(db, &st,
              "INSERT INTO runs (uuid, experiment_id, parent_run_id, name, status, config_json, config_sha256, seed,"
              " script_sha256, git_commit, git_dirty, host, pid, cpu, gpu, threads, lacos_version, lacos_build,"
              " created_at, started_at, heartbeat_at)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'none', ?15, ?16, ?17, ?18, ?19, ?19)"));
  sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
  if (o && o->experiment_id > 0) sqlite3_bind_int64(st, 2, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 2);
  if (o && o->parent_run_id > 0) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->parent_run_id); else sqlite3_bind_null(st, 3);
  bind_text_or_null(st, 4, o && o->name && *o->name ? o->name : NULL);
  sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, canon, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 7, sha, -1, SQLITE_TRANSIENT);
  if (o && o->has_seed) sqlite3_bind_int64(st, 8, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 8);
  bind_text_or_null(st, 9, p->has_script ? p->script_sha : NULL);
  bind_text_or_null(st, 10, p->commit[0] ? p->commit : NULL);
  if (p->dirty >= 0) sqlite3_bind_int(st, 11, p->dirty); else sqlite3_bind_null(st, 11);
  bind_text_or_null(st, 12, p->host[0] ? p->host : NULL);
  sqlite3_bind_int64(st, 13, (sqlite3_int64)getpid());
  bind_text_or_null(st, 14, p->cpu[0] ? p->cpu : NULL);
  sqlite3_bind_int(st, 15, lacos_threads_get());
  sqlite3_bind_text(st, 16, lacos_version(), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 17, lacos_build_info(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 18, when, -1, SQLITE_TRANSIENT);
  if (running) sqlite3_bind_text(st, 19, when, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 19);
  int s = step_done(db, st, "creating the run");
  sqlite3_finalize(st);
  if (!s) *id = sqlite3_last_insert_rowid(db->conn);
  return s;
}

/* Shared by lacos_run_start and lacos_db_enqueue. mode 0: start, 1: enqueue. */
static int run_begin(lacos_db *db, const lacos_run_options *opt, int mode, int64_t *id, char uuid[40], int *status, int *fresh) {
  json_t *root = NULL;
  char *canon = NULL, sha[65];
  TRY(run_config(db, opt, &root, &canon, sha));
  provenance p;
  gather_provenance(db, opt, &p);   /* before the transaction: git may take a while */
  int reuse = mode == 1 || (opt && opt->reuse);
  int s = tx_begin(db, mode ? "queueing a run" : "starting a run");
  *fresh = 0;
  *id = 0;
  if (!s && opt && opt->experiment_id > 0) {
    sqlite3_stmt *st = NULL;
    if (!(s = prepare(db, &st, "SELECT 1 FROM experiments WHERE id = ?"))) {
      sqlite3_bind_int64(st, 1, (sqlite3_int64)opt->experiment_id);
      if (sqlite3_step(st) != SQLITE_ROW) s = fail(LACOS_ENOTFOUND, "%s: no experiment with id %.0f", db->path, opt->experiment_id);
      sqlite3_finalize(st);
    }
  }
  if (!s && reuse) s = find_claimable(db, opt ? opt : &(lacos_run_options){ 0 }, sha, id, uuid, status);
  if (!s && *id && *status == LACOS_RUN_QUEUED && mode == 0) {
    /* Take over a queued point. */
    char when[32];
    iso_time(now_unix(), when);
    sqlite3_stmt *st = NULL;
    if (!(s = prepare(db, &st, "UPDATE runs SET status = 'running', started_at = ?1, heartbeat_at = ?1, pid = ?2, host = ?3,"
                               " git_commit = ?4, git_dirty = ?5, name = coalesce(?6, name) WHERE id = ?7"))) {
      sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, (sqlite3_int64)getpid());
      bind_text_or_null(st, 3, p.host[0] ? p.host : NULL);
      bind_text_or_null(st, 4, p.commit[0] ? p.commit : NULL);
      if (p.dirty >= 0) sqlite3_bind_int(st, 5, p.dirty); else sqlite3_bind_null(st, 5);
      bind_text_or_null(st, 6, opt && opt->name && *opt->name ? opt->name : NULL);
      sqlite3_bind_int64(st, 7, *id);
      s = step_done(db, st, "starting the queued run");
      sqlite3_finalize(st);
    }
    *status = LACOS_RUN_RUNNING;
    *fresh = 1;
  } else if (!s && !*id) {
    make_uuid(uuid);
    s = insert_run(db, opt, canon, sha, &p, mode ? "queued" : "running", uuid, id);
    if (!s) {
      char prefix[1024] = "";
      s = flatten_params(db, *id, root, prefix, 0);
    }
    *status = mode ? LACOS_RUN_QUEUED : LACOS_RUN_RUNNING;
    *fresh = 1;
  }
  if (!s) s = tx_commit(db, mode ? "queueing a run" : "starting a run");
  else tx_rollback(db);
  json_decref(root);
  free(canon);
  if (s) { *id = 0; *fresh = 0; }
  return s;
}

int lacos_run_start(lacos_run **out, int *started, lacos_db *db, const lacos_run_options *opt) {
  if (!out) return fail(LACOS_EINVAL, "lacos_run_start: out is NULL");
  *out = NULL;
  if (started) *started = 0;
  TRY(db_usable(db, "lacos_run_start"));
  TRY(validate_run_options(db, opt));
  int64_t id;
  char uuid[40] = "";
  int status = 0, fresh = 0;
  TRY(run_begin(db, opt, 0, &id, uuid, &status, &fresh));
  lacos_run *r = NULL;
  TRY(run_new_handle(&r, db, id, uuid, status, fresh));
  if (fresh) {
    r->flush_rows = opt && opt->flush_rows > 0 ? opt->flush_rows : 500;
    r->flush_seconds = opt && opt->flush_seconds > 0 ? opt->flush_seconds : 5.0;
    heartbeat_start(r, opt ? opt->heartbeat_seconds : 0);
    registry_add(r);
  }
  if (started) *started = fresh;
  *out = r;
  return LACOS_OK;
}

int lacos_db_enqueue(double *id, int *created, lacos_db *db, const lacos_run_options *opt) {
  if (!id) return fail(LACOS_EINVAL, "lacos_db_enqueue: id is NULL");
  *id = 0;
  if (created) *created = 0;
  TRY(db_usable(db, "lacos_db_enqueue"));
  TRY(validate_run_options(db, opt));
  int64_t rid;
  char uuid[40];
  int status = 0, fresh = 0;
  TRY(run_begin(db, opt, 1, &rid, uuid, &status, &fresh));
  *id = (double)rid;
  if (created) *created = fresh;
  return LACOS_OK;
}

double lacos_run_id(const lacos_run *run) { return run ? (double)run->id : 0; }
const char *lacos_run_uuid(const lacos_run *run) { return run ? run->uuid : ""; }
int lacos_run_get_status(const lacos_run *run) { return run ? run->status : -1; }

static int run_writable(lacos_run *r, const char *fn) {
  if (!r) return fail(LACOS_EINVAL, "%s: run is NULL", fn);
  if (!r->owned)
    return fail(LACOS_ESTATE, "%s: run %lld is %s and was not started by this handle; it cannot be logged to",
                r->db->path, (long long)r->id, lacos_run_status_name(r->status));
  if (r->finished)
    return fail(LACOS_ESTATE, "%s: run %lld already finished (%s); start a new run to log more",
                r->db->path, (long long)r->id, lacos_run_status_name(r->status));
  return LACOS_OK;
}

static int check_key(lacos_run *r, const char *key, const char *what) {
  if (!key || !*key) return fail(LACOS_EINVAL, "%s: run %lld: a %s needs a non-empty key", r->db->path, (long long)r->id, what);
  return LACOS_OK;
}

static int single_write(lacos_run *r, const char *what, int (*body)(lacos_run *, void *), void *ctx) {
  TRY(tx_begin(r->db, what));
  int s = body(r, ctx);
  if (!s) s = tx_commit(r->db, what);
  else tx_rollback(r->db);
  return s;
}

typedef struct param_ctx { const char *key; const double *num; const char *text; } param_ctx;
static int param_body(lacos_run *r, void *c) {
  param_ctx *p = c;
  return param_put(r->db, r->id, p->key, p->num, p->text);
}

int lacos_run_param_num(lacos_run *run, const char *key, double value) {
  TRY(run_writable(run, "lacos_run_param_num"));
  TRY(check_key(run, key, "param"));
  if (!isfinite(value))
    return fail(LACOS_ENUMERIC, "%s: run %lld: param '%s' must be finite, got %g", run->db->path, (long long)run->id, key, value);
  param_ctx c = { key, &value, NULL };
  return single_write(run, "recording a param", param_body, &c);
}

int lacos_run_param_text(lacos_run *run, const char *key, const char *value) {
  TRY(run_writable(run, "lacos_run_param_text"));
  TRY(check_key(run, key, "param"));
  if (!value) return fail(LACOS_EINVAL, "%s: run %lld: param '%s' has no value", run->db->path, (long long)run->id, key);
  param_ctx c = { key, NULL, value };
  return single_write(run, "recording a param", param_body, &c);
}

typedef struct tag_ctx { const char *key, *value; } tag_ctx;
static int tag_body(lacos_run *r, void *c) {
  tag_ctx *t = c;
  sqlite3_stmt *st = NULL;
  TRY(prepare(r->db, &st, "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)"
                          " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, t->key, -1, SQLITE_TRANSIENT);
  bind_text_or_null(st, 3, t->value);
  int s = step_done(r->db, st, "recording a tag");
  sqlite3_finalize(st);
  return s;
}

/* Tags are notes: unlike params they may be set again (the newest wins). */
int lacos_run_tag(lacos_run *run, const char *key, const char *value) {
  if (!run) return fail(LACOS_EINVAL, "lacos_run_tag: run is NULL");
  if (run->db->readonly) return fail(LACOS_ESTATE, "%s: the database was opened read-only", run->db->path);
  TRY(check_key(run, key, "tag"));
  tag_ctx c = { key, value };
  return single_write(run, "recording a tag", tag_body, &c);
}

/* ------------------------------------------------------------------ metrics */

static int flush_rows(lacos_run *r) {
  if (r->nrows == 0) return LACOS_OK;
  lacos_db *db = r->db;
  TRY(tx_begin(db, "writing metrics"));
  int s = LACOS_OK;
  if (!r->metric_stmt)
    s = prepare(db, &r->metric_stmt, "INSERT INTO metrics (run_id, key, step, value, is_finite, wall_time) VALUES (?, ?, ?, ?, ?, ?)");
  for (int i = 0; !s && i < r->nrows; i++) {
    metric_row *m = &r->rows[i];
    sqlite3_stmt *st = r->metric_stmt;
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_text(st, 2, m->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)m->step);
    if (isnan(m->value)) sqlite3_bind_null(st, 4); else sqlite3_bind_double(st, 4, m->value);
    sqlite3_bind_int(st, 5, isfinite(m->value) ? 1 : 0);
    sqlite3_bind_double(st, 6, m->wall);
    s = step_done(db, st, "writing metrics");
    sqlite3_reset(st);
  }
  if (!s) {
    char when[32];
    iso_time(now_unix(), when);
    sqlite3_stmt *st = NULL;
    if (!(s = prepare(db, &st, "UPDATE runs SET heartbeat_at = ? WHERE id = ?"))) {
      sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, r->id);
      s = step_done(db, st, "updating the heartbeat");
      sqlite3_finalize(st);
    }
  }
  if (!s) s = tx_commit(db, "writing metrics");
  else tx_rollback(db);
  if (s) return s;   /* rows stay buffered: the next flush tries again */
  for (int i = 0; i < r->nrows; i++) free(r->rows[i].key);
  r->nrows = 0;
  r->last_flush = now_mono();
  return LACOS_OK;
}

int lacos_run_metric(lacos_run *run, double step, const char *key, double value) {
  TRY(run_writable(run, "lacos_run_metric"));
  TRY(check_key(run, key, "metric"));
  if (!isfinite(step) || step != floor(step) || fabs(step) >= 9007199254740992.0)
    return fail(LACOS_EINVAL, "%s: run %lld: metric '%s': step must be a whole number, got %g", run->db->path,
                (long long)run->id, key, step);
  if (run->nrows == run->caprows) {
    int cap = run->caprows ? run->caprows * 2 : 64;
    metric_row *rows = realloc(run->rows, (size_t)cap * sizeof *rows);
    if (!rows) return fail(LACOS_ENOMEM, "out of memory buffering metrics");
    run->rows = rows;
    run->caprows = cap;
  }
  char *k = strdup(key);
  if (!k) return fail(LACOS_ENOMEM, "out of memory buffering metrics");
  run->rows[run->nrows++] = (metric_row){ step, value, now_unix(), k };
  if (run->nrows >= run->flush_rows || now_mono() - run->last_flush >= run->flush_seconds) return flush_rows(run);
  return LACOS_OK;
}

int lacos_run_flush(lacos_run *run) {
  if (!run) return fail(LACOS_EINVAL, "lacos_run_flush: run is NULL");
  if (!run->owned) return LACOS_OK;
  return flush_rows(run);
}

int lacos_run_heartbeat(lacos_run *run) {
  TRY(run_writable(run, "lacos_run_heartbeat"));
  if (run->nrows) return flush_rows(run);   /* a flush beats the heart too */
  TRY(tx_begin(run->db, "updating the heartbeat"));
  char when[32];
  iso_time(now_unix(), when);
  sqlite3_stmt *st = NULL;
  int s = prepare(run->db, &st, "UPDATE runs SET heartbeat_at = ?, status = 'running' WHERE id = ?");
  if (!s) {
    sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run->id);
    s = step_done(run->db, st, "updating the heartbeat");
    sqlite3_finalize(st);
  }
  if (!s) s = tx_commit(run->db, "updating the heartbeat");
  else tx_rollback(run->db);
  return s;
}

/* ------------------------------------------------------------------ STS, timings, artifacts */

void lacos_sts_record_init(lacos_sts_record *r) {
  if (!r) return;
  memset(r, 0, sizeof *r);
  r->step = -1;
  r->n_pairs = r->spearman = r->pearson = r->batch_size = NAN;
}

static int check_whole(lacos_run *r, double v, const char *field, const char *what) {
  if (isnan(v)) return LACOS_OK;
  if (!isfinite(v) || v != floor(v) || fabs(v) >= 9007199254740992.0)
    return fail(LACOS_EINVAL, "%s: run %lld: %s %s must be a whole number, got %g", r->db->path, (long long)r->id, what, field, v);
  return LACOS_OK;
}

static int sts_body(lacos_run *r, void *c) {
  const lacos_sts_record *x = c;
  char when[32];
  iso_time(now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(prepare(r->db, &st,
              "INSERT INTO sts_results (run_id, step, dataset, language, split, n_pairs, spearman, pearson, similarity,"
              " pooling, text_variant, aggregation, model, adapter, quantisation, dtype, batch_size, dataset_sha256,"
              " lacos_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)x->step);
  sqlite3_bind_text(st, 3, x->dataset, -1, SQLITE_TRANSIENT);
  bind_text_or_null(st, 4, x->language);
  sqlite3_bind_text(st, 5, x->split, -1, SQLITE_TRANSIENT);
  bind_int_or_null(st, 6, x->n_pairs);
  bind_num_or_null(st, 7, x->spearman);
  bind_num_or_null(st, 8, x->pearson);
  bind_text_or_null(st, 9, x->similarity);
  bind_text_or_null(st, 10, x->pooling);
  bind_text_or_null(st, 11, x->text_variant);
  bind_text_or_null(st, 12, x->aggregation);
  bind_text_or_null(st, 13, x->model);
  bind_text_or_null(st, 14, x->adapter);
  bind_text_or_null(st, 15, x->quantisation);
  bind_text_or_null(st, 16, x->dtype);
  bind_int_or_null(st, 17, x->batch_size);
  bind_text_or_null(st, 18, x->dataset_sha256);
  sqlite3_bind_text(st, 19, lacos_version(), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 20, when, -1, SQLITE_TRANSIENT);
  int s = step_done(r->db, st, "recording an STS result");
  sqlite3_finalize(st);
  return s;
}

int lacos_run_sts(lacos_run *run, const lacos_sts_record *x) {
  TRY(run_writable(run, "lacos_run_sts"));
  if (!x) return fail(LACOS_EINVAL, "lacos_run_sts: record is NULL");
  const char *p = run->db->path;
  if (!x->dataset || !*x->dataset) return fail(LACOS_EINVAL, "%s: run %lld: an STS result needs a dataset", p, (long long)run->id);
  if (!x->split || !*x->split) return fail(LACOS_EINVAL, "%s: run %lld: an STS result needs a split", p, (long long)run->id);
  TRY(check_whole(run, x->step, "step", "STS"));
  TRY(check_whole(run, x->n_pairs, "n_pairs", "STS"));
  TRY(check_whole(run, x->batch_size, "batch_size", "STS"));
  if (isnan(x->step)) return fail(LACOS_EINVAL, "%s: run %lld: STS step must be a whole number (-1 = final)", p, (long long)run->id);
  const double corr[2] = { x->spearman, x->pearson };
  for (int i = 0; i < 2; i++)
    if (!isnan(corr[i]) && !(corr[i] >= -1.0000001 && corr[i] <= 1.0000001))
      return fail(LACOS_EINVAL, "%s: run %lld: STS %s must be a correlation in [-1, 1] (not ×100), got %g", p,
                  (long long)run->id, i ? "pearson" : "spearman", corr[i]);
  return single_write(run, "recording an STS result", sts_body, (void *)x);
}

void lacos_timing_record_init(lacos_timing_record *t) {
  if (!t) return;
  memset(t, 0, sizeof *t);
  t->step = -1;
  t->threads = t->repetitions = t->n_items = t->n_tokens = t->avg_ns = t->stddev_ns = t->peak_bytes =
      t->optimizer_state_bytes = NAN;
}

static int timing_body(lacos_run *r, void *c) {
  const lacos_timing_record *t = c;
  char when[32];
  iso_time(now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(prepare(r->db, &st,
              "INSERT INTO timings (run_id, phase, step, device, threads, repetitions, n_items, n_tokens, avg_ns,"
              " stddev_ns, peak_bytes, optimizer_state_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, t->phase, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)t->step);
  bind_text_or_null(st, 4, t->device);
  sqlite3_bind_int(st, 5, isnan(t->threads) ? lacos_threads_get() : (int)t->threads);
  bind_int_or_null(st, 6, t->repetitions);
  bind_int_or_null(st, 7, t->n_items);
  bind_int_or_null(st, 8, t->n_tokens);
  bind_num_or_null(st, 9, t->avg_ns);
  bind_num_or_null(st, 10, t->stddev_ns);
  bind_int_or_null(st, 11, t->peak_bytes);
  bind_int_or_null(st, 12, t->optimizer_state_bytes);
  sqlite3_bind_text(st, 13, when, -1, SQLITE_TRANSIENT);
  int s = step_done(r->db, st, "recording a timing");
  sqlite3_finalize(st);
  return s;
}

int lacos_run_timing(lacos_run *run, const lacos_timing_record *t) {
  TRY(run_writable(run, "lacos_run_timing"));
  if (!t) return fail(LACOS_EINVAL, "lacos_run_timing: record is NULL");
  if (!t->phase || !*t->phase) return fail(LACOS_EINVAL, "%s: run %lld: a timing needs a phase", run->db->path, (long long)run->id);
  TRY(check_whole(run, t->step, "step", "timing"));
  if (isnan(t->step)) return fail(LACOS_EINVAL, "%s: run %lld: timing step must be a whole number (-1 = none)", run->db->path, (long long)run->id);
  TRY(check_whole(run, t->threads, "threads", "timing"));
  TRY(check_whole(run, t->repetitions, "repetitions", "timing"));
  TRY(check_whole(run, t->n_items, "n_items", "timing"));
  TRY(check_whole(run, t->n_tokens, "n_tokens", "timing"));
  TRY(check_whole(run, t->peak_bytes, "peak_bytes", "timing"));
  TRY(check_whole(run, t->optimizer_state_bytes, "optimizer_state_bytes", "timing"));
  const double v[2] = { t->avg_ns, t->stddev_ns };
  for (int i = 0; i < 2; i++)
    if (!isnan(v[i]) && !(isfinite(v[i]) && v[i] >= 0))
      return fail(LACOS_EINVAL, "%s: run %lld: timing %s must be a non-negative number, got %g", run->db->path,
                  (long long)run->id, i ? "stddev_ns" : "avg_ns", v[i]);
  return single_write(run, "recording a timing", timing_body, (void *)t);
}

/* Directory digests: every regular file below the root, sorted by relative path. */
typedef struct dir_list { char **paths; size_t n, cap; size_t root_len; int oom; double bytes; } dir_list;
static _Thread_local dir_list *walk_list;

static int walk_add(const char *fpath, const struct stat *sb, int type, struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F || !S_ISREG(sb->st_mode)) return 0;
  dir_list *l = walk_list;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **p = realloc(l->paths, cap * sizeof *p);
    if (!p) { l->oom = 1; return 1; }
    l->paths = p;
    l->cap = cap;
  }
  char *c = strdup(fpath);
  if (!c) { l->oom = 1; return 1; }
  l->paths[l->n++] = c;
  l->bytes += (double)sb->st_size;
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int hash_dir(const char *root, char sha[65], double *bytes) {
  dir_list l = { 0 };
  l.root_len = strlen(root);
  walk_list = &l;
  int rc = nftw(root, walk_add, 32, FTW_PHYS);
  walk_list = NULL;
  int s = LACOS_OK;
  if (l.oom) s = fail(LACOS_ENOMEM, "%s: out of memory listing the directory", root);
  else if (rc != 0) s = fail_errno("%s: cannot list the directory", root);
  sbuf b = { 0 };
  if (!s) {
    if (l.n > 1) qsort(l.paths, l.n, sizeof *l.paths, cmp_str);   /* qsort(NULL, 0) is undefined */
    for (size_t i = 0; !s && i < l.n; i++) {
      char fsha[65];
      if ((s = lacos_sha256_file(l.paths[i], fsha))) break;
      const char *rel = l.paths[i] + l.root_len;
      while (*rel == '/') rel++;
      sb_put(&b, rel, strlen(rel) + 1);   /* with its NUL */
      sb_puts(&b, fsha);
      sb_puts(&b, "\n");
    }
    if (!s && b.oom) s = fail(LACOS_ENOMEM, "%s: out of memory hashing the directory", root);
    if (!s) s = lacos_sha256_buffer(b.p ? b.p : "", (double)b.n, sha);
  }
  for (size_t i = 0; i < l.n; i++) free(l.paths[i]);
  free(l.paths);
  free(b.p);
  *bytes = l.bytes;
  return s;
}

typedef struct artifact_ctx { const char *kind, *path, *sha; double bytes, step; } artifact_ctx;
static int artifact_body(lacos_run *r, void *c) {
  artifact_ctx *a = c;
  char when[32];
  iso_time(now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(prepare(r->db, &st, "INSERT INTO artifacts (run_id, kind, path, sha256, bytes, step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, a->kind, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, a->path, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, a->sha, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)a->bytes);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)a->step);
  sqlite3_bind_text(st, 7, when, -1, SQLITE_TRANSIENT);
  int s = step_done(r->db, st, "recording an artifact");
  sqlite3_finalize(st);
  return s;
}

int lacos_run_artifact(char *sha256_hex, double *bytes, lacos_run *run, const char *kind, const char *path, double step) {
  char sha[65];
  double nbytes = 0;
  if (sha256_hex) sha256_hex[0] = 0;
  if (bytes) *bytes = 0;
  TRY(run_writable(run, "lacos_run_artifact"));
  if (!kind || !*kind) return fail(LACOS_EINVAL, "%s: run %lld: an artifact needs a kind (adapter, checkpoint, log, ...)", run->db->path, (long long)run->id);
  if (!path || !*path) return fail(LACOS_EINVAL, "%s: run %lld: an artifact needs a path", run->db->path, (long long)run->id);
  TRY(check_whole(run, step, "step", "artifact"));
  struct stat st;
  if (stat(path, &st) != 0) {
    fail_errno("%s", path);
    return fail_context("%s: run %lld: cannot record the artifact (write it in place first)", run->db->path, (long long)run->id);
  }
  char *abs = realpath(path, NULL);
  if (!abs) return fail_errno("%s: cannot resolve the artifact's path", path);
  int s;
  if (S_ISDIR(st.st_mode)) s = hash_dir(abs, sha, &nbytes);
  else { s = lacos_sha256_file(abs, sha); nbytes = (double)st.st_size; }
  if (s) { free(abs); return s; }
  artifact_ctx a = { kind, abs, sha, nbytes, isnan(step) ? -1 : step };
  /* The row must not outlive a power cut that the file survived. */
  sqlite3_exec(run->db->conn, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
  s = single_write(run, "recording an artifact", artifact_body, &a);
  sqlite3_exec(run->db->conn, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
  free(abs);
  if (s) return s;
  if (sha256_hex) memcpy(sha256_hex, sha, 65);
  if (bytes) *bytes = nbytes;
  return LACOS_OK;
}

/* ------------------------------------------------------------------ finish */

static int finish_run(lacos_run *r, int status, const char *reason, const char *message) {
  heartbeat_stop(r);
  int s = flush_rows(r);   /* keep going on failure: the status matters more */
  char when[32];
  iso_time(now_unix(), when);
  int s2 = tx_begin(r->db, "finishing the run");
  if (!s2) {
    sqlite3_stmt *st = NULL;
    if (!(s2 = prepare(r->db, &st, "UPDATE runs SET status = ?, exit_reason = ?, error = ?, ended_at = ?, heartbeat_at = ? WHERE id = ?"))) {
      sqlite3_bind_text(st, 1, lacos_run_status_name(status), -1, SQLITE_STATIC);
      bind_text_or_null(st, 2, reason && *reason ? reason : NULL);
      bind_text_or_null(st, 3, message && *message ? message : NULL);
      sqlite3_bind_text(st, 4, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 5, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 6, r->id);
      s2 = step_done(r->db, st, "finishing the run");
      sqlite3_finalize(st);
    }
    if (!s2) s2 = tx_commit(r->db, "finishing the run");
    else tx_rollback(r->db);
  }
  if (!s2) {
    r->finished = 1;
    r->status = status;
    registry_remove(r);
    sqlite3_wal_checkpoint_v2(r->db->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  }
  return s ? s : s2;
}

int lacos_run_finish(lacos_run *run, int status, const char *reason, const char *message) {
  TRY(run_writable(run, "lacos_run_finish"));
  if (status != LACOS_RUN_DONE && status != LACOS_RUN_FAILED && status != LACOS_RUN_INTERRUPTED)
    return fail(LACOS_EINVAL, "%s: run %lld: a run finishes as done, failed or interrupted, not %s", run->db->path,
                (long long)run->id, lacos_run_status_name(status));
  return finish_run(run, status, reason, message);
}

static void abandon(lacos_run *r, const char *when) {
  if (!r->owned || r->finished) return;
  int interrupted = lacos_interrupt_pending();
  char msg[160];
  snprintf(msg, sizeof msg, "the run ended without lacos_run_finish (%s)", when);
  if (finish_run(r, interrupted ? LACOS_RUN_INTERRUPTED : LACOS_RUN_FAILED, interrupted ? "signal" : "abandoned", msg)) {
    /* Could not write (locked past the timeout, disk full): the heartbeat
       goes stale and readers will see the run as dead. */
    heartbeat_stop(r);
    r->finished = 1;
    registry_remove(r);
  }
}

static void finish_all_at_exit(void) {
  for (;;) {
    pthread_mutex_lock(&registry_mu);
    lacos_run *r = registry;
    pthread_mutex_unlock(&registry_mu);
    if (!r) break;
    abandon(r, "the process exited");
    registry_remove(r);
  }
}

void lacos_run_free(lacos_run *run) {
  if (!run) return;
  abandon(run, "its handle was freed");
  heartbeat_stop(run);
  registry_remove(run);
  for (int i = 0; i < run->nrows; i++) free(run->rows[i].key);
  free(run->rows);
  sqlite3_finalize(run->metric_stmt);
  lacos_db *db = run->db;
  free(run);
  db_release(db);
}

int lacos_db_mark_dead(int *count, lacos_db *db, double stale_seconds) {
  if (count) *count = 0;
  TRY(db_usable(db, "lacos_db_mark_dead"));
  if (!(stale_seconds >= 0)) return fail(LACOS_EINVAL, "%s: stale_seconds must be non-negative", db->path);
  char cutoff[32];
  iso_time(now_unix() - stale_seconds, cutoff);
  TRY(tx_begin(db, "marking dead runs"));
  sqlite3_stmt *st = NULL;
  int s = prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'stale heartbeat')"
                           " WHERE status = 'running' AND coalesce(heartbeat_at, started_at, created_at) < ?");
  if (!s) {
    sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_TRANSIENT);
    s = step_done(db, st, "marking dead runs");
    sqlite3_finalize(st);
  }
  int n = s ? 0 : sqlite3_changes(db->conn);
  if (!s) s = tx_commit(db, "marking dead runs");
  else tx_rollback(db);
  if (!s && count) *count = n;
  return s;
}

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
  TRY(open_conn(&db->ro, db->path, SQLITE_OPEN_READONLY, db->timeout_s));
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
  lacos_db_query *q = calloc(1, sizeof *q);
  if (!q) { sqlite3_finalize(st); return fail(LACOS_ENOMEM, "out of memory"); }
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
  double deadline = now_mono() + q->db->timeout_s;
  for (int attempt = 0;; attempt++) {
    int rc = sqlite3_step(q->st);
    if (rc == SQLITE_ROW) { *has_row = 1; return LACOS_OK; }
    if (rc == SQLITE_DONE) {
      q->done = 1;
      sqlite3_reset(q->st);   /* end the read transaction now: a lingering reader blocks checkpoints */
      return LACOS_OK;
    }
    if ((rc & 0xff) == SQLITE_BUSY && now_mono() < deadline) { sqlite3_reset(q->st); sleep_ms(1 + attempt % 20); continue; }
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
  free(q);
  db_release(db);
}

/* ------------------------------------------------------------------ for tests */

/* Creates (or brings) a database at an older schema version, so tests can
   prove that opening it with the current code migrates it. */
int results_create_at_version(const char *path, int version) {
  if (version < 1 || version > LACOS_DB_SCHEMA_VERSION) return fail(LACOS_EINVAL, "no schema version %d", version);
  lacos_db *db = calloc(1, sizeof *db);
  if (!db) return fail(LACOS_ENOMEM, "out of memory");
  db->path = strdup(path);
  db->refs = 1;
  db->timeout_s = env_timeout();
  int s = db->path ? mkdir_db_parents(path) : fail(LACOS_ENOMEM, "out of memory");
  if (!s) s = open_conn(&db->conn, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, db->timeout_s);
  if (!s) {
    sqlite3_create_function(db->conn, "lacos_decimal", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_decimal, NULL, NULL);
    s = read_version(db, &db->version);
  }
  if (!s) s = check_version(db, db->version);
  if (!s && db->version < version) s = migrate(db, version);
  db_destroy(db);
  return s;
}
