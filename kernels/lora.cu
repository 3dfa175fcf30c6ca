/* lora.cu: twin of lora.c's layer functions — y += scaling·B·A·drop(x),
   and its backward into dA, dB and dx — with the same dropout masks as the
   CPU: element i of a call keeps x with the counter-based generator of
   engine/random.c (rng_uniform(seed ^ call·φ, i) >= p), scaled by 1/(1−p). */
#include "common.cuh"

// xd (n) = x · keep(i) (scale 1/(1-p)), or dx (n) += xd · keep(i) with accumulate
__global__ void dropout_kernel(float *out, const float *x, int64_t n, uint64_t seed, uint64_t call, double p,
                               float keep_scale, bool accumulate) {
  GRID_STRIDE(i, n) {
    float k = rng_uniform_dev(seed ^ (call * 0x9E3779B97F4A7C15ull), (uint64_t)i) < p ? 0.0f : keep_scale;
    if (accumulate) out[i] += x[i] * k;
    else out[i] = x[i] * k;
  }
}

static int dropout(float *out, const float *x, int64_t n, const lora_state *s, uint64_t call, bool accumulate) {
  if (n == 0) return LACOS_OK;
  dropout_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(out, x, n, s->seed, call, s->dropout,
                                                             (float)(1.0 / (1.0 - s->dropout)), accumulate);
  LAUNCH_CHECK("dropout_kernel");
  return LACOS_OK;
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
extern "C" int lora_forward_cuda(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h,
                                 int64_t N, uint64_t dropout_call, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  TRY(cuda_init());
  const float *xin = x;
  if (s->dropout > 0 && dropout_call) {
    TRY(dropout(xd_scratch, x, N * sl->in, s, dropout_call, false));
    xin = xd_scratch;
  }
  TRY(sgemm_nt_cuda(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f));
  return sgemm_nt_cuda(y, h, sl->B, (int)N, sl->out, r, (float)s->scaling, 1.0f);
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
extern "C" int lora_backward_cuda(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy,
                                  const float *x, const float *h, float *dh, int64_t N, uint64_t dropout_call,
                                  float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  float sc = (float)s->scaling;
  TRY(cuda_init());
  TRY(sgemm_tn_cuda(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f));     /* dB += s·dyᵀ·h */
  TRY(sgemm_nn_cuda(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f));     /* dh = s·dy·B */
  bool drop = s->dropout > 0 && dropout_call;
  const float *xin = x;
  if (drop) {
    TRY(dropout(xd_scratch, x, N * sl->in, s, dropout_call, false));
    xin = xd_scratch;
  }
  TRY(sgemm_tn_cuda(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f));   /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!drop) return sgemm_nn_cuda(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    TRY(sgemm_nn_cuda(xd_scratch, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f));
    TRY(dropout(dx, xd_scratch, N * sl->in, s, dropout_call, true));
  }
  return LACOS_OK;
}
