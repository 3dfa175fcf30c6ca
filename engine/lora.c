/* lora.c: LoRA adapters on the frozen BLOOM linears, with PEFT's semantics
   (peft/tuners/lora/layer.py): y = base(x) + scaling·B·A·dropout(x),
   scaling = alpha/r (alpha/√r with rsLoRA), A Kaiming-uniform (a = √5, so
   U(−1/√in, 1/√in)), B = 0. All A and B of a model live in one allocation,
   their gradients in a second with the same layout, so the optimizer,
   clipping and zeroing are single loops. B rows of query_key_value are kept
   in the engine's [Q;K;V] order; import/export converts to PEFT's per-head
   interleave. */
#include "bloom_internal.h"
#include <math.h>

const char *const bloom_target_names[NTARGETS] = {
  "self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h",
};

void lacos_lora_config_init(lacos_lora_config *c) {
  memset(c, 0, sizeof *c);
  c->r = 8;
  c->alpha = 8;
  c->dropout = 0;
  c->targets = LACOS_LORA_QKV;
  c->seed = 0;
}

void lora_detach_all(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return;
  mem_free(s->params, s->params_bytes, LACOS_CPU);
  mem_free(s->grads, s->params_bytes, LACOS_CPU);
  mem_free(s->h, s->h_bytes, LACOS_CPU);
  free(s->slots);
  free(s);
  m->lora = NULL;
}

int lacos_lora_detach(lacos_bloom *m) { lora_detach_all(m); return LACOS_OK; }

int lacos_lora_attach(lacos_bloom *m, const lacos_lora_config *c) {
  if (c->r < 1 || c->r > 4096) return fail(LACOS_EINVAL, "LoRA rank r must be between 1 and 4096, got %d", c->r);
  if (!(c->alpha > 0) || !isfinite(c->alpha)) return fail(LACOS_EINVAL, "LoRA alpha must be positive, got %g", c->alpha);
  if (!(c->dropout >= 0 && c->dropout < 1)) return fail(LACOS_EINVAL, "LoRA dropout must be in [0, 1), got %g", c->dropout);
  if (c->targets <= 0 || c->targets > 15) return fail(LACOS_EINVAL, "LoRA targets must name at least one of the four linears");
  lora_detach_all(m);
  int L = m->cfg.n_layer;
  lora_state *s = calloc(1, sizeof *s);
  if (!s) return fail(LACOS_ENOMEM, "out of memory");
  s->r = c->r;
  s->targets = c->targets;
  s->alpha = c->alpha;
  s->dropout = c->dropout;
  s->rslora = c->use_rslora != 0;
  s->scaling = s->rslora ? c->alpha / sqrt((double)c->r) : c->alpha / c->r;
  s->enabled = true;
  s->seed = (uint64_t)c->seed;
  s->slots = calloc((size_t)L * NTARGETS, sizeof *s->slots);
  if (!s->slots) { free(s); return fail(LACOS_ENOMEM, "out of memory"); }
  int64_t total = 0;
  for (int l = 0; l < L; l++)
    for (int t = 0; t < NTARGETS; t++)
      if (c->targets & (1 << t)) {
        const linear *ln = &m->layers[l].lin[t];
        total += (int64_t)c->r * (ln->in + ln->out);
      }
  s->nparams = total;
  s->params_bytes = sizeof(float) * (size_t)total;
  s->params = mem_alloc(s->params_bytes, LACOS_CPU, "LoRA parameters");
  s->grads = s->params ? mem_calloc(s->params_bytes, LACOS_CPU, "LoRA gradients") : NULL;
  m->lora = s;
  if (!s->grads) { lora_detach_all(m); return lacos_last_status(); }
  float *p = s->params, *g = s->grads;
  for (int l = 0; l < L; l++)
    for (int t = 0; t < NTARGETS; t++) {
      if (!(c->targets & (1 << t))) continue;
      const linear *ln = &m->layers[l].lin[t];
      lora_slot *sl = &s->slots[l * NTARGETS + t];
      sl->in = ln->in; sl->out = ln->out;
      sl->A = p; sl->dA = g; p += (int64_t)c->r * ln->in; g += (int64_t)c->r * ln->in;
      sl->B = p; sl->dB = g; p += (int64_t)c->r * ln->out; g += (int64_t)c->r * ln->out;
      /* kaiming_uniform_(a=√5): bound = √(2/(1+5))·√(3/fan_in) = 1/√fan_in */
      double bound = 1.0 / sqrt((double)ln->in);
      uint64_t stream = ((uint64_t)l * NTARGETS + (uint64_t)t) << 40;
      int64_t na = (int64_t)c->r * ln->in;
      for (int64_t i = 0; i < na; i++) sl->A[i] = (float)(bound * (2.0 * rng_uniform(s->seed, stream + (uint64_t)i) - 1.0));
      memset(sl->B, 0, sizeof(float) * (size_t)c->r * (size_t)ln->out);
    }
  return LACOS_OK;
}

int lacos_lora_set_enabled(lacos_bloom *m, int on) {
  if (!m->lora) return fail(LACOS_ESTATE, "the model has no LoRA adapter");
  m->lora->enabled = on != 0;
  return LACOS_OK;
}

int lacos_lora_get_config(const lacos_bloom *m, lacos_lora_config *c) {
  if (!m->lora) return fail(LACOS_ESTATE, "the model has no LoRA adapter");
  const lora_state *s = m->lora;
  c->r = s->r; c->alpha = s->alpha; c->dropout = s->dropout; c->targets = s->targets;
  c->use_rslora = s->rslora; c->seed = (double)s->seed;
  return LACOS_OK;
}

