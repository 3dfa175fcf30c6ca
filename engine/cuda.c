/* cuda.c: the public face of the CUDA backend (lacos.h's cuda section):
   whether it is there, what the device is, and the memory planner's check.
   Everything else reaches the GPU through device.h. */
#include "device.h"
#include "comm.h"

int lacos_cuda_compiled(void) {
#ifdef LACOS_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

int lacos_cuda_available(char *why, int cap) {
  char buf[400];
  int ok = cuda_available(buf, sizeof buf);
  if (why && cap > 0) snprintf(why, (size_t)cap, "%s", ok ? "" : buf);
  return ok;
}

int lacos_cuda_info(char *name, int cap, int *compute_capability, int *multiprocessors, double *free_bytes,
                    double *total_bytes) {
  int major = 0, minor = 0;
  char buf[256];
  TRY(cuda_device_info(buf, sizeof buf, &major, &minor, multiprocessors, free_bytes, total_bytes));
  if (name && cap > 0) snprintf(name, (size_t)cap, "%s", buf);
  if (compute_capability) *compute_capability = major * 10 + minor;
  return LACOS_OK;
}

int lacos_cuda_check_fit(double bytes, const char *what) {
  char name[256];
  double free_b = 0, total_b = 0;
  TRY(cuda_device_info(name, sizeof name, NULL, NULL, NULL, &free_b, &total_b));
  if (bytes > free_b)
    return fail(LACOS_ELIMIT, "%s needs %.2f GiB of GPU memory, but %s has %.2f GiB free of %.2f GiB",
                what ? what : "this run", bytes / 1073741824.0, name, free_b / 1073741824.0, total_b / 1073741824.0);
  return LACOS_OK;
}

int lacos_cuda_synchronize(void) { return cuda_sync(); }

/* Which GPU this process uses: each rank of a job on a host takes its own
   (lacos.dist picks it from the local rank before the model loads). */
int lacos_cuda_device_count(void) { return cuda_device_count(); }
int lacos_cuda_select(int index) { return cuda_select_device(index); }
int lacos_cuda_selected(void) { return cuda_selected_device(); }
