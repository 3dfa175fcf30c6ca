/* lora.cu: twin of lora.c's layer functions — y += scaling·B·A·drop(x),
   and its backward into dA, dB and dx — with the same dropout masks as the
   CPU: the element at counter i of a call (lora_dropout: the row's key and
   the token's position in its sentence) keeps x with the counter-based
   generator of engine/random.c (rng_uniform(seed ^ call·φ, i) >= p), scaled
   by 1/(1−p). */
#include "common.cuh"

// xd (N,in) = x · keep, or dx (N,in) += xd · keep with accumulate
__global__ void dropout_kernel(float *out, const float *x, int64_t N, int in, int T, const uint64_t *row_key,
                               const int32_t *row_start, uint64_t seed, uint64_t call, double p, float keep_scale,
                               bool accumulate) {
  GRID_STRIDE(i, N * in) {
    int64_t n = i / in, k = i % in, b = n / T, pos = n % T;
    uint64_t counter = (row_key[b] << 32) + (uint64_t)(pos - row_start[b]) * (uint64_t)in + (uint64_t)k;
    float keep = rng_uniform_dev(seed ^ (call * 0x9E3779B97F4A7C15ull), counter) < p ? 0.0f : keep_scale;
    if (accumulate) out[i] += x[i] * keep;
    else out[i] = x[i] * keep;
  }
}

static int dropout(float *out, const float *x, int64_t N, int in, const lora_state *s, const lora_dropout *d,
                   bool accumulate) {
  if (N * in == 0) return LACOS_OK;
  dropout_kernel<<<grid_for(N * in), THREADS, 0, cuda_stream()>>>(out, x, N, in, d->T, d->row_key, d->row_start, s->seed,
                                                                  d->call, s->dropout, (float)(1.0 / (1.0 - s->dropout)),
                                                                  accumulate);
  LAUNCH_CHECK("dropout_kernel");
  return LACOS_OK;
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
extern "C" int lora_forward_cuda(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h,
                                 int64_t N, const lora_dropout *drop, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  TRY(cuda_init());
  const float *xin = x;
  if (s->dropout > 0 && drop && drop->call) {
    TRY(dropout(xd_scratch, x, N, sl->in, s, drop, false));
    xin = xd_scratch;
  }
  TRY(sgemm_nt_cuda(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f));
  return sgemm_nt_cuda(y, h, sl->B, (int)N, sl->out, r, (float)s->scaling, 1.0f);
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
extern "C" int lora_backward_cuda(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy,
                                  const float *x, const float *h, float *dh, int64_t N, const lora_dropout *drop,
                                  float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  float sc = (float)s->scaling;
  TRY(cuda_init());
  TRY(sgemm_tn_cuda(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f));     /* dB += s·dyᵀ·h */
  TRY(sgemm_nn_cuda(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f));     /* dh = s·dy·B */
  bool dropping = s->dropout > 0 && drop && drop->call;
  const float *xin = x;
  if (dropping) {
    TRY(dropout(xd_scratch, x, N, sl->in, s, drop, false));
    xin = xd_scratch;
  }
  TRY(sgemm_tn_cuda(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f));   /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!dropping) return sgemm_nn_cuda(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    TRY(sgemm_nn_cuda(xd_scratch, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f));
    TRY(dropout(dx, xd_scratch, N, sl->in, s, drop, true));
  }
  return LACOS_OK;
}
