/* gelu.c: the GELU of a family (math/gelu.h: BLOOM's tanh approximation
   with the derivative transformers' bloom_gelu_back uses, or BERT's exact
   erf form), the per-element formulas shared with kernels/gelu.cu.
   The kind is tested once, outside the loops: a test inside (gelu_value)
   puts libm's erff into BLOOM's loop, which then no longer vectorises
   (it cost a fifth of a bloom-560m int8 encode). */
#include "layers.h"
#include "../math/gelu.h"

int gelu_forward(float *out, const float *inp, int64_t n, int kind) {
  if (kind == GELU_ERF) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = gelu_erf_f(inp[i]);
  } else {
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = gelu_f(inp[i]);
  }
  return LACOS_OK;
}

// dinp (n) += gelu'(inp) · dout
int gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  if (kind == GELU_ERF) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dinp[i] += gelu_erf_grad_f(inp[i]) * dout[i];
  } else {
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dinp[i] += gelu_grad_f(inp[i]) * dout[i];
  }
  return LACOS_OK;
}
