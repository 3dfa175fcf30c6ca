/* fuzz_results.c: libFuzzer target for the results database's import paths
   (engine/results.c): opening a file someone else wrote (foreign, corrupt,
   older or newer schema), migrating an old schema, the read-only query path
   the listings use, and logging into such a file afterwards.

   Input: one control byte, then the database.
   - bit 0 clear: the rest is the database file itself (byte-level
     corruption of SQLite pages and lacos tables);
   - bit 0 set: the rest is SQL text that the harness runs into a fresh
     file first (through SQLite with a step budget, no ATTACH, no VACUUM), so
     the fuzzer writes schemas and rows: old versions, odd types, missing
     columns, NULLs where lacos wrote none;
   - bit 1: open read-only; bit 2: then log a run into it.
   Invariants: a failed open explains itself and leaves nothing open; an
   open database answers every listing query (or fails cleanly) and reads
   back every column; nothing crashes, leaks or hangs.
   tests/c/test_fuzz_results.c replays the corpus in `make test`. */
#include "fuzz_common.h"
#include <math.h>
#include <sqlite3.h>
#include <strings.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("db");
  setenv("LACOS_DB_TIMEOUT", "0", 1);   /* nobody else holds the file: never wait */
  return 0;
}

/* the queries of lua/lacos/results.lua and report.lua, with run id 1 */
static const char *const QUERIES[] = {
  "SELECT * FROM run_summary ORDER BY id",
  "SELECT id FROM runs WHERE uuid LIKE ? || '%' LIMIT 2",
  "SELECT r.*, e.name AS experiment, s.status AS effective_status, s.duration_s FROM runs r "
  "LEFT JOIN experiments e ON e.id = r.experiment_id JOIN run_summary s ON s.id = r.id WHERE r.id = ?",
  "SELECT key, value_num, value_text FROM params WHERE run_id = ? ORDER BY key",
  "SELECT key, count(*) AS rows, sum(is_finite = 0) AS nonfinite, min(step) AS first_step, max(step) AS last_step "
  "FROM metrics WHERE run_id = ? GROUP BY key ORDER BY key",
  "SELECT step, value, is_finite, wall_time FROM metrics WHERE run_id = ? AND key = 'loss' ORDER BY step, rowid",
  "SELECT * FROM sts_results WHERE run_id = ? ORDER BY id",
  "SELECT * FROM timings WHERE run_id = ? ORDER BY id",
  "SELECT * FROM artifacts WHERE run_id = ? ORDER BY id",
  "SELECT key, value FROM tags WHERE run_id = ? ORDER BY key",
  "SELECT dataset, language, split, spearman, pearson, n_pairs FROM sts_results WHERE step = -1 ORDER BY dataset, language",
  "SELECT * FROM experiments",
  "SELECT * FROM scripts",
  "SELECT version, applied_at FROM schema_version ORDER BY version",
  /* refused: writes and attachments */
  "DELETE FROM runs",
  "ATTACH 'x.db' AS x",
};

static int progress_budget;
static int progress(void *ud) { (void)ud; return --progress_budget < 0; }
static int no_attach(void *ud, int action, const char *a, const char *b, const char *c, const char *d) {
  (void)ud; (void)a; (void)b; (void)c; (void)d;
  return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

/* Runs the fuzzer's SQL into a fresh file: SQLite's own robustness is not
   under test here, only what lacos makes of the result. */
static void build_from_sql(const char *path, const uint8_t *sql, size_t n) {
  char *text = malloc(n + 1);
  FUZZ_REQUIRE(text != NULL);
  memcpy(text, sql, n);
  text[n] = 0;
  if (strcasestr(text, "vacuum")) { free(text); return; }   /* VACUUM INTO writes files elsewhere */
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK) {
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
    sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
    sqlite3_set_authorizer(db, no_attach, NULL);
    progress_budget = 20000;
    sqlite3_progress_handler(db, 100, progress, NULL);
    sqlite3_exec(db, text, NULL, NULL, NULL);
  }
  sqlite3_close(db);
  free(text);
}

