/* comm_mpi.c: the MPI backend of comm.c, built alone into
   liblacos_mpi.so (linked with libmpi) and opened with dlopen when a
   launcher started the job; a plain `lacos` never maps libmpi.

   Collectives are MPI's non-blocking ones (MPI_Iallreduce, MPI_Iallgatherv,
   MPI_Ibcast, MPI_Ibarrier), completed by polling MPI_Test so that a wait
   can end when a peer is gone: with the shared-memory transport a dead
   peer's messages simply never come, and an mpirun may not kill the job
   (--enable-recovery, another launcher). Errors are returned, not fatal
   (MPI_ERRORS_RETURN), and reported naming the rank, its host and pid.

   Liveness. A heartbeat thread (when MPI grants MPI_THREAD_MULTIPLE) sends
   a small message every `period` seconds on a communicator of its own to
   the rank's two ring neighbours and reads what arrives. A neighbour silent
   for `timeout` seconds, or a peer on this host whose process is gone
   (kill(pid, 0) says ESRCH: seen within a period), is dead; whoever sees it
   tells every rank, so that each waiting rank stops within about the
   timeout, wherever the dead one was. Heartbeats come from a thread, so a
   rank that is busy (evaluating, writing a checkpoint) is never taken for
   dead, however long it takes. A rank that fails on its own (an error, out
   of memory) sends a notice with its message before it exits
   (comm->abort). Without MPI_THREAD_MULTIPLE only deaths on this host and
   notices are seen (no silence timeout: a busy peer would look dead).

   MPI's counts are ints: a buffer larger than INT_MAX elements goes in
   chunks. */
#include <mpi.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lacos.h"
#include "comm.h"

enum { TAG_BEAT = 1, TAG_DEAD = 2, TAG_FAILED = 3, NOTE_MAX = 1024, HOST_MAX = 64 };

typedef struct peer {
  char host[HOST_MAX];
  long pid;
  int same_host;               /* its pid can be checked here */
  double last_seen;
  MPI_Request beat;            /* the heartbeat in flight to it */
} peer;

typedef struct mpi_ctx {
  const comm_host *h;
  MPI_Comm world, beat;
  int rank, size, we_initialised, threaded;
  double timeout, period;
  peer *peers;
  pthread_t thread;
  int thread_on;
  volatile int stop;
  pthread_mutex_t lock;        /* guards the failure record and last_seen */
  int failed_rank;             /* first failure seen (-1: none) */
  char failure[NOTE_MAX + 256];
  int broken;
  int beat_value;
} mpi_ctx;

static int failed(mpi_ctx *c, char *msg, size_t cap);

/* An error from MPI itself (a connection reset when a peer died): the
   heartbeats usually know who it was a moment later, which says more. */
static int mpi_error(mpi_ctx *c, int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  c->broken = 1;
  char who[sizeof c->failure];
  double t0 = c->h->clock();
  while (failed(c, who, sizeof who) < 0 && c->thread_on && c->h->clock() - t0 < 2 * c->period + 0.2) {
    struct timespec ts = { 0, 10000000 };
    nanosleep(&ts, NULL);
  }
  if (failed(c, who, sizeof who) >= 0)
    return c->h->fail(LACOS_ECOMM, "%s (rank %d on %s: %s failed: %s)", who, c->rank, c->peers[c->rank].host, what, msg);
  return c->h->fail(LACOS_ECOMM, "rank %d (%s): %s failed: %s", c->rank, c->peers[c->rank].host, what, msg);
}

/* ---- the failure record ---- */

static void record(mpi_ctx *c, int rank, const char *fmt, ...) {
  pthread_mutex_lock(&c->lock);
  if (c->failed_rank < 0) {
    c->failed_rank = rank;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof c->failure, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&c->lock);
}

static int failed(mpi_ctx *c, char *msg, size_t cap) {
  pthread_mutex_lock(&c->lock);
  int r = c->failed_rank;
  if (r >= 0 && msg) snprintf(msg, cap, "%s", c->failure);
  pthread_mutex_unlock(&c->lock);
  return r;
}

