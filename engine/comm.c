/* comm.c: collectives across the processes of a job (lacos.h's comm
   section): all-reduce (sum), all-gather, broadcast and barrier over
   tensors, for data-parallel training.

   Who the job is comes from the launcher. Without one (no OMPI_COMM_WORLD_*,
   PMI_*, PMIX_RANK, SLURM step or RANK/WORLD_SIZE variables) the process
   is alone and gets the `self` backend: no library is loaded and every
   collective is a copy, so a plain `lacos` starts and runs as before. With
   one, the MPI backend (comm_mpi.c, built as liblacos_mpi.so next to
   liblacos.so) is opened with dlopen and MPI says who is who.

   Device tensors (a CUDA model's gradients) are summed with NCCL when
   libnccl.so.2 loads (comm_nccl.c), else staged through host memory: the
   MPI of Debian is not CUDA-aware. The NCCL communicator is made on the
   first device reduction, when the model's GPU is already chosen.

   Each handle counts what went through it (calls, payload bytes, seconds
   waited) so that a training loop can report its communication share. */
#include "engine.h"
#include "comm.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

/* ---- the launcher's environment ---- */

static int env_int(const char *name, int *out) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end;
  long x = strtol(v, &end, 10);
  if (*end || x < 0 || x > INT_MAX) return 0;
  *out = (int)x;
  return 1;
}

/* One launcher convention: the variables naming rank, size, local rank and
   local size (NULL where the launcher has none). */
typedef struct env_source {
  const char *label, *rank, *size, *local_rank, *local_size, *requires;
} env_source;

