/* memory.c: every engine allocation goes through here, so the engine knows
   how many bytes it holds per device (the LuaJIT GC cannot see them) and can
   refuse an allocation past a soft limit with a clear error instead of
   letting the kernel's OOM killer end the process.

   Host memory comes from mem_alloc and friends. Each block carries a small
   header (its size), so mem_free needs only the pointer; blocks of 4 KiB and
   more are 64-byte aligned (cache lines, SIMD), smaller ones 16. Device
   backends allocate their own memory and count it with mem_charge.

   The fault hook (mem_fault_at) fails the Nth counted allocation from now,
   host or device, as SQLite's fault simulator does: tests walk N over a
   whole operation and check that every failure comes back as a clean error
   with nothing leaked (tests/c/test_faults.c). */
#include "engine.h"
#include <stdatomic.h>
#include <sys/resource.h>

enum { DEVICES = 2 };
static _Atomic int64_t mem_current[DEVICES], mem_peak[DEVICES], mem_limit[DEVICES];
static _Atomic int64_t mem_mapped;
static _Atomic int64_t fault_countdown;   /* > 0: allocations until the injected failure */
static _Atomic int64_t fault_seen;        /* allocations counted since mem_fault_at */

static void peak_update(int device, int64_t now) {
  int64_t p = atomic_load(&mem_peak[device]);
  while (now > p && !atomic_compare_exchange_weak(&mem_peak[device], &p, now)) {}
}

void mem_fault_at(int64_t n) {
  atomic_store(&fault_seen, 0);
  atomic_store(&fault_countdown, n > 0 ? n : 0);
}
int64_t mem_fault_count(void) { return atomic_load(&fault_seen); }
bool mem_fault_pending(void) { return atomic_load(&fault_countdown) > 0; }

int mem_charge(int device, size_t bytes, const char *what) {
  if (device < 0 || device >= DEVICES) return fail(LACOS_EINVAL, "%s: unknown device %d", what, device);
  atomic_fetch_add(&fault_seen, 1);
  if (atomic_load(&fault_countdown) > 0 && atomic_fetch_sub(&fault_countdown, 1) == 1)
    return fail(LACOS_ENOMEM, "%s: out of memory (injected failure of allocation %lld)", what,
                (long long)atomic_load(&fault_seen));
  if (bytes > (size_t)INT64_MAX / 2) return fail(LACOS_ENOMEM, "%s: %zu bytes is too large", what, bytes);
  int64_t lim = atomic_load(&mem_limit[device]);
  int64_t now = atomic_fetch_add(&mem_current[device], (int64_t)bytes) + (int64_t)bytes;
  if (lim > 0 && now > lim) {
    atomic_fetch_sub(&mem_current[device], (int64_t)bytes);
    return fail(LACOS_ELIMIT, "%s: allocating %.1f MiB would pass the %smemory limit of %.1f MiB (%.1f MiB in use)",
                what, bytes / 1048576.0, device == LACOS_CUDA ? "GPU " : "", lim / 1048576.0,
                (now - (int64_t)bytes) / 1048576.0);
  }
  peak_update(device, now);
  return LACOS_OK;
}

void mem_uncharge(int device, size_t bytes) {
  if (device >= 0 && device < DEVICES) atomic_fetch_sub(&mem_current[device], (int64_t)bytes);
}

/* ---- host blocks: [padding][size][offset|kind] data... ----

   Data (buffers whose size follows the data: tensors, weights, activations,
   file contents) is reported by lacos_memory_allocated and refused past the
   soft limit, counted as its size rounded up to 64 bytes. Bookkeeping
   (object structs, tensor headers, names, work lists) and every block's
   header are counted apart (lacos_memory_overhead): a view or an object
   handle allocates no data. Both go through the fault hook. */

enum { BIG = 4096, KIND_META = 1u << 8 };
static _Atomic int64_t mem_meta;

static size_t header_of(size_t bytes) { return bytes >= BIG ? 64 : 16; }
static size_t data_bytes(size_t bytes) { size_t r = (bytes + 63) & ~(size_t)63; return r ? r : 64; }

static int block_new(void *out, size_t bytes, bool meta, const char *what) {
  *(void **)out = NULL;
  size_t off = header_of(bytes), total;
  if (!size_add(bytes, off + 63, &total)) return fail(LACOS_ENOMEM, "%s: size overflow", what);
  total &= ~(size_t)63;
  if (meta) {
    atomic_fetch_add(&fault_seen, 1);
    if (atomic_load(&fault_countdown) > 0 && atomic_fetch_sub(&fault_countdown, 1) == 1)
      return fail(LACOS_ENOMEM, "%s: out of memory (injected failure of allocation %lld)", what,
                  (long long)atomic_load(&fault_seen));
  } else {
    TRY(mem_charge(LACOS_CPU, data_bytes(bytes), what));
  }
  char *block = off == 64 ? aligned_alloc(64, total) : malloc(total);
  if (!block) {
    if (!meta) mem_uncharge(LACOS_CPU, data_bytes(bytes));
    return fail(LACOS_ENOMEM, "%s: out of memory allocating %.1f MiB", what, bytes / 1048576.0);
  }
  atomic_fetch_add(&mem_meta, (int64_t)(meta ? total : total - data_bytes(bytes)));
  char *p = block + off;
  ((size_t *)p)[-2] = bytes;
  ((size_t *)p)[-1] = off | (meta ? KIND_META : 0);
  *(void **)out = p;
  return LACOS_OK;
}

