/* cublaslt.cu: cuBLASLt, opened with dlopen on the first GEMM instead of
   being linked: linking its 541 MB costs every lacos process about 75 ms at
   start-up (measured on the build machine), GPU or not. Its workspace is
   32 MiB, the size llm.c found Hopper needs (llmc/cublas_common.h). */
#include "common.cuh"
#include <dlfcn.h>
#include <pthread.h>

static lt_api lt;
static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static int lt_state;   /* 0 untried, 1 ready, -1 failed */
static char lt_error[600];

extern "C" int cublas_fail(cublasStatus_t s, const char *call, const char *file, int line) {
  const char *text = lt.GetStatusString ? lt.GetStatusString(s) : "cuBLAS error";
  return fail(LACOS_EDEVICE, "%s:%d: %s: %s (status %d)", file, line, call, text, (int)s);
}

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
  if (cuda_alloc(&lt.workspace, lt.workspace_bytes, "cuBLASLt workspace")) {
    snprintf(lt_error, sizeof lt_error, "%s", lacos_last_error());
    return -1;
  }
  return 1;
}

int lt_get(const lt_api **out) {
  *out = NULL;
  TRY(cuda_init());
  pthread_mutex_lock(&lt_lock);
  if (lt_state == 0) lt_state = lt_open();
  int st = lt_state;
  pthread_mutex_unlock(&lt_lock);
  if (st < 0) return fail(LACOS_EDEVICE, "%s", lt_error);
  *out = &lt;
  return LACOS_OK;
}
