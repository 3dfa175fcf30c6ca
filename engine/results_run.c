/* results_run.c: a run's lifecycle: started or claimed (an interrupted
   run with the same config is resumed, a queued one taken), its typed
   params, tags, buffered metrics, STS results, timings and artifacts, a
   heartbeat thread, the finish, and marking runs dead whose heartbeat
   stopped. Runs still open at exit are finished as interrupted. */
#include "results_internal.h"
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

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

/* ------------------------------------------------------------------ params */

/* Inserts one typed param inside the caller's transaction. */
static int param_put(lacos_db *db, int64_t run_id, const char *key, const double *num, const char *text) {
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(db, &st, "INSERT INTO params (run_id, key, value_num, value_text) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (run_id, key) DO NOTHING"));
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  if (num) { sqlite3_bind_double(st, 3, *num); sqlite3_bind_null(st, 4); }
  else { sqlite3_bind_null(st, 3); sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT); }
  int s = db_step_done(db, st, "recording a param");
  sqlite3_finalize(st);
  if (s || sqlite3_changes(db->conn) == 1) return s;
  /* Already there: the same value is fine, another one is refused. */
  TRY(db_prepare(db, &st, "SELECT value_num, value_text FROM params WHERE run_id = ? AND key = ?"));
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_ROW) { sqlite3_finalize(st); return db_fail(db, SQLITE_ERROR, "reading a param"); }
  char old[64];
  int same;
  if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
    double o = sqlite3_column_double(st, 0);
    same = num && o == *num;
    number_format(o, old);
  } else {
    const char *o = (const char *)sqlite3_column_text(st, 1);
    same = text && strcmp(o, text) == 0;
    snprintf(old, sizeof old, "'%.50s'", o);
  }
  sqlite3_finalize(st);
  if (same) return LACOS_OK;
  char neu[64];
  if (num) number_format(*num, neu); else snprintf(neu, sizeof neu, "'%.50s'", text);
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
    TRY(canonical_json_of(&t, NULL, v));
    int s = param_put(db, run_id, prefix, NULL, t);
    mem_free(t);
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
  if (db_open_conn(&conn, r->db->path, SQLITE_OPEN_READWRITE, r->db->timeout_s) != LACOS_OK) return NULL;
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
    db_iso_time(db_now_unix(), when);
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
  lacos_run *r;
  TRY(meta_calloc(&r, 1, sizeof *r, "run handle"));
  r->db = db;
  db->refs++;
  r->id = id;
  snprintf(r->uuid, sizeof r->uuid, "%s", uuid);
  r->status = status;
  r->owned = owned;
  r->finished = !owned;
  r->last_flush = db_now_mono();
  *out = r;
  return LACOS_OK;
}