void mem_free(void *p) {
  if (!p) return;
  size_t bytes = ((size_t *)p)[-2], word = ((size_t *)p)[-1], off = word & 0xff;
  size_t total = (bytes + off + 63) & ~(size_t)63;
  if (word & KIND_META) atomic_fetch_sub(&mem_meta, (int64_t)total);
  else {
    mem_uncharge(LACOS_CPU, data_bytes(bytes));
    atomic_fetch_sub(&mem_meta, (int64_t)(total - data_bytes(bytes)));
  }
  free((char *)p - off);
}

static int block_realloc(void *inout, size_t bytes, bool meta, const char *what) {
  void *old = *(void **)inout, *p;
  if (old && ((size_t *)old)[-2] >= bytes) return LACOS_OK;
  TRY(block_new(&p, bytes, meta, what));
  if (old) {
    memcpy(p, old, ((size_t *)old)[-2]);
    mem_free(old);
  }
  *(void **)inout = p;
  return LACOS_OK;
}

static int block_calloc(void *out, size_t n, size_t size, bool meta, const char *what) {
  size_t bytes;
  if (!size_mul(n, size, &bytes)) { *(void **)out = NULL; return fail(LACOS_ENOMEM, "%s: size overflow", what); }
  TRY(block_new(out, bytes, meta, what));
  memset(*(void **)out, 0, bytes);
  return LACOS_OK;
}

static int block_strndup(char **out, const char *s, size_t n, bool meta, const char *what) {
  TRY(block_new(out, n + 1, meta, what));
  memcpy(*out, s, n);
  (*out)[n] = 0;
  return LACOS_OK;
}

int mem_alloc(void *out, size_t bytes, const char *what) { return block_new(out, bytes, false, what); }
int mem_calloc(void *out, size_t n, size_t size, const char *what) { return block_calloc(out, n, size, false, what); }
int mem_realloc(void *inout, size_t bytes, const char *what) { return block_realloc(inout, bytes, false, what); }
int mem_strdup(char **out, const char *s, const char *what) { return block_strndup(out, s, strlen(s), false, what); }
int mem_strndup(char **out, const char *s, size_t n, const char *what) { return block_strndup(out, s, n, false, what); }

int meta_alloc(void *out, size_t bytes, const char *what) { return block_new(out, bytes, true, what); }
int meta_calloc(void *out, size_t n, size_t size, const char *what) { return block_calloc(out, n, size, true, what); }
int meta_realloc(void *inout, size_t bytes, const char *what) { return block_realloc(inout, bytes, true, what); }
int meta_strdup(char **out, const char *s, const char *what) { return block_strndup(out, s, strlen(s), true, what); }

double lacos_memory_overhead(void) { return (double)atomic_load(&mem_meta); }

void mem_mapped_add(double bytes) { atomic_fetch_add(&mem_mapped, (int64_t)bytes); }

static bool device_ok(int device) { return device >= 0 && device < DEVICES; }
double lacos_memory_allocated(int device) { return device_ok(device) ? (double)atomic_load(&mem_current[device]) : 0; }
double lacos_memory_peak(int device) { return device_ok(device) ? (double)atomic_load(&mem_peak[device]) : 0; }
void lacos_memory_reset_peak(int device) {
  if (device_ok(device)) atomic_store(&mem_peak[device], atomic_load(&mem_current[device]));
}
double lacos_memory_mapped(void) { return (double)atomic_load(&mem_mapped); }
void lacos_memory_set_limit(int device, double bytes) {
  if (device_ok(device)) atomic_store(&mem_limit[device], bytes > 0 ? (int64_t)bytes : 0);
}
double lacos_memory_get_limit(int device) { return device_ok(device) ? (double)atomic_load(&mem_limit[device]) : 0; }

/* What the soft limit leaves of `avail` bytes on a device (avail 0: unknown). */
double mem_limit_left(int device, double avail) {
  if (!device_ok(device)) return 0;
  int64_t lim = atomic_load(&mem_limit[device]);
  if (lim > 0) {
    double left = (double)lim - (double)atomic_load(&mem_current[device]);
    if (avail == 0 || left < avail) avail = left > 0 ? left : 0;
  }
  return avail;
}

double lacos_memory_peak_rss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (double)ru.ru_maxrss * 1024.0;
}

double lacos_memory_current_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  int n = fscanf(f, "%ld %ld", &pages, &resident);
  fclose(f);
  return n == 2 ? (double)resident * 4096.0 : 0;
}
