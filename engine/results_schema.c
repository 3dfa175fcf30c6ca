/* results_schema.c: the schema, one migration per version, and opening a
   database (created, or brought to this version by one migrator under
   BEGIN EXCLUSIVE; a newer one is refused). */
#include "results_internal.h"
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ------------------------------------------------------------------ open and migrate */

static void sql_decimal(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  double v;
  const unsigned char *t = sqlite3_value_text(argv[0]);
  if (sqlite3_value_type(argv[0]) == SQLITE_TEXT && t && decimal_parse((const char *)t, &v)) sqlite3_result_double(ctx, v);
  else if (sqlite3_value_type(argv[0]) == SQLITE_INTEGER || sqlite3_value_type(argv[0]) == SQLITE_FLOAT)
    sqlite3_result_double(ctx, sqlite3_value_double(argv[0]));
  else sqlite3_result_null(ctx);
}

static int mkdir_db_parents(const char *path) {
  char *copy;
  TRY(meta_strdup(&copy, path, "a path"));
  char *dir = dirname(copy);
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", dir);
  mem_free(copy);
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
  double deadline = db_now_mono() + db->timeout_s;
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
    if ((rc & 0xff) != SQLITE_BUSY || db_now_mono() >= deadline) return db_fail(db, rc, "reading the schema");
    db_sleep_ms(1 + attempt % 20);
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
  int rc = db_exec_retry(db->conn, "BEGIN EXCLUSIVE", db->timeout_s);
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
    db_iso_time(db_now_unix(), when);
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
  if (!s) s = db_tx_commit(db, "migrating the schema");
  else db_tx_rollback(db);
  sqlite3_exec(db->conn, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  if (!s) db->version = target;
  return s;
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
  lacos_db *db;
  TRY(meta_calloc(&db, 1, sizeof *db, "results database"));
  db->flags = flags;
  db->refs = 1;
  int s = db_env_timeout(&db->timeout_s);
  if (!s) s = meta_strdup(&db->path, path, "results database path");
  if (s) { mem_free(db); return s; }

  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) { db_destroy(db); return fail(LACOS_EIO, "%s: is a directory, expected a results database file", path); }
  if (!exists && (flags & (LACOS_DB_NOCREATE | LACOS_DB_READONLY))) {
    db_destroy(db);
    return fail(LACOS_ENOTFOUND, "%s: no results database there (nothing logged yet; choose one with --db or LACOS_DB)", path);
  }
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
  if ((s = db_open_conn(&db->conn, path, oflags, db->timeout_s))) OPEN_FAILED(s);
  sqlite3_create_function(db->conn, "lacos_decimal", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_decimal, NULL, NULL);

  /* Look before touching: a foreign, corrupt or newer file is refused
     before anything (even the journal mode) is written to it. */
  int v = 0;
  if ((s = read_version(db, &v)) || (s = check_version(db, v))) OPEN_FAILED(s);
  db->version = v;
  if (writable) {
    int rc = db_exec_retry(db->conn, (flags & LACOS_DB_ROLLBACK) ? "PRAGMA journal_mode = DELETE" : "PRAGMA journal_mode = WAL",
                           db->timeout_s);
    if (rc != SQLITE_OK) OPEN_FAILED(db_fail(db, rc, "switching to WAL mode"));
  }
  sqlite3_exec(db->conn, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  if (v < LACOS_DB_SCHEMA_VERSION && (s = migrate(db, LACOS_DB_SCHEMA_VERSION))) OPEN_FAILED(s);
#undef OPEN_FAILED
  *out = db;
  return LACOS_OK;
}

/* ------------------------------------------------------------------ for tests */

/* Creates (or brings) a database at an older schema version, so tests can
   prove that opening it with the current code migrates it. */
int results_create_at_version(const char *path, int version) {
  if (version < 1 || version > LACOS_DB_SCHEMA_VERSION) return fail(LACOS_EINVAL, "no schema version %d", version);
  lacos_db *db;
  TRY(meta_calloc(&db, 1, sizeof *db, "results database"));
  db->refs = 1;
  int s = db_env_timeout(&db->timeout_s);
  if (!s) s = meta_strdup(&db->path, path, "results database path");
  if (!s) s = mkdir_db_parents(path);
  if (!s) s = db_open_conn(&db->conn, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, db->timeout_s);
  if (!s) {
    sqlite3_create_function(db->conn, "lacos_decimal", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_decimal, NULL, NULL);
    s = read_version(db, &db->version);
  }
  if (!s) s = check_version(db, db->version);
  if (!s && db->version < version) s = migrate(db, version);
  db_destroy(db);
  return s;
}

