/* lora.cu: twin of engine/cpu/lora.c — y += scaling·B·A·drop(x), and its
   backward into dA, dB and dx — with the CPU's dropout masks: element i of
   a call keeps x with math/rng.h's dropout_scale, a function of
   (seed, call, i). */
#include "common.cuh"

// xd (n) = x · keep(i), or dx (n) += xd · keep(i) with accumulate
__global__ void dropout_kernel(float *out, const float *x, int64_t n, uint64_t seed, uint64_t call, double p,
                               bool accumulate) {
  GRID_STRIDE(i, n) {
    float k = dropout_scale(seed, call, (uint64_t)i, p);
    if (accumulate) out[i] += x[i] * k;
    else out[i] = x[i] * k;
  }
}

static int dropout(float *out, const float *x, int64_t n, const lora_hyper *hp, uint64_t call, bool accumulate) {
  if (n == 0) return LACOS_OK;
  dropout_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(out, x, n, hp->seed, call, hp->dropout, accumulate);
  LAUNCH_CHECK("dropout_kernel");
  return LACOS_OK;
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
extern "C" int lora_forward_cuda(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h,
                                 int64_t N, uint64_t call, float *xd) {
  int r = hp->r;
  TRY(cuda_init());
  const float *xin = x;
  if (hp->dropout > 0 && call) {
    TRY(dropout(xd, x, N * sl->in, hp, call, false));
    xin = xd;
  }
  TRY(sgemm_nt_cuda(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f));
  return sgemm_nt_cuda(y, h, sl->B, (int)N, sl->out, r, (float)hp->scaling, 1.0f);
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
extern "C" int lora_backward_cuda(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy,
                                  const float *x, const float *h, float *dh, int64_t N, uint64_t call, float *xd) {
  int r = hp->r;
  float sc = (float)hp->scaling;
  TRY(cuda_init());
  TRY(sgemm_tn_cuda(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f));     /* dB += s·dyᵀ·h */
  TRY(sgemm_nn_cuda(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f));     /* dh = s·dy·B */
  bool drop = hp->dropout > 0 && call;
  const float *xin = x;
  if (drop) {
    TRY(dropout(xd, x, N * sl->in, hp, call, false));
    xin = xd;
  }
  TRY(sgemm_tn_cuda(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f));   /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!drop) return sgemm_nn_cuda(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    TRY(sgemm_nn_cuda(xd, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f));
    TRY(dropout(dx, xd, N * sl->in, hp, call, true));
  }
  return LACOS_OK;
}
