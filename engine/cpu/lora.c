/* lora.c: LoRA's layer math on the CPU, the twin of kernels/lora.cu:
   y += scaling·B·A·dropout(x) (peft/tuners/lora/layer.py, Linear.forward)
   and its backward into dA, dB and dx. Dropout keeps element i of a call
   with math/rng.h's dropout_scale, a function of (seed, call, i), so the
   backward pass and the other device regenerate the same mask. */
#include "layers.h"
#include "../math/rng.h"

/* xd (n) = x · keep(i) */
static void dropout(float *xd, const float *x, int64_t n, const lora_hyper *hp, uint64_t call) {
  for (int64_t i = 0; i < n; i++) xd[i] = x[i] * dropout_scale(hp->seed, call, (uint64_t)i, hp->dropout);
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
int lora_forward(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 uint64_t call, float *xd) {
  int r = hp->r;
  const float *xin = x;
  if (hp->dropout > 0 && call) {
    dropout(xd, x, N * sl->in, hp, call);
    xin = xd;
  }
  threads_count();
  sgemm_nt(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f);
  sgemm_nt(y, h, sl->B, (int)N, sl->out, r, (float)hp->scaling, 1.0f);
  return LACOS_OK;
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
int lora_backward(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, uint64_t call, float *xd) {
  int r = hp->r;
  float sc = (float)hp->scaling;
  threads_count();
  sgemm_tn(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f);          /* dB += s·dyᵀ·h */
  sgemm_nn(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f);          /* dh = s·dy·B */
  bool drop = hp->dropout > 0 && call;
  const float *xin = x;
  if (drop) {
    dropout(xd, x, N * sl->in, hp, call);
    xin = xd;
  }
  sgemm_tn(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f);       /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!drop) sgemm_nn(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    else {
      sgemm_nn(xd, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f);
      for (int64_t i = 0; i < N * sl->in; i++) dx[i] += xd[i] * dropout_scale(hp->seed, call, (uint64_t)i, hp->dropout);
    }
  }
  return LACOS_OK;
}
