/* common.cuh: what every file of kernels/ shares: the backend interface
   and the shared per-element math (engine/math/, compiled here for the
   device), error checks that report through fail() (never abort), the
   compute stream and cuBLASLt handle of device.cu, launch sizes, warp and
   block reductions, and the entries of the CUDA backend table
   (kernels/backend.cu) that each file defines.

   Kernels are compiled with -fmad=false (see the Makefile): like the CPU
   engine (ISO C, no float contraction) every product and sum is rounded as
   written, so elementwise kernels give the CPU's bits wherever the order of
   operations is the same. */
#ifndef LACOS_KERNELS_COMMON_CUH
#define LACOS_KERNELS_COMMON_CUH
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
#include <float.h>
#include <stdint.h>
#include "../engine/backend.h"
#include "../engine/math/fastexp.h"
#include "../engine/math/rng.h"
#include "../engine/math/pooling_weights.h"

/* ---- errors ---- */

/* fail(LACOS_EDEVICE, "<file>:<line>: <call>: <CUDA error string> (<name>)"). */
extern "C" int cuda_fail(cudaError_t e, const char *call, const char *file, int line);
extern "C" int cublas_fail(cublasStatus_t s, const char *call, const char *file, int line);

#define CUDA_CHECK(call) do { cudaError_t e_ = (call); \
  if (e_ != cudaSuccess) return cuda_fail(e_, #call, __FILE__, __LINE__); } while (0)
#define CUBLAS_CHECK(call) do { cublasStatus_t s_ = (call); \
  if (s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(s_, #call, __FILE__, __LINE__); } while (0)
/* After a <<<>>> launch: a bad configuration shows here, a fault in the
   kernel at the next synchronising call (cuda_sync, a download). */
#define LAUNCH_CHECK(name) do { cudaError_t e_ = cudaGetLastError(); \
  if (e_ != cudaSuccess) return cuda_fail(e_, "launch of " name, __FILE__, __LINE__); } while (0)

/* ---- device.cu's stream and cublaslt.cu's handle (valid after cuda_init) ---- */

cudaStream_t cuda_stream(void);

/* cuBLASLt is opened with dlopen on first use (so the engine starts as fast
   without it and runs on machines that lack it); these are its entry points. */
struct lt_api {
  cublasLtHandle_t handle;
  void *workspace;
  size_t workspace_bytes;
  decltype(&cublasLtMatmulDescCreate) MatmulDescCreate;
  decltype(&cublasLtMatmulDescDestroy) MatmulDescDestroy;
  decltype(&cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
  decltype(&cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
  decltype(&cublasLtMatrixLayoutSetAttribute) MatrixLayoutSetAttribute;
  decltype(&cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
  decltype(&cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
  decltype(&cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute;
  decltype(&cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
  decltype(&cublasLtMatmul) Matmul;
  decltype(&cublasLtGetStatusString) GetStatusString;
};
/* Loads cuBLASLt and creates the handle and workspace once; an error naming
   the library when it cannot. */
int lt_get(const lt_api **out);

/* ---- launches ---- */

enum { THREADS = 256 };
/* Blocks for a grid-stride loop over n elements. */
static inline unsigned grid_for(int64_t n, int threads = THREADS) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 16) b = 65535 * 16;
  return (unsigned)b;
}
#define GRID_STRIDE(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ---- */

template <typename T> __device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) { float u = __shfl_xor_sync(0xffffffffu, v, o); v = u > v ? u : v; }
  return v;
}
/* Every thread gets the block's sum; red holds 32 values of shared memory.
   Ends with a barrier, so red can be reused at once. */
template <typename T> __device__ inline T block_sum(T v, T *red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T s = lane < nw ? red[lane] : (T)0;
  s = warp_sum(s);
  __syncthreads();
  return s;
}
__device__ inline float block_max(float v, float *red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = lane < nw ? red[lane] : 0.0f;
  s = warp_max(s);
  __syncthreads();
  return s;
}

/* ---- the entries of the table (kernels/backend.cu) ---- */

extern "C" {
/* device.cu */
int cuda_available(char *why, size_t n);
int cuda_init(void);
int cuda_device_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                     double *total_bytes);
int cuda_sync(void);
int cuda_device_count(void);
int cuda_select_device(int index);
int cuda_selected_device(void);
void *cuda_stream_handle(void);
int cuda_stream_poll(void);
/* memory.cu */
int cuda_alloc(void **p, size_t bytes, const char *what);
void cuda_free(void *p, size_t bytes);
int cuda_upload(void *dst, const void *src, size_t bytes);
int cuda_download(void *dst, const void *src, size_t bytes);
int cuda_copy(void *dst, const void *src, size_t bytes);
int cuda_zero(void *p, size_t bytes);
/* layernorm.cu, gelu.cu, attention.cu, pooling.cu, residual.cu, embedding.cu */
int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int64_t N, int C, float eps);
int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int64_t N, int C);
int gelu_forward_cuda(float *out, const float *inp, int64_t n, int kind);
int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n, int kind);
int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask, const float *slopes,
                           bool causal, int B, int T, int C, int NH, scratch ws);
int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                            const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws);
size_t attention_scratch_cuda(int B, int T, int C, int NH, bool probs, bool backward);
int pooling_forward_cuda(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode, int skip);
int pooling_backward_cuda(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B, int T, int C,
                          int mode, int skip);
int residual_forward_cuda(float *out, const float *a, const float *b, int64_t n);
int add_inplace_cuda(float *acc, const float *x, int64_t n);
int embedding_forward_cuda(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                           const float *row_scale, int V, int C);
/* linear.cu */
int quantize_rows_cuda(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold, int *cols,
                       int *ncols, scratch ws);
int linear_forward_cuda(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws);
int linear_backward_input_cuda(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                               scratch ws);
size_t linear_scratch_cuda(int64_t N, int in, int out, int kind, bool outliers, bool backward, bool fast_int8);
int gemm_s8_cuda(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
                 int64_t ldb, int32_t *c, int64_t ldc, scratch ws);
size_t gemm_s8_scratch_cuda(int64_t M, int64_t N, int64_t K);
int gemm_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
              const void *b, int ldb, float beta, float *c, int ldc);
int gemm_batched_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                      int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                      int64_t stride_c, int batch);
/* lora.cu */
int lora_forward_cuda(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                      const lora_dropout *drop, float *xd);
int lora_backward_cuda(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                       const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd);
/* optim.cu */
int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
                    uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, scratch ws,
                    double *nonfinite);
int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems, scratch ws);
size_t optim_scratch_cuda(int64_t nitems);
int scale_cuda(float *x, int64_t n, float k);
}

/* Row-major f32 products on the device (linear.cu's wrappers of gemm_cuda). */
static inline int sgemm_nt_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  return gemm_cuda(LACOS_F32, false, true, M, N, K, alpha, a, K, b, K, beta, c, N);
}
static inline int sgemm_nn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  return gemm_cuda(LACOS_F32, false, false, M, N, K, alpha, a, K, b, N, beta, c, N);
}
static inline int sgemm_tn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  return gemm_cuda(LACOS_F32, true, false, M, N, K, alpha, a, M, b, N, beta, c, N);   /* A (K,M)ᵀ · B (K,N) */
}

#endif
