/* results_merge.c: folds a database shard (one Slurm task's own results
   file) into the results database; see lacos_db_merge_shard in lacos.h.

   Why shards: a sweep on a cluster runs its points as tasks on many nodes
   that share a network filesystem. SQLite's WAL mode needs every process on
   the host that holds the file (https://www.sqlite.org/wal.html), and file
   locking over NFS is unreliable (https://www.sqlite.org/howtocorrupt.html
   section 2.1), so tasks never share a database: each writes its own shard
   in rollback-journal mode, and one process merges them.

   The merge opens its own connection to the results database (whose schema
   results.c owns and has brought up to date), attaches the shard read-only
   and copies, in one BEGIN IMMEDIATE transaction, the finished runs the
   database lacks (by uuid) with every row that hangs off them. Table and
   column lists are read from the database's own schema, so a table added by
   a later migration with a run_id column is copied too. */
#include "engine.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MERGE_TIMEOUT_S 30.0

static double merge_timeout(void) {
  const char *e = getenv("LACOS_DB_TIMEOUT");
  if (e && *e) {
    char *end;
    double v = strtod(e, &end);
    if (end != e && v >= 0 && isfinite(v)) return v;
  }
  return MERGE_TIMEOUT_S;
}

typedef struct text { char *p; size_t n, cap; int oom; } text;

static void put(text *b, const char *s) {
  size_t n = strlen(s);
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 512;
    while (cap < b->n + n + 1) cap *= 2;
    if (meta_realloc(&b->p, cap, "an SQL statement")) { b->oom = 1; return; }
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n + 1);
  b->n += n;
}

/* An SQL identifier in double quotes (a name read from the schema). */
static void put_ident(text *b, const char *name) {
  put(b, "\"");
  for (const char *c = name; *c; c++) put(b, *c == '"' ? "\"\"" : (char[2]){ *c, 0 });
  put(b, "\"");
}

typedef struct merge {
  sqlite3 *conn;
  const char *db_path, *shard_path;
  double timeout_s;
} merge;

/* "<shard>: <what>: <cause>" for the shard's own faults. */
static int shard_fail(merge *m, int rc, const char *what) {
  int prim = rc & 0xff;
  const char *msg = sqlite3_errmsg(m->conn);
  if (rc == SQLITE_READONLY_ROLLBACK || rc == SQLITE_READONLY_RECOVERY)
    return fail(LACOS_EDB, "%s: %s: half-written: its writer was killed in the middle of a transaction (a hot journal "
                "is beside it); not merged. Running its point again (resubmit the sweep) rolls that transaction back, "
                "and the next merge takes it", m->shard_path, what);
  if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
    return fail(LACOS_EDB, "%s: %s: damaged or not an SQLite database (%s); not merged", m->shard_path, what, msg);
  if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
    return fail(LACOS_EDB, "%s: %s: locked by a writer for more than %.3g s (is its task still running?); not merged",
                m->shard_path, what, m->timeout_s);
  return fail(LACOS_EDB, "%s: %s: %s; not merged", m->shard_path, what, msg);
}

static int db_fail(merge *m, int rc, const char *what) {
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    return fail(LACOS_EDB, "%s: %s: the database is locked by another process (waited %.3g s); raise LACOS_DB_TIMEOUT "
                "to wait longer", m->db_path, what, m->timeout_s);
  return fail(LACOS_EDB, "%s: %s: %s", m->db_path, what, sqlite3_errmsg(m->conn));
}

/* Runs SQL, retrying SQLITE_BUSY until the deadline. */
static int exec_retry(merge *m, const char *sql) {
  double deadline = 0;
  for (int attempt = 0;; attempt++) {
    int rc = sqlite3_exec(m->conn, sql, NULL, NULL, NULL);
    if ((rc & 0xff) != SQLITE_BUSY) return rc;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    if (attempt == 0) deadline = now + m->timeout_s;
    else if (now >= deadline) return rc;
    struct timespec pause = { 0, (long)(1 + attempt % 20) * 1000000L };
    nanosleep(&pause, NULL);
  }
}

/* One integer from a query with up to one text parameter; returns the
   sqlite status (SQLITE_ROW when a value was read). */
