/* backend.c: which table serves which device. The CPU's is always there;
   CUDA's when kernels/ was compiled in (nvcc at build time) and a device
   and driver answer. Tests may install another table for a device (the
   host emulation of tests/c/cuda_emul.h). */
#include "backend.h"

static const backend *installed[2];

static const char NO_CUDA[] = "this lacos was built without CUDA support (no nvcc at build time)";

void backend_install(int device, const backend *be) {
  if (device == LACOS_CPU || device == LACOS_CUDA) installed[device] = be;
}

const backend *backend_table(int device) {
  if (device != LACOS_CPU && device != LACOS_CUDA) return NULL;
  if (installed[device]) return installed[device];
  if (device == LACOS_CPU) return backend_cpu();
#ifdef LACOS_HAVE_CUDA
  return backend_cuda();
#else
  return NULL;
#endif
}

int backend_available(int device, char *why, size_t n) {
  const backend *be = backend_table(device);
  if (!be) {
    if (why && n) snprintf(why, n, "%s", device == LACOS_CUDA ? NO_CUDA : "unknown device");
    return 0;
  }
  return be->available(why, n);
}

int backend_get(const backend **out, int device) {
  *out = NULL;
  if (device != LACOS_CPU && device != LACOS_CUDA) return fail(LACOS_EINVAL, "unknown device %d (cpu or cuda)", device);
  char why[400];
  if (!backend_available(device, why, sizeof why))
    return fail(LACOS_EDEVICE, "device %s requested, but %s", device == LACOS_CUDA ? "cuda" : "cpu", why);
  *out = backend_table(device);
  return LACOS_OK;
}

int workspace_reserve(const backend *be, workspace *w, size_t bytes, const char *what) {
  if (w->bytes >= bytes) return LACOS_OK;
  workspace_free(be, w);
  TRY(be->alloc(&w->p, bytes, what));
  w->bytes = bytes;
  return LACOS_OK;
}

void workspace_free(const backend *be, workspace *w) {
  if (w->p) be->free(w->p, w->bytes);
  w->p = NULL;
  w->bytes = 0;
}

int arena_take(arena *a, void *out, size_t bytes, const char *what) {
  size_t need = arena_round(bytes);
  *(void **)out = NULL;
  if (a->used + need > a->bytes)
    return fail(LACOS_ELIMIT, "%s: the workspace of %.1f MiB is full (%.1f MiB used, %.1f MiB asked)", what,
                a->bytes / 1048576.0, a->used / 1048576.0, bytes / 1048576.0);
  *(void **)out = a->p + a->used;
  a->used += need;
  return LACOS_OK;
}

/* lacos.h: a device's free memory within the engine's soft limit. */
double lacos_memory_available(int device) {
  double avail = 0;
  if (device == LACOS_CUDA) {   /* the GPU's free memory, when there is one (quietly 0 otherwise) */
    const backend *be = backend_table(device);
    double fr = 0;
    if (be && be->available(NULL, 0) && be->info(NULL, 0, NULL, NULL, NULL, &fr, NULL) == LACOS_OK) avail = fr;
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
    double room = lacos_memory_headroom(NULL);   /* ulimit -v and the cgroup's limit (system.c) */
    if (room > 0 && (avail == 0 || room < avail)) avail = room;
  }
  return mem_limit_left(device, avail);
}