/* Tells every other rank but `skip` (best effort, non-blocking) what failed. */
static void tell_all(mpi_ctx *c, int tag, const char *text, int skip) {
  int n = (int)strlen(text) + 1;
  if (n > NOTE_MAX) n = NOTE_MAX;
  char buf[NOTE_MAX];
  memcpy(buf, text, (size_t)n);
  buf[n - 1] = 0;
  MPI_Request *reqs = calloc((size_t)c->size, sizeof *reqs);
  if (!reqs) return;
  int k = 0;
  for (int r = 0; r < c->size; r++) {
    if (r == c->rank || r == skip) continue;
    if (MPI_Isend(buf, n, MPI_CHAR, r, tag, c->beat, &reqs[k]) == MPI_SUCCESS) k++;
  }
  /* let the notices leave before the process goes: up to a second */
  double t0 = c->h->clock();
  int done = 0;
  while (!done && c->h->clock() - t0 < 1.0) {
    if (MPI_Testall(k, reqs, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) break;
    if (!done) { struct timespec ts = { 0, 1000000 }; nanosleep(&ts, NULL); }
  }
  for (int i = 0; !done && i < k; i++)
    if (reqs[i] != MPI_REQUEST_NULL) MPI_Request_free(&reqs[i]);
  free(reqs);
}

/* ---- liveness ---- */

static int is_neighbour(mpi_ctx *c, int r) {
  return r != c->rank && (r == (c->rank + 1) % c->size || r == (c->rank + c->size - 1) % c->size);
}

/* Reads every heartbeat and notice that has arrived. */
static void drain(mpi_ctx *c) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->beat, &flag, &st) != MPI_SUCCESS || !flag) return;
    int n = 0;
    MPI_Get_count(&st, MPI_CHAR, &n);
    char buf[NOTE_MAX + 1];
    if (n < 0 || n > NOTE_MAX) n = NOTE_MAX;
    if (MPI_Recv(buf, n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, c->beat, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
    buf[n] = 0;
    int src = st.MPI_SOURCE;
    pthread_mutex_lock(&c->lock);
    c->peers[src].last_seen = c->h->clock();
    pthread_mutex_unlock(&c->lock);
    if (st.MPI_TAG == TAG_FAILED)
      record(c, src, "rank %d (host %s, pid %ld) failed: %s", src, c->peers[src].host, c->peers[src].pid, buf);
    else if (st.MPI_TAG == TAG_DEAD) {
      int dead = -1;
      if (sscanf(buf, "%d", &dead) == 1 && dead >= 0 && dead < c->size) {
        const char *why = strchr(buf, ' ');
        record(c, dead, "%s", why ? why + 1 : buf);
      }
    }
  }
}

/* One round: heartbeats to the neighbours, what came in, who is gone. */
static void tick(mpi_ctx *c, int send_beats) {
  double now = c->h->clock();
  if (send_beats) {
    for (int r = 0; r < c->size; r++) {
      if (!is_neighbour(c, r)) continue;
      peer *p = &c->peers[r];
      if (p->beat != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Test(&p->beat, &done, MPI_STATUS_IGNORE);
        if (!done) continue;   /* the last one has not left yet: do not pile them up */
      }
      MPI_Isend(&c->beat_value, 0, MPI_CHAR, r, TAG_BEAT, c->beat, &p->beat);
    }
  }
  drain(c);
  if (failed(c, NULL, 0) >= 0) return;
  for (int r = 0; r < c->size; r++) {
    if (r == c->rank) continue;
    peer *p = &c->peers[r];
    int gone = 0;
    char why[NOTE_MAX - 16];
    if (p->same_host && kill((pid_t)p->pid, 0) != 0 && errno == ESRCH) {
      gone = 1;
      snprintf(why, sizeof why, "rank %d (host %s, pid %ld) died: its process is gone", r, p->host, p->pid);
    } else if (c->threaded && is_neighbour(c, r)) {
      pthread_mutex_lock(&c->lock);
      double quiet = now - p->last_seen, timeout = c->timeout;
      pthread_mutex_unlock(&c->lock);
      if (quiet > timeout) {
        gone = 1;
        snprintf(why, sizeof why, "rank %d (host %s, pid %ld) stopped answering: nothing heard from it for %.0f s "
                 "(timeout %.0f s)", r, p->host, p->pid, quiet, timeout);
      }
    }
    if (gone) {
      record(c, r, "%s", why);
      char note[NOTE_MAX];
      snprintf(note, sizeof note, "%d %s", r, why);
      tell_all(c, TAG_DEAD, note, r);
      return;
    }
  }
}

