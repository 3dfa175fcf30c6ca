/* cuda.c: the public face of the CUDA backend (lacos.h's cuda section):
   whether it is there, what the device is, and the memory planner's check.
   Everything else reaches the GPU through its backend table (backend.h). */
#include "backend.h"

int lacos_cuda_compiled(void) {
#ifdef LACOS_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

int lacos_cuda_available(char *why, int cap) {
  char buf[400];
  int ok = backend_available(LACOS_CUDA, buf, sizeof buf);
  if (why && cap > 0) snprintf(why, (size_t)cap, "%s", ok ? "" : buf);
  return ok;
}

static int cuda_backend(const backend **be) {
  char why[400];
  if (!backend_available(LACOS_CUDA, why, sizeof why)) return fail(LACOS_EDEVICE, "%s", why);
  return backend_get(be, LACOS_CUDA);
}

int lacos_cuda_info(char *name, int cap, int *compute_capability, int *multiprocessors, double *free_bytes,
                    double *total_bytes) {
  const backend *be;
  TRY(cuda_backend(&be));
  int major = 0, minor = 0;
  char buf[256];
  TRY(be->info(buf, sizeof buf, &major, &minor, multiprocessors, free_bytes, total_bytes));
  if (name && cap > 0) snprintf(name, (size_t)cap, "%s", buf);
  if (compute_capability) *compute_capability = major * 10 + minor;
  return LACOS_OK;
}

int lacos_cuda_check_fit(double bytes, const char *what) {
  const backend *be;
  TRY(cuda_backend(&be));
  char name[256];
  double free_b = 0, total_b = 0;
  TRY(be->info(name, sizeof name, NULL, NULL, NULL, &free_b, &total_b));
  if (bytes > free_b)
    return fail(LACOS_ELIMIT, "%s needs %.2f GiB of GPU memory, but %s has %.2f GiB free of %.2f GiB",
                what ? what : "this run", bytes / 1073741824.0, name, free_b / 1073741824.0, total_b / 1073741824.0);
  return LACOS_OK;
}

int lacos_cuda_synchronize(void) {
  const backend *be;
  TRY(cuda_backend(&be));
  return be->sync();
}

/* Which GPU this process uses: each rank of a job on a host takes its own
   (lacos.dist picks it from the local rank before the model loads). A build
   without CUDA sees no device. */
int lacos_cuda_device_count(void) {
  const backend *be = backend_table(LACOS_CUDA);
  return be ? be->device_count() : 0;
}

int lacos_cuda_select(int index) {
  const backend *be;
  TRY(cuda_backend(&be));
  return be->select(index);
}

int lacos_cuda_selected(void) {
  const backend *be = backend_table(LACOS_CUDA);
  return be ? be->selected() : 0;
}
