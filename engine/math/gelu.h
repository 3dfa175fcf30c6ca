/* gelu.h: the two GELUs lacos' families use, value and derivative, shared
   by engine/cpu/gelu.c and kernels/gelu.cu:
   - GELU_TANH: BLOOM's tanh approximation (math/fastexp.h's gelu_f and the
     derivative of transformers' bloom_gelu_back);
   - GELU_ERF: the exact GELU of BERT (transformers' "gelu", torch's
     nn.functional.gelu without approximation), 0.5·x·(1 + erf(x/√2)), whose
     derivative is Φ(x) + x·φ(x). */
#ifndef LACOS_MATH_GELU_H
#define LACOS_MATH_GELU_H
#include "fastexp.h"
#include <math.h>

enum { GELU_TANH = 0, GELU_ERF = 1 };

LACOS_HD float gelu_erf_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

LACOS_HD float gelu_erf_grad_f(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

LACOS_HD float gelu_value(int kind, float x) { return kind == GELU_ERF ? gelu_erf_f(x) : gelu_f(x); }
LACOS_HD float gelu_grad(int kind, float x) { return kind == GELU_ERF ? gelu_erf_grad_f(x) : gelu_grad_f(x); }
#endif