static void *beat_thread(void *arg) {
  mpi_ctx *c = arg;
  while (!c->stop) {
    tick(c, 1);
    struct timespec ts = { (time_t)c->period, (long)((c->period - (double)(time_t)c->period) * 1e9) };
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Waits for a non-blocking collective while watching the peers. */
static int wait_for(mpi_ctx *c, MPI_Request *req, const char *what) {
  double next_tick = c->h->clock() + c->period;
  int spins = 0;
  for (;;) {
    int done = 0;
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, what);
    if (done) return LACOS_OK;
    if (!c->thread_on && c->h->clock() >= next_tick) {
      tick(c, 0);
      next_tick = c->h->clock() + c->period;
    }
    char msg[sizeof c->failure];
    if (failed(c, msg, sizeof msg) >= 0) {
      c->broken = 1;
      return c->h->fail(LACOS_ECOMM, "%s (while rank %d on %s waited in %s)", msg, c->rank, c->peers[c->rank].host, what);
    }
    /* yield the core to the ranks still computing: spin briefly, then sleep */
    if (++spins < 200) sched_yield();
    else { struct timespec ts = { 0, spins < 2000 ? 50000 : 500000 }; nanosleep(&ts, NULL); }
  }
}

static int usable(mpi_ctx *c) {
  if (!c->broken) return LACOS_OK;
  char msg[sizeof c->failure] = "an earlier collective failed";
  failed(c, msg, sizeof msg);
  return c->h->fail(LACOS_ECOMM, "the job's communication is broken: %s", msg);
}

static MPI_Datatype mpi_type(int type) {
  return type == COMM_F64 ? MPI_DOUBLE : type == COMM_I64 ? MPI_INT64_T : MPI_FLOAT;
}

/* ---- the collectives ---- */

static int m_allreduce(void *ctx, void *buf, int64_t count, int type) {
  mpi_ctx *c = ctx;
  if (usable(c)) return LACOS_ECOMM;
  size_t esize = type == COMM_F32 ? 4 : 8;
  for (int64_t off = 0; off < count;) {
    int n = count - off > INT_MAX ? INT_MAX : (int)(count - off);
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * esize, n, mpi_type(type), MPI_SUM, c->world, &req);
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "all-reduce");
    int s = wait_for(c, &req, "an all-reduce");
    if (s) return s;
    off += n;
  }
  return LACOS_OK;
}

static int m_allgatherv(void *ctx, const void *send, void *recv, const int64_t *bytes) {
  mpi_ctx *c = ctx;
  if (usable(c)) return LACOS_ECOMM;
  int *counts = calloc((size_t)c->size * 2, sizeof(int));
  if (!counts) return c->h->fail(LACOS_ENOMEM, "out of memory");
  int *displs = counts + c->size;
  int64_t off = 0;
  for (int r = 0; r < c->size; r++) {
    if (bytes[r] > INT_MAX || off > INT_MAX) { free(counts); return c->h->fail(LACOS_EINVAL, "all-gather: more than 2 GB"); }
    counts[r] = (int)bytes[r];
    displs[r] = (int)off;
    off += bytes[r];
  }
  MPI_Request req;
  const void *sb = send == recv ? MPI_IN_PLACE : send;
  int rc = MPI_Iallgatherv(sb, counts[c->rank], MPI_BYTE, recv, counts, displs, MPI_BYTE, c->world, &req);
  int s = rc != MPI_SUCCESS ? mpi_error(c, rc, "all-gather") : wait_for(c, &req, "an all-gather");
  free(counts);
  return s;
}

