/* comm.h: the collectives' internal interfaces (comm.c, comm_mpi.c,
   comm_nccl.c). Nothing here knows about models: the transport sits below
   them and moves plain buffers.

   A process-group backend moves host buffers between the ranks of a job:
   `self` (one process, in comm.c) or MPI (comm_mpi.c, built into its own
   liblacos_mpi.so and opened with dlopen only when a launcher started the
   job, so that a plain `lacos` never maps libmpi and starts as fast as
   before). Device buffers go through NCCL when it loads (comm_nccl.c, which
   opens libnccl.so.2 at run time) or are staged through host memory.

   The plugin gets the engine's error and interrupt functions through
   comm_host instead of linking liblacos: a C test links the static archive,
   and a second copy of the engine (through liblacos.so) would keep its own
   last-error buffer. */
#ifndef LACOS_COMM_H
#define LACOS_COMM_H
#ifdef __cplusplus
extern "C" {
#endif
#include <stdint.h>
#include <stddef.h>

/* Element types a reduction adds (the lacos_dtype values). */
enum { COMM_F32 = 0, COMM_I64 = 6, COMM_F64 = 7 };

/* What the engine lends a plugin. */
typedef struct comm_host {
  int (*fail)(int status, const char *fmt, ...);
  int (*interrupted)(void);    /* a signal is pending (not held back for the step boundary) */
  double (*clock)(void);       /* monotonic seconds */
} comm_host;

/* A process group. Every collective blocks until it is complete on this rank;
   while it waits the backend watches its peers and fails with LACOS_ECOMM
   (naming the rank, host and process) when one has died, has reported a
   failure (abort) or has been silent for longer than the timeout. After any
   such failure the group is broken: every later call fails at once and close
   does not wait for the others. */
typedef struct comm_backend {
  const char *name;            /* "self", "mpi" */
  int rank, size, local_rank, local_size;
  void *ctx;
  /* hostname and process id of a rank (known after open) */
  const char *(*host)(void *ctx, int rank);
  long (*pid)(void *ctx, int rank);
  int (*allreduce_sum)(void *ctx, void *buf, int64_t count, int type);
  /* recv holds the ranks' bytes in rank order; bytes[r] is rank r's share */
  int (*allgatherv)(void *ctx, const void *send, void *recv, const int64_t *bytes);
  int (*broadcast)(void *ctx, void *buf, int64_t bytes, int root);
  int (*barrier)(void *ctx);
  /* LACOS_OK while every peer is alive, else LACOS_ECOMM naming the first
     one that is not (for waits outside the backend's collectives: NCCL) */
  int (*check_peers)(void *ctx);
  void (*set_timeout)(void *ctx, double seconds);
  /* Tells the peers this rank fails with `why` and stops taking part. */
  void (*abort)(void *ctx, const char *why);
  void (*close)(void *ctx);
} comm_backend;

/* The MPI plugin's one exported symbol (liblacos_mpi.so). timeout: seconds
   of silence after which a peer counts as dead. */
typedef int (*comm_mpi_open_fn)(comm_backend *out, const comm_host *host, double timeout, char *err, size_t err_cap);
#define COMM_MPI_OPEN_SYMBOL "lacos_comm_mpi_open"

/* NCCL over a process group (comm_nccl.c): all-reduce sums of device
   buffers on the engine's CUDA stream. open loads libnccl.so.2 and builds a
   communicator from a unique id broadcast over pg; it fails with the reason
   when NCCL or the device is missing. */
typedef struct comm_nccl comm_nccl;
int comm_nccl_open(comm_nccl **out, comm_backend *pg);
int comm_nccl_allreduce_sum(comm_nccl *n, comm_backend *pg, int nbuf, void *const *bufs, const int64_t *counts, int type);
void comm_nccl_close(comm_nccl *n, int abort);
/* "2.28.3", or "" when NCCL is not loaded */
const char *comm_nccl_version(const comm_nccl *n);

#ifdef __cplusplus
}
#endif
#endif
