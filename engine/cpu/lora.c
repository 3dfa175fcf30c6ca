/* lora.c: LoRA's layer math on the CPU, the twin of kernels/lora.cu:
   y += scaling·B·A·dropout(x) (peft/tuners/lora/layer.py, Linear.forward)
   and its backward into dA, dB and dx. Dropout keeps element k of row n
   with math/rng.h's dropout_scale at the counter dropout_counter gives for
   the row's key and token position, so the backward pass and the other
   device regenerate the same mask. A slot may adapt a band of columns of y
   (and read the same band of dy): BERT's query, key and value inside the
   fused qkv output. */
#include "layers.h"
#include "../math/rng.h"

/* out (N,in) = x · keep, or out += x · keep with accumulate */
static void dropout(float *out, const float *x, int64_t N, int in, const lora_hyper *hp, const lora_dropout *d,
                    bool accumulate) {
  for (int64_t n = 0; n < N; n++) {
    int64_t b = n / d->T, pos = n % d->T;
    uint64_t base = dropout_counter(d->row_key[b], d->row_start[b], pos, in);
    const float *xr = x + n * in;
    float *o = out + n * in;
    for (int k = 0; k < in; k++) {
      float v = xr[k] * dropout_scale(hp->seed, d->call, base + (uint64_t)k, hp->dropout);
      if (accumulate) o[k] += v; else o[k] = v;
    }
  }
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
int lora_forward(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 const lora_dropout *drop, float *xd) {
  int r = hp->r;
  const float *xin = x;
  if (hp->dropout > 0 && drop && drop->call) {
    dropout(xd, x, N, sl->in, hp, drop, false);
    xin = xd;
  }
  threads_count();
  sgemm_nt(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f);
  int ld = sl->ld ? sl->ld : sl->out;
  return gemm(LACOS_F32, false, true, (int)N, sl->out, r, (float)hp->scaling, h, r, sl->B, r, 1.0f, y + sl->col0, ld);
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
int lora_backward(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd) {
  int r = hp->r;
  float sc = (float)hp->scaling;
  threads_count();
  int ld = sl->ld ? sl->ld : sl->out;
  const float *dyb = dy + sl->col0;                               /* the slot's band (N,out), rows ld apart */
  TRY(gemm(LACOS_F32, true, false, sl->out, r, (int)N, sc, dyb, ld, h, r, 1.0f, sl->dB, r));      /* dB += s·dyᵀ·h */
  TRY(gemm(LACOS_F32, false, false, (int)N, r, sl->out, sc, dyb, ld, sl->B, r, 0.0f, dh, r));     /* dh = s·dy·B */
  bool dropping = hp->dropout > 0 && drop && drop->call;
  const float *xin = x;
  if (dropping) {
    dropout(xd, x, N, sl->in, hp, drop, false);
    xin = xd;
  }
  sgemm_tn(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f);       /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!dropping) sgemm_nn(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    else {
      sgemm_nn(xd, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f);
      dropout(dx, xd, N, sl->in, hp, drop, true);
    }
  }
  return LACOS_OK;
}
