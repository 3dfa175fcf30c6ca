/* lora.c: a model's LoRA adapter on its frozen linears, with PEFT's
   semantics (peft/tuners/lora/layer.py): y = base(x) + scaling·B·A·dropout(x),
   scaling = alpha/r (alpha/√r with rsLoRA), A Kaiming-uniform (a = √5, so
   U(−1/√in, 1/√in)), B = 0. All A and B of a model live in one allocation,
   their gradients in a second with the same layout, so the optimizer,
   clipping and zeroing are single loops. B rows of query_key_value are kept
   in the engine's [Q;K;V] order (lora_peft.c converts on import/export).

   The passes and the optimizer use the adapter in the model backend's
   memory (run_params, run_grads: the host copy itself on the CPU). On a
   device, attach and load fill the host copy and upload it, and whatever
   reads the host copy (save, merge) downloads it first.

   Merging (lacos.h, "Merging"): PEFT's merge (Linear.merge /
   get_delta_weight) adds scaling·B·A to the base weight in place; here the
   base stays as loaded (int8 codes quantised once are not requantised, and
   the forward pass keeps running base + adapter), and the delta goes into a
   dequantised f32 copy that lacos_bloom_weight and lacos_bloom_save read.
   Rows stay in the engine's order ([Q;K;V] for query_key_value, as B's rows
   are), so the delta is one GEMM per linear and the checkpoint's interleave
   is applied where every weight gets it: on the way out (bloom_io.c). */
#include "bloom_internal.h"
#include "cpu/layers.h"
#include <math.h>

void lacos_lora_config_init(lacos_lora_config *c) {
  memset(c, 0, sizeof *c);
  c->r = 8;
  c->alpha = 8;
  c->dropout = 0;
  c->targets = LACOS_LORA_QKV;
  c->seed = 0;
}

static int nslots(const lacos_bloom *m) { return m->cfg.n_layer * LORA_KINDS; }

int lora_slot_linear(const lacos_bloom *m, int k) {
  int col0, cols;
  return lora_kind_linear(&m->cfg, k, &col0, &cols);
}

static void merge_free(lora_state *s, int slots) {
  mem_free(s->merged);
  mem_free(s->merged_from);
  s->merged = s->merged_from = NULL;
  s->merged_bytes = 0;
  s->merge_state = 0;
  for (int i = 0; s->slots && i < slots; i++) s->slots[i].W = NULL;
}

void lora_detach_all(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return;
  merge_free(s, nslots(m));
  if (s->run_params != s->params) s->be->free(s->run_params, s->params_bytes);
  if (s->run_grads != s->grads) s->be->free(s->run_grads, s->params_bytes);
  mem_free(s->params);
  mem_free(s->grads);
  mem_free(s->slots);
  mem_free(s);
  m->lora = NULL;
}

int lacos_lora_detach(lacos_bloom *m) { lora_detach_all(m); return LACOS_OK; }

/* The backend copy: the host copy itself on a host-memory backend. */
static int run_copy_new(lora_state *s) {
  if (s->be->host_memory) {
    s->run_params = s->params;
    s->run_grads = s->grads;
    return LACOS_OK;
  }
  TRY(s->be->alloc((void **)&s->run_params, s->params_bytes, "LoRA parameters"));
  TRY(s->be->alloc((void **)&s->run_grads, s->params_bytes, "LoRA gradients"));
  return s->be->zero(s->run_grads, s->params_bytes);
}

int lora_upload(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (s->run_params == s->params) return LACOS_OK;
  return s->be->upload(s->run_params, s->params, s->params_bytes);
}

int lora_download(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (s->run_params == s->params) return LACOS_OK;
  TRY(s->be->download(s->params, s->run_params, s->params_bytes));
  return s->be->download(s->grads, s->run_grads, s->params_bytes);
}

