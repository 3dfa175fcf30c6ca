/* comm_nccl.c: sums of device buffers across ranks with NCCL, for a CUDA
   model's gradients.

   NCCL is not linked: libnccl.so.2 (the one the CUDA toolkit ships, or the
   nvidia-nccl-cu* wheel's, or $LACOS_NCCL) is opened with dlopen the first
   time a device buffer is reduced, so a build needs no NCCL and a process
   that never reduces device buffers never maps it. Its few entry points are
   declared here from NCCL's stable C ABI (nccl.h of 2.x); a build that finds
   nccl.h checks these declarations against it (LACOS_NCCL_H).

   Set-up follows NCCL's documented pattern (and llm.c's llmc/zero.cuh):
   rank 0 makes a unique id, the process group broadcasts it, every rank
   joins with ncclCommInitRank on the GPU it already uses. A reduction runs
   on the engine's compute stream, after the backward pass's kernels, and is
   waited for by polling the stream, so that a dead peer (seen by the
   process group's liveness watch) ends the wait with ncclCommAbort instead
   of a hang. */
#include "engine.h"
#include "backend.h"
#include "comm.h"
#include <dlfcn.h>
#include <time.h>

typedef struct { char internal[128]; } nccl_unique_id;
typedef struct nccl_comm_s *nccl_comm_t;
typedef int nccl_result;
enum { NCCL_SUCCESS = 0, NCCL_IN_PROGRESS = 7 };
enum { NCCL_INT64 = 4, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8 };
enum { NCCL_SUM = 0 };

#ifdef LACOS_NCCL_H
#include LACOS_NCCL_H
_Static_assert(sizeof(ncclUniqueId) == sizeof(nccl_unique_id), "ncclUniqueId size");
_Static_assert((int)ncclSuccess == (int)NCCL_SUCCESS && (int)ncclInProgress == (int)NCCL_IN_PROGRESS, "ncclResult_t values");
_Static_assert((int)ncclInt64 == (int)NCCL_INT64 && (int)ncclFloat32 == (int)NCCL_FLOAT32 &&
               (int)ncclFloat64 == (int)NCCL_FLOAT64, "ncclDataType_t values");
_Static_assert((int)ncclSum == (int)NCCL_SUM, "ncclRedOp_t values");
#endif

typedef struct nccl_api {
  nccl_result (*GetVersion)(int *);
  nccl_result (*GetUniqueId)(nccl_unique_id *);
  nccl_result (*CommInitRank)(nccl_comm_t *, int, nccl_unique_id, int);
  nccl_result (*AllReduce)(const void *, void *, size_t, int, int, nccl_comm_t, void *);
  nccl_result (*CommGetAsyncError)(nccl_comm_t, nccl_result *);
  nccl_result (*CommAbort)(nccl_comm_t);
  nccl_result (*CommDestroy)(nccl_comm_t);
  const char *(*GetErrorString)(nccl_result);
  nccl_result (*GroupStart)(void);
  nccl_result (*GroupEnd)(void);
} nccl_api;

struct comm_nccl {
  void *lib;
  const backend *gpu;        /* the CUDA table: NCCL queues on its stream */
  nccl_api api;
  nccl_comm_t comm;
  char version[32];
};

static int nccl_fail(comm_nccl *n, nccl_result r, const char *call) {
  return fail(LACOS_EDEVICE, "NCCL %s: %s (%d)", call, n->api.GetErrorString ? n->api.GetErrorString(r) : "error", r);
}

static int load(comm_nccl *n) {
  const char *env = getenv("LACOS_NCCL");
  const char *names[] = { env && *env ? env : NULL, "libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2",
                          "/usr/local/cuda/lib64/libnccl.so.2" };
  const char *err = "not found";
  for (size_t i = 0; i < sizeof names / sizeof *names && !n->lib; i++) {
    if (!names[i]) continue;
    n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) err = dlerror();
  }
  if (!n->lib) return fail(LACOS_EUNSUPPORTED, "cannot load NCCL (libnccl.so.2; set LACOS_NCCL to its path): %s", err);
  struct { void **slot; const char *name; } syms[] = {
    { (void **)&n->api.GetVersion, "ncclGetVersion" }, { (void **)&n->api.GetUniqueId, "ncclGetUniqueId" },
    { (void **)&n->api.CommInitRank, "ncclCommInitRank" }, { (void **)&n->api.AllReduce, "ncclAllReduce" },
    { (void **)&n->api.CommGetAsyncError, "ncclCommGetAsyncError" }, { (void **)&n->api.CommAbort, "ncclCommAbort" },
    { (void **)&n->api.CommDestroy, "ncclCommDestroy" }, { (void **)&n->api.GetErrorString, "ncclGetErrorString" },
    { (void **)&n->api.GroupStart, "ncclGroupStart" }, { (void **)&n->api.GroupEnd, "ncclGroupEnd" },
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
    *syms[i].slot = dlsym(n->lib, syms[i].name);
    if (!*syms[i].slot) return fail(LACOS_EUNSUPPORTED, "NCCL library has no %s", syms[i].name);
  }
  int v = 0;
  n->api.GetVersion(&v);
  /* 2.9+ encodes major*10000 + minor*100 + patch */
  if (v >= 10000) snprintf(n->version, sizeof n->version, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
  else snprintf(n->version, sizeof n->version, "%d.%d.%d", v / 1000, (v / 100) % 10, v % 100);
  return LACOS_OK;
}