/* Canonical config and hash from opt (NULL config = {}). */
static int run_config(lacos_db *db, const lacos_run_options *opt, json_t **root, char **canon, char sha[65]) {
  const char *cfg = opt && opt->config_json ? opt->config_json : "{}";
  int s = db_json_parse(root, cfg, "config");
  if (s) return fail_context("%s", db->path);
  if ((s = canonical_json_of(canon, sha, *root))) { json_decref(*root); *root = NULL; }
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
  db_iso_time(db_now_unix() - DEAD_AFTER_S, cutoff);
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'stale heartbeat')"
                       " WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ? AND status = 'running'"
                       " AND coalesce(heartbeat_at, started_at, created_at) < ?"));
  if (o->experiment_id > 0) sqlite3_bind_int64(st, 1, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
  if (o->has_seed) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 3);
  sqlite3_bind_text(st, 4, cutoff, -1, SQLITE_TRANSIENT);
  int s = db_step_done(db, st, "marking stale runs dead");
  sqlite3_finalize(st);
  TRY(s);
  /* On this host a run whose process is gone is dead at once: a SIGKILL
     leaves no other trace, and waiting for its heartbeat to go stale would
     make a rerun skip the point. (A recycled pid only delays this to the
     heartbeat rule.) */
  struct utsname u;
  if (uname(&u) == 0) {
    TRY(db_prepare(db, &st, "SELECT id, pid FROM runs WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ?"
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
      TRY(db_prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'process gone') WHERE id = ?"));
      sqlite3_bind_int64(st, 1, (sqlite3_int64)gone[i]);
      s = db_step_done(db, st, "marking a run dead");
      sqlite3_finalize(st);
      TRY(s);
    }
  }
  TRY(db_prepare(db, &st, "SELECT id, uuid, status FROM runs WHERE experiment_id IS ? AND config_sha256 = ? AND seed IS ?"
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

static int insert_run(lacos_db *db, const lacos_run_options *o, const char *canon, const char *sha, const provenance *p,
                      const char *status, const char *uuid, int64_t *id) {
  char when[32];
  db_iso_time(db_now_unix(), when);
  int running = strcmp(status, "running") == 0;
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(db, &st,
              "INSERT INTO runs (uuid, experiment_id, parent_run_id, name, status, config_json, config_sha256, seed,"
              " script_sha256, git_commit, git_dirty, host, pid, cpu, gpu, threads, lacos_version, lacos_build,"
              " created_at, started_at, heartbeat_at)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'none', ?15, ?16, ?17, ?18, ?19, ?19)"));
  sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
  if (o && o->experiment_id > 0) sqlite3_bind_int64(st, 2, (sqlite3_int64)o->experiment_id); else sqlite3_bind_null(st, 2);
  if (o && o->parent_run_id > 0) sqlite3_bind_int64(st, 3, (sqlite3_int64)o->parent_run_id); else sqlite3_bind_null(st, 3);
  db_bind_text(st, 4, o && o->name && *o->name ? o->name : NULL);
  sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, canon, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 7, sha, -1, SQLITE_TRANSIENT);
  if (o && o->has_seed) sqlite3_bind_int64(st, 8, (sqlite3_int64)o->seed); else sqlite3_bind_null(st, 8);
  db_bind_text(st, 9, p->has_script ? p->script_sha : NULL);
  db_bind_text(st, 10, p->commit[0] ? p->commit : NULL);
  if (p->dirty >= 0) sqlite3_bind_int(st, 11, p->dirty); else sqlite3_bind_null(st, 11);
  db_bind_text(st, 12, p->host[0] ? p->host : NULL);
  sqlite3_bind_int64(st, 13, (sqlite3_int64)getpid());
  db_bind_text(st, 14, p->cpu[0] ? p->cpu : NULL);
  sqlite3_bind_int(st, 15, lacos_threads_get());
  sqlite3_bind_text(st, 16, lacos_version(), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 17, lacos_build_info(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 18, when, -1, SQLITE_TRANSIENT);
  if (running) sqlite3_bind_text(st, 19, when, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 19);
  int s = db_step_done(db, st, "creating the run");
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
  provenance_gather(db, opt, &p);   /* before the transaction: git may take a while */
  int reuse = mode == 1 || (opt && opt->reuse);
  int s = db_tx_begin(db, mode ? "queueing a run" : "starting a run");
  *fresh = 0;
  *id = 0;
  if (!s && opt && opt->experiment_id > 0) {
    sqlite3_stmt *st = NULL;
    if (!(s = db_prepare(db, &st, "SELECT 1 FROM experiments WHERE id = ?"))) {
      sqlite3_bind_int64(st, 1, (sqlite3_int64)opt->experiment_id);
      if (sqlite3_step(st) != SQLITE_ROW) s = fail(LACOS_ENOTFOUND, "%s: no experiment with id %.0f", db->path, opt->experiment_id);
      sqlite3_finalize(st);
    }
  }
  if (!s && reuse) s = find_claimable(db, opt ? opt : &(lacos_run_options){ 0 }, sha, id, uuid, status);
  if (!s && *id && *status == LACOS_RUN_QUEUED && mode == 0) {
    /* Take over a queued point. */
    char when[32];
    db_iso_time(db_now_unix(), when);
    sqlite3_stmt *st = NULL;
    if (!(s = db_prepare(db, &st, "UPDATE runs SET status = 'running', started_at = ?1, heartbeat_at = ?1, pid = ?2, host = ?3,"
                               " git_commit = ?4, git_dirty = ?5, name = coalesce(?6, name) WHERE id = ?7"))) {
      sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, (sqlite3_int64)getpid());
      db_bind_text(st, 3, p.host[0] ? p.host : NULL);
      db_bind_text(st, 4, p.commit[0] ? p.commit : NULL);
      if (p.dirty >= 0) sqlite3_bind_int(st, 5, p.dirty); else sqlite3_bind_null(st, 5);
      db_bind_text(st, 6, opt && opt->name && *opt->name ? opt->name : NULL);
      sqlite3_bind_int64(st, 7, *id);
      s = db_step_done(db, st, "starting the queued run");
      sqlite3_finalize(st);
    }
    *status = LACOS_RUN_RUNNING;
    *fresh = 1;
  } else if (!s && !*id) {
    provenance_uuid(uuid);
    s = insert_run(db, opt, canon, sha, &p, mode ? "queued" : "running", uuid, id);
    if (!s) {
      char prefix[1024] = "";
      s = flatten_params(db, *id, root, prefix, 0);
    }
    *status = mode ? LACOS_RUN_QUEUED : LACOS_RUN_RUNNING;
    *fresh = 1;
  }
  if (!s) s = db_tx_commit(db, mode ? "queueing a run" : "starting a run");
  else db_tx_rollback(db);
  json_decref(root);
  mem_free(canon);
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
  TRY(db_tx_begin(r->db, what));
  int s = body(r, ctx);
  if (!s) s = db_tx_commit(r->db, what);
  else db_tx_rollback(r->db);
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
  TRY(db_prepare(r->db, &st, "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)"
                          " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, t->key, -1, SQLITE_TRANSIENT);
  db_bind_text(st, 3, t->value);
  int s = db_step_done(r->db, st, "recording a tag");
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
  TRY(db_tx_begin(db, "writing metrics"));
  int s = LACOS_OK;
  if (!r->metric_stmt)
    s = db_prepare(db, &r->metric_stmt, "INSERT INTO metrics (run_id, key, step, value, is_finite, wall_time) VALUES (?, ?, ?, ?, ?, ?)");
  for (int i = 0; !s && i < r->nrows; i++) {
    metric_row *m = &r->rows[i];
    sqlite3_stmt *st = r->metric_stmt;
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_text(st, 2, m->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)m->step);
    if (isnan(m->value)) sqlite3_bind_null(st, 4); else sqlite3_bind_double(st, 4, m->value);
    sqlite3_bind_int(st, 5, isfinite(m->value) ? 1 : 0);
    sqlite3_bind_double(st, 6, m->wall);
    s = db_step_done(db, st, "writing metrics");
    sqlite3_reset(st);
  }
  if (!s) {
    char when[32];
    db_iso_time(db_now_unix(), when);
    sqlite3_stmt *st = NULL;
    if (!(s = db_prepare(db, &st, "UPDATE runs SET heartbeat_at = ? WHERE id = ?"))) {
      sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, r->id);
      s = db_step_done(db, st, "updating the heartbeat");
      sqlite3_finalize(st);
    }
  }
  if (!s) s = db_tx_commit(db, "writing metrics");
  else db_tx_rollback(db);
  if (s) return s;   /* rows stay buffered: the next flush tries again */
  for (int i = 0; i < r->nrows; i++) mem_free(r->rows[i].key);
  r->nrows = 0;
  r->last_flush = db_now_mono();
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
    TRY(meta_realloc(&run->rows, (size_t)cap * sizeof *run->rows, "buffered metrics"));
    run->caprows = cap;
  }
  char *k;
  TRY(meta_strdup(&k, key, "buffered metrics"));
  run->rows[run->nrows++] = (metric_row){ step, value, db_now_unix(), k };
  if (run->nrows >= run->flush_rows || db_now_mono() - run->last_flush >= run->flush_seconds) return flush_rows(run);
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
  TRY(db_tx_begin(run->db, "updating the heartbeat"));
  char when[32];
  db_iso_time(db_now_unix(), when);
  sqlite3_stmt *st = NULL;
  int s = db_prepare(run->db, &st, "UPDATE runs SET heartbeat_at = ?, status = 'running' WHERE id = ?");
  if (!s) {
    sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run->id);
    s = db_step_done(run->db, st, "updating the heartbeat");
    sqlite3_finalize(st);
  }
  if (!s) s = db_tx_commit(run->db, "updating the heartbeat");
  else db_tx_rollback(run->db);
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
  db_iso_time(db_now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(r->db, &st,
              "INSERT INTO sts_results (run_id, step, dataset, language, split, n_pairs, spearman, pearson, similarity,"
              " pooling, text_variant, aggregation, model, adapter, quantisation, dtype, batch_size, dataset_sha256,"
              " lacos_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)x->step);
  sqlite3_bind_text(st, 3, x->dataset, -1, SQLITE_TRANSIENT);
  db_bind_text(st, 4, x->language);
  sqlite3_bind_text(st, 5, x->split, -1, SQLITE_TRANSIENT);
  db_bind_int(st, 6, x->n_pairs);
  db_bind_num(st, 7, x->spearman);
  db_bind_num(st, 8, x->pearson);
  db_bind_text(st, 9, x->similarity);
  db_bind_text(st, 10, x->pooling);
  db_bind_text(st, 11, x->text_variant);
  db_bind_text(st, 12, x->aggregation);
  db_bind_text(st, 13, x->model);
  db_bind_text(st, 14, x->adapter);
  db_bind_text(st, 15, x->quantisation);
  db_bind_text(st, 16, x->dtype);
  db_bind_int(st, 17, x->batch_size);
  db_bind_text(st, 18, x->dataset_sha256);
  sqlite3_bind_text(st, 19, lacos_version(), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 20, when, -1, SQLITE_TRANSIENT);
  int s = db_step_done(r->db, st, "recording an STS result");
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
  db_iso_time(db_now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(r->db, &st,
              "INSERT INTO timings (run_id, phase, step, device, threads, repetitions, n_items, n_tokens, avg_ns,"
              " stddev_ns, peak_bytes, optimizer_state_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, t->phase, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)t->step);
  db_bind_text(st, 4, t->device);
  sqlite3_bind_int(st, 5, isnan(t->threads) ? lacos_threads_get() : (int)t->threads);
  db_bind_int(st, 6, t->repetitions);
  db_bind_int(st, 7, t->n_items);
  db_bind_int(st, 8, t->n_tokens);
  db_bind_num(st, 9, t->avg_ns);
  db_bind_num(st, 10, t->stddev_ns);
  db_bind_int(st, 11, t->peak_bytes);
  db_bind_int(st, 12, t->optimizer_state_bytes);
  sqlite3_bind_text(st, 13, when, -1, SQLITE_TRANSIENT);
  int s = db_step_done(r->db, st, "recording a timing");
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
    if (meta_realloc(&l->paths, cap * sizeof *l->paths, "directory listing")) { l->oom = 1; return 1; }
    l->cap = cap;
  }
  char *c;
  if (meta_strdup(&c, fpath, "directory listing")) { l->oom = 1; return 1; }
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
      sbuf_put(&b, rel, strlen(rel) + 1);   /* with its NUL */
      sbuf_puts(&b, fsha);
      sbuf_puts(&b, "\n");
    }
    if (!s && b.oom) s = fail(LACOS_ENOMEM, "%s: out of memory hashing the directory", root);
    if (!s) s = lacos_sha256_buffer(b.p ? b.p : "", (double)b.n, sha);
  }
  for (size_t i = 0; i < l.n; i++) mem_free(l.paths[i]);
  mem_free(l.paths);
  mem_free(b.p);
  *bytes = l.bytes;
  return s;
}