static void read_all(lacos_db *db) {
  for (size_t q = 0; q < sizeof QUERIES / sizeof *QUERIES; q++) {
    lacos_db_query *st = NULL;
    int s = lacos_db_query_prepare(&st, db, QUERIES[q]);
    if (s) { fuzz_require_error(s); FUZZ_REQUIRE(st == NULL); continue; }
    FUZZ_REQUIRE(q < 14);   /* the last two must be refused */
    int np = lacos_db_query_params(st);
    for (int i = 1; i <= np; i++) FUZZ_REQUIRE(lacos_db_query_bind_num(st, i, 1) == LACOS_OK);
    int rows = 0, has = 0;
    while ((s = lacos_db_query_step(&has, st)) == LACOS_OK && has && rows < 1000) {
      rows++;
      int nc = lacos_db_query_columns(st);
      for (int c = 0; c < nc; c++) {
        FUZZ_REQUIRE(lacos_db_query_column_name(st, c) != NULL);
        int type = lacos_db_query_column_type(st, c);
        FUZZ_REQUIRE(type >= LACOS_DB_NULL && type <= LACOS_DB_BLOB);
        const char *t = lacos_db_query_column_text(st, c);
        double bytes = lacos_db_query_column_bytes(st, c);
        FUZZ_REQUIRE((t == NULL) == (type == LACOS_DB_NULL) && bytes >= 0);
        (void)lacos_db_query_column_num(st, c);
      }
    }
    if (s) fuzz_require_error(s);
    lacos_db_query_free(st);
  }
}

static void log_run(lacos_db *db) {
  double exp = 0;
  int s = lacos_db_experiment(&exp, db, "fuzz", NULL, "{\"lr\":[1,2]}");
  if (s) { fuzz_require_error(s); return; }
  lacos_run_options o;
  lacos_run_options_init(&o);
  o.experiment_id = exp;
  o.config_json = "{\"lr\":1}";
  o.seed = 1;
  o.has_seed = 1;
  o.reuse = 1;
  o.heartbeat_seconds = -1;
  o.workdir = fuzz_dir;
  lacos_run *run = NULL;
  int started = 0;
  s = lacos_run_start(&run, &started, db, &o);
  if (s) { fuzz_require_error(s); FUZZ_REQUIRE(run == NULL); return; }
  if (started) {
    if ((s = lacos_run_param_num(run, "lr", 1))) fuzz_require_error(s);
    if ((s = lacos_run_metric(run, 1, "loss", 0.5))) fuzz_require_error(s);
    if ((s = lacos_run_metric(run, 2, "loss", NAN))) fuzz_require_error(s);
    lacos_sts_record r;
    lacos_sts_record_init(&r);
    r.dataset = "stsb";
    r.split = "test";
    r.spearman = 0.5;
    if ((s = lacos_run_sts(run, &r))) fuzz_require_error(s);
    if ((s = lacos_run_finish(run, LACOS_RUN_DONE, NULL, NULL))) fuzz_require_error(s);
  }
  lacos_run_free(run);
  int dead = -1;
  if ((s = lacos_db_mark_dead(&dead, db, 60))) fuzz_require_error(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  fuzz_bytes in = { data, size };
  unsigned ctl = fuzz_byte(&in);
  char path[1024];
  fuzz_path(path, sizeof path, "results.db");
  if (ctl & 1) build_from_sql(path, in.p, in.n);
  else fuzz_put("results.db", in.p, in.n);
  lacos_db *db = (lacos_db *)1;
  int s = lacos_db_open(&db, path, (ctl & 2) ? LACOS_DB_READONLY : 0);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(db == NULL && strstr(lacos_last_error(), "results.db") != NULL);
    return 0;
  }
  int v = lacos_db_schema_version(db);
  FUZZ_TRACE("  opened, schema version %d\n", v);
  FUZZ_REQUIRE(v >= 0 && v <= LACOS_DB_SCHEMA_VERSION);
  read_all(db);
  if (ctl & 4) log_run(db);
  lacos_db_close(db);
  return 0;
}