int comm_nccl_open(comm_nccl **out, comm_backend *pg) {
  *out = NULL;
  comm_nccl *n;
  TRY(meta_calloc(&n, 1, sizeof *n, "NCCL communicator"));
  /* every rank takes part in the id's broadcast, even one that cannot use
     NCCL (it sends an empty id), so that no rank is left waiting */
  int s = load(n);
  n->gpu = backend_table(LACOS_CUDA);
  if (!s && (!n->gpu || n->gpu->device_count() < 1)) s = fail(LACOS_EDEVICE, "NCCL needs a CUDA device and there is none");
  nccl_unique_id id;
  memset(&id, 0, sizeof id);
  int ok_here = s == LACOS_OK;
  if (ok_here && pg->rank == 0) {
    nccl_result r = n->api.GetUniqueId(&id);
    if (r != NCCL_SUCCESS) { s = nccl_fail(n, r, "ncclGetUniqueId"); ok_here = 0; }
  }
  /* all ranks agree whether NCCL is usable everywhere before any joins */
  char err[2048];
  snprintf(err, sizeof err, "%s", s ? lacos_last_error() : "");
  int64_t flag = ok_here ? 0 : 1;
  int cs = pg->allreduce_sum(pg->ctx, &flag, 1, COMM_I64);
  if (cs) { mem_free(n); return cs; }
  if (!cs) cs = pg->broadcast(pg->ctx, &id, (int64_t)sizeof id, 0);
  if (cs) { mem_free(n); return cs; }
  if (flag) {
    if (n->lib) dlclose(n->lib);
    mem_free(n);
    if (!s) return fail(LACOS_EUNSUPPORTED, "NCCL is not usable on every rank (%lld cannot load it or have no GPU)", (long long)flag);
    return fail(s, "%s", err);
  }
  nccl_result r = n->api.CommInitRank(&n->comm, pg->size, id, pg->rank);
  if (r != NCCL_SUCCESS) {
    s = nccl_fail(n, r, "ncclCommInitRank");
    dlclose(n->lib);
    mem_free(n);
    return s;
  }
  *out = n;
  return LACOS_OK;
}

const char *comm_nccl_version(const comm_nccl *n) { return n ? n->version : ""; }

/* The buffers in one NCCL group (fused by NCCL), then one wait. */
int comm_nccl_allreduce_sum(comm_nccl *n, comm_backend *pg, int nbuf, void *const *bufs, const int64_t *counts, int type) {
  int dt = type == COMM_F64 ? NCCL_FLOAT64 : type == COMM_I64 ? NCCL_INT64 : NCCL_FLOAT32;
  if (!n->comm) return fail(LACOS_ECOMM, "NCCL: the communicator was aborted after an earlier failure");
  nccl_result r = n->api.GroupStart();
  if (r != NCCL_SUCCESS) return nccl_fail(n, r, "ncclGroupStart");
  for (int i = 0; i < nbuf && r == NCCL_SUCCESS; i++)
    r = n->api.AllReduce(bufs[i], bufs[i], (size_t)counts[i], dt, NCCL_SUM, n->comm, n->gpu->stream());
  nccl_result e = n->api.GroupEnd();
  if (r != NCCL_SUCCESS) return nccl_fail(n, r, "ncclAllReduce");
  if (e != NCCL_SUCCESS && e != NCCL_IN_PROGRESS) return nccl_fail(n, e, "ncclGroupEnd");
  for (int spins = 0;; spins++) {
    int done = n->gpu->poll();
    if (done < 0) return -done;
    if (done) return LACOS_OK;
    nccl_result async = NCCL_SUCCESS;
    n->api.CommGetAsyncError(n->comm, &async);
    if (async != NCCL_SUCCESS && async != NCCL_IN_PROGRESS) {
      int s = nccl_fail(n, async, "ncclAllReduce (asynchronous error)");
      n->api.CommAbort(n->comm);
      n->comm = NULL;
      return s;
    }
    int s = pg->check_peers(pg->ctx);
    if (s) {
      /* a peer is gone: the reduction can never finish; abort frees the stream */
      char msg[2048];
      snprintf(msg, sizeof msg, "%s", lacos_last_error());
      n->api.CommAbort(n->comm);
      n->comm = NULL;
      return fail(s, "%s", msg);
    }
    struct timespec ts = { 0, spins < 100 ? 20000 : 200000 };
    nanosleep(&ts, NULL);
  }
}

void comm_nccl_close(comm_nccl *n, int abort) {
  if (!n) return;
  if (n->comm) {
    if (abort) n->api.CommAbort(n->comm);
    else n->api.CommDestroy(n->comm);
  }
  /* libnccl stays mapped: its threads may outlive the communicator briefly */
  mem_free(n);
}
