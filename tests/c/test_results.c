/* test_results.c: the results database: schema and migrations, every
   logging call and its row, canonical JSON, typed params, non-finite
   metrics, get-or-create, several processes opening and writing one file,
   and the failures (foreign, corrupt, newer, locked, read-only). */
#include "test.h"
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

int results_create_at_version(const char *path, int version);

static char *tmp_path(const char *name) {
  static char buf[8][512];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 512, "%s/results-c/%s", test_tmpdir(), name);
  return p;
}

static void rm_db(const char *path) {
  char p[600];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path); unlink(p);
  snprintf(p, sizeof p, "%s-shm", path); unlink(p);
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) { printf("#   cannot write %s\n", path); return; }
  fwrite(data, 1, n, f);
  fclose(f);
}

/* One number from a raw SQL query on a separate connection (what a
   sqlite3 user sees). NAN for NULL or no row. */
static double raw_num(const char *path, const char *sql) {
  sqlite3 *c = NULL;
  double v = NAN;
  if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
      v = sqlite3_column_double(st, 0);
    else if (!st) printf("#   raw query failed: %s: %s\n", sql, sqlite3_errmsg(c));
    sqlite3_finalize(st);
  }
  sqlite3_close(c);
  return v;
}

static int raw_text(const char *path, const char *sql, char *out, size_t cap) {
  sqlite3 *c = NULL;
  int ok = 0;
  out[0] = 0;
  if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL) {
      snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
      ok = 1;
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(c);
  return ok;
}

static int raw_exec(const char *path, const char *sql) {
  sqlite3 *c = NULL;
  int rc = sqlite3_open(path, &c);
  char *err = NULL;
  if (rc == SQLITE_OK) rc = sqlite3_exec(c, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) printf("#   raw exec failed (%s): %s\n", err ? err : sqlite3_errmsg(c), sql);
  sqlite3_free(err);
  sqlite3_close(c);
  return rc;
}

static lacos_db *open_fresh(const char *name) {
  const char *p = tmp_path(name);
  rm_db(p);
  lacos_db *db = NULL;
  CHECK_OK(lacos_db_open(&db, p, 0));
  return db;
}

static lacos_run *start(lacos_db *db, double exp, const char *config, double seed, int reuse, int *started) {
  lacos_run_options o;
  lacos_run_options_init(&o);
  o.experiment_id = exp;
  o.config_json = config;
  o.seed = seed;
  o.has_seed = 1;
  o.reuse = reuse;
  o.heartbeat_seconds = -1;
  lacos_run *r = NULL;
  int s = 0;
  CHECK_OK(lacos_run_start(&r, &s, db, &o));
  if (started) *started = s;
  return r;
}

/* ------------------------------------------------------------------ schema */

static void test_fresh_schema(void) {
  lacos_db *db = open_fresh("fresh.db");
  if (!db) return;
  const char *p = lacos_db_path(db);
  CHECK(lacos_db_schema_version(db) == LACOS_DB_SCHEMA_VERSION);
  CHECK(raw_num(p, "SELECT max(version) FROM schema_version") == LACOS_DB_SCHEMA_VERSION);
  CHECK(raw_num(p, "SELECT count(*) FROM schema_version") == LACOS_DB_SCHEMA_VERSION);
  const char *tables[] = { "experiments", "scripts", "runs", "params", "metrics", "sts_results", "timings", "artifacts", "tags" };
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT strict FROM pragma_table_list WHERE name = '%s'", tables[i]);
    if (raw_num(p, sql) != 1) { printf("#   table %s missing or not STRICT\n", tables[i]); test_failed_now = 1; }
  }
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = 'run_summary'") == 1);
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'metrics_by_run'") == 1);
  char mode[32];
  raw_text(p, "PRAGMA journal_mode", mode, sizeof mode);
  CHECK(strcmp(mode, "wal") == 0);
  /* Opening again is a no-op. */
  lacos_db *db2 = NULL;
  CHECK_OK(lacos_db_open(&db2, p, 0));
  CHECK(raw_num(p, "SELECT count(*) FROM schema_version") == LACOS_DB_SCHEMA_VERSION);
  lacos_db_close(db2);
  lacos_db_close(db);
}

static void test_default_path_and_env(void) {
  char dir[512], cwd[1024];
  snprintf(dir, sizeof dir, "%s/results-c/cwd", test_tmpdir());
  mkdir(dir, 0777);
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(dir) == 0);
  char *old = getenv("LACOS_DB") ? strdup(getenv("LACOS_DB")) : NULL;
  unsetenv("LACOS_DB");
  lacos_db *db = NULL;
  CHECK_OK(lacos_db_open(&db, NULL, 0));
  CHECK(db && strcmp(lacos_db_path(db), "results/lacos.db") == 0);
  struct stat st;
  CHECK(stat("results/lacos.db", &st) == 0);
  lacos_db_close(db);
  setenv("LACOS_DB", "elsewhere/deeper/x.db", 1);
  db = NULL;
  CHECK_OK(lacos_db_open(&db, "", 0));
  CHECK(db && strcmp(lacos_db_path(db), "elsewhere/deeper/x.db") == 0);
  CHECK(stat("elsewhere/deeper/x.db", &st) == 0);
  lacos_db_close(db);
  if (old) { setenv("LACOS_DB", old, 1); free(old); } else unsetenv("LACOS_DB");
  CHECK(chdir(cwd) == 0);
}

/* ------------------------------------------------------------------ canonical JSON */

static void check_canon(const char *in, const char *want) {
  char *out = NULL, sha[65];
  CHECK_OK(lacos_db_canonical_json(&out, sha, in));
  if (out && strcmp(out, want) != 0) { printf("#   canonical(%s) = %s, expected %s\n", in, out, want); test_failed_now = 1; }
  char sha2[65];
  lacos_sha256_buffer(want, (double)strlen(want), sha2);
  CHECK(out && strcmp(sha, sha2) == 0);
  lacos_db_text_free(out);
}

