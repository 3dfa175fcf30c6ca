/* results_provenance.c: what a run was made from: the experiment's script
   (kept by hash), the host and CPU, the git commit and whether the tree was
   dirty, and the run's uuid. */
#include "results_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ experiments */

static int read_script(const char *script_path, char sha[65], char **text, size_t *len) {
  TRY(file_read_all(script_path, SCRIPT_MAX_BYTES, text, len));
  int s = lacos_sha256_buffer(*text, (double)*len, sha);
  if (s) { mem_free(*text); *text = NULL; }
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
    char resolved[PATH_MAX];
    if (realpath(script_path, resolved) && (s = meta_strdup(&abs_script, resolved, "script path"))) {
      mem_free(text);
      return s;
    }
  }
  if (axes_json && (s = lacos_db_canonical_json(&axes, NULL, axes_json))) {
    mem_free(text); mem_free(abs_script);
    return fail_context("experiment '%s': axes", name);
  }
  const char *spath = abs_script ? abs_script : script_path;
  char when[32];
  db_iso_time(db_now_unix(), when);
  sqlite3_stmt *st = NULL;
  if ((s = db_tx_begin(db, "recording the experiment"))) goto out;
  if ((s = db_prepare(db, &st, "SELECT id, script_sha256 FROM experiments WHERE name = ?"))) goto out;
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
      if ((s = db_prepare(db, &st,
                       "UPDATE experiments SET script_path = coalesce(?2, script_path), script_sha256 = coalesce(?3, script_sha256),"
                       " script_text = coalesce(?4, script_text), axes_json = coalesce(?5, axes_json), updated_at = ?6 WHERE id = ?1")))
        goto out;
      sqlite3_bind_int64(st, 1, (sqlite3_int64)*id);
      db_bind_text(st, 2, text ? spath : NULL);
      db_bind_text(st, 3, text ? sha : NULL);
      if (text) sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 4);
      db_bind_text(st, 5, axes);
      sqlite3_bind_text(st, 6, when, -1, SQLITE_TRANSIENT);
      if ((s = db_step_done(db, st, "updating the experiment"))) goto out;
    }
  } else if (rc == SQLITE_DONE) {
    sqlite3_finalize(st);
    st = NULL;
    if ((s = db_prepare(db, &st,
                     "INSERT INTO experiments (name, script_path, script_sha256, script_text, axes_json, created_at, updated_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)")))
      goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    db_bind_text(st, 2, text ? spath : NULL);
    db_bind_text(st, 3, text ? sha : NULL);
    if (text) sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT); else sqlite3_bind_null(st, 4);
    db_bind_text(st, 5, axes);
    sqlite3_bind_text(st, 6, when, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, when, -1, SQLITE_TRANSIENT);
    if ((s = db_step_done(db, st, "creating the experiment"))) goto out;
    *id = (double)sqlite3_last_insert_rowid(db->conn);
  } else {
    s = db_fail(db, rc, "looking up the experiment");
    goto out;
  }
  if (text) {
    sqlite3_finalize(st);
    if ((s = db_prepare(db, &st, "INSERT OR IGNORE INTO scripts (sha256, path, bytes, text, created_at) VALUES (?, ?, ?, ?, ?)"))) goto out;
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    db_bind_text(st, 2, spath);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
    sqlite3_bind_text(st, 4, text, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, when, -1, SQLITE_TRANSIENT);
    if ((s = db_step_done(db, st, "storing the script"))) goto out;
  }
  sqlite3_finalize(st);
  st = NULL;
  s = db_tx_commit(db, "recording the experiment");
out:
  sqlite3_finalize(st);
  if (s) { db_tx_rollback(db); *id = 0; }
  mem_free(text);
  mem_free(axes);
  mem_free(abs_script);
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

int provenance_uuid(char out[40]) {
  unsigned char b[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
  if (fd >= 0) close(fd);
  if (got != (ssize_t)sizeof b) {
    /* No /dev/urandom: time, pid and a counter are unique enough per host. */
    static unsigned counter;
    uint64_t a = rng_u64((uint64_t)getpid(), (uint64_t)(db_now_unix() * 1e6)), c = rng_u64(a, ++counter);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return LACOS_OK;
}

void provenance_gather(lacos_db *db, const lacos_run_options *o, provenance *p) {
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
          char c[PATH_MAX];
          snprintf(c, sizeof c, "%s", sp);
          snprintf(dir, sizeof dir, "%s", dirname(c));
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

