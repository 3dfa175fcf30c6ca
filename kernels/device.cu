/* device.cu: device discovery, the compute stream and CUDA errors.

   One device (0, or the one a rank of a job selected) and one compute
   stream: every kernel, copy and GEMM goes on it in order, so results never
   need events. The CUDA runtime is linked
   statically (nvcc's default) and finds the driver when first called; a
   machine without a driver or GPU gets "no CUDA device: <CUDA's reason>". */
#include "common.cuh"
#include <pthread.h>

extern "C" int cuda_fail(cudaError_t e, const char *call, const char *file, int line) {
  return fail(LACOS_EDEVICE, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(e), cudaGetErrorName(e));
}


/* ---- discovery ---- */

extern "C" int cuda_available(char *why, size_t n) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) snprintf(why, n, "no CUDA device: %s", cudaGetErrorString(e));
    cudaGetLastError();   /* clear the sticky-free error so later calls start clean */
    return 0;
  }
  if (count < 1) {
    if (why) snprintf(why, n, "no CUDA device: the driver reports none");
    return 0;
  }
  if (why && n) why[0] = 0;
  return 1;
}

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_done, init_status;
static char init_error[512];
static cudaStream_t stream;
static cudaDeviceProp props;
/* the GPU this process uses: 0 unless a rank of a job chose its own
   (cuda_select_device, before the first use) */
static int device_index;

cudaStream_t cuda_stream(void) { return stream; }

extern "C" int cuda_init(void) {
  pthread_mutex_lock(&init_lock);
  if (!init_done) {
    init_done = 1;
    char why[400];
    cudaError_t e;
    if (!cuda_available(why, sizeof why)) {
      init_status = LACOS_EDEVICE;
      snprintf(init_error, sizeof init_error, "%s", why);
    } else if ((e = cudaSetDevice(device_index)) != cudaSuccess ||
               (e = cudaGetDeviceProperties(&props, device_index)) != cudaSuccess ||
               (e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess) {
      init_status = LACOS_EDEVICE;
      snprintf(init_error, sizeof init_error, "cannot start CUDA device %d: %s", device_index, cudaGetErrorString(e));
    }
  }
  int s = init_status;
  pthread_mutex_unlock(&init_lock);
  if (s) return fail(s, "%s", init_error);
  return LACOS_OK;
}

extern "C" int cuda_device_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                                double *total_bytes) {
  TRY(cuda_init());
  size_t fr = 0, tot = 0;
  CUDA_CHECK(cudaMemGetInfo(&fr, &tot));
  if (name) snprintf(name, n, "%s", props.name);
  if (cc_major) *cc_major = props.major;
  if (cc_minor) *cc_minor = props.minor;
  if (sms) *sms = props.multiProcessorCount;
  if (free_bytes) *free_bytes = (double)fr;
  if (total_bytes) *total_bytes = (double)tot;
  return LACOS_OK;
}

extern "C" int cuda_device_count(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) { cudaGetLastError(); return 0; }
  return count;
}

extern "C" int cuda_select_device(int index) {
  int count = cuda_device_count();
  pthread_mutex_lock(&init_lock);
  int done = init_done, current = device_index;
  if (!done && index >= 0 && index < count) device_index = index;
  pthread_mutex_unlock(&init_lock);
  if (done && current != index)
    return fail(LACOS_ESTATE, "CUDA device %d is already in use by this process; choose the device before the first "
                              "model goes to the GPU", current);
  if (index < 0 || index >= count) return fail(LACOS_EDEVICE, "there is no CUDA device %d (%d visible)", index, count);
  return LACOS_OK;
}

extern "C" int cuda_selected_device(void) { return device_index; }

extern "C" void *cuda_stream_handle(void) { return (void *)stream; }

extern "C" int cuda_stream_poll(void) {
  cudaError_t e = cudaStreamQuery(stream);
  if (e == cudaSuccess) return 1;
  if (e == cudaErrorNotReady) return 0;
  return -cuda_fail(e, "cudaStreamQuery", __FILE__, __LINE__);
}

extern "C" int cuda_sync(void) {
  TRY(cuda_init());
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaGetLastError());
  return LACOS_OK;
}