static void test_canonical_json(void) {
  check_canon("{\"b\": 1, \"a\": 2}", "{\"a\":2,\"b\":1}");
  check_canon("{\"lr\": 1e-4}", "{\"lr\":0.0001}");
  check_canon("{\"lr\": 0.0001000}", "{\"lr\":0.0001}");
  check_canon("[1.0, 1, 1e0, -0.0, 2.5E+2, 1e20, 1e-7]", "[1,1,1,0,250,1e+20,1e-07]");
  check_canon("[0.30000000000000004, 0.1, 3.141592653589793]", "[0.30000000000000004,0.1,3.141592653589793]");
  check_canon("{\"z\": {\"y\": [true, false, null], \"x\": \"\\u00e9t\\u00e9\"}, \"a\": \"q\\\"\"}",
              "{\"a\":\"q\\\"\",\"z\":{\"x\":\"été\",\"y\":[true,false,null]}}");
  check_canon("{\"B\": 1, \"a\": 1, \"_\": 1}", "{\"B\":1,\"_\":1,\"a\":1}");   /* bytewise order */
  /* Key order and number spelling do not change the hash. */
  char *a = NULL, *b = NULL, sa[65], sb[65];
  CHECK_OK(lacos_db_canonical_json(&a, sa, "{\"seed\": 1, \"model\": {\"r\": 8, \"alpha\": 16.0}, \"lr\": 2e-4}"));
  CHECK_OK(lacos_db_canonical_json(&b, sb, "{\"lr\":0.0002,\"model\":{\"alpha\":16,\"r\":8.0},\"seed\":1}"));
  CHECK(a && b && strcmp(a, b) == 0 && strcmp(sa, sb) == 0);
  lacos_db_text_free(a);
  lacos_db_text_free(b);
  char *c = NULL;
  CHECK_FAIL(lacos_db_canonical_json(&c, NULL, "{\"a\": 1, \"a\": 2}"), LACOS_EFORMAT, "duplicate");
  CHECK_FAIL(lacos_db_canonical_json(&c, NULL, "{\"a\": "), LACOS_EFORMAT, "invalid JSON");
  CHECK_FAIL(lacos_db_canonical_json(&c, NULL, "[1e999]"), LACOS_EFORMAT, "invalid JSON");
  CHECK(c == NULL);
}

/* ------------------------------------------------------------------ logging */

