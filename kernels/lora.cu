/* lora.cu: twin of engine/cpu/lora.c — y += scaling·B·A·drop(x), and its
   backward into dA, dB and dx — with the CPU's dropout masks: element k of
   row n keeps x with math/rng.h's dropout_scale at the counter
   dropout_counter gives for the row's key and token position. A slot may
   adapt a band of y's columns (col0, rows ld apart), as on the CPU. */
#include "common.cuh"

// xd (N,in) = x · keep, or dx (N,in) += xd · keep with accumulate
__global__ void dropout_kernel(float *out, const float *x, int64_t N, int in, lora_dropout d, uint64_t seed, double p,
                               bool accumulate) {
  GRID_STRIDE(i, N * in) {
    int64_t n = i / in, k = i % in, b = n / d.T, pos = n % d.T;
    uint64_t counter = dropout_counter(d.row_key[b], d.row_start[b], pos, in) + (uint64_t)k;
    float keep = dropout_scale(seed, d.call, counter, p);
    if (accumulate) out[i] += x[i] * keep;
    else out[i] = x[i] * keep;
  }
}

static int dropout(float *out, const float *x, int64_t N, int in, const lora_hyper *hp, const lora_dropout *d,
                   bool accumulate) {
  if (N * in == 0) return LACOS_OK;
  dropout_kernel<<<grid_for(N * in), THREADS, 0, cuda_stream()>>>(out, x, N, in, *d, hp->seed, hp->dropout, accumulate);
  LAUNCH_CHECK("dropout_kernel");
  return LACOS_OK;
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
extern "C" int lora_forward_cuda(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h,
                                 int64_t N, const lora_dropout *drop, float *xd) {
  int r = hp->r;
  TRY(cuda_init());
  const float *xin = x;
  if (hp->dropout > 0 && drop && drop->call) {
    TRY(dropout(xd, x, N, sl->in, hp, drop, false));
    xin = xd;
  }
  TRY(sgemm_nt_cuda(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f));
  int ld = sl->ld ? sl->ld : sl->out;
  return gemm_cuda(LACOS_F32, false, true, (int)N, sl->out, r, (float)hp->scaling, h, r, sl->B, r, 1.0f, y + sl->col0,
                   ld);
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
extern "C" int lora_backward_cuda(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy,
                                  const float *x, const float *h, float *dh, int64_t N, const lora_dropout *drop,
                                  float *xd) {
  int r = hp->r;
  float sc = (float)hp->scaling;
  TRY(cuda_init());
  int ld = sl->ld ? sl->ld : sl->out;
  const float *dyb = dy + sl->col0;   /* the slot's band (N,out), rows ld apart */
  TRY(gemm_cuda(LACOS_F32, true, false, sl->out, r, (int)N, sc, dyb, ld, h, r, 1.0f, sl->dB, r));    /* dB += s·dyᵀ·h */
  TRY(gemm_cuda(LACOS_F32, false, false, (int)N, r, sl->out, sc, dyb, ld, sl->B, r, 0.0f, dh, r));   /* dh = s·dy·B */
  bool dropping = hp->dropout > 0 && drop && drop->call;
  const float *xin = x;
  if (dropping) {
    TRY(dropout(xd, x, N, sl->in, hp, drop, false));
    xin = xd;
  }
  TRY(sgemm_tn_cuda(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f));   /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!dropping) return sgemm_nn_cuda(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    TRY(sgemm_nn_cuda(xd, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f));
    TRY(dropout(dx, xd, N, sl->in, hp, drop, true));
  }
  return LACOS_OK;
}
