/* engine.h: what every engine file shares and the outside never sees.

   The public API (lacos.h) is compiled with default visibility; everything
   else in the engine is hidden from liblacos.so, so internal names need no
   prefix. C tests link the static archive and may call internals. */
#ifndef LACOS_ENGINE_H
#define LACOS_ENGINE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC visibility push(default)
#include "lacos.h"
#pragma GCC visibility pop

#define LACOS_VERSION "0.1.0"

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#define UNUSED __attribute__((unused))
#else
#define PRINTF_LIKE(a, b)
#define UNUSED
#endif

/* ---- errors (error.c) ---- */

/* Records a formatted message as the last error and returns status, so a
   failure reads `return fail(LACOS_EINVAL, "...", ...);`. */
int fail(int status, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Prepends "prefix: " to the current last error (e.g. a file name), keeping
   its status; returns that status. */
int fail_context(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* errno-based failure: "<what>: <strerror(errno)>" with LACOS_EIO. */
int fail_errno(const char *fmt, ...) PRINTF_LIKE(1, 2);

#define TRY(expr) do { int try_status_ = (expr); if (try_status_ != LACOS_OK) return try_status_; } while (0)

/* ---- memory (memory.c) ---- */

/* Counted host memory: every allocation the engine makes goes through these.
   Each returns a status and leaves a message naming `what` on failure, with
   *out NULL; `out` is the address of the caller's pointer; mem_realloc
   keeps the old block when it fails. Blocks of 4 KiB and more are 64-byte
   aligned. Two kinds, freed alike with mem_free:
   - mem_*: data (buffers that grow with the data), reported by
     lacos_memory_allocated and refused past the soft limit;
   - meta_*: bookkeeping (object structs, tensor headers, names, work
     lists), counted apart (lacos_memory_overhead), so a view or a handle
     allocates no data. */
int mem_alloc(void *out, size_t bytes, const char *what);
int mem_calloc(void *out, size_t n, size_t size, const char *what);
int mem_realloc(void *inout, size_t bytes, const char *what);
int mem_strdup(char **out, const char *s, const char *what);
int mem_strndup(char **out, const char *s, size_t n, const char *what);
int meta_alloc(void *out, size_t bytes, const char *what);
int meta_calloc(void *out, size_t n, size_t size, const char *what);
int meta_realloc(void *inout, size_t bytes, const char *what);
int meta_strdup(char **out, const char *s, const char *what);
void mem_free(void *p);
void mem_mapped_add(double bytes);
/* Device backends count the memory they allocate themselves (LACOS_ELIMIT
   past the device's soft limit) and un-count it when freed. */
int mem_charge(int device, size_t bytes, const char *what);
void mem_uncharge(int device, size_t bytes);
/* What the soft limit leaves of avail bytes of free device memory. */
double mem_limit_left(int device, double avail);
/* Fault injection for tests: the nth counted allocation from now (host or
   device) fails with LACOS_ENOMEM, once; 0 disarms. mem_fault_count is the
   number of allocations since, mem_fault_pending whether the failure is
   still to come. */
void mem_fault_at(int64_t n);
int64_t mem_fault_count(void);
bool mem_fault_pending(void);
/* Elementwise access and CPU ops need the data in host memory. */
static inline int tensor_on_cpu(const struct lacos_tensor *t, const char *what) {
  if (t && t->device != LACOS_CPU)
    return fail(LACOS_EDEVICE, "%s: tensor is on cuda; call :to('cpu') first", what);
  return LACOS_OK;
}
/* Checked size arithmetic: false on overflow. */
static inline bool size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* ---- tensors (tensor.c) ---- */

struct backend;
struct lacos_storage {
  void *data;
  size_t bytes;
  int device;
  int refcount;            /* atomic */
  const struct backend *be;   /* owned memory: whose free() releases it */
  /* Non-owned memory (a mapped file): release(ctx) instead of be->free. */
  void (*release)(void *ctx);
  void *ctx;
};

/* Wraps external memory; release(ctx) runs when the last view is freed. */
int tensor_wrap(lacos_tensor **out, void *data, int dtype, int ndim, const int64_t *shape,
                void (*release)(void *ctx), void *ctx);
int tensor_wrap_on(lacos_tensor **out, void *data, int dtype, int device, int ndim, const int64_t *shape,
                   void (*release)(void *ctx), void *ctx);
/* A view on memory the caller keeps alive (model parameters, gradients);
   _on for device memory. */
int tensor_borrow(lacos_tensor **out, void *data, int dtype, int ndim, const int64_t *shape);
int tensor_borrow_on(lacos_tensor **out, void *data, int dtype, int device, int ndim, const int64_t *shape);
/* Contiguous f32 2-D tensor helpers used all over the engine. */
static inline float *tensor_f32(const lacos_tensor *t) { return (float *)t->data; }
int tensor_check(const lacos_tensor *t, const char *name, int dtype, int ndim);
void tensor_shape_str(const lacos_tensor *t, char *buf, size_t n);

/* ---- numbers ---- */

static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else { /* subnormal: renormalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  float f; memcpy(&f, &bits, 4); return f;
}
static inline uint16_t f32_to_f16(float f) {  /* round to nearest even */
  uint32_t x; memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000; int32_t exp = (int32_t)((x >> 23) & 0xff); uint32_t man = x & 0x7fffff;
  if (exp == 255) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    man |= 0x800000; uint32_t shift = (uint32_t)(14 - e);
    uint32_t half = 1u << (shift - 1), rest = man & ((1u << shift) - 1), q = man >> shift;
    if (rest > half || (rest == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t q = (uint32_t)(e << 10) | (man >> 13), rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (q & 1))) q++;
  return (uint16_t)(sign | q);
}
static inline float bf16_to_f32(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
static inline uint16_t f32_to_bf16(float f) {
  uint32_t x; memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);   /* quiet NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
/* Element i of a buffer of any dtype, as double / store a double. */
double dtype_load(const void *base, int64_t i, int dtype);
/* false when any of the n values is NaN or infinite */
bool floats_finite(const float *x, int64_t n);
void dtype_store(void *base, int64_t i, int dtype, double v);
/* Converts n contiguous elements between dtypes (saturating, round-half-even for ints). */
void dtype_convert(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n);

/* ---- random numbers (random.c) ---- */

/* Counter-based (math/rng.h, shared with the CUDA kernels): value i of stream
   `seed` does not depend on how work is split across threads, so random
   tensors are identical for any thread count. */
#include "math/rng.h"
double rng_normal(uint64_t seed, uint64_t counter);

/* ---- files (fileio.c) ---- */

/* Reads a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer. */
int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len);
/* Atomic replacement of `path`: write to a temporary file in the same
   directory, fsync, rename over the target, fsync the directory. Readers
   see the old file or the whole new one, never a torn one. */
typedef struct atomic_file { FILE *f; char *path; char *tmp; } atomic_file;
int atomic_file_open(atomic_file *af, const char *path);
int atomic_file_commit(atomic_file *af);   /* closes; on failure removes the temporary */
void atomic_file_abort(atomic_file *af);
int fsync_dir_of(const char *path);
/* A FILE whose writes go to counted memory (ms->p, ms->n; mem_free ms->p
   after fclose). A write that cannot grow it fails with ENOMEM. */
typedef struct mem_stream { char *p; size_t n, cap; } mem_stream;
int mem_stream_open(FILE **f, mem_stream *ms);
/* mkdir -p */
int mkdir_parents(const char *dir);
/* rm -r (a missing path is fine); the first failure is reported, the rest still removed */
int remove_tree(const char *path);
/* Removes the temporaries "<path>.tmp.<pid>" (files or directories, and
   their ".old.<pid>" companions) that processes of this host which no
   longer run left beside path; best effort. */
void remove_stale_temps(const char *path);
/* The threads that fit under RLIMIT_AS (system.c) when `have` threads'
   BLAS buffers are allocated already: OpenBLAS reserves 128 MiB per thread
   and spins forever when it cannot. Huge when there is no limit. */
int address_space_thread_cap(int have);
/* Makes OpenBLAS take the buffer of the calling thread now (system.c). */
void blas_reserve(void);

/* ---- safetensors (safetensors.c) ---- */

typedef int (*tensor_provider)(void *ctx, int i, lacos_tensor **out);
int safetensors_write_stream(FILE *f, const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                             int nmeta, const char *const *mk, const char *const *mv);
/* Opens a safetensors image held in memory, taking ownership of `data`
   (from mem_alloc, freed with the last view on it, or at once on failure). */
int safetensors_open_buffer(lacos_safetensors **out, void *data, size_t size, const char *name);
int safetensors_write_sharded_with(const char *dir, int n, const char *const *names, const double *bytes,
                                   double max_shard_bytes, tensor_provider provider, void *ctx);
/* The same with string metadata (as lacos_safetensors_write_sharded). */
int safetensors_write_sharded_meta(const char *dir, int n, const char *const *names, const double *bytes,
                                   double max_shard_bytes, tensor_provider provider, void *ctx, int nmeta,
                                   const char *const *meta_keys, const char *const *meta_values);

/* ---- threads and interruption (engine.c) ---- */

int threads_count(void);
extern volatile int lacos_interrupt_flag;

#endif