static void test_logging_rows(void) {
  lacos_db *db = open_fresh("log.db");
  if (!db) return;
  const char *p = lacos_db_path(db);
  char script[512];
  snprintf(script, sizeof script, "%s/results-c/exp.lua", test_tmpdir());
  const char *text = "-- an experiment\nlocal lr = 1e-4\n";
  write_file(script, text, strlen(text));
  double exp = 0, exp2 = 0;
  CHECK_OK(lacos_db_experiment(&exp, db, "scale", script, "{\"lr\": [1e-4, 2e-4], \"model\": [\"560m\"]}"));
  CHECK_OK(lacos_db_experiment(&exp2, db, "scale", NULL, NULL));
  CHECK(exp > 0 && exp == exp2);
  char want_sha[65], got[256];
  lacos_sha256_buffer(text, (double)strlen(text), want_sha);
  raw_text(p, "SELECT script_sha256 FROM experiments", got, sizeof got);
  CHECK(strcmp(got, want_sha) == 0);
  raw_text(p, "SELECT script_text FROM experiments", got, sizeof got);
  CHECK(strcmp(got, text) == 0);
  raw_text(p, "SELECT axes_json FROM experiments", got, sizeof got);
  CHECK(strcmp(got, "{\"lr\":[0.0001,0.0002],\"model\":[\"560m\"]}") == 0);
  CHECK(raw_num(p, "SELECT count(*) FROM scripts") == 1);
  /* An edited script: the experiment shows the new text, both are kept. */
  const char *text2 = "-- an experiment, edited\n";
  write_file(script, text2, strlen(text2));
  CHECK_OK(lacos_db_experiment(&exp2, db, "scale", script, NULL));
  CHECK(exp2 == exp);
  CHECK(raw_num(p, "SELECT count(*) FROM scripts") == 2);
  raw_text(p, "SELECT script_text FROM experiments", got, sizeof got);
  CHECK(strcmp(got, text2) == 0);

  int started = 0;
  lacos_run *r = start(db, exp, "{\"lr\": 2e-4, \"model\": {\"name\": \"bloom-560m\", \"r\": 8}, \"targets\": [\"qkv\"], \"fast\": true, \"none\": null}", 7, 0, &started);
  if (!r) { lacos_db_close(db); return; }
  CHECK(started == 1);
  CHECK(lacos_run_get_status(r) == LACOS_RUN_RUNNING);
  CHECK(strlen(lacos_run_uuid(r)) == 36);
  char sql[512];
  long long id = (long long)lacos_run_id(r);
  snprintf(sql, sizeof sql, "SELECT config_json FROM runs WHERE id = %lld", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "{\"fast\":true,\"lr\":0.0002,\"model\":{\"name\":\"bloom-560m\",\"r\":8},\"none\":null,\"targets\":[\"qkv\"]}") == 0);
  snprintf(sql, sizeof sql, "SELECT status || '|' || seed || '|' || gpu || '|' || lacos_version || '|' || (script_sha256 = '%s') FROM runs WHERE id = %lld",
           want_sha, id);
  raw_text(p, sql, got, sizeof got);
  /* The run records the script version current when it started (text2). */
  char want_row[128];
  snprintf(want_row, sizeof want_row, "running|7|none|%s|0", lacos_version());
  CHECK(strcmp(got, want_row) == 0);
  /* The config flattened into typed params. */
  snprintf(sql, sizeof sql, "SELECT value_num FROM params WHERE run_id = %lld AND key = 'model.r'", id);
  CHECK(raw_num(p, sql) == 8);
  snprintf(sql, sizeof sql, "SELECT value_text FROM params WHERE run_id = %lld AND key = 'model.name'", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "bloom-560m") == 0);
  snprintf(sql, sizeof sql, "SELECT value_text FROM params WHERE run_id = %lld AND key = 'targets'", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "[\"qkv\"]") == 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM params WHERE run_id = %lld AND key = 'none'", id);
  CHECK(raw_num(p, sql) == 0);

  /* Params: typed, immutable. */
  CHECK_OK(lacos_run_param_num(r, "batch", 32));
  CHECK_OK(lacos_run_param_text(r, "pooling", "mean"));
  CHECK_OK(lacos_run_param_num(r, "lr", 0.0002));   /* the same value again */
  CHECK_FAIL(lacos_run_param_num(r, "lr", 0.0003), LACOS_EINVAL, "param 'lr' is already 0.0002");
  CHECK_FAIL(lacos_run_param_text(r, "pooling", "cls"), LACOS_EINVAL, "already 'mean'");
  CHECK_FAIL(lacos_run_param_num(r, "bad", NAN), LACOS_ENUMERIC, "finite");
  CHECK_FAIL(lacos_run_param_num(r, "", 1), LACOS_EINVAL, "non-empty key");
  snprintf(sql, sizeof sql, "SELECT count(*) FROM params WHERE run_id = %lld", id);
  CHECK(raw_num(p, sql) == 7);   /* fast, lr, model.name, model.r, targets, batch, pooling */

  /* Metrics: buffered until a flush; non-finite stored as such. */
  for (int i = 0; i < 10; i++) CHECK_OK(lacos_run_metric(r, i, "loss", 1.0 / (i + 1)));
  CHECK_OK(lacos_run_metric(r, 10, "loss", NAN));
  CHECK_OK(lacos_run_metric(r, 11, "loss", INFINITY));
  CHECK_OK(lacos_run_metric(r, 12, "loss", -INFINITY));
  CHECK_FAIL(lacos_run_metric(r, 1.5, "loss", 1), LACOS_EINVAL, "whole number");
  snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE run_id = %lld", id);
  CHECK(raw_num(p, sql) == 0);
  CHECK_OK(lacos_run_flush(r));
  CHECK(raw_num(p, sql) == 13);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE run_id = %lld AND is_finite = 0", id);
  CHECK(raw_num(p, sql) == 3);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE run_id = %lld AND step = 10 AND value IS NULL AND is_finite = 0", id);
  CHECK(raw_num(p, sql) == 1);
  snprintf(sql, sizeof sql, "SELECT value FROM metrics WHERE run_id = %lld AND step = 12", id);
  CHECK(raw_num(p, sql) == -INFINITY);
  snprintf(sql, sizeof sql, "SELECT value FROM metrics WHERE run_id = %lld AND step = 3", id);
  CHECK_NEAR(raw_num(p, sql), 0.25, 0);

  /* STS */
  lacos_sts_record s;
  lacos_sts_record_init(&s);
  s.dataset = "stsb"; s.language = "en"; s.split = "test"; s.n_pairs = 1379; s.spearman = 0.8123; s.pearson = 0.8011;
  s.similarity = "cosine"; s.pooling = "weightedmean"; s.text_variant = "raw"; s.aggregation = "none";
  s.model = "bloom-560m"; s.adapter = "lora-r8"; s.quantisation = "int8"; s.dtype = "f32"; s.batch_size = 32;
  CHECK_OK(lacos_run_sts(r, &s));
  snprintf(sql, sizeof sql, "SELECT dataset||language||split||step||n_pairs||spearman||pearson||similarity||pooling||text_variant||"
           "aggregation||model||adapter||quantisation||dtype||batch_size||lacos_version FROM sts_results WHERE run_id = %lld", id);
  raw_text(p, sql, got, sizeof got);
  snprintf(want_row, sizeof want_row, "stsbentest-113790.81230.8011cosineweightedmeanrawnonebloom-560mlora-r8int8f3232%s", lacos_version());
  CHECK(strcmp(got, want_row) == 0);
  s.spearman = 81.2;
  CHECK_FAIL(lacos_run_sts(r, &s), LACOS_EINVAL, "not ×100");
  s.spearman = 0.5; s.split = NULL;
  CHECK_FAIL(lacos_run_sts(r, &s), LACOS_EINVAL, "needs a split");

  /* Timings */
  lacos_timing_record t;
  lacos_timing_record_init(&t);
  t.phase = "train_step"; t.step = 100; t.device = "cpu"; t.repetitions = 5; t.n_items = 32; t.n_tokens = 4096;
  t.avg_ns = 1.5e9; t.stddev_ns = 2e7; t.peak_bytes = 123456789; t.optimizer_state_bytes = 6400000;
  CHECK_OK(lacos_run_timing(r, &t));
  snprintf(sql, sizeof sql, "SELECT phase||step||device||repetitions||n_items||n_tokens||avg_ns||stddev_ns||peak_bytes||optimizer_state_bytes"
           "||(threads > 0) FROM timings WHERE run_id = %lld", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "train_step100cpu53240961500000000.020000000.012345678964000001") == 0);
  t.n_items = 2.5;
  CHECK_FAIL(lacos_run_timing(r, &t), LACOS_EINVAL, "n_items must be a whole number");

  /* Artifacts: a file and a directory, hashed; a missing file refused. */
  char art[512], dir[512], f2[600];
  snprintf(art, sizeof art, "%s/results-c/adapter.bin", test_tmpdir());
  write_file(art, "weights", 7);
  char sha[65];
  double bytes = 0;
  CHECK_OK(lacos_run_artifact(sha, &bytes, r, "adapter", art, 100));
  char want_art[65];
  lacos_sha256_buffer("weights", 7, want_art);
  CHECK(strcmp(sha, want_art) == 0 && bytes == 7);
  snprintf(dir, sizeof dir, "%s/results-c/ckpt", test_tmpdir());
  mkdir(dir, 0777);
  snprintf(f2, sizeof f2, "%s/b.bin", dir); write_file(f2, "bb", 2);
  snprintf(f2, sizeof f2, "%s/a.bin", dir); write_file(f2, "a", 1);
  CHECK_OK(lacos_run_artifact(sha, &bytes, r, "checkpoint", dir, -1));
  /* "a.bin\0<sha(a)>\nb.bin\0<sha(bb)>\n" */
  char ha[65], hb[65], listing[300];
  lacos_sha256_buffer("a", 1, ha);
  lacos_sha256_buffer("bb", 2, hb);
  size_t n = 0;
  n += (size_t)snprintf(listing + n, sizeof listing - n, "a.bin") + 1;
  n += (size_t)snprintf(listing + n, sizeof listing - n, "%s\nb.bin", ha) + 1;
  n += (size_t)snprintf(listing + n, sizeof listing - n, "%s\n", hb);
  char want_dir[65];
  lacos_sha256_buffer(listing, (double)n, want_dir);
  CHECK(strcmp(sha, want_dir) == 0 && bytes == 3);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM artifacts WHERE run_id = %lld AND path LIKE '/%%' AND created_at IS NOT NULL", id);
  CHECK(raw_num(p, sql) == 2);
  char missing[512];
  snprintf(missing, sizeof missing, "%s/results-c/not-there.bin", test_tmpdir());
  CHECK_FAIL(lacos_run_artifact(sha, &bytes, r, "adapter", missing, -1), LACOS_ENOTFOUND, "write it in place first");
  CHECK(raw_num(p, sql) == 2);

  /* Tags (may change), heartbeat, finish. */
  CHECK_OK(lacos_run_tag(r, "note", "first"));
  CHECK_OK(lacos_run_tag(r, "note", "second"));
  snprintf(sql, sizeof sql, "SELECT value FROM tags WHERE run_id = %lld AND key = 'note'", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "second") == 0);
  CHECK_OK(lacos_run_heartbeat(r));
  CHECK_OK(lacos_run_metric(r, 13, "loss", 0.01));   /* buffered: finish must flush it */
  CHECK_FAIL(lacos_run_finish(r, LACOS_RUN_RUNNING, NULL, NULL), LACOS_EINVAL, "done, failed or interrupted");
  CHECK_OK(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL));
  snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE run_id = %lld", id);
  CHECK(raw_num(p, sql) == 14);
  snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld AND ended_at IS NOT NULL", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "done") == 0);
  CHECK_FAIL(lacos_run_metric(r, 14, "loss", 0.01), LACOS_ESTATE, "already finished");
  CHECK_FAIL(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL), LACOS_ESTATE, "already finished");
  snprintf(sql, sizeof sql, "SELECT loss FROM run_summary WHERE id = %lld", id);
  CHECK_NEAR(raw_num(p, sql), 0.01, 0);
  snprintf(sql, sizeof sql, "SELECT sts_spearman FROM run_summary WHERE id = %lld", id);
  CHECK_NEAR(raw_num(p, sql), 0.8123, 0);
  lacos_run_free(r);

  /* A failed run keeps its reason and message. */
  r = start(db, exp, "{}", 8, 0, NULL);
  CHECK_OK(lacos_run_finish(r, LACOS_RUN_FAILED, "nonfinite", "loss was NaN for 5 steps"));
  snprintf(sql, sizeof sql, "SELECT status || '|' || exit_reason || '|' || error FROM runs WHERE id = %lld", (long long)lacos_run_id(r));
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "failed|nonfinite|loss was NaN for 5 steps") == 0);
  lacos_run_free(r);
  lacos_db_close(db);
}