static int m_broadcast(void *ctx, void *buf, int64_t bytes, int root) {
  mpi_ctx *c = ctx;
  if (usable(c)) return LACOS_ECOMM;
  for (int64_t off = 0; off < bytes || (bytes == 0 && off == 0);) {
    int n = bytes - off > INT_MAX ? INT_MAX : (int)(bytes - off);
    MPI_Request req;
    int rc = MPI_Ibcast((char *)buf + off, n, MPI_BYTE, root, c->world, &req);
    if (rc != MPI_SUCCESS) return mpi_error(c, rc, "broadcast");
    int s = wait_for(c, &req, "a broadcast");
    if (s) return s;
    off += n;
    if (bytes == 0) break;
  }
  return LACOS_OK;
}

static int m_barrier(void *ctx) {
  mpi_ctx *c = ctx;
  if (usable(c)) return LACOS_ECOMM;
  MPI_Request req;
  int rc = MPI_Ibarrier(c->world, &req);
  if (rc != MPI_SUCCESS) return mpi_error(c, rc, "barrier");
  return wait_for(c, &req, "a barrier");
}

static int m_check(void *ctx) {
  mpi_ctx *c = ctx;
  if (!c->thread_on) tick(c, 0);
  char msg[sizeof c->failure];
  if (failed(c, msg, sizeof msg) >= 0) {
    c->broken = 1;
    return c->h->fail(LACOS_ECOMM, "%s", msg);
  }
  return usable(c);
}

static void m_timeout(void *ctx, double seconds) {
  mpi_ctx *c = ctx;
  pthread_mutex_lock(&c->lock);
  c->timeout = seconds;
  c->period = seconds / 8 < 0.25 ? (seconds / 8 < 0.01 ? 0.01 : seconds / 8) : 0.25;
  pthread_mutex_unlock(&c->lock);
}

static const char *m_host(void *ctx, int rank) { return ((mpi_ctx *)ctx)->peers[rank].host; }
static long m_pid(void *ctx, int rank) { return ((mpi_ctx *)ctx)->peers[rank].pid; }

static void stop_thread(mpi_ctx *c) {
  if (!c->thread_on) return;
  c->stop = 1;
  pthread_join(c->thread, NULL);
  c->thread_on = 0;
}

static void m_abort(void *ctx, const char *why) {
  mpi_ctx *c = ctx;
  if (c->broken && failed(c, NULL, 0) >= 0 && failed(c, NULL, 0) != c->rank) {
    /* it was another rank's failure that stopped us: everyone knows already */
    return;
  }
  if (c->broken == 2) return;
  c->broken = 2;
  stop_thread(c);
  tell_all(c, TAG_FAILED, why, -1);
}

static void m_close(void *ctx) {
  mpi_ctx *c = ctx;
  MPI_Request req;
  /* The first barrier with the heartbeats still going (a rank that is done
     early must not look dead to one still saving its results); then every
     rank stops them before the second, so none arrives on a freed
     communicator. */
  if (!c->broken && (MPI_Ibarrier(c->world, &req) != MPI_SUCCESS || wait_for(c, &req, "the closing barrier") != LACOS_OK))
    c->broken = 1;
  stop_thread(c);
  c->threaded = 0;
  if (!c->broken) {
    for (int r = 0; r < c->size; r++)
      if (c->peers[r].beat != MPI_REQUEST_NULL) MPI_Wait(&c->peers[r].beat, MPI_STATUS_IGNORE);
    if (MPI_Ibarrier(c->world, &req) == MPI_SUCCESS && wait_for(c, &req, "the closing barrier") == LACOS_OK) {
      drain(c);
      MPI_Comm_free(&c->beat);
      MPI_Comm_free(&c->world);
      if (c->we_initialised) MPI_Finalize();
    }
  }
  /* a broken job does not finalize: MPI_Finalize would wait for the dead */
  pthread_mutex_destroy(&c->lock);
  free(c->peers);
  free(c);
}

