/* gelu.cu: twin of engine/cpu/gelu.c — BLOOM's tanh-approximated GELU and
   the derivative of transformers' bloom_gelu_back, math/fastexp.h's
   formulas (the CPU's own), so both devices agree. */
#include "common.cuh"

__global__ void gelu_forward_kernel(float *out, const float *inp, int64_t n) {
  GRID_STRIDE(i, n) out[i] = gelu_f(inp[i]);
}

// dinp (n) += gelu'(inp) · dout
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, int64_t n) {
  GRID_STRIDE(i, n) dinp[i] += gelu_grad_f(inp[i]) * dout[i];
}

extern "C" int gelu_forward_cuda(float *out, const float *inp, int64_t n) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  gelu_forward_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(out, inp, n);
  LAUNCH_CHECK("gelu_forward_kernel");
  return LACOS_OK;
}

extern "C" int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  gelu_backward_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(dinp, inp, dout, n);
  LAUNCH_CHECK("gelu_backward_kernel");
  return LACOS_OK;
}
