/* residual.cu: twin of engine/cpu/residual.c, the residual additions. */
#include "common.cuh"

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, int64_t n) {
  GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void add_inplace_kernel(float *acc, const float *x, int64_t n) {
  GRID_STRIDE(i, n) acc[i] += x[i];
}

extern "C" int residual_forward_cuda(float *out, const float *a, const float *b, int64_t n) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  residual_forward_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(out, a, b, n);
  LAUNCH_CHECK("residual_forward_kernel");
  return LACOS_OK;
}

extern "C" int add_inplace_cuda(float *acc, const float *x, int64_t n) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  add_inplace_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(acc, x, n);
  LAUNCH_CHECK("add_inplace_kernel");
  return LACOS_OK;
}
