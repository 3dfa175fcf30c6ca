/* device.cu: device discovery, the compute stream, cuBLASLt and errors.

   One device (0) and one compute stream: every kernel, copy and GEMM goes
   on it in order, so results never need events. The CUDA runtime is linked
   statically (nvcc's default) and finds the driver when first called; a
   machine without a driver or GPU gets "no CUDA device: <CUDA's reason>".
   cuBLASLt (541 MB) is opened with dlopen on the first GEMM instead of being
   linked: linking it costs every lacos process about 75 ms at start-up
   (measured on the build machine), GPU or not. Its workspace is 32 MiB, the
   size llm.c found Hopper needs (llmc/cublas_common.h). */
#include "common.cuh"
#include "../engine/comm.h"
#include <dlfcn.h>
#include <pthread.h>

static lt_api lt;
static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static int lt_state;   /* 0 untried, 1 ready, -1 failed */
static char lt_error[600];

extern "C" int cuda_fail(cudaError_t e, const char *call, const char *file, int line) {
  return fail(LACOS_EDEVICE, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(e), cudaGetErrorName(e));
}

extern "C" int cublas_fail(cublasStatus_t s, const char *call, const char *file, int line) {
  const char *text = lt.GetStatusString ? lt.GetStatusString(s) : "cuBLAS error";
  return fail(LACOS_EDEVICE, "%s:%d: %s: %s (status %d)", file, line, call, text, (int)s);
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

/* ---- cuBLASLt ---- */

#define LACOS_STR2(x) #x
#define LACOS_STR(x) LACOS_STR2(x)
#ifndef LACOS_CUDA_LIBDIR
#define LACOS_CUDA_LIBDIR "/usr/local/cuda/lib64"
#endif


static int lt_open(void) {
  const char *names[] = {
    LACOS_CUDA_LIBDIR "/libcublasLt.so." LACOS_STR(CUBLAS_VER_MAJOR),   /* the toolkit we were built with */
    "libcublasLt.so." LACOS_STR(CUBLAS_VER_MAJOR),                      /* the loader's search path */
  };
  void *lib = NULL;
  const char *err = "";
  for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++) {
    lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) err = dlerror();
  }
  if (!lib) {
    snprintf(lt_error, sizeof lt_error, "cannot load cuBLASLt (libcublasLt.so.%d): %s", CUBLAS_VER_MAJOR, err);
    return -1;
  }
#define LT_SYM(field, sym) \
  if (!(lt.field = (decltype(lt.field))dlsym(lib, #sym))) { \
    snprintf(lt_error, sizeof lt_error, "cuBLASLt lacks %s", #sym); return -1; }
  LT_SYM(MatmulDescCreate, cublasLtMatmulDescCreate)
  LT_SYM(MatmulDescDestroy, cublasLtMatmulDescDestroy)
  LT_SYM(MatmulDescSetAttribute, cublasLtMatmulDescSetAttribute)
  LT_SYM(MatrixLayoutCreate, cublasLtMatrixLayoutCreate)
  LT_SYM(MatrixLayoutSetAttribute, cublasLtMatrixLayoutSetAttribute)
  LT_SYM(MatrixLayoutDestroy, cublasLtMatrixLayoutDestroy)
  LT_SYM(MatmulPreferenceCreate, cublasLtMatmulPreferenceCreate)
  LT_SYM(MatmulPreferenceDestroy, cublasLtMatmulPreferenceDestroy)
  LT_SYM(MatmulPreferenceSetAttribute, cublasLtMatmulPreferenceSetAttribute)
  LT_SYM(MatmulAlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic)
  LT_SYM(Matmul, cublasLtMatmul)
  LT_SYM(GetStatusString, cublasLtGetStatusString)
  decltype(&cublasLtCreate) create;
  if (!(create = (decltype(create))dlsym(lib, "cublasLtCreate"))) {
    snprintf(lt_error, sizeof lt_error, "cuBLASLt lacks cublasLtCreate");
    return -1;
  }
#undef LT_SYM
  cublasStatus_t s = create(&lt.handle);
  if (s != CUBLAS_STATUS_SUCCESS) {
    snprintf(lt_error, sizeof lt_error, "cublasLtCreate: %s", lt.GetStatusString(s));
    return -1;
  }
  lt.workspace_bytes = 32u << 20;
  lt.workspace = dev_alloc(lt.workspace_bytes, "cuBLASLt workspace");
  if (!lt.workspace) {
    snprintf(lt_error, sizeof lt_error, "%s", lacos_last_error());
    return -1;
  }
  return 1;
}

const lt_api *lt_get(void) {
  if (cuda_init()) return NULL;
  pthread_mutex_lock(&lt_lock);
  if (lt_state == 0) lt_state = lt_open();
  int st = lt_state;
  pthread_mutex_unlock(&lt_lock);
  if (st < 0) { fail(LACOS_EDEVICE, "%s", lt_error); return NULL; }
  return &lt;
}