typedef struct artifact_ctx { const char *kind, *path, *sha; double bytes, step; } artifact_ctx;
static int artifact_body(lacos_run *r, void *c) {
  artifact_ctx *a = c;
  char when[32];
  db_iso_time(db_now_unix(), when);
  sqlite3_stmt *st = NULL;
  TRY(db_prepare(r->db, &st, "INSERT INTO artifacts (run_id, kind, path, sha256, bytes, step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int64(st, 1, r->id);
  sqlite3_bind_text(st, 2, a->kind, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, a->path, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, a->sha, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)a->bytes);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)a->step);
  sqlite3_bind_text(st, 7, when, -1, SQLITE_TRANSIENT);
  int s = db_step_done(r->db, st, "recording an artifact");
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
  char abs[PATH_MAX];
  if (!realpath(path, abs)) return fail_errno("%s: cannot resolve the artifact's path", path);
  int s;
  if (S_ISDIR(st.st_mode)) s = hash_dir(abs, sha, &nbytes);
  else { s = lacos_sha256_file(abs, sha); nbytes = (double)st.st_size; }
  if (s) return s;
  artifact_ctx a = { kind, abs, sha, nbytes, isnan(step) ? -1 : step };
  /* The row must not outlive a power cut that the file survived. */
  sqlite3_exec(run->db->conn, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
  s = single_write(run, "recording an artifact", artifact_body, &a);
  sqlite3_exec(run->db->conn, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
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
  db_iso_time(db_now_unix(), when);
  int s2 = db_tx_begin(r->db, "finishing the run");
  if (!s2) {
    sqlite3_stmt *st = NULL;
    if (!(s2 = db_prepare(r->db, &st, "UPDATE runs SET status = ?, exit_reason = ?, error = ?, ended_at = ?, heartbeat_at = ? WHERE id = ?"))) {
      sqlite3_bind_text(st, 1, lacos_run_status_name(status), -1, SQLITE_STATIC);
      db_bind_text(st, 2, reason && *reason ? reason : NULL);
      db_bind_text(st, 3, message && *message ? message : NULL);
      sqlite3_bind_text(st, 4, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 5, when, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 6, r->id);
      s2 = db_step_done(r->db, st, "finishing the run");
      sqlite3_finalize(st);
    }
    if (!s2) s2 = db_tx_commit(r->db, "finishing the run");
    else db_tx_rollback(r->db);
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
  for (int i = 0; i < run->nrows; i++) mem_free(run->rows[i].key);
  mem_free(run->rows);
  sqlite3_finalize(run->metric_stmt);
  lacos_db *db = run->db;
  mem_free(run);
  db_release(db);
}

int lacos_db_mark_dead(int *count, lacos_db *db, double stale_seconds) {
  if (count) *count = 0;
  TRY(db_usable(db, "lacos_db_mark_dead"));
  if (!(stale_seconds >= 0)) return fail(LACOS_EINVAL, "%s: stale_seconds must be non-negative", db->path);
  char cutoff[32];
  db_iso_time(db_now_unix() - stale_seconds, cutoff);
  TRY(db_tx_begin(db, "marking dead runs"));
  sqlite3_stmt *st = NULL;
  int s = db_prepare(db, &st, "UPDATE runs SET status = 'dead', exit_reason = coalesce(exit_reason, 'stale heartbeat')"
                           " WHERE status = 'running' AND coalesce(heartbeat_at, started_at, created_at) < ?");
  if (!s) {
    sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_TRANSIENT);
    s = db_step_done(db, st, "marking dead runs");
    sqlite3_finalize(st);
  }
  int n = s ? 0 : sqlite3_changes(db->conn);
  if (!s) s = db_tx_commit(db, "marking dead runs");
  else db_tx_rollback(db);
  if (!s && count) *count = n;
  return s;
}

