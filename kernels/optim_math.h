/* optim_math.h: the per-element arithmetic of engine/optim.c's update,
   written once for the CUDA kernel (kernels/optim.cu) and for host code
   that checks it (tests/c/cuda_emul.c runs it against optim.c itself).
   Every expression is optim.c's, in its order; with -fmad=false on the
   device and ISO C on the host nothing is contracted, so both give optim.c's
   bits. */
#ifndef LACOS_OPTIM_MATH_H
#define LACOS_OPTIM_MATH_H
#include <math.h>
#include <stdint.h>
#ifdef __CUDACC__
#define LACOS_HD __host__ __device__ static inline
#else
#define LACOS_HD static inline
#endif

/* Nearest code by binary search over the 255 code midpoints (mid[255] =
   +inf): optim.c's code_search, which its lookup table reproduces. NaN → 0. */
LACOS_HD unsigned optim_code_search(const float *mid, float x) {
  unsigned i = 0;
  i += mid[i + 127] < x ? 128u : 0u;
  i += mid[i + 63] < x ? 64u : 0u;
  i += mid[i + 31] < x ? 32u : 0u;
  i += mid[i + 15] < x ? 16u : 0u;
  i += mid[i + 7] < x ? 8u : 0u;
  i += mid[i + 3] < x ? 4u : 0u;
  i += mid[i + 1] < x ? 2u : 0u;
  i += mid[i] < x ? 1u : 0u;
  return i;
}

/* 8-bit step 1-2: dequantised moments updated; m = v = 0 for a non-finite
   gradient. Returns whether g was finite. qm, qv: map values of the codes. */
LACOS_HD int optim_adam8_moments(const optim_consts *k, float g, float qm, float qv, float am1, float am2, float *m,
                                 float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float vj = qv * am2;
  vj = vj * k->b2 + (k->omb2 * g0) * g0;
  float mj = qm * am1;
  mj = mj * k->b1 + k->omb1 * g0;
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  return fin;
}

/* 8-bit step 4-5: the parameter (untouched for a non-finite gradient). */
LACOS_HD float optim_adam8_param(const optim_consts *k, float p, float m, float v, int fin) {
  float pj = p + k->step_size * (m / (sqrtf(v) + k->eps_c2));
  if (k->decay_on) pj = pj * k->decay;
  return fin ? pj : p;
}

/* 8-bit step 6-7: codes for m and v against the block's new absmax values
   (nm1, nm2); momentum's code never flips sign. */
LACOS_HD void optim_adam8_codes(const float *map1, const float *mid1, const float *mid2, float m, float v, float nm1,
                                float nm2, uint8_t *c1, uint8_t *c2) {
  float inv1 = nm1 > 0.0f ? 1.0f / nm1 : 0.0f, inv2 = nm2 > 0.0f ? 1.0f / nm2 : 0.0f;
  unsigned q1 = nm1 > 0.0f ? optim_code_search(mid1, m * inv1) : 127u;
  if (signbit(map1[q1]) != signbit(m)) q1 = m > 0.0f ? q1 + 1 : q1 - 1;
  *c1 = (uint8_t)q1;
  *c2 = (uint8_t)(nm2 > 0.0f ? optim_code_search(mid2, v * inv2) : 0u);
}

/* f32 states of a small Adam8bit tensor (kOptimizer32bit2State). */
LACOS_HD int optim_adam32(const optim_consts *k, float *p, float g, float *m, float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float mj = *m * k->b1 + k->omb1 * g0;
  float vj = *v * k->b2 + k->omb2 * (g0 * g0);
  float pj = *p + k->step_size * (mj / (sqrtf(vj) + k->eps_c2));
  if (k->decay_on) pj = pj * k->decay;
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  *p = fin ? pj : *p;
  return fin;
}

/* torch.optim.AdamW, single-tensor path. */
LACOS_HD int optim_adamw(const optim_consts *k, float *p, float g, float *m, float *v) {
  int fin = isfinite(g);
  float g0 = fin ? g : 0.0f;
  float pj = *p;
  if (k->w_decay_on) pj = pj * k->w_decay;
  float mj = *m + k->w_omb1 * (g0 - *m);
  float vj = *v * k->w_b2 + (k->w_omb2 * g0) * g0;
  float denom = sqrtf(vj) / k->w_bc2_sqrt + k->w_eps;
  pj = pj + k->w_neg_step * (mj / denom);
  *m = fin ? mj : 0.0f;
  *v = fin ? vj : 0.0f;
  *p = fin ? pj : *p;
  return fin;
}
#endif