static int query_int(merge *m, const char *sql, const char *param, long long *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(m->conn, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc;
}

/* A shard is a plain file with something in it (an empty one: its task
   stopped before writing anything). tail ends each message. */
static int check_shard_file(const char *path, const char *tail) {
  struct stat sb;
  if (stat(path, &sb) != 0) return fail_errno("%s: cannot read the shard", path);
  if (!S_ISREG(sb.st_mode)) return fail(LACOS_EDB, "%s: not a file%s", path, tail);
  if (sb.st_size == 0) return fail(LACOS_EDB, "%s: an empty file (its task stopped before writing anything)%s", path, tail);
  return LACOS_OK;
}

/* m->conn on target (a path or a file: URI), with extended result codes
   and m->timeout_s of waiting on a lock. */
static int open_conn(merge *m, const char *target, int flags, const char *what) {
  int rc = sqlite3_open_v2(target, &m->conn, flags | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int s = fail(LACOS_EDB, "%s: %s: %s", m->db_path, what, m->conn ? sqlite3_errmsg(m->conn) : sqlite3_errstr(rc));
    sqlite3_close_v2(m->conn);
    m->conn = NULL;
    return s;
  }
  sqlite3_extended_result_codes(m->conn, 1);
  sqlite3_busy_timeout(m->conn, m->timeout_s * 1000 < (double)INT_MAX ? (int)(m->timeout_s * 1000) : INT_MAX);
  return LACOS_OK;
}

/* "file:<path>?mode=ro" with the path percent-encoded (SQLite's URI rules). */
static char *readonly_uri(const char *path) {
  char abs[PATH_MAX];
  if (path[0] != '/') {
    if (!getcwd(abs, sizeof abs)) return NULL;
    size_t n = strlen(abs);
    if (n + 1 + strlen(path) + 1 > sizeof abs) return NULL;
    abs[n] = '/';
    strcpy(abs + n + 1, path);
  } else {
    if (strlen(path) + 1 > sizeof abs) return NULL;
    strcpy(abs, path);
  }
  size_t n = strlen(abs);
  char *uri = NULL;
  if (meta_alloc(&uri, 5 + 3 * n + 9 + 1, "a shard's URI")) return NULL;
  char *o = uri;
  memcpy(o, "file:", 5);
  o += 5;
  for (const unsigned char *c = (const unsigned char *)abs; *c; c++) {
    if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '/' || *c == '.' ||
        *c == '-' || *c == '_')
      *o++ = (char)*c;
    else o += sprintf(o, "%%%02X", *c);
  }
  strcpy(o, "?mode=ro");
  return uri;
}

/* The columns of main.<table> in order, as a list for INSERT, and the
   matching SELECT expressions over alias x, with run_id taken from the map
   (alias m), an INTEGER PRIMARY KEY id left out (it is renumbered) and
   the columns named in subs (ending with a NULL column) replaced by their
   expressions. */
typedef struct subst { const char *column, *expr; } subst;

static int column_lists(merge *m, const char *table, text *cols, text *exprs, int *has_run_id, const subst *subs) {
  sqlite3_stmt *st = NULL;
  text q = { 0 };
  put(&q, "PRAGMA main.table_info(");
  put_ident(&q, table);
  put(&q, ")");
  if (q.oom) return fail(LACOS_ENOMEM, "out of memory");
  int rc = sqlite3_prepare_v2(m->conn, q.p, -1, &st, NULL);
  mem_free(q.p);
  if (rc != SQLITE_OK) return db_fail(m, rc, "reading the schema");
  *has_run_id = 0;
  int first = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *type = (const char *)sqlite3_column_text(st, 2);
    int pk = sqlite3_column_int(st, 5);
    if (!name) continue;
    if (pk == 1 && type && sqlite3_stricmp(type, "INTEGER") == 0 && strcmp(name, "id") == 0) continue;
    if (!first) { put(cols, ", "); put(exprs, ", "); }
    first = 0;
    put_ident(cols, name);
    const char *expr = NULL;
    for (const subst *u = subs; u && u->column; u++) if (strcmp(u->column, name) == 0) expr = u->expr;
    if (strcmp(name, "run_id") == 0) { put(exprs, "m.main_id"); *has_run_id = 1; }
    else if (expr) put(exprs, expr);
    else { put(exprs, "x."); put_ident(exprs, name); }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_fail(m, rc, "reading the schema");
  if (cols->oom || exprs->oom) return fail(LACOS_ENOMEM, "out of memory");
  return LACOS_OK;
}