static void test_params_sort_numerically(void) {
  lacos_db *db = open_fresh("sort.db");
  if (!db) return;
  const double lrs[] = { 0.0037, 1e-4, 2e-4, 0.05 };
  for (int i = 0; i < 4; i++) {
    lacos_run *r = start(db, 0, "{}", i, 0, NULL);
    CHECK_OK(lacos_run_param_num(r, "lr", lrs[i]));
    CHECK_OK(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL));
    lacos_run_free(r);
  }
  lacos_db_query *q = NULL;
  CHECK_OK(lacos_db_query_prepare(&q, db, "SELECT value_num FROM params WHERE key = 'lr' ORDER BY value_num"));
  const double want[] = { 1e-4, 2e-4, 0.0037, 0.05 };
  int row = 0, k = 0;
  while (q && lacos_db_query_step(&row, q) == LACOS_OK && row) {
    CHECK(lacos_db_query_column_type(q, 0) == LACOS_DB_REAL);
    CHECK(k < 4 && lacos_db_query_column_num(q, 0) == want[k]);
    k++;
  }
  CHECK(k == 4);
  lacos_db_query_free(q);
  /* 1e-4 and 0.0001 are one value. */
  CHECK(raw_num(lacos_db_path(db), "SELECT count(*) FROM params WHERE value_num = 0.0001") == 1);
  CHECK(raw_num(lacos_db_path(db), "SELECT count(*) FROM params WHERE value_num < 0.001") == 2);
  lacos_db_close(db);
}

/* ------------------------------------------------------------------ get-or-create */

static void test_get_or_create(void) {
  lacos_db *db = open_fresh("claim.db");
  if (!db) return;
  const char *p = lacos_db_path(db);
  double e = 0;
  CHECK_OK(lacos_db_experiment(&e, db, "sweep", NULL, NULL));
  int started = -1;
  lacos_run *a = start(db, e, "{\"lr\": 1e-4, \"r\": 8}", 1, 1, &started);
  CHECK(started == 1);
  /* Same point while a is running (fresh heartbeat): not started again. */
  lacos_run *b = start(db, e, "{\"r\": 8, \"lr\": 0.0001}", 1, 1, &started);
  CHECK(started == 0);
  CHECK(lacos_run_id(b) == lacos_run_id(a));
  CHECK(lacos_run_get_status(b) == LACOS_RUN_RUNNING);
  CHECK_FAIL(lacos_run_metric(b, 0, "loss", 1), LACOS_ESTATE, "not started by this handle");
  lacos_run_free(b);   /* a handle that does not own the run changes nothing */
  char sql[200], got[64];
  snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %.0f", lacos_run_id(a));
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "running") == 0);
  /* Another seed or config is another point. */
  lacos_run *c = start(db, e, "{\"lr\": 1e-4, \"r\": 8}", 2, 1, &started);
  CHECK(started == 1 && lacos_run_id(c) != lacos_run_id(a));
  CHECK_OK(lacos_run_finish(c, LACOS_RUN_FAILED, NULL, "boom"));
  CHECK_OK(lacos_run_finish(a, LACOS_RUN_DONE, NULL, NULL));
  /* Done: skipped. Failed: a new run. */
  b = start(db, e, "{\"lr\": 1e-4, \"r\": 8}", 1, 1, &started);
  CHECK(started == 0 && lacos_run_get_status(b) == LACOS_RUN_DONE && lacos_run_id(b) == lacos_run_id(a));
  lacos_run_free(b);
  b = start(db, e, "{\"lr\": 1e-4, \"r\": 8}", 2, 1, &started);
  CHECK(started == 1 && lacos_run_id(b) != lacos_run_id(c));
  /* A running run whose heartbeat went stale is dead, and the point is run again. */
  snprintf(sql, sizeof sql, "UPDATE runs SET heartbeat_at = '2000-01-01T00:00:00.000Z' WHERE id = %.0f", lacos_run_id(b));
  raw_exec(p, sql);
  snprintf(sql, sizeof sql, "SELECT status FROM run_summary WHERE id = %.0f", lacos_run_id(b));
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "dead") == 0);
  lacos_run *d = start(db, e, "{\"lr\": 1e-4, \"r\": 8}", 2, 1, &started);
  CHECK(started == 1 && lacos_run_id(d) != lacos_run_id(b));
  snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %.0f", lacos_run_id(b));
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "dead") == 0);
  /* Its process comes back: the heartbeat revives it. */
  CHECK_OK(lacos_run_heartbeat(b));
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "running") == 0);
  CHECK_OK(lacos_run_finish(b, LACOS_RUN_INTERRUPTED, "signal", NULL));
  CHECK_OK(lacos_run_finish(d, LACOS_RUN_DONE, NULL, NULL));
  lacos_run_free(a); lacos_run_free(b); lacos_run_free(c); lacos_run_free(d);

  /* Queued points: enqueue once, a worker takes it over. */
  lacos_run_options o;
  lacos_run_options_init(&o);
  o.experiment_id = e;
  o.config_json = "{\"lr\": 3e-4}";
  o.has_seed = 1;
  o.seed = 5;
  double qid = 0, qid2 = 0;
  int created = -1;
  CHECK_OK(lacos_db_enqueue(&qid, &created, db, &o));
  CHECK(created == 1 && qid > 0);
  CHECK_OK(lacos_db_enqueue(&qid2, &created, db, &o));
  CHECK(created == 0 && qid2 == qid);
  lacos_run *w = start(db, e, "{\"lr\": 0.0003}", 5, 1, &started);
  CHECK(started == 1 && lacos_run_id(w) == qid && lacos_run_get_status(w) == LACOS_RUN_RUNNING);
  CHECK_OK(lacos_run_finish(w, LACOS_RUN_DONE, NULL, NULL));
  lacos_run_free(w);
  CHECK(raw_num(p, "SELECT count(*) FROM runs WHERE config_sha256 = (SELECT config_sha256 FROM runs WHERE id = 1) AND seed = 1") == 1);
  /* Without reuse every start is a new run. */
  w = start(db, e, "{\"lr\": 0.0003}", 5, 0, &started);
  CHECK(started == 1 && lacos_run_id(w) != qid);
  lacos_run_free(w);
  CHECK_OK(lacos_db_mark_dead(&created, db, 3600));
  lacos_db_close(db);
}