static int attach(lacos_bloom *m, const lacos_lora_config *c) {
  int L = m->cfg.n_layer;
  lora_state *s;
  TRY(meta_calloc(&s, 1, sizeof *s, "LoRA adapter"));
  m->lora = s;
  s->r = c->r;
  s->targets = c->targets;
  s->alpha = c->alpha;
  s->dropout = c->dropout;
  s->rslora = c->use_rslora != 0;
  s->scaling = s->rslora ? c->alpha / sqrt((double)c->r) : c->alpha / c->r;
  s->enabled = true;
  s->seed = (uint64_t)c->seed;
  s->be = m->be;
  TRY(meta_calloc(&s->slots, (size_t)L * LORA_KINDS, sizeof *s->slots, "LoRA adapter"));
  int64_t total = 0;
  for (int l = 0; l < L; l++)
    for (int k = 0; k < LORA_KINDS; k++)
      if (c->targets & (1 << k)) {
        int col0, cols, t = lora_kind_linear(&m->cfg, k, &col0, &cols);
        total += (int64_t)c->r * (m->host.layers[l].lin[t].in + cols);
      }
  s->nparams = total;
  s->params_bytes = sizeof(float) * (size_t)total;
  TRY(mem_alloc(&s->params, s->params_bytes, "LoRA parameters"));
  TRY(mem_calloc(&s->grads, 1, s->params_bytes, "LoRA gradients"));
  float *p = s->params, *g = s->grads;
  for (int l = 0; l < L; l++)
    for (int k = 0; k < LORA_KINDS; k++) {
      if (!(c->targets & (1 << k))) continue;
      int col0, cols, t = lora_kind_linear(&m->cfg, k, &col0, &cols);
      const linear *ln = &m->host.layers[l].lin[t];
      lora_slot *sl = &s->slots[l * LORA_KINDS + k];
      sl->in = ln->in; sl->out = cols;
      sl->col0 = col0; sl->ld = ln->out;
      sl->A = p; sl->dA = g; p += (int64_t)c->r * ln->in; g += (int64_t)c->r * ln->in;
      sl->B = p; sl->dB = g; p += (int64_t)c->r * cols; g += (int64_t)c->r * cols;
      /* kaiming_uniform_(a=√5): bound = √(2/(1+5))·√(3/fan_in) = 1/√fan_in */
      double bound = 1.0 / sqrt((double)ln->in);
      /* BLOOM keeps its four-per-layer streams; BERT's seven kinds need seven */
      uint64_t per = m->cfg.family == LACOS_FAMILY_BLOOM ? NTARGETS : LORA_KINDS;
      uint64_t stream = ((uint64_t)l * per + (uint64_t)k) << 40;
      int64_t na = (int64_t)c->r * ln->in;
      for (int64_t i = 0; i < na; i++) sl->A[i] = (float)(bound * (2.0 * rng_uniform(s->seed, stream + (uint64_t)i) - 1.0));
      memset(sl->B, 0, sizeof(float) * (size_t)c->r * (size_t)cols);
    }
  TRY(run_copy_new(s));
  return lora_upload(m);
}

int lacos_lora_attach(lacos_bloom *m, const lacos_lora_config *c) {
  if (c->r < 1 || c->r > 4096) return fail(LACOS_EINVAL, "LoRA rank r must be between 1 and 4096, got %d", c->r);
  if (!(c->alpha > 0) || !isfinite(c->alpha)) return fail(LACOS_EINVAL, "LoRA alpha must be positive, got %g", c->alpha);
  if (!(c->dropout >= 0 && c->dropout < 1)) return fail(LACOS_EINVAL, "LoRA dropout must be in [0, 1), got %g", c->dropout);
  int kinds = lora_kinds_of(&m->cfg);
  if (c->targets <= 0 || (c->targets & ~kinds)) {
    char have[160] = "";
    for (int k = 0; k < LORA_KINDS; k++)
      if (kinds & (1 << k)) {
        const char *mod = lora_kind_module(&m->cfg, k), *dot = strrchr(mod, '.');
        snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", *have ? ", " : "",
                 m->cfg.family == LACOS_FAMILY_BERT && k < NTARGETS ? mod : dot ? dot + 1 : mod);
      }
    return fail(LACOS_EINVAL, "LoRA targets (bits 0x%x) must name linears a %s block has: %s", (unsigned)c->targets,
                family_name(&m->cfg), have);
  }
  lora_detach_all(m);
  int s = attach(m, c);
  if (s) lora_detach_all(m);
  return s;
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
  return __builtin_popcount((unsigned)m->lora->targets) * m->cfg.n_layer;
}

int lora_slot_at(const lacos_bloom *m, int i, lora_slot **out, int *layer, int *target) {
  *out = NULL;
  if (!m->lora) return fail(LACOS_ESTATE, "the model has no LoRA adapter");
  int k = 0;
  for (int l = 0; l < m->cfg.n_layer; l++)
    for (int t = 0; t < LORA_KINDS; t++) {
      if (!(m->lora->targets & (1 << t))) continue;
      if (k++ == i) {
        if (layer) *layer = l;
        if (target) *target = t;
        *out = &m->lora->slots[l * LORA_KINDS + t];
        return LACOS_OK;
      }
    }
  return fail(LACOS_EINVAL, "LoRA slot %d out of range (0..%d)", i, k - 1);
}