double lacos_lora_param_count(const lacos_bloom *m) { return m->lora ? (double)m->lora->nparams : 0; }

int lacos_lora_slot_count(const lacos_bloom *m) {
  if (!m->lora) return 0;
  int n = 0;
  for (int t = 0; t < NTARGETS; t++) if (m->lora->targets & (1 << t)) n++;
  return n * m->cfg.n_layer;
}

static lora_slot *slot_at(const lacos_bloom *m, int i, int *layer, int *target) {
  if (!m->lora) { fail(LACOS_ESTATE, "the model has no LoRA adapter"); return NULL; }
  int k = 0;
  for (int l = 0; l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) {
      if (!(m->lora->targets & (1 << t))) continue;
      if (k++ == i) { if (layer) *layer = l; if (target) *target = t; return &m->lora->slots[l * NTARGETS + t]; }
    }
  fail(LACOS_EINVAL, "LoRA slot %d out of range (0..%d)", i, k - 1);
  return NULL;
}

int lacos_lora_slot_info(const lacos_bloom *m, int i, int *layer, int *target) {
  return slot_at(m, i, layer, target) ? LACOS_OK : lacos_last_status();
}

int lacos_lora_tensor(lacos_tensor **out, lacos_bloom *m, int i, int which) {
  *out = NULL;
  lora_slot *sl = slot_at(m, i, NULL, NULL);
  if (!sl) return lacos_last_status();
  int r = m->lora->r;
  int64_t sa[2] = {r, sl->in}, sb[2] = {sl->out, r};
  switch (which) {
  case 0: return tensor_borrow(out, sl->A, LACOS_F32, 2, sa);
  case 1: return tensor_borrow(out, sl->B, LACOS_F32, 2, sb);
  case 2: return tensor_borrow(out, sl->dA, LACOS_F32, 2, sa);
  case 3: return tensor_borrow(out, sl->dB, LACOS_F32, 2, sb);
  }
  return fail(LACOS_EINVAL, "which must be 0 (A), 1 (B), 2 (grad A) or 3 (grad B)");
}

int lacos_lora_zero_grad(lacos_bloom *m) {
  if (!m->lora) return fail(LACOS_ESTATE, "the model has no LoRA adapter");
  memset(m->lora->grads, 0, m->lora->params_bytes);
  return LACOS_OK;
}

/* ---- layer functions ---- */

lora_slot *lora_slot_for(const lacos_bloom *m, int layer, int target) {
  lora_state *s = m->lora;
  if (!s || !s->enabled || !(s->targets & (1 << target))) return NULL;
  return &s->slots[layer * NTARGETS + target];
}

/* Dropout keep-mask value for element i of the adapter input: a function of
   (seed, call, i), so the backward pass regenerates it instead of storing it. */
static inline float dropout_scale(uint64_t seed, uint64_t call, uint64_t i, double p) {
  return rng_uniform(seed ^ (call * 0x9E3779B97F4A7C15ull), i) < p ? 0.0f : (float)(1.0 / (1.0 - p));
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
int lora_forward(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 uint64_t dropout_call, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  const float *xin = x;
  if (s->dropout > 0 && dropout_call) {
    for (int64_t i = 0; i < N * sl->in; i++) xd_scratch[i] = x[i] * dropout_scale(s->seed, dropout_call, (uint64_t)i, s->dropout);
    xin = xd_scratch;
  }
  threads_count();
  sgemm_nt(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f);
  sgemm_nt(y, h, sl->B, (int)N, sl->out, r, (float)s->scaling, 1.0f);
  return LACOS_OK;
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
int lora_backward(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, uint64_t dropout_call, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  float sc = (float)s->scaling;
  threads_count();
  sgemm_tn(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f);          /* dB += s·dyᵀ·h */
  sgemm_nn(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f);          /* dh = s·dy·B */
  bool drop = s->dropout > 0 && dropout_call;
  const float *xin = x;
  if (drop) {
    for (int64_t i = 0; i < N * sl->in; i++) xd_scratch[i] = x[i] * dropout_scale(s->seed, dropout_call, (uint64_t)i, s->dropout);
    xin = xd_scratch;
  }
  sgemm_tn(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f);       /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!drop) sgemm_nn(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    else {
      sgemm_nn(xd_scratch, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f);
      for (int64_t i = 0; i < N * sl->in; i++)
        dx[i] += xd_scratch[i] * dropout_scale(s->seed, dropout_call, (uint64_t)i, s->dropout);
    }
  }
  return LACOS_OK;
}

/* Inference: y += s·x·Aᵀ·Bᵀ when the linear is adapted (no dropout). */
int lora_apply(lacos_bloom *m, int layer, int target, float *y, const float *x, int64_t N) {
  lora_slot *sl = lora_slot_for(m, layer, target);
  if (!sl) return LACOS_OK;
  lora_state *s = m->lora;
  size_t need = sizeof(float) * (size_t)N * (size_t)s->r;
  if (s->h_bytes < need) {
    mem_free(s->h, s->h_bytes, LACOS_CPU);
    s->h_bytes = 0;
    s->h = mem_alloc(need, LACOS_CPU, "LoRA activations");
    if (!s->h) return lacos_last_status();
    s->h_bytes = need;
  }
  return lora_forward(m, sl, y, x, s->h, N, 0, NULL);
}