static void test_abandoned_run(void) {
  lacos_db *db = open_fresh("abandon.db");
  if (!db) return;
  const char *p = tmp_path("abandon.db");
  lacos_run *r = start(db, 0, "{}", 1, 0, NULL);
  for (int i = 0; i < 5; i++) CHECK_OK(lacos_run_metric(r, i, "loss", i));
  double id = lacos_run_id(r);
  lacos_db_close(db);   /* the run keeps the connection alive */
  lacos_run_free(r);
  char sql[200], got[200];
  snprintf(sql, sizeof sql, "SELECT status || '|' || exit_reason FROM runs WHERE id = %.0f", id);
  raw_text(p, sql, got, sizeof got);
  CHECK(strcmp(got, "failed|abandoned") == 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM metrics WHERE run_id = %.0f", id);
  CHECK(raw_num(p, sql) == 5);
}

static void test_heartbeat_thread(void) {
  lacos_db *db = open_fresh("heart.db");
  if (!db) return;
  lacos_run_options o;
  lacos_run_options_init(&o);
  o.heartbeat_seconds = 0.05;
  lacos_run *r = NULL;
  CHECK_OK(lacos_run_start(&r, NULL, db, &o));
  struct timespec ts = { 0, 300 * 1000000L };
  nanosleep(&ts, NULL);
  char sql[300];
  snprintf(sql, sizeof sql, "SELECT (julianday(heartbeat_at) - julianday(started_at)) * 86400 FROM runs WHERE id = %.0f", lacos_run_id(r));
  double beat = raw_num(lacos_db_path(db), sql);
  CHECK(beat >= 0.1 && beat < 5);
  CHECK_OK(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL));
  o.heartbeat_seconds = 31;
  lacos_run *r2 = NULL;
  CHECK_FAIL(lacos_run_start(&r2, NULL, db, &o), LACOS_EINVAL, "at most 30 s");
  lacos_run_free(r);
  lacos_db_close(db);
}

/* ------------------------------------------------------------------ migrations */

