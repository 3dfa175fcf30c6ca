/* gelu.cu: twin of engine/cpu/gelu.c — the GELU of a family (BLOOM's tanh
   approximation or BERT's exact erf form) through math/gelu.h's formulas,
   the CPU's own, so both devices agree. */
#include "common.cuh"
#include "../engine/math/gelu.h"

__global__ void gelu_forward_kernel(float *out, const float *inp, int64_t n, int kind) {
  GRID_STRIDE(i, n) out[i] = gelu_value(kind, inp[i]);
}

// dinp (n) += gelu'(inp) · dout
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  GRID_STRIDE(i, n) dinp[i] += gelu_grad(kind, inp[i]) * dout[i];
}

extern "C" int gelu_forward_cuda(float *out, const float *inp, int64_t n, int kind) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  gelu_forward_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(out, inp, n, kind);
  LAUNCH_CHECK("gelu_forward_kernel");
  return LACOS_OK;
}

extern "C" int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  gelu_backward_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(dinp, inp, dout, n, kind);
  LAUNCH_CHECK("gelu_backward_kernel");
  return LACOS_OK;
}