const char *lacos_lora_module_name(const lacos_bloom *m, int layer, int target) {
  static _Thread_local char name[160];
  const char *mod = lora_kind_module(&m->cfg, target);
  if (!mod || layer < 0 || layer >= m->cfg.n_layer) {
    fail(LACOS_EINVAL, "no LoRA module %d in block %d of a %s model", target, layer, family_name(&m->cfg));
    return NULL;
  }
  char block[64];
  layout_block_name(&m->cfg, layer, block, sizeof block);
  snprintf(name, sizeof name, "%s.%s", block, mod);
  return name;
}

int lacos_lora_slot_info(const lacos_bloom *m, int i, int *layer, int *target) {
  lora_slot *sl;
  return lora_slot_at(m, i, &sl, layer, target);
}

/* The same slot with pointers into the backend copy. */
static lora_slot run_slot(const lora_state *s, const lora_slot *sl) {
  lora_slot d = *sl;
  d.A = s->run_params + (sl->A - s->params);
  d.B = s->run_params + (sl->B - s->params);
  d.dA = s->run_grads + (sl->dA - s->grads);
  d.dB = s->run_grads + (sl->dB - s->grads);
  d.W = NULL;
  return d;
}

int lacos_lora_tensor(lacos_tensor **out, lacos_bloom *m, int i, int which) {
  *out = NULL;
  lora_slot *sl;
  TRY(lora_slot_at(m, i, &sl, NULL, NULL));
  lora_slot d = run_slot(m->lora, sl);
  int r = m->lora->r, dev = m->be->device;
  int64_t sa[2] = {r, sl->in}, sb[2] = {sl->out, r};
  switch (which) {
  case 0: return tensor_borrow_on(out, d.A, LACOS_F32, dev, 2, sa);
  case 1: return tensor_borrow_on(out, d.B, LACOS_F32, dev, 2, sb);
  case 2: return tensor_borrow_on(out, d.dA, LACOS_F32, dev, 2, sa);
  case 3: return tensor_borrow_on(out, d.dB, LACOS_F32, dev, 2, sb);
  }
  return fail(LACOS_EINVAL, "which must be 0 (A), 1 (B), 2 (grad A) or 3 (grad B)");
}

int lacos_lora_zero_grad(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "the model has no LoRA adapter");
  if (s->run_grads != s->grads) memset(s->grads, 0, s->params_bytes);
  return s->be->zero(s->run_grads, s->params_bytes);
}

lora_slot *lora_slot_for(const lacos_bloom *m, int layer, int target) {
  lora_state *s = m->lora;
  if (!s || !s->enabled || !(s->targets & (1 << target))) return NULL;
  return &s->slots[layer * LORA_KINDS + target];
}

bool lora_run_slot(const lacos_bloom *m, int layer, int target, lora_slot *out) {
  const lora_slot *sl = lora_slot_for(m, layer, target);
  if (!sl) return false;
  *out = run_slot(m->lora, sl);
  return true;
}

lora_hyper lora_hyper_of(const lacos_bloom *m) {
  const lora_state *s = m->lora;
  if (!s || !s->enabled) return (lora_hyper){0};
  return (lora_hyper){ s->r, s->scaling, s->dropout, s->seed };
}

/* ---- merge into export weights ---- */

/* W += sign·scaling·B·A for every adapted linear, A and B taken from `from`
   (a buffer with the layout of params). Host memory: the copies are the
   host's. */
static void add_delta(lacos_bloom *m, const float *from, float sign) {
  lora_state *s = m->lora;
  threads_count();
  for (int i = 0; i < nslots(m); i++) {
    lora_slot *sl = &s->slots[i];
    if (!sl->A) continue;
    const float *A = from + (sl->A - s->params), *B = from + (sl->B - s->params);
    sgemm_nn(sl->W, B, A, sl->out, sl->in, s->r, sign * (float)s->scaling, 1.0f);
  }
}

static int any_nonfinite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return 1;
  return 0;
}