static void test_migrate_v1(void) {
  const char *p = tmp_path("v1.db");
  rm_db(p);
  CHECK_OK(results_create_at_version(p, 1));
  CHECK(raw_num(p, "SELECT max(version) FROM schema_version") == 1);
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema WHERE name IN ('timings', 'run_summary', 'scripts')") == 0);
  /* Rows as version 1 stored them: params as text, NaN metrics as NULL. */
  char h1[65], rows[4096];
  lacos_sha256_buffer("{\"lr\":0.0001}", 13, h1);
  snprintf(rows, sizeof rows,
    "INSERT INTO experiments VALUES (1, 'old', '/x/old.lua', 'abc123', 'print(1)', '{\"lr\":[0.0001]}', '2024-01-01T00:00:00.000Z');"
    "INSERT INTO runs VALUES (1, 'u-1', 1, 'first', 'done', NULL, '{\"lr\":0.0001}', '%s', 1, 'c0ffee', 0, 'host', 'cpu', 'none', '0.0.9',"
    " '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:01.000Z', '2024-01-01T00:10:00.000Z', '2024-01-01T00:10:00.000Z');"
    "INSERT INTO runs VALUES (2, 'u-2', 1, 'second', 'failed', 'out of memory', '{\"lr\":0.0037}', 'h2', 1, NULL, NULL, 'host', 'cpu', 'none', '0.0.9',"
    " '2024-01-02T00:00:00.000Z', '2024-01-02T00:00:01.000Z', '2024-01-02T00:01:00.000Z', NULL);"
    "INSERT INTO params VALUES (1, 'lr', '1e-4'), (2, 'lr', '0.0037'), (1, 'model', 'bloom-560m'), (1, 'neg', '-2.5E+1'),"
    " (1, 'hexish', '0x10'), (1, 'spaced', ' 1'), (1, 'inf', 'inf');"
    "INSERT INTO metrics VALUES (1, 0, 'loss', 2.0, 100.0), (1, 1, 'loss', NULL, 101.0), (1, 2, 'loss', 9e999, 102.0),"
    " (1, 3, 'loss', 0.5, 103.0), (2, 0, 'loss', 1.0, 200.0);"
    "INSERT INTO sts VALUES (1, 'stsb', 'en', 'test', 1379, 0.8, 0.79, 'mean', '2024-01-01T00:10:00.000Z'),"
    " (2, 'sts17', 'en-de', 'test', 250, 0.5, NULL, NULL, '2024-01-02T00:01:00.000Z');"
    "INSERT INTO artifacts VALUES (1, 1, 'adapter', '/x/adapter', 'ff', 10, '2024-01-01T00:10:00.000Z');"
    "INSERT INTO tags VALUES (1, 'note', 'keep me');", h1);
  CHECK(raw_exec(p, rows) == SQLITE_OK);
  lacos_db *db = NULL;
  CHECK_OK(lacos_db_open(&db, p, 0));
  if (!db) return;
  CHECK(lacos_db_schema_version(db) == LACOS_DB_SCHEMA_VERSION);
  CHECK(raw_num(p, "SELECT count(*) FROM schema_version") == LACOS_DB_SCHEMA_VERSION);
  CHECK(raw_num(p, "SELECT count(*) FROM runs") == 2);
  CHECK(raw_num(p, "SELECT count(*) FROM params") == 7);
  CHECK(raw_num(p, "SELECT count(*) FROM metrics") == 5);
  CHECK(raw_num(p, "SELECT count(*) FROM sts_results") == 2);
  CHECK(raw_num(p, "SELECT count(*) FROM artifacts WHERE step = -1") == 1);
  CHECK(raw_num(p, "SELECT count(*) FROM tags") == 1);
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema WHERE name IN ('sts', 'runs_v2', 'params_v2', 'metrics_v2')") == 0);
  /* Params became typed: numbers compare as numbers. */
  CHECK(raw_num(p, "SELECT value_num FROM params WHERE run_id = 1 AND key = 'lr'") == 1e-4);
  CHECK(raw_num(p, "SELECT value_num FROM params WHERE run_id = 1 AND key = 'neg'") == -25);
  CHECK(raw_num(p, "SELECT count(*) FROM params WHERE value_text IS NOT NULL") == 4);   /* model, hexish, spaced, inf */
  CHECK(raw_num(p, "SELECT run_id FROM params WHERE key = 'lr' ORDER BY value_num LIMIT 1") == 1);
  /* Metrics gained is_finite; NaN (NULL) and inf are non-finite. */
  CHECK(raw_num(p, "SELECT count(*) FROM metrics WHERE is_finite = 0") == 2);
  CHECK(raw_num(p, "SELECT value FROM metrics WHERE run_id = 1 AND step = 3") == 0.5);
  /* Runs: message -> error, the script version from the experiment. */
  char got[200];
  raw_text(p, "SELECT error FROM runs WHERE id = 2", got, sizeof got);
  CHECK(strcmp(got, "out of memory") == 0);
  raw_text(p, "SELECT script_sha256 FROM runs WHERE id = 1", got, sizeof got);
  CHECK(strcmp(got, "abc123") == 0);
  raw_text(p, "SELECT text FROM scripts WHERE sha256 = 'abc123'", got, sizeof got);
  CHECK(strcmp(got, "print(1)") == 0);
  raw_text(p, "SELECT lacos_version || '|' || language FROM sts_results WHERE run_id = 2", got, sizeof got);
  CHECK(strcmp(got, "0.0.9|en-de") == 0);
  CHECK(raw_num(p, "SELECT sts_spearman FROM run_summary WHERE id = 1") == 0.8);
  CHECK(raw_num(p, "SELECT duration_s FROM run_summary WHERE id = 1") == 599);
  CHECK(raw_num(p, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
  /* The new version's features work on the migrated file. */
  lacos_run *r = start(db, 1, "{\"lr\": 0.0001}", 1, 1, NULL);
  CHECK(r && lacos_run_id(r) == 1 && lacos_run_get_status(r) == LACOS_RUN_DONE);   /* done before: skipped */
  lacos_run_free(r);
  int st = 0;
  r = start(db, 1, "{\"lr\": 0.0002}", 1, 1, &st);
  CHECK(st == 1 && lacos_run_id(r) == 3);
  lacos_timing_record t;
  lacos_timing_record_init(&t);
  t.phase = "encode";
  t.avg_ns = 10;
  CHECK_OK(lacos_run_timing(r, &t));
  CHECK_OK(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL));
  lacos_run_free(r);
  lacos_db_close(db);
}

/* Version 2 -> 3 adds the report views (engine/results_views.c) over the
   rows a version-2 file already holds; nothing else changes. */
static void test_migrate_v2_views(void) {
  const char *p = tmp_path("v2.db");
  rm_db(p);
  CHECK_OK(results_create_at_version(p, 2));
  CHECK(raw_num(p, "SELECT max(version) FROM schema_version") == 2);
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'view'") == 1);   /* run_summary */
  CHECK(raw_exec(p,
    "INSERT INTO experiments (id, name, created_at, updated_at) VALUES (1, 'scale', '2026-01-01T00:00:00.000Z', NULL);"
    "INSERT INTO runs (id, uuid, experiment_id, name, status, config_json, config_sha256, seed, created_at, started_at, ended_at)"
    " VALUES (1, 'u-1', 1, 'p', 'done', '{}', 'h', 7, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z');"
    "INSERT INTO params (run_id, key, value_num, value_text) VALUES (1, 'model', NULL, 'tiny-s'), (1, 'model_params', 5e6, NULL),"
    " (1, 'pairs', NULL, 'all'), (1, 'n_pairs', 200, NULL), (1, 'eval_limit', 50, NULL), (1, 'lr', 0.005, NULL),"
    " (1, 'synthetic', NULL, 'true');"
    "INSERT INTO sts_results (run_id, step, dataset, language, split, n_pairs, spearman, pearson, text_variant, aggregation,"
    " similarity, pooling, quantisation, created_at) VALUES"
    " (1, -1, 'STS12', 'en', 'test', 50, 0.1, 0.1, 'raw', 'all', 'cosine', 'mean', 'int8', 'x'),"
    " (1, -1, 'STS12', 'en', 'test', 50, 0.2, 0.2, 'raw', 'all', 'cosine', 'mean', 'int8', 'x'),"   /* a later score of the same set */
    " (1, -1, 'STSBenchmark', 'en', 'test', 50, 0.4, 0.4, 'raw', 'all', 'cosine', 'mean', 'int8', 'x'),"
    " (1, -1, 'STS17', 'en-de', 'test', 50, 0.6, 0.6, 'raw', 'all', 'cosine', 'mean', 'int8', 'x'),"
    " (1, 10, 'STS12', 'en', 'test', 50, 0.9, 0.9, 'raw', 'all', 'cosine', 'mean', 'int8', 'x'),"   /* not final */
    " (1, -1, 'STSBenchmark', 'en', 'dev', 50, 0.9, 0.9, 'raw', 'all', 'cosine', 'mean', 'int8', 'x');"
    "INSERT INTO metrics (run_id, key, step, value, is_finite, wall_time) VALUES (1, 'loss', 1, 2.5, 1, 0), (1, 'lr', 1, 1e-3, 1, 0),"
    " (1, 'loss', 2, NULL, 0, 0), (1, 'lr', 2, 2e-3, 1, 0);") == SQLITE_OK);
  lacos_db *db = NULL;
  CHECK_OK(lacos_db_open(&db, p, LACOS_DB_READONLY));   /* a writable file is migrated even when opened to read */
  if (!db) return;
  CHECK(lacos_db_schema_version(db) == 3);
  lacos_db_close(db);
  CHECK(raw_num(p, "SELECT count(*) FROM sts_final WHERE run_id = 1") == 4);
  CHECK_NEAR(raw_num(p, "SELECT score FROM sts_final WHERE task = 'STS12'"), 20, 1e-9);
  char got[400];
  raw_text(p, "SELECT group_concat(task || ':' || family, ' ') FROM (SELECT * FROM sts_final WHERE split = 'test' ORDER BY task_order, task)",
           got, sizeof got);
  CHECK(strcmp(got, "STS12:en STSBenchmark:en STS17 en-de:multi") == 0);
  CHECK_NEAR(raw_num(p, "SELECT en_avg FROM run_scores WHERE run_id = 1"), 30, 1e-9);
  CHECK_NEAR(raw_num(p, "SELECT multi_avg FROM run_scores WHERE run_id = 1"), 60, 1e-9);
  CHECK_NEAR(raw_num(p, "SELECT score FROM run_list WHERE id = 1"), 30, 1e-9);
  raw_text(p, "SELECT score_of FROM run_list WHERE id = 1", got, sizeof got);
  CHECK(strcmp(got, "en avg of 2") == 0);
  CHECK(raw_num(p, "SELECT pairs FROM run_points WHERE run_id = 1") == 200);
  CHECK(raw_num(p, "SELECT synthetic + 10 * baseline FROM run_points WHERE run_id = 1") == 1);
  raw_text(p, "SELECT conditions FROM run_points WHERE run_id = 1", got, sizeof got);
  CHECK(strcmp(got, "{\"sets\":\"STS12, STSBenchmark, STS17 en-de\",\"pairs_per_set\":50,\"similarity\":\"cosine\","
                    "\"text_variant\":\"raw\",\"aggregation\":\"all\",\"pooling\":\"mean\",\"quantisation\":\"int8\","
                    "\"data_sha256\":null}") == 0);
  CHECK(raw_num(p, "SELECT json_extract(recipe, '$.lr') FROM run_points WHERE run_id = 1") == 0.005);
  CHECK(raw_num(p, "SELECT count(*) FROM train_curves WHERE run_id = 1") == 2);
  CHECK(raw_num(p, "SELECT loss_nonfinite FROM train_curves WHERE run_id = 1 AND step = 2") == 1);
  CHECK(raw_num(p, "SELECT lr FROM train_curves WHERE run_id = 1 AND step = 2") == 2e-3);
}

static void test_newer_schema_refused(void) {
  const char *p = tmp_path("newer.db");
  rm_db(p);
  lacos_db *db = open_fresh("newer.db");
  lacos_db_close(db);
  char newer[160];
  snprintf(newer, sizeof newer, "INSERT INTO schema_version VALUES (%d, '2030-01-01T00:00:00.000Z'); PRAGMA wal_checkpoint(TRUNCATE);",
           LACOS_DB_SCHEMA_VERSION + 1);
  raw_exec(p, newer);
  char before[65], after[65];
  CHECK_OK(lacos_sha256_file(p, before));
  db = NULL;
  char want[80];
  snprintf(want, sizeof want, "schema version %d, newer than this lacos", LACOS_DB_SCHEMA_VERSION + 1);
  CHECK_FAIL(lacos_db_open(&db, p, 0), LACOS_EDB, want);
  CHECK(strstr(lacos_last_error(), p) != NULL);
  CHECK(db == NULL);
  CHECK_FAIL(lacos_db_open(&db, p, LACOS_DB_READONLY), LACOS_EDB, "upgrade lacos");
  CHECK_OK(lacos_sha256_file(p, after));
  CHECK(strcmp(before, after) == 0);
  CHECK(raw_num(p, "SELECT max(version) FROM schema_version") == LACOS_DB_SCHEMA_VERSION + 1);
}

/* ------------------------------------------------------------------ bad files */

static void test_bad_files(void) {
  lacos_db *db = NULL;
  const char *p = tmp_path("text.db");
  write_file(p, "this is not a database, just a text file that is long enough to have a header\n", 79);
  CHECK_FAIL(lacos_db_open(&db, p, 0), LACOS_EDB, "not an SQLite database");
  CHECK(strstr(lacos_last_error(), p) == lacos_last_error());
  /* A real database whose schema page is overwritten. */
  p = tmp_path("corrupt.db");
  rm_db(p);
  db = open_fresh("corrupt.db");
  lacos_db_close(db);
  db = NULL;
  raw_exec(p, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;");
  FILE *f = fopen(p, "r+b");
  CHECK(f != NULL);
  if (f) {
    char junk[3000];
    memset(junk, 0x5a, sizeof junk);
    fseek(f, 100, SEEK_SET);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
  }
  CHECK_FAIL(lacos_db_open(&db, p, 0), LACOS_EDB, "corrupted");
  CHECK(strstr(lacos_last_error(), p) == lacos_last_error());
  /* Somebody else's SQLite file: left alone. */
  p = tmp_path("foreign.db");
  rm_db(p);
  raw_exec(p, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);");
  CHECK_FAIL(lacos_db_open(&db, p, 0), LACOS_EDB, "not a lacos results database");
  CHECK(raw_num(p, "SELECT count(*) FROM sqlite_schema") == 1);
  /* A directory, a path below a file, a missing file with NOCREATE. */
  char d[512];
  snprintf(d, sizeof d, "%s/results-c", test_tmpdir());
  CHECK_FAIL(lacos_db_open(&db, d, 0), LACOS_EIO, "is a directory");
  char below[600];
  snprintf(below, sizeof below, "%s/results-c/text.db/inner/x.db", test_tmpdir());
  CHECK_FAIL(lacos_db_open(&db, below, 0), LACOS_EIO, "text.db: cannot create the results database below it");
  CHECK_FAIL(lacos_db_open(&db, tmp_path("absent.db"), LACOS_DB_NOCREATE), LACOS_ENOTFOUND, "no results database there");
  struct stat st;
  CHECK(stat(tmp_path("absent.db"), &st) != 0);
  CHECK(db == NULL);
}

static void test_locked(void) {
  lacos_db *db = open_fresh("locked.db");
  if (!db) return;
  const char *p = lacos_db_path(db);
  sqlite3 *holder = NULL;
  CHECK(sqlite3_open(p, &holder) == SQLITE_OK);
  CHECK(sqlite3_exec(holder, "BEGIN IMMEDIATE; INSERT INTO tags SELECT 1, 'x', 'y' WHERE 0;", NULL, NULL, NULL) == SQLITE_OK);
  CHECK_OK(lacos_db_set_timeout(db, 0.3));
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double e = 0;
  CHECK_FAIL(lacos_db_experiment(&e, db, "x", NULL, NULL), LACOS_EDB, "locked by another process (waited 0.3 s)");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  CHECK(waited >= 0.25 && waited < 5);
  CHECK(strstr(lacos_last_error(), p) == lacos_last_error());
  /* Reads still work under a writer (WAL). */
  lacos_db_query *q = NULL;
  int row = 0;
  CHECK_OK(lacos_db_query_prepare(&q, db, "SELECT count(*) FROM runs"));
  CHECK_OK(lacos_db_query_step(&row, q));
  CHECK(row == 1);
  lacos_db_query_free(q);
  sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(holder);
  CHECK_OK(lacos_db_experiment(&e, db, "x", NULL, NULL));
  CHECK(e > 0);
  lacos_db_close(db);
}

static void test_readonly_handle(void) {
  lacos_db *db = open_fresh("ro.db");
  double e = 0;
  CHECK_OK(lacos_db_experiment(&e, db, "x", NULL, NULL));
  lacos_db_close(db);
  db = NULL;
  CHECK_OK(lacos_db_open(&db, tmp_path("ro.db"), LACOS_DB_READONLY));
  if (!db) return;
  CHECK_FAIL(lacos_db_experiment(&e, db, "y", NULL, NULL), LACOS_ESTATE, "opened read-only");
  lacos_run *r = NULL;
  CHECK_FAIL(lacos_run_start(&r, NULL, db, NULL), LACOS_ESTATE, "opened read-only");
  lacos_db_close(db);
  CHECK(raw_num(tmp_path("ro.db"), "SELECT count(*) FROM experiments") == 1);
}

/* ------------------------------------------------------------------ queries */

static void test_query_api(void) {
  lacos_db *db = open_fresh("query.db");
  if (!db) return;
  lacos_run *r = start(db, 0, "{\"a\": 1}", 3, 0, NULL);
  CHECK_OK(lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL));
  lacos_run_free(r);
  lacos_db_query *q = NULL;
  CHECK_OK(lacos_db_query_prepare(&q, db, "SELECT id, seed * 0.5 AS half, status, NULL AS nil, x'00ff' AS blob FROM runs WHERE seed = ? -- trailing comment\n;"));
  if (!q) { lacos_db_close(db); return; }
  CHECK(lacos_db_query_params(q) == 1);
  CHECK(lacos_db_query_columns(q) == 5);
  CHECK(strcmp(lacos_db_query_column_name(q, 1), "half") == 0);
  CHECK_FAIL(lacos_db_query_bind_num(q, 2, 1), LACOS_EINVAL, "out of range");
  CHECK_OK(lacos_db_query_bind_num(q, 1, 3));
  int row = 0;
  CHECK_OK(lacos_db_query_step(&row, q));
  CHECK(row == 1);
  CHECK(lacos_db_query_column_type(q, 0) == LACOS_DB_INTEGER && lacos_db_query_column_num(q, 0) == 1);
  CHECK(lacos_db_query_column_type(q, 1) == LACOS_DB_REAL && lacos_db_query_column_num(q, 1) == 1.5);
  CHECK(lacos_db_query_column_type(q, 2) == LACOS_DB_TEXT && strcmp(lacos_db_query_column_text(q, 2), "done") == 0);
  CHECK(lacos_db_query_column_type(q, 3) == LACOS_DB_NULL && lacos_db_query_column_text(q, 3) == NULL);
  CHECK(lacos_db_query_column_type(q, 4) == LACOS_DB_BLOB && lacos_db_query_column_bytes(q, 4) == 2);
  CHECK_OK(lacos_db_query_step(&row, q));
  CHECK(row == 0);
  CHECK_OK(lacos_db_query_step(&row, q));
  CHECK(row == 0);
  lacos_db_query_free(q);
  q = NULL;
  const char *p = lacos_db_path(db);
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "DELETE FROM runs"), LACOS_EDB, "read-only");
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "UPDATE runs SET status = 'done'"), LACOS_EDB, "read-only");
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "CREATE TABLE t (x)"), LACOS_EDB, "read-only");
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "PRAGMA journal_mode = DELETE"), LACOS_EDB, "read-only");
  char attach[600];
  snprintf(attach, sizeof attach, "ATTACH '%s/results-c/other.db' AS o", test_tmpdir());
  CHECK_FAIL(lacos_db_query_prepare(&q, db, attach), LACOS_EDB, "attach");
  struct stat st;
  CHECK(stat(tmp_path("other.db"), &st) != 0);
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "SELECT 1; DELETE FROM runs"), LACOS_EDB, "one statement at a time");
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "SELEC * FROM runs"), LACOS_EDB, "syntax error");
  CHECK(strstr(lacos_last_error(), p) == lacos_last_error());
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "SELECT * FROM no_such_table"), LACOS_EDB, "no such table: no_such_table");
  CHECK_FAIL(lacos_db_query_prepare(&q, db, "   "), LACOS_EDB, "empty");
  CHECK(q == NULL);
  CHECK(raw_num(p, "SELECT count(*) FROM runs") == 1);
  lacos_db_close(db);
}

