/* block_linear.c: a linear of a transformer block with the LoRA adapters
   on it, forward and backward, for every family's block (bloom.c, bert.c).
   A linear may carry several adapters, each on a band of its output rows:
   BERT's query, key and value are three adapters on thirds of the stacked
   qkv linear; BLOOM's fused query_key_value is one adapter on all of it. */
#include "bloom_internal.h"

/* The base linear, then each adapter on it (one, or BERT's query, key and
   value on thirds of the fused qkv), each keeping its x·Aᵀ for the backward. */
int block_linear(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *y, const float *in, layer_acts *a) {
  linear *lin = &m->run.layers[l].lin[t];
  TRY(adapted_forward(&x->p, lin, NULL, y, in, NULL, x->N, NULL, NULL));
  for (int k = 0; k < LORA_KINDS; k++) {
    lora_slot sl;
    if (lora_slot_linear(m, k) != t || !lora_run_slot(m, l, k, &sl)) continue;
    lora_dropout drop = bloom_dropout(x, l, k);
    TRY(x->p.be->lora_forward(&x->p.lora, &sl, y, in, a->h[k], x->N, &drop, x->xd));
  }
  return LACOS_OK;
}

bool block_linear_adapted(const lacos_bloom *m, int l, int t) {
  for (int k = 0; k < LORA_KINDS; k++)
    if (lora_slot_linear(m, k) == t && lora_slot_for(m, l, k)) return true;
  return false;
}

int block_linear_then(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *y, const float *in, layer_acts *a,
                      linear_epilogue ep) {
  linear *lin = &m->run.layers[l].lin[t];
  const backend *be = x->p.be;
  if (ep.pre == y) ep.pre = NULL;   /* GELU in place */
  if (be->linear_forward_fused && !block_linear_adapted(m, l, t))   /* adapters add before the epilogue */
    return be->linear_forward_fused(y, in, lin, x->N, x->p.threshold, &ep, x->p.ws);
  float *pre = ep.gelu >= 0 && ep.pre ? ep.pre : y;
  int64_t n = x->N * lin->out;
  TRY(block_linear(m, x, l, t, pre, in, a));
  if (ep.gelu >= 0) TRY(be->gelu_forward(y, pre, n, ep.gelu));
  if (ep.residual) TRY(be->add_inplace(y, ep.residual, n));
  return ep.ln ? be->layernorm_forward(ep.ln, ep.ln_mean, ep.ln_rstd, y, ep.ln_w, ep.ln_b, x->N, lin->out, ep.ln_eps)
               : LACOS_OK;
}

/* Input gradient of linear t of block l (dx overwritten), every adapter's
   share and gradients included. */
int block_linear_back(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *dx, const float *dy, const float *in,
                      const layer_acts *a) {
  const linear *lin = &m->run.layers[l].lin[t];
  TRY(adapted_backward(&x->p, lin, NULL, dx, dy, in, NULL, NULL, x->N, NULL, NULL));
  for (int k = 0; k < LORA_KINDS; k++) {
    lora_slot sl;
    if (lora_slot_linear(m, k) != t || !lora_run_slot(m, l, k, &sl)) continue;
    lora_dropout drop = bloom_dropout(x, l, k);
    TRY(x->p.be->lora_backward(&x->p.lora, &sl, dx, dy, in, a->h[k], x->dh, x->N, &drop, x->xd));
  }
  return LACOS_OK;
}