/* The f32 copies of the adapted base weights, dequantised. */
static int merge_copies(lacos_bloom *m) {
  lora_state *s = m->lora;
  int L = m->cfg.n_layer;
  size_t floats = 0;
  for (int i = 0; i < nslots(m); i++)
    if (s->slots[i].A) floats += (size_t)s->slots[i].out * (size_t)s->slots[i].in;
  TRY(mem_alloc(&s->merged, sizeof(float) * floats, "merged LoRA weights (f32 copy of the adapted linears)"));
  s->merged_bytes = sizeof(float) * floats;
  TRY(mem_alloc(&s->merged_from, s->params_bytes, "merged LoRA weights (the adapter they came from)"));
  float *p = s->merged;
  for (int l = 0; l < L; l++)
    for (int k = 0; k < LORA_KINDS; k++) {
      lora_slot *sl = &s->slots[l * LORA_KINDS + k];
      if (!sl->A) continue;
      sl->W = p;   /* the slot's band: rows col0.. of the linear */
      p += (size_t)sl->out * (size_t)sl->in;
      const linear *ln = &m->host.layers[l].lin[lora_slot_linear(m, k)];
      #pragma omp parallel for schedule(static)
      for (int r = 0; r < sl->out; r++) linear_weight_row(sl->W + (int64_t)r * ln->in, ln, sl->col0 + r);
    }
  return LACOS_OK;
}

int lacos_lora_merge(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "the model has no LoRA adapter to merge");
  if (s->merge_state == 1) return fail(LACOS_ESTATE, "the LoRA adapter is already merged (unmerge it first)");
  TRY(lora_download(m));
  int L = m->cfg.n_layer;
  char block[64];
  for (int l = 0; l < L; l++)
    for (int k = 0; k < LORA_KINDS; k++) {
      lora_slot *sl = &s->slots[l * LORA_KINDS + k];
      layout_block_name(&m->cfg, l, block, sizeof block);
      if (sl->A && (any_nonfinite(sl->A, (int64_t)s->r * sl->in) || any_nonfinite(sl->B, (int64_t)s->r * sl->out)))
        return fail(LACOS_ENUMERIC, "cannot merge: the LoRA weights of %s.%s are not finite", block,
                    lora_kind_module(&m->cfg, k));
    }
  if (!s->merged) {
    int st = merge_copies(m);
    if (st) { merge_free(s, nslots(m)); return st; }
  }
  memcpy(s->merged_from, s->params, s->params_bytes);
  add_delta(m, s->merged_from, 1.0f);
  s->merge_state = 1;
  for (int i = 0; i < nslots(m); i++) {
    lora_slot *sl = &s->slots[i];
    if (sl->A && any_nonfinite(sl->W, (int64_t)sl->out * sl->in)) {
      merge_free(s, nslots(m));   /* inf - delta is not the base again: drop the copy */
      layout_block_name(&m->cfg, i / LORA_KINDS, block, sizeof block);
      return fail(LACOS_ENUMERIC, "cannot merge: base + scaling·B·A of %s.%s overflows f32", block,
                  lora_kind_module(&m->cfg, i % LORA_KINDS));
    }
  }
  return LACOS_OK;
}

int lacos_lora_unmerge(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "the model has no LoRA adapter to unmerge");
  if (s->merge_state != 1) return fail(LACOS_ESTATE, "the LoRA adapter is not merged");
  add_delta(m, s->merged_from, -1.0f);
  s->merge_state = 2;
  return LACOS_OK;
}

int lacos_lora_merge_state(const lacos_bloom *m) { return m->lora ? m->lora->merge_state : 0; }

int lora_merged_weight(lacos_bloom *m, int layer, int target, int row0, const float **W) {
  *W = NULL;
  lora_state *s = m->lora;
  if (!s || !s->merged) return LACOS_OK;
  lora_slot *sl = NULL;
  for (int k = 0; k < LORA_KINDS && !sl; k++) {
    lora_slot *c = &s->slots[layer * LORA_KINDS + k];
    if (lora_slot_linear(m, k) == target && c->W && c->col0 == row0) sl = c;
  }
  if (!sl) return LACOS_OK;
  if (s->merge_state == 1) {
    TRY(lora_download(m));
    if (memcmp(s->params, s->merged_from, s->params_bytes) != 0)
      return fail(LACOS_ESTATE, "the LoRA adapter changed after it was merged (training?): unmerge and merge it again");
  }
  *W = sl->W;
  return LACOS_OK;
}
