/* memory.c: every engine allocation goes through here, so the engine knows
   how many bytes it holds per device (the LuaJIT GC cannot see them) and can
   refuse an allocation past a soft limit with a clear error instead of
   letting the kernel's OOM killer end the process. */
#include "device.h"
#include <stdatomic.h>
#include <sys/resource.h>

enum { DEVICES = 2 };
static _Atomic int64_t mem_current[DEVICES], mem_peak[DEVICES], mem_limit[DEVICES];
static _Atomic int64_t mem_mapped;

static void peak_update(int device, int64_t now) {
  int64_t p = atomic_load(&mem_peak[device]);
  while (now > p && !atomic_compare_exchange_weak(&mem_peak[device], &p, now)) {}
}

void *mem_alloc(size_t bytes, int device, const char *what) {
  if (device != LACOS_CPU) { fail(LACOS_EDEVICE, "%s: this allocator serves the CPU only", what); return NULL; }
  size_t rounded;
  if (!size_add(bytes, 63, &rounded)) { fail(LACOS_ENOMEM, "%s: size overflow", what); return NULL; }
  rounded &= ~(size_t)63;
  if (rounded == 0) rounded = 64;
  int64_t lim = atomic_load(&mem_limit[device]);
  int64_t now = atomic_fetch_add(&mem_current[device], (int64_t)rounded) + (int64_t)rounded;
  if (lim > 0 && now > lim) {
    atomic_fetch_sub(&mem_current[device], (int64_t)rounded);
    fail(LACOS_ELIMIT, "%s: allocating %.1f MiB would pass the memory limit of %.1f MiB (%.1f MiB in use)",
         what, bytes / 1048576.0, lim / 1048576.0, (now - (int64_t)rounded) / 1048576.0);
    return NULL;
  }
  void *p = aligned_alloc(64, rounded);
  if (!p) {
    atomic_fetch_sub(&mem_current[device], (int64_t)rounded);
    fail(LACOS_ENOMEM, "%s: out of memory allocating %.1f MiB", what, bytes / 1048576.0);
    return NULL;
  }
  peak_update(device, now);
  return p;
}

/* The CUDA backend allocates device memory itself and counts it here. */
int mem_charge(int device, size_t bytes, const char *what) {
  if (device < 0 || device >= DEVICES) return fail(LACOS_EINVAL, "%s: unknown device %d", what, device);
  int64_t lim = atomic_load(&mem_limit[device]);
  int64_t now = atomic_fetch_add(&mem_current[device], (int64_t)bytes) + (int64_t)bytes;
  if (lim > 0 && now > lim) {
    atomic_fetch_sub(&mem_current[device], (int64_t)bytes);
    return fail(LACOS_ELIMIT, "%s: allocating %.1f MiB would pass the %s memory limit of %.1f MiB (%.1f MiB in use)",
                what, bytes / 1048576.0, device == LACOS_CUDA ? "GPU" : "CPU", lim / 1048576.0,
                (now - (int64_t)bytes) / 1048576.0);
  }
  peak_update(device, now);
  return LACOS_OK;
}

void mem_uncharge(int device, size_t bytes) {
  if (device >= 0 && device < DEVICES) atomic_fetch_sub(&mem_current[device], (int64_t)bytes);
}

void *mem_calloc(size_t bytes, int device, const char *what) {
  void *p = mem_alloc(bytes, device, what);
  if (p) memset(p, 0, bytes);
  return p;
}

void mem_free(void *p, size_t bytes, int device) {
  if (!p) return;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded == 0) rounded = 64;
  atomic_fetch_sub(&mem_current[device], (int64_t)rounded);
  free(p);
}

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

double lacos_memory_available(int device) {
  if (!device_ok(device)) return 0;
  double avail = 0;
  if (device == LACOS_CUDA) {   /* the GPU's free memory, when there is one (quietly 0 otherwise) */
    double fr = 0;
    if (cuda_available(NULL, 0) && cuda_device_info(NULL, 0, NULL, NULL, NULL, &fr, NULL) == LACOS_OK) avail = fr;
  }
  if (device == LACOS_CPU) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
      char line[256];
      while (fgets(line, sizeof line, f)) {
        long long kb;
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) { avail = (double)kb * 1024.0; break; }
      }
      fclose(f);
    }
  }
  if (device == LACOS_CPU) {   /* ulimit -v and the cgroup's limit (system.c) */
    double room = lacos_memory_headroom(NULL);
    if (room > 0 && (avail == 0 || room < avail)) avail = room;
  }
  int64_t lim = atomic_load(&mem_limit[device]);
  if (lim > 0) {
    double left = (double)lim - (double)atomic_load(&mem_current[device]);
    if (avail == 0 || left < avail) avail = left > 0 ? left : 0;
  }
  return avail;
}

/* ---- device arenas: many buffers carved from one dev_alloc ---- */

int dev_arena_init(dev_arena *a, size_t bytes, const char *what) {
  a->used = 0;
  a->bytes = dev_arena_round(bytes);
  a->base = dev_alloc(a->bytes, what);
  if (!a->base) { a->bytes = 0; return lacos_last_status(); }
  return LACOS_OK;
}

void *dev_arena_take(dev_arena *a, size_t bytes, const char *what) {
  size_t need = dev_arena_round(bytes);
  if (a->used + need > a->bytes) {
    fail(LACOS_ELIMIT, "%s: the device pool of %.1f MiB is full (%.1f MiB used, %.1f MiB asked)", what,
         a->bytes / 1048576.0, a->used / 1048576.0, bytes / 1048576.0);
    return NULL;
  }
  void *p = a->base + a->used;
  a->used += need;
  return p;
}

void dev_arena_free(dev_arena *a) {
  dev_free(a->base, a->bytes);
  a->base = NULL;
  a->bytes = a->used = 0;
}