/* Checks the attached shard before anything is written: readable (no hot
   journal), intact, a lacos database of this schema version, of one
   experiment (the expected one when given). */
static int check_shard(merge *m, const char *experiment, lacos_merge_report *r) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(m->conn, "PRAGMA shard.quick_check", -1, &st, NULL);
  if (rc != SQLITE_OK) return shard_fail(m, rc, "checking it");
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) { int s = shard_fail(m, rc, "checking it"); sqlite3_finalize(st); return s; }
  const char *ok = (const char *)sqlite3_column_text(st, 0);
  if (!ok || strcmp(ok, "ok") != 0) {
    int s = fail(LACOS_EDB, "%s: damaged: SQLite's check says %s; not merged", m->shard_path, ok ? ok : "(nothing)");
    sqlite3_finalize(st);
    return s;
  }
  sqlite3_finalize(st);
  long long n = 0;
  rc = query_int(m, "SELECT count(*) FROM shard.sqlite_schema WHERE type = 'table' AND name = 'schema_version'", NULL, &n);
  if (rc != SQLITE_ROW) return shard_fail(m, rc, "reading its schema");
  if (n == 0)
    return fail(LACOS_EDB, "%s: not a lacos results database (no schema_version table); not merged", m->shard_path);
  long long v = 0;
  rc = query_int(m, "SELECT coalesce(max(version), 0) FROM shard.schema_version", NULL, &v);
  if (rc != SQLITE_ROW) return shard_fail(m, rc, "reading its schema version");
  r->schema_version = (int)v;
  if (v != LACOS_DB_SCHEMA_VERSION)
    return fail(LACOS_EUNSUPPORTED, "%s: schema version %lld, but this lacos writes version %d; not merged (%s)",
                m->shard_path, v, LACOS_DB_SCHEMA_VERSION,
                v > LACOS_DB_SCHEMA_VERSION ? "it was written by a newer lacos: merge it with that one"
                                            : "written by an older lacos: open it once with this one to migrate it, "
                                              "e.g. lacos results list --db SHARD, then merge");
  /* the experiments its runs belong to */
  rc = sqlite3_prepare_v2(m->conn,
                          "SELECT DISTINCT e.name FROM shard.runs r LEFT JOIN shard.experiments e ON e.id = r.experiment_id "
                          "ORDER BY e.name IS NULL DESC, e.name", -1, &st, NULL);
  if (rc != SQLITE_OK) return shard_fail(m, rc, "reading its runs");
  int count = 0, s = LACOS_OK;
  while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (!name) {
      s = fail(LACOS_EDB, "%s: holds runs outside any experiment, so it is no sweep's shard; not merged", m->shard_path);
      break;
    }
    if (count++ == 0) snprintf(r->experiment, sizeof r->experiment, "%s", name);
    else s = fail(LACOS_EDB, "%s: holds runs of two experiments ('%s' and '%s'), so it is no one sweep's shard; not merged",
                  m->shard_path, r->experiment, name);
  }
  if (!s && rc != SQLITE_DONE && rc != SQLITE_ROW) s = shard_fail(m, rc, "reading its runs");
  sqlite3_finalize(st);
  if (s) return s;
  if (experiment && count > 0 && strcmp(experiment, r->experiment) != 0)
    return fail(LACOS_EDB, "%s: a shard of sweep '%s', not of '%s'; not merged", m->shard_path, r->experiment, experiment);
  return LACOS_OK;
}

#define FINISHED "('done', 'failed', 'interrupted', 'dead')"