__attribute__((visibility("default"))) int lacos_comm_mpi_open(comm_backend *out, const comm_host *h, double timeout,
                                                               char *err, size_t cap) {
  int inited = 0, provided = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
      snprintf(err, cap, "MPI_Init_thread failed");
      return LACOS_ECOMM;
    }
  } else MPI_Query_thread(&provided);
  mpi_ctx *c = calloc(1, sizeof *c);
  if (!c) { snprintf(err, cap, "out of memory"); return LACOS_ENOMEM; }
  c->h = h;
  c->we_initialised = !inited;
  c->failed_rank = -1;
  c->timeout = timeout;
  /* a neighbour is declared dead after `timeout`; beat well within it */
  c->period = timeout / 8 < 0.25 ? timeout / 8 : 0.25;
  if (c->period < 0.01) c->period = 0.01;
  pthread_mutex_init(&c->lock, NULL);
  MPI_Comm_dup(MPI_COMM_WORLD, &c->world);
  MPI_Comm_dup(MPI_COMM_WORLD, &c->beat);
  MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(c->beat, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->world, &c->rank);
  MPI_Comm_size(c->world, &c->size);
  c->peers = calloc((size_t)c->size, sizeof *c->peers);
  if (!c->peers) { free(c); snprintf(err, cap, "out of memory"); return LACOS_ENOMEM; }
  /* hosts and pids of everyone, for messages and same-host liveness */
  struct { char host[HOST_MAX]; long pid; } mine, *all = calloc((size_t)c->size, sizeof mine);
  if (!all) { free(c->peers); free(c); snprintf(err, cap, "out of memory"); return LACOS_ENOMEM; }
  memset(&mine, 0, sizeof mine);
  if (gethostname(mine.host, sizeof mine.host - 1) != 0) snprintf(mine.host, sizeof mine.host, "?");
  mine.pid = (long)getpid();
  if (MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, c->world) != MPI_SUCCESS) {
    free(all); free(c->peers); free(c);
    snprintf(err, cap, "MPI_Allgather of the ranks' hosts failed");
    return LACOS_ECOMM;
  }
  double now = h->clock();
  for (int r = 0; r < c->size; r++) {
    peer *p = &c->peers[r];
    memcpy(p->host, all[r].host, HOST_MAX);
    p->host[HOST_MAX - 1] = 0;
    p->pid = all[r].pid;
    p->last_seen = now;
    p->beat = MPI_REQUEST_NULL;
    /* same host name and a process by that pid visible here: the pid can be
       watched (a rank in another pid namespace is left to the heartbeats) */
    p->same_host = r != c->rank && !strcmp(p->host, mine.host) && (kill((pid_t)p->pid, 0) == 0 || errno == EPERM);
  }
  free(all);
  MPI_Comm node;
  int lr = 0, ls = 1;
  if (MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_rank(node, &lr);
    MPI_Comm_size(node, &ls);
    MPI_Comm_free(&node);
  }
  c->threaded = provided >= MPI_THREAD_MULTIPLE && c->size > 1;
  if (c->threaded && pthread_create(&c->thread, NULL, beat_thread, c) == 0) c->thread_on = 1;
  else c->threaded = 0;
  *out = (comm_backend){ .name = "mpi", .rank = c->rank, .size = c->size, .local_rank = lr, .local_size = ls, .ctx = c,
                         .host = m_host, .pid = m_pid, .allreduce_sum = m_allreduce, .allgatherv = m_allgatherv,
                         .broadcast = m_broadcast, .barrier = m_barrier, .check_peers = m_check,
                         .set_timeout = m_timeout, .abort = m_abort,
                         .close = m_close };
  return LACOS_OK;
}