static const env_source SOURCES[] = {
  { "OMPI_COMM_WORLD_* (Open MPI's mpirun)", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", NULL },
  { "PMI_RANK/PMI_SIZE (MPICH's mpiexec)", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", NULL },
  /* only inside a job step: a batch script has SLURM_NTASKS too but is one process */
  { "SLURM_PROCID/SLURM_STEP_NUM_TASKS (srun)", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", NULL,
    "SLURM_STEP_ID" },
  { "PMIX_RANK (a PMIx launcher)", "PMIX_RANK", NULL, NULL, NULL, NULL },
  { "RANK/WORLD_SIZE", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", NULL },
};

int lacos_comm_env(lacos_comm_env_info *info) {
  if (!info) return fail(LACOS_EINVAL, "comm env: no output");
  memset(info, 0, sizeof *info);
  info->rank = 0; info->size = 1; info->local_rank = 0; info->local_size = 1;
  snprintf(info->source, sizeof info->source, "none");
  for (size_t i = 0; i < sizeof SOURCES / sizeof *SOURCES; i++) {
    const env_source *s = &SOURCES[i];
    int rank, size = -1, lr = -1, ls = -1;
    if (s->requires && !getenv(s->requires)) continue;
    if (!env_int(s->rank, &rank)) continue;
    if (s->size && !env_int(s->size, &size)) continue;
    if (!s->size) size = -1;   /* PMIx alone: MPI will say */
    if (s->local_rank) env_int(s->local_rank, &lr);
    if (s->local_size) env_int(s->local_size, &ls);
    if (size == 0 || (size > 0 && rank >= size)) continue;
    info->rank = rank;
    info->size = size;
    info->local_rank = lr;
    info->local_size = ls;
    info->launched = size != 1;
    snprintf(info->source, sizeof info->source, "%s", s->label);
    return LACOS_OK;
  }
  return LACOS_OK;
}

/* ---- the self backend: one process ---- */

static const char *self_host(void *ctx, int rank) { (void)rank; return (const char *)ctx; }
static long self_pid(void *ctx, int rank) { (void)ctx; (void)rank; return (long)getpid(); }
static int self_allreduce(void *ctx, void *buf, int64_t count, int type) {
  (void)ctx; (void)buf; (void)count; (void)type;
  return LACOS_OK;
}
static int self_allgatherv(void *ctx, const void *send, void *recv, const int64_t *bytes) {
  (void)ctx;
  if (bytes[0] && send != recv) memmove(recv, send, (size_t)bytes[0]);
  return LACOS_OK;
}
static int self_broadcast(void *ctx, void *buf, int64_t bytes, int root) {
  (void)ctx; (void)buf; (void)bytes; (void)root;
  return LACOS_OK;
}
static int self_barrier(void *ctx) { (void)ctx; return LACOS_OK; }
static int self_check(void *ctx) { (void)ctx; return LACOS_OK; }
static void self_abort(void *ctx, const char *why) { (void)ctx; (void)why; }
static void self_timeout(void *ctx, double seconds) { (void)ctx; (void)seconds; }
static void self_close(void *ctx) { (void)ctx; }

static char self_hostname[256];

static void self_backend(comm_backend *b) {
  if (!self_hostname[0] && gethostname(self_hostname, sizeof self_hostname - 1) != 0)
    snprintf(self_hostname, sizeof self_hostname, "localhost");
  *b = (comm_backend){ .name = "self", .rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .ctx = self_hostname,
                       .host = self_host, .pid = self_pid, .allreduce_sum = self_allreduce,
                       .allgatherv = self_allgatherv, .broadcast = self_broadcast, .barrier = self_barrier,
                       .check_peers = self_check, .set_timeout = self_timeout, .abort = self_abort,
                       .close = self_close };
}

/* ---- the process-wide group ----
   MPI starts once per process and cannot start again after it finished, so
   the group is shared by every handle and closed with the last one. */

static pthread_mutex_t group_lock = PTHREAD_MUTEX_INITIALIZER;
static comm_backend group;
static int group_refs;
static int group_closed;        /* an MPI group existed and was closed: cannot reopen */
static void *plugin;

static double clock_now(void) { return lacos_clock_monotonic(); }
static int host_interrupted(void) { return lacos_interrupt_pending(); }
static const comm_host HOST = { .fail = fail, .interrupted = host_interrupted, .clock = clock_now };

/* Where liblacos_mpi.so is: $LACOS_MPI_PLUGIN, else beside the library
   holding this code (build/liblacos.so), else beside the executable that
   linked the engine statically (build/tests/ -> build/). */
static int plugin_open(char *err, size_t cap) {
  const char *env = getenv("LACOS_MPI_PLUGIN");
  char dir[PATH_MAX] = "", path[PATH_MAX + 64];
  Dl_info di;
  if (dladdr((void *)plugin_open, &di) && di.dli_fname) {
    snprintf(dir, sizeof dir, "%s", di.dli_fname);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
  }
  const char *tries[3] = { NULL, NULL, NULL };
  char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
  int n = 0;
  if (env && *env) tries[n++] = env;
  else {
    snprintf(p1, sizeof p1, "%s/liblacos_mpi.so", dir);
    snprintf(p2, sizeof p2, "%s/../liblacos_mpi.so", dir);
    tries[n++] = p1;
    tries[n++] = p2;
  }
  const char *why = "not found";
  for (int i = 0; i < n; i++) {
    if (access(tries[i], R_OK) != 0) continue;
    /* RTLD_GLOBAL: Open MPI's own components are dlopen'ed by libmpi and
       look up libmpi's symbols in the global scope (as mpi4py loads it) */
    plugin = dlopen(tries[i], RTLD_NOW | RTLD_GLOBAL);
    if (plugin) return LACOS_OK;
    why = dlerror();
    snprintf(path, sizeof path, "%s", tries[i]);
    snprintf(err, cap, "cannot load the MPI backend %s: %s", path, why ? why : "?");
    return LACOS_EUNSUPPORTED;
  }
  snprintf(err, cap, "this lacos was built without MPI (no liblacos_mpi.so %s%s): install MPI (apt-get install "
           "libopenmpi-dev, or make deps as root) and rebuild", env && *env ? "at " : "beside ", env && *env ? env : dir);
  return LACOS_EUNSUPPORTED;
}

static int group_open(const lacos_comm_options *opt, const lacos_comm_env_info *env) {
  const char *want = opt->backend[0] ? opt->backend : "auto";
  if (!strcmp(want, "self") || (!strcmp(want, "auto") && !env->launched)) {
    if (env->launched && env->size > 1)
      return fail(LACOS_EINVAL, "started as rank %d of %d (%s) but asked for the self backend, which cannot talk to "
                                "the other ranks", env->rank, env->size, env->source);
    self_backend(&group);
    return LACOS_OK;
  }
  if (strcmp(want, "mpi") && strcmp(want, "auto"))
    return fail(LACOS_EINVAL, "unknown communication backend '%s' (auto, self, mpi)", want);
  if (group_closed)
    return fail(LACOS_ESTATE, "MPI was already finished in this process and cannot start again");
  /* srun without --mpi=pmix starts each process alone and Open MPI's
     MPI_Init then aborts without saying why: say it first */
  if (env->launched && strstr(env->source, "SLURM") && !getenv("PMIX_RANK") && !getenv("PMI_RANK") && !getenv("PMI_FD"))
    return fail(LACOS_EINVAL, "srun started %d tasks without a PMI (no PMIX_RANK): MPI cannot connect them; run srun "
                              "--mpi=pmix (or set MpiDefault=pmix in slurm.conf)", env->size);
  char err[1024] = "";
  if (!plugin) {
    int s = plugin_open(err, sizeof err);
    if (s) {
      if (env->launched)
        return fail(s, "started as rank %d of %d (%s), but %s", env->rank, env->size, env->source, err);
      return fail(s, "%s", err);
    }
  }
  comm_mpi_open_fn open_fn;
  *(void **)&open_fn = dlsym(plugin, COMM_MPI_OPEN_SYMBOL);
  if (!open_fn) return fail(LACOS_EUNSUPPORTED, "the MPI backend has no %s: %s", COMM_MPI_OPEN_SYMBOL, dlerror());
  double timeout = opt->timeout > 0 ? opt->timeout : 60;
  int s = open_fn(&group, &HOST, timeout, err, sizeof err);
  if (s) return err[0] ? fail(s, "%s", err) : s;
  if (env->launched && env->size > 0 && env->size != group.size) {
    int have = group.size;
    group.close(group.ctx);
    group_closed = 1;
    return fail(LACOS_EINVAL, "%s says %d processes but MPI started %d: launch with mpirun, mpiexec or srun --mpi=pmix "
                              "(srun without --mpi=pmix starts each process alone)", env->source, env->size, have);
  }
  return LACOS_OK;
}

struct lacos_comm {
  comm_nccl *nccl;
  int nccl_state;              /* 0 untried, 1 open, -1 unavailable (why in nccl_why) */
  char nccl_why[512];
  int device_mode;             /* LACOS_COMM_DEVICE_* */
  char name[64];
  void *stage;
  size_t stage_bytes;
  double calls, bytes, seconds;
};

void lacos_comm_options_init(lacos_comm_options *o) {
  memset(o, 0, sizeof *o);
  o->timeout = 60;
  o->device_mode = LACOS_COMM_DEVICE_AUTO;
}

int lacos_comm_open(lacos_comm **out, const lacos_comm_options *opt) {
  if (!out) return fail(LACOS_EINVAL, "comm open: no output");
  *out = NULL;
  lacos_comm_options defaults;
  if (!opt) { lacos_comm_options_init(&defaults); opt = &defaults; }
  if (opt->device_mode < LACOS_COMM_DEVICE_AUTO || opt->device_mode > LACOS_COMM_DEVICE_NCCL)
    return fail(LACOS_EINVAL, "comm open: unknown device mode %d", opt->device_mode);
  if (!(opt->timeout >= 0) || opt->timeout > 1e7) return fail(LACOS_EINVAL, "comm open: timeout must be >= 0 seconds");
  lacos_comm_env_info env;
  TRY(lacos_comm_env(&env));
  lacos_comm *c;
  TRY(meta_calloc(&c, 1, sizeof *c, "communicator"));
  pthread_mutex_lock(&group_lock);
  int s = LACOS_OK;
  if (group_refs == 0) s = group_open(opt, &env);
  else if (opt->backend[0] && strcmp(opt->backend, "auto") && strcmp(opt->backend, group.name))
    s = fail(LACOS_ESTATE, "this process already talks through the %s backend, not %s", group.name, opt->backend);
  if (!s) group_refs++;
  pthread_mutex_unlock(&group_lock);
  if (s) { mem_free(c); return s; }
  c->device_mode = opt->device_mode;
  snprintf(c->name, sizeof c->name, "%s", group.name);
  *out = c;
  return LACOS_OK;
}

void lacos_comm_free(lacos_comm *c) {
  if (!c) return;
  if (c->nccl) comm_nccl_close(c->nccl, 0);
  mem_free(c->stage);
  mem_free(c);
  pthread_mutex_lock(&group_lock);
  if (group_refs > 0 && --group_refs == 0) {
    group.close(group.ctx);
    if (strcmp(group.name, "self")) group_closed = 1;
    memset(&group, 0, sizeof group);
  }
  pthread_mutex_unlock(&group_lock);
}

int lacos_comm_rank(const lacos_comm *c) { (void)c; return group.rank; }
int lacos_comm_size(const lacos_comm *c) { (void)c; return group.size; }
int lacos_comm_local_rank(const lacos_comm *c) { (void)c; return group.local_rank; }
int lacos_comm_local_size(const lacos_comm *c) { (void)c; return group.local_size; }
const char *lacos_comm_backend(const lacos_comm *c) { return c ? c->name : ""; }
const char *lacos_comm_host(const lacos_comm *c, int rank) {
  (void)c;
  if (rank < 0 || rank >= group.size) return "";
  return group.host(group.ctx, rank);
}
double lacos_comm_pid(const lacos_comm *c, int rank) {
  (void)c;
  if (rank < 0 || rank >= group.size) return -1;
  return (double)group.pid(group.ctx, rank);
}

void lacos_comm_stats(const lacos_comm *c, double *calls, double *bytes, double *seconds) {
  if (calls) *calls = c ? c->calls : 0;
  if (bytes) *bytes = c ? c->bytes : 0;
  if (seconds) *seconds = c ? c->seconds : 0;
}

int lacos_comm_abort(lacos_comm *c, const char *why) {
  (void)c;
  if (group_refs > 0) group.abort(group.ctx, why ? why : "failed");
  return LACOS_OK;
}

int lacos_comm_set_timeout(lacos_comm *c, double seconds) {
  (void)c;
  if (!(seconds > 0) || seconds > 1e7) return fail(LACOS_EINVAL, "comm timeout must be > 0 seconds, got %g", seconds);
  if (group_refs > 0) group.set_timeout(group.ctx, seconds);
  return LACOS_OK;
}

int lacos_comm_check_peers(lacos_comm *c) {
  (void)c;
  return group_refs > 0 ? group.check_peers(group.ctx) : LACOS_OK;
}

/* ---- collectives over tensors ---- */

static int staging(lacos_comm *c, size_t bytes) {
  if (bytes <= c->stage_bytes) return LACOS_OK;
  TRY(mem_realloc(&c->stage, bytes, "comm staging buffer"));
  c->stage_bytes = bytes;
  return LACOS_OK;
}

static int check_tensor(const lacos_tensor *t, const char *what) {
  if (!t) return fail(LACOS_EINVAL, "%s: no tensor", what);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "%s: tensor was freed", what);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s: tensors must be contiguous", what);
  return LACOS_OK;
}

/* Copies between a tensor and bytes of a host buffer (either way, any device). */
static int move(lacos_tensor *t, void *host, int to_host) {
  if (t->device == LACOS_CPU) {
    size_t n = (size_t)lacos_tensor_nbytes(t);
    if (to_host) memcpy(host, t->data, n); else memcpy(t->data, host, n);
    return LACOS_OK;
  }
  lacos_tensor *view;
  TRY(tensor_borrow(&view, host, t->dtype, t->ndim, t->shape));
  int s = to_host ? lacos_tensor_copy(view, t) : lacos_tensor_copy(t, view);
  lacos_tensor_free(view);
  return s;
}

static int nccl_ready(lacos_comm *c) {
  if (c->nccl_state == 0) {
    int s = comm_nccl_open(&c->nccl, &group);
    if (s == LACOS_OK) {
      c->nccl_state = 1;
      snprintf(c->name, sizeof c->name, "%s+nccl %s", group.name, comm_nccl_version(c->nccl));
    } else {
      if (s == LACOS_ECOMM) return s;   /* a peer failed meanwhile: no fallback can help */
      c->nccl_state = -1;
      snprintf(c->nccl_why, sizeof c->nccl_why, "%s", lacos_last_error());
      lacos_error_clear();
      if (c->device_mode == LACOS_COMM_DEVICE_NCCL) return fail(s, "NCCL was asked for: %s", c->nccl_why);
      snprintf(c->name, sizeof c->name, "%s (device buffers staged through the host)", group.name);
    }
  }
  if (c->nccl_state == -1 && c->device_mode == LACOS_COMM_DEVICE_NCCL)
    return fail(LACOS_EUNSUPPORTED, "NCCL was asked for: %s", c->nccl_why);
  return LACOS_OK;
}

int lacos_comm_prepare_device(lacos_comm *c) {
  if (!c) return fail(LACOS_EINVAL, "comm: no communicator");
  if (group.size == 1 && c->device_mode != LACOS_COMM_DEVICE_NCCL) return LACOS_OK;
  if (c->device_mode == LACOS_COMM_DEVICE_HOST) {
    snprintf(c->name, sizeof c->name, "%s (device buffers staged through the host)", group.name);
    return LACOS_OK;
  }
  return nccl_ready(c);
}

int lacos_comm_allreduce_sum(lacos_comm *c, int n, lacos_tensor *const *tensors) {
  if (!c) return fail(LACOS_EINVAL, "all-reduce: no communicator");
  if (n < 0 || (n > 0 && !tensors)) return fail(LACOS_EINVAL, "all-reduce: bad tensor list");
  int dtype = -1, device = -1;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    TRY(check_tensor(tensors[i], "all-reduce"));
    int d = tensors[i]->dtype;
    if (d != LACOS_F32 && d != LACOS_F64 && d != LACOS_I64)
      return fail(LACOS_EINVAL, "all-reduce: tensors must be f32, f64 or i64, got %s", lacos_dtype_name(d));
    if (dtype >= 0 && (d != dtype || tensors[i]->device != device))
      return fail(LACOS_EINVAL, "all-reduce: every tensor of one call must have the same dtype and device");
    dtype = d;
    device = tensors[i]->device;
    total += (size_t)lacos_tensor_nbytes(tensors[i]);
  }
  if (n == 0 || total == 0) return LACOS_OK;
  double t0 = clock_now();
  int s = LACOS_OK;
  int64_t count = (int64_t)(total / (size_t)lacos_dtype_size(dtype));
  if (group.size == 1 && !(device == LACOS_CUDA && c->device_mode == LACOS_COMM_DEVICE_NCCL)) {
    /* nothing to add (NCCL with one rank is still exercised when asked for) */
  } else if (device == LACOS_CUDA && c->device_mode != LACOS_COMM_DEVICE_HOST && (s = nccl_ready(c)) == LACOS_OK &&
             c->nccl_state == 1) {
    void **bufs = NULL;
    int64_t *counts = NULL;
    s = meta_calloc(&bufs, (size_t)n, sizeof *bufs, "all-reduce list");
    if (!s) s = meta_calloc(&counts, (size_t)n, sizeof *counts, "all-reduce list");
    for (int i = 0; !s && i < n; i++) { bufs[i] = tensors[i]->data; counts[i] = lacos_tensor_numel(tensors[i]); }
    if (!s) s = comm_nccl_allreduce_sum(c->nccl, &group, n, bufs, counts, dtype);
    mem_free(bufs);
    mem_free(counts);
  } else if (!s) {
    if (n == 1 && device == LACOS_CPU) {
      s = group.allreduce_sum(group.ctx, tensors[0]->data, count, dtype);
    } else {
      /* one message for the whole list: packed into the staging buffer */
      s = staging(c, total);
      size_t off = 0;
      for (int i = 0; !s && i < n; i++) {
        s = move(tensors[i], (char *)c->stage + off, 1);
        off += (size_t)lacos_tensor_nbytes(tensors[i]);
      }
      if (!s) s = group.allreduce_sum(group.ctx, c->stage, count, dtype);
      off = 0;
      for (int i = 0; !s && i < n; i++) {
        s = move(tensors[i], (char *)c->stage + off, 0);
        off += (size_t)lacos_tensor_nbytes(tensors[i]);
      }
    }
  }
  c->calls += 1;
  c->bytes += (double)total;
  c->seconds += clock_now() - t0;
  return s;
}

int lacos_comm_allgather(lacos_tensor **out, lacos_comm *c, const lacos_tensor *local, int64_t *rows) {
  if (!c || !out) return fail(LACOS_EINVAL, "all-gather: no communicator or output");
  *out = NULL;
  TRY(check_tensor(local, "all-gather"));
  if (local->device != LACOS_CPU) return fail(LACOS_EINVAL, "all-gather: the tensor must be in host memory");
  if (local->ndim < 1) return fail(LACOS_EINVAL, "all-gather: the tensor needs at least one dimension");
  double t0 = clock_now();
  int W = group.size;
  /* each rank's shape first: the rows may differ, the rest must not */
  int64_t *shapes;
  TRY(meta_calloc(&shapes, (size_t)W * 6 + (size_t)W, sizeof(int64_t), "all-gather shapes"));
  int64_t *bytes = shapes + (size_t)W * 6;
  int64_t mine[6] = { local->ndim, local->dtype, local->shape[0], local->shape[1], local->shape[2], local->shape[3] };
  for (int r = 0; r < W; r++) bytes[r] = (int64_t)sizeof mine;
  int s = group.allgatherv(group.ctx, mine, shapes, bytes);
  int64_t total_rows = 0;
  for (int r = 0; !s && r < W; r++) {
    int64_t *sh = shapes + 6 * r;
    if (sh[0] != mine[0] || sh[1] != mine[1] || sh[3] != mine[3] || sh[4] != mine[4] || sh[5] != mine[5]) {
      char a[96], b[96];
      snprintf(a, sizeof a, "%s (n,%lld,%lld,%lld)", lacos_dtype_name((int)sh[1]), (long long)sh[3], (long long)sh[4], (long long)sh[5]);
      snprintf(b, sizeof b, "%s (n,%lld,%lld,%lld)", lacos_dtype_name(local->dtype), (long long)mine[3], (long long)mine[4], (long long)mine[5]);
      s = fail(LACOS_EINVAL, "all-gather: rank %d (%s) sends rows of %s, rank %d (%s) of %s", r, group.host(group.ctx, r), a,
               group.rank, group.host(group.ctx, group.rank), b);
      break;
    }
    total_rows += sh[2];
    if (rows) rows[r] = sh[2];
  }
  lacos_tensor *g = NULL;
  if (!s) {
    int64_t shape[4] = { total_rows, local->shape[1], local->shape[2], local->shape[3] };
    s = lacos_tensor_empty(&g, local->dtype, LACOS_CPU, local->ndim, shape);
  }
  if (!s) {
    int64_t row_bytes = (int64_t)lacos_dtype_size(local->dtype) * local->shape[1] * local->shape[2] * local->shape[3];
    if (local->ndim == 1) row_bytes = lacos_dtype_size(local->dtype);
    for (int r = 0; r < W; r++) bytes[r] = shapes[6 * r + 2] * row_bytes;
    s = group.allgatherv(group.ctx, local->data, g->data, bytes);
    c->bytes += (double)(total_rows * row_bytes);
  }
  mem_free(shapes);
  c->calls += 1;
  c->seconds += clock_now() - t0;
  if (s) { lacos_tensor_free(g); return s; }
  *out = g;
  return LACOS_OK;
}

int lacos_comm_broadcast(lacos_comm *c, lacos_tensor *t, int root) {
  if (!c) return fail(LACOS_EINVAL, "broadcast: no communicator");
  TRY(check_tensor(t, "broadcast"));
  if (root < 0 || root >= group.size) return fail(LACOS_EINVAL, "broadcast: root %d is not a rank (0..%d)", root, group.size - 1);
  double t0 = clock_now();
  size_t n = (size_t)lacos_tensor_nbytes(t);
  int s;
  if (t->device == LACOS_CPU) s = group.broadcast(group.ctx, t->data, (int64_t)n, root);
  else {
    s = staging(c, n);
    if (!s && group.rank == root) s = move(t, c->stage, 1);
    if (!s) s = group.broadcast(group.ctx, c->stage, (int64_t)n, root);
    if (!s && group.rank != root) s = move(t, c->stage, 0);
  }
  c->calls += 1;
  c->bytes += (double)n;
  c->seconds += clock_now() - t0;
  return s;
}

int lacos_comm_barrier(lacos_comm *c) {
  if (!c) return fail(LACOS_EINVAL, "barrier: no communicator");
  double t0 = clock_now();
  int s = group.barrier(group.ctx);
  c->calls += 1;
  c->seconds += clock_now() - t0;
  return s;
}