static int copy_rows(merge *m, lacos_merge_report *r) {
  int s = LACOS_OK, rc;
  /* scripts (every version seen), and the experiment when the database lacks it */
  static const char *const setup[] = {
    "INSERT OR IGNORE INTO main.scripts SELECT * FROM shard.scripts",
    "CREATE TEMP TABLE merge_new (shard_id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE merge_map (shard_id INTEGER PRIMARY KEY, main_id INTEGER NOT NULL)",
    "INSERT INTO temp.merge_new SELECT id FROM shard.runs WHERE status IN " FINISHED
    " AND uuid NOT IN (SELECT uuid FROM main.runs)",
  };
  for (size_t i = 0; i < sizeof setup / sizeof *setup; i++) {
    rc = sqlite3_exec(m->conn, setup[i], NULL, NULL, NULL);
    if (rc != SQLITE_OK) return i == 0 ? shard_fail(m, rc, "copying its scripts") : db_fail(m, rc, "merging a shard");
  }
  text cols = { 0 }, exprs = { 0 }, sql = { 0 };
  int has_run_id;
  if (r->experiment[0]) {
    long long have = 0;
    rc = query_int(m, "SELECT count(*) FROM main.experiments WHERE name = ?", r->experiment, &have);
    if (rc != SQLITE_ROW) return db_fail(m, rc, "looking up the experiment");
    if (!have) {
      if ((s = column_lists(m, "experiments", &cols, &exprs, &has_run_id, NULL))) goto out;
      put(&sql, "INSERT INTO main.experiments (");
      put(&sql, cols.p);
      put(&sql, ") SELECT ");
      put(&sql, exprs.p);
      put(&sql, " FROM shard.experiments x WHERE x.name = ?");
      if (sql.oom) { s = fail(LACOS_ENOMEM, "out of memory"); goto out; }
      sqlite3_stmt *st = NULL;
      rc = sqlite3_prepare_v2(m->conn, sql.p, -1, &st, NULL);
      if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, r->experiment, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
      }
      sqlite3_finalize(st);
      if (rc != SQLITE_DONE) { s = db_fail(m, rc, "copying the experiment"); goto out; }
      mem_free(cols.p); mem_free(exprs.p); mem_free(sql.p);
      cols = (text){ 0 }; exprs = (text){ 0 }; sql = (text){ 0 };
    }
  }
  /* the runs: experiment by name, parent by uuid (after all are in) */
  /* experiment_id and parent_run_id are the shard's ids: the experiment is
     found by name, the parent by uuid once every run is in */
  static const subst run_subs[] = { { "experiment_id", "x.merged_experiment" }, { "parent_run_id", "NULL" }, { NULL, NULL } };
  if ((s = column_lists(m, "runs", &cols, &exprs, &has_run_id, run_subs))) goto out;
  put(&sql, "INSERT INTO main.runs (");
  put(&sql, cols.p);
  put(&sql, ") SELECT ");
  put(&sql, exprs.p);
  put(&sql, " FROM (SELECT r.*, (SELECT me.id FROM main.experiments me WHERE me.name = "
            "(SELECT se.name FROM shard.experiments se WHERE se.id = r.experiment_id)) AS merged_experiment "
            "FROM shard.runs r JOIN temp.merge_new n ON n.shard_id = r.id ORDER BY r.id) x");
  if (sql.oom) { s = fail(LACOS_ENOMEM, "out of memory"); goto out; }
  rc = sqlite3_exec(m->conn, sql.p, NULL, NULL, NULL);
  if (rc != SQLITE_OK) { s = db_fail(m, rc, "copying the runs"); goto out; }
  r->merged = sqlite3_changes(m->conn);
  static const char *const link[] = {
    "INSERT INTO temp.merge_map SELECT r.id, mr.id FROM shard.runs r JOIN temp.merge_new n ON n.shard_id = r.id "
    "JOIN main.runs mr ON mr.uuid = r.uuid",
    "UPDATE main.runs SET parent_run_id = (SELECT mp.id FROM temp.merge_map mm JOIN shard.runs sr ON sr.id = mm.shard_id "
    "JOIN shard.runs sp ON sp.id = sr.parent_run_id JOIN main.runs mp ON mp.uuid = sp.uuid WHERE mm.main_id = main.runs.id) "
    "WHERE id IN (SELECT main_id FROM temp.merge_map)",
  };
  for (size_t i = 0; i < sizeof link / sizeof *link; i++) {
    rc = sqlite3_exec(m->conn, link[i], NULL, NULL, NULL);
    if (rc != SQLITE_OK) { s = db_fail(m, rc, "linking the merged runs"); goto out; }
  }
  /* every table keyed by run_id, in the order its rows were written */
  sqlite3_stmt *tables = NULL;
  rc = sqlite3_prepare_v2(m->conn,
                          "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                          "AND name NOT IN ('runs', 'experiments', 'scripts', 'schema_version') ORDER BY name", -1, &tables, NULL);
  if (rc != SQLITE_OK) { s = db_fail(m, rc, "reading the schema"); goto out; }
  while (!s && (rc = sqlite3_step(tables)) == SQLITE_ROW) {
    const char *table = (const char *)sqlite3_column_text(tables, 0);
    mem_free(cols.p); mem_free(exprs.p); mem_free(sql.p);
    cols = (text){ 0 }; exprs = (text){ 0 }; sql = (text){ 0 };
    if ((s = column_lists(m, table, &cols, &exprs, &has_run_id, NULL))) break;
    if (!has_run_id) continue;
    put(&sql, "INSERT INTO main.");
    put_ident(&sql, table);
    put(&sql, " (");
    put(&sql, cols.p);
    put(&sql, ") SELECT ");
    put(&sql, exprs.p);
    put(&sql, " FROM shard.");
    put_ident(&sql, table);
    put(&sql, " x JOIN temp.merge_map m ON m.shard_id = x.run_id ORDER BY x.rowid");
    if (sql.oom) { s = fail(LACOS_ENOMEM, "out of memory"); break; }
    int rc2 = sqlite3_exec(m->conn, sql.p, NULL, NULL, NULL);
    if (rc2 != SQLITE_OK) {
      char what[160];
      snprintf(what, sizeof what, "copying table %s", table);
      s = db_fail(m, rc2, what);
    }
  }
  if (!s && rc != SQLITE_DONE) s = db_fail(m, rc, "reading the schema");
  sqlite3_finalize(tables);
out:
  mem_free(cols.p); mem_free(exprs.p); mem_free(sql.p);
  return s;
}

