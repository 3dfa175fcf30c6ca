/* results_internal.h: the results database's handles and the helpers its
   files share. The database is split along its seams:
     results_json.c        canonical JSON (configs hashed byte for byte)
     results_db.c          connections, errors, statements, transactions
     results_schema.c      the schema, its migrations, opening a database
     results_provenance.c  experiments' scripts, host, git commit, uuids
     results_run.c         a run's lifecycle: start or claim, params,
                           metrics, STS results, artifacts, finish, dead runs
     results_query.c       read-only queries
   in that order of dependence (each uses only those above it).

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
#ifndef LACOS_RESULTS_INTERNAL_H
#define LACOS_RESULTS_INTERNAL_H
#include "engine.h"
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#define DEFAULT_DB_PATH "results/lacos.db"
#define DEFAULT_TIMEOUT_S 30.0
#define DEAD_AFTER_S 60.0
#define SCRIPT_MAX_BYTES ((size_t)16 << 20)

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

/* ---- results_json.c ---- */

/* A growing text; oom once a growth failed (everything after is dropped). */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;
void sbuf_put(sbuf *b, const char *s, size_t n);
void sbuf_puts(sbuf *b, const char *s);
void number_format(double v, char out[40]);
bool decimal_parse(const char *s, double *v);
int db_json_parse(json_t **out, const char *text, const char *what);
/* *out: the canonical text of root (mem_free it); sha: its SHA-256, or NULL. */
int canonical_json_of(char **out, char *sha, json_t *root);

/* ---- results_db.c ---- */

double db_now_unix(void);
double db_now_mono(void);
void db_iso_time(double t, char out[32]);
void db_sleep_ms(int ms);
int db_fail_rc(const char *path, sqlite3 *conn, int rc, double waited, const char *what);
int db_fail(lacos_db *db, int rc, const char *what);
int db_exec_retry(sqlite3 *conn, const char *sql, double timeout_s);
int db_prepare(lacos_db *db, sqlite3_stmt **st, const char *sql);
void db_bind_text(sqlite3_stmt *st, int i, const char *s);
void db_bind_num(sqlite3_stmt *st, int i, double v);
void db_bind_int(sqlite3_stmt *st, int i, double v);
int db_step_done(lacos_db *db, sqlite3_stmt *st, const char *what);
int db_tx_begin(lacos_db *db, const char *what);
int db_tx_commit(lacos_db *db, const char *what);
void db_tx_rollback(lacos_db *db);
/* LACOS_DB_TIMEOUT in seconds, or the default when unset. */
int db_env_timeout(double *seconds);
int db_open_conn(sqlite3 **out, const char *path, int oflags, double timeout_s);
/* A handle's last reference gone: close and free it. */
void db_destroy(lacos_db *db);
void db_release(lacos_db *db);
int db_usable(const lacos_db *db, const char *fn);

/* ---- results_provenance.c ---- */

typedef struct provenance {
  char host[256], cpu[256], commit[64], script_sha[65];
  int dirty, has_script;
} provenance;
int provenance_uuid(char out[40]);
void provenance_gather(lacos_db *db, const lacos_run_options *o, provenance *p);
#endif
