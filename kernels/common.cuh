/* common.cuh: what every file of kernels/ shares: the engine's C
   declarations, error checks that report through fail() (never abort), the
   compute stream and cuBLASLt handle of device.cu, launch sizes, warp and
   block reductions, and a device copy of engine/cpu/fastmath.h's exp.

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
#include "../engine/device.h"

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

/* ---- device.cu's state (valid after cuda_init) ---- */

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
/* Loads cuBLASLt and creates the handle and workspace once; NULL with a last
   error naming the library when it cannot. */
const lt_api *lt_get(void);

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

/* ---- engine/cpu/fastmath.h on the device (same constants, same steps) ---- */

__device__ inline float fast_expf_dev(float x0) {
  float x = x0;
  if (x < -87.33654f) x = -87.33654f;
  if (x > 88.72283f) x = 88.72283f;
  float n = rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int e = (int)n + 127;
  float scale = __int_as_float(e << 23);
  float res = p * scale;
  return x0 < -87.33654f ? 0.0f : res;
}

__device__ inline float gelu_dev(float x) {
  float u = 0.79788456f * x * (1.0f + 0.044715f * x * x);
  return x / (1.0f + fast_expf_dev(-2.0f * u));
}

/* ---- engine/random.c on the device ---- */

__device__ inline uint64_t rng_u64_dev(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + counter * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ inline double rng_uniform_dev(uint64_t seed, uint64_t counter) {
  return (double)(rng_u64_dev(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}
#endif
