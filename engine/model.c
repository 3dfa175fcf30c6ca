/* model.c: the family-independent machinery of model.h. */
#include "model.h"

int store_upload(const backend *be, store *s, const char *what) {
  if (be->host_memory || !s->host || !s->bytes) { s->dev = s->host; return LACOS_OK; }
  TRY(be->alloc(&s->dev, s->bytes, what));
  int st = be->upload(s->dev, s->host, s->bytes);
  if (st) { be->free(s->dev, s->bytes); s->dev = NULL; }
  return st;
}

void store_free(const backend *be, store *s) {
  if (s->dev && s->dev != s->host) be->free(s->dev, s->bytes);
  s->dev = NULL;
}

size_t pass_scratch(const backend *be, const linear *lins, int nlins, int64_t N, float threshold, bool fast_backward,
                    int B, int T, int C, int NH, bool training) {
  size_t most = be->attention_scratch(B, T, C, NH, training, false);
  size_t back = training ? be->attention_scratch(B, T, C, NH, true, true) : 0;
  if (back > most) most = back;
  for (int i = 0; i < nlins; i++) {
    size_t s = be->linear_scratch(N, lins[i].in, lins[i].out, lins[i].kind, threshold > 0, training, fast_backward);
    if (s > most) most = s;
  }
  return most;
}

int adapted_forward(const pass *p, linear *l, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                    const lora_dropout *drop, float *xd) {
  TRY(p->be->linear_forward(y, x, l, N, p->threshold, p->ws));
  if (sl) TRY(p->be->lora_forward(&p->lora, sl, y, x, h, N, drop, xd));
  return LACOS_OK;
}

int adapted_backward(const pass *p, const linear *l, const lora_slot *sl, float *dx, const float *dy, const float *x,
                     const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd) {
  TRY(p->be->zero(dx, sizeof(float) * (size_t)N * (size_t)l->in));
  TRY(p->be->linear_backward_input(dx, dy, l, N, p->fast_backward, p->ws));
  if (sl) TRY(p->be->lora_backward(&p->lora, sl, dx, dy, x, h, dh, N, drop, xd));
  return LACOS_OK;
}

int ids_check(const int32_t *ids, int64_t N, int V) {
  for (int64_t i = 0; i < N; i++)
    if (ids[i] < 0 || ids[i] >= V)
      return fail(LACOS_EINVAL, "token id %d at position %lld is outside the vocabulary of %d", ids[i], (long long)i, V);
  return LACOS_OK;
}