/* ------------------------------------------------------------------ several processes */

/* N processes open one fresh file at the same moment and each logs runs:
   the migration runs once, no write is lost, none sees "locked". */
static void test_processes_race_fresh_file(void) {
  const char *p = tmp_path("race.db");
  rm_db(p);
  enum { N = 5, RUNS = 3, ROWS = 200 };
  int go[2];
  CHECK(pipe(go) == 0);
  pid_t kids[N];
  for (int k = 0; k < N; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) < 0) _exit(3);   /* wait for the start signal (EOF) */
      lacos_db *db = NULL;
      if (lacos_db_open(&db, p, 0)) { fprintf(stderr, "child %d: %s\n", k, lacos_last_error()); _exit(1); }
      double e = 0;
      if (lacos_db_experiment(&e, db, "race", NULL, NULL)) { fprintf(stderr, "child %d: %s\n", k, lacos_last_error()); _exit(1); }
      for (int j = 0; j < RUNS; j++) {
        lacos_run_options o;
        lacos_run_options_init(&o);
        o.experiment_id = e;
        o.has_seed = 1;
        o.seed = k * 100 + j;
        o.flush_rows = 7;
        o.heartbeat_seconds = 0.01;
        lacos_run *r = NULL;
        if (lacos_run_start(&r, NULL, db, &o)) { fprintf(stderr, "child %d: %s\n", k, lacos_last_error()); _exit(1); }
        for (int i = 0; i < ROWS; i++)
          if (lacos_run_metric(r, i, "loss", 1.0 / (i + 1))) { fprintf(stderr, "child %d: %s\n", k, lacos_last_error()); _exit(1); }
        if (lacos_run_param_num(r, "k", k) || lacos_run_finish(r, LACOS_RUN_DONE, NULL, NULL)) {
          fprintf(stderr, "child %d: %s\n", k, lacos_last_error());
          _exit(1);
        }
        lacos_run_free(r);
      }
      lacos_db_close(db);
      _exit(0);
    }
  }
  close(go[0]);
  close(go[1]);   /* everyone starts now */
  int ok = 1;
  for (int k = 0; k < N; k++) {
    int status = 0;
    waitpid(kids[k], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = 0;
  }
  CHECK(ok);
  CHECK(raw_num(p, "SELECT count(*) FROM schema_version") == LACOS_DB_SCHEMA_VERSION);
  CHECK(raw_num(p, "SELECT count(*) FROM experiments") == 1);
  CHECK(raw_num(p, "SELECT count(*) FROM runs WHERE status = 'done'") == N * RUNS);
  CHECK(raw_num(p, "SELECT count(*) FROM metrics") == N * RUNS * ROWS);
  CHECK(raw_num(p, "SELECT count(*) FROM params WHERE key = 'k'") == N * RUNS);
}

int main(void) {
  char d[512];
  snprintf(d, sizeof d, "%s/results-c", test_tmpdir());
  mkdir(d, 0777);
  unsetenv("LACOS_DB_TIMEOUT");
  RUN(test_fresh_schema);
  RUN(test_default_path_and_env);
  RUN(test_canonical_json);
  RUN(test_logging_rows);
  RUN(test_params_sort_numerically);
  RUN(test_get_or_create);
  RUN(test_abandoned_run);
  RUN(test_heartbeat_thread);
  RUN(test_migrate_v1);
  RUN(test_migrate_v2_views);
  RUN(test_newer_schema_refused);
  RUN(test_bad_files);
  RUN(test_locked);
  RUN(test_readonly_handle);
  RUN(test_query_api);
  RUN(test_processes_race_fresh_file);
  TEST_EXIT();
}