int lacos_db_merge_shard(lacos_merge_report *report, const char *db_path, const char *shard_path, const char *experiment) {
  if (!report || !db_path || !*db_path || !shard_path || !*shard_path)
    return fail(LACOS_EINVAL, "lacos_db_merge_shard: report, database and shard are required");
  memset(report, 0, sizeof *report);
  int s = check_shard_file(shard_path, "; not merged");
  if (s) return s;
  struct stat sb;
  if (stat(db_path, &sb) != 0) return fail_errno("%s: cannot read the results database", db_path);
  merge m = { .db_path = db_path, .shard_path = shard_path, .timeout_s = merge_timeout() };
  if ((s = open_conn(&m, db_path, SQLITE_OPEN_READWRITE, "cannot open the results database"))) return s;
  sqlite3_exec(m.conn, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
  long long v = 0;
  int rc = query_int(&m, "SELECT coalesce(max(version), 0) FROM main.schema_version", NULL, &v);
  if (rc != SQLITE_ROW) s = db_fail(&m, rc, "reading the schema version");
  else if (v != LACOS_DB_SCHEMA_VERSION)
    s = fail(LACOS_EDB, "%s: schema version %lld, not this lacos's %d (open it with lacos first)", db_path, v, LACOS_DB_SCHEMA_VERSION);
  char *uri = s ? NULL : readonly_uri(shard_path);
  if (!s && !uri) s = fail(LACOS_ENOMEM, "%s: the path is too long or memory ran out", shard_path);
  if (!s) {
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(m.conn, "ATTACH ? AS shard", -1, &st, NULL);
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(st, 1, uri, -1, SQLITE_TRANSIENT);
      rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) s = shard_fail(&m, rc, "opening it");
  }
  mem_free(uri);
  if (!s) s = check_shard(&m, experiment, report);
  if (!s) {
    long long n = 0;
    rc = query_int(&m, "SELECT count(*) FROM shard.runs WHERE status NOT IN " FINISHED, NULL, &n);
    if (rc != SQLITE_ROW) s = shard_fail(&m, rc, "reading its runs");
    report->unfinished = (int)n;
    rc = query_int(&m, "SELECT count(*) FROM shard.runs WHERE status IN " FINISHED " AND uuid IN (SELECT uuid FROM main.runs)",
                   NULL, &n);
    if (!s && rc != SQLITE_ROW) s = shard_fail(&m, rc, "reading its runs");
    report->present = (int)n;
  }
  if (!s) {
    rc = exec_retry(&m, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) s = fail(LACOS_EDB, "%s: the database is locked by another process (waited %.3g s); raise "
                                  "LACOS_DB_TIMEOUT to wait longer", db_path, m.timeout_s);
    else {
      s = copy_rows(&m, report);
      if (!s) {
        rc = exec_retry(&m, "COMMIT");
        if (rc != SQLITE_OK) s = db_fail(&m, rc, "committing the merge");
      }
      if (s) {
        sqlite3_exec(m.conn, "ROLLBACK", NULL, NULL, NULL);
        report->merged = 0;
      }
    }
    sqlite3_exec(m.conn, "DROP TABLE IF EXISTS temp.merge_new; DROP TABLE IF EXISTS temp.merge_map", NULL, NULL, NULL);
  }
  sqlite3_exec(m.conn, "DETACH shard", NULL, NULL, NULL);
  sqlite3_close_v2(m.conn);
  return s;
}

int lacos_db_shard_runs(char **json, const char *shard_path) {
  if (!json || !shard_path || !*shard_path) return fail(LACOS_EINVAL, "lacos_db_shard_runs: json and shard are required");
  *json = NULL;
  int s = check_shard_file(shard_path, "");
  if (s) return s;
  char *uri = readonly_uri(shard_path);
  if (!uri) return fail(LACOS_ENOMEM, "%s: the path is too long or memory ran out", shard_path);
  merge m = { .db_path = shard_path, .shard_path = shard_path, .timeout_s = merge_timeout() };
  s = open_conn(&m, uri, SQLITE_OPEN_READONLY, "cannot open it");
  mem_free(uri);
  if (s) return s;
  static const char *const sql =
    "SELECT json_group_array(json_object("
    " 'uuid', r.uuid, 'status', r.status, 'exit_reason', r.exit_reason, 'error', r.error, 'experiment', e.name,"
    " 'config_sha256', r.config_sha256, 'seed', r.seed, 'host', r.host, 'created_at', r.created_at,"
    " 'started_at', r.started_at, 'ended_at', r.ended_at, 'heartbeat_at', r.heartbeat_at,"
    " 'loss', (SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.key = 'loss' ORDER BY m.step DESC, m.rowid DESC LIMIT 1),"
    " 'loss_finite', (SELECT m.is_finite FROM metrics m WHERE m.run_id = r.id AND m.key = 'loss' ORDER BY m.step DESC, m.rowid DESC LIMIT 1),"
    " 'step', (SELECT max(m.step) FROM metrics m WHERE m.run_id = r.id AND m.key = 'loss'),"
    " 'tags', json((SELECT json_group_object(t.key, t.value) FROM tags t WHERE t.run_id = r.id))))"
    " FROM (SELECT * FROM runs ORDER BY id) r LEFT JOIN experiments e ON e.id = r.experiment_id";
  sqlite3_stmt *st = NULL;
  long long v = 0;
  int rc = query_int(&m, "SELECT coalesce(max(version), 0) FROM main.schema_version", NULL, &v);
  if (rc != SQLITE_ROW) s = shard_fail(&m, rc, "reading it");
  else if (v != LACOS_DB_SCHEMA_VERSION)
    s = fail(LACOS_EUNSUPPORTED, "%s: schema version %lld, but this lacos reads version %d", shard_path, v, LACOS_DB_SCHEMA_VERSION);
  if (!s) {
    rc = sqlite3_prepare_v2(m.conn, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) s = shard_fail(&m, rc, "reading its runs");
    else {
      const char *t = (const char *)sqlite3_column_text(st, 0);
      s = meta_strdup(json, t ? t : "[]", "a shard's runs");
    }
    sqlite3_finalize(st);
  }
  sqlite3_close_v2(m.conn);
  return s;
}
