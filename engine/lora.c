/* lora.c: LoRA adapters on the frozen BLOOM linears, with PEFT's semantics
   (peft/tuners/lora/layer.py): y = base(x) + scaling·B·A·dropout(x),
   scaling = alpha/r (alpha/√r with rsLoRA), A Kaiming-uniform (a = √5, so
   U(−1/√in, 1/√in)), B = 0. All A and B of a model live in one allocation,
   their gradients in a second with the same layout, so the optimizer,
   clipping and zeroing are single loops. B rows of query_key_value are kept
   in the engine's [Q;K;V] order; import/export converts to PEFT's per-head
   interleave.

   On a CUDA model the adapter lives on the device (d_params, d_grads, same
   layout): attach and load fill the host copy and upload it, the training
   passes and the optimizer work on the device copy, and save downloads it
   first. lacos_lora_tensor then gives device views. */
#include "device.h"
#include <math.h>
#include <errno.h>
#include <sys/stat.h>
#include <jansson.h>

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
  lora_merge_free(m);
  mem_free(s->params, s->params_bytes, LACOS_CPU);
  mem_free(s->grads, s->params_bytes, LACOS_CPU);
  dev_free(s->d_params, s->params_bytes);
  dev_free(s->d_grads, s->params_bytes);
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
  if (m->opt.device == LACOS_CUDA) {
    int st = lora_upload(m);
    if (st) { lora_detach_all(m); return st; }
  }
  return LACOS_OK;
}

/* ---- the device copy ---- */

int lora_upload(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s->d_params) {
    s->d_params = dev_alloc(s->params_bytes, "LoRA parameters");
    if (!s->d_params) return lacos_last_status();
    s->d_grads = dev_alloc(s->params_bytes, "LoRA gradients");
    if (!s->d_grads) return lacos_last_status();
    TRY(dev_zero(s->d_grads, s->params_bytes));
  }
  return dev_upload(s->d_params, s->params, s->params_bytes);
}

int lora_download(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s->d_params) return LACOS_OK;
  TRY(dev_download(s->params, s->d_params, s->params_bytes));
  return dev_download(s->grads, s->d_grads, s->params_bytes);
}

/* The same slot with device pointers (offsets into d_params / d_grads). */
static lora_slot device_slot(const lora_state *s, const lora_slot *sl) {
  lora_slot d = *sl;
  d.A = s->d_params + (sl->A - s->params);
  d.B = s->d_params + (sl->B - s->params);
  d.dA = s->d_grads + (sl->dA - s->grads);
  d.dB = s->d_grads + (sl->dB - s->grads);
  return d;
}

bool lora_slot_device(const lacos_bloom *m, int layer, int target, lora_slot *out) {
  const lora_slot *sl = lora_slot_for(m, layer, target);
  if (!sl || !m->lora->d_params) return false;
  *out = device_slot(m->lora, sl);
  return true;
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
  if (m->lora->d_params) {
    lora_slot d = device_slot(m->lora, sl);
    switch (which) {
    case 0: return tensor_borrow_on(out, d.A, LACOS_F32, LACOS_CUDA, 2, sa);
    case 1: return tensor_borrow_on(out, d.B, LACOS_F32, LACOS_CUDA, 2, sb);
    case 2: return tensor_borrow_on(out, d.dA, LACOS_F32, LACOS_CUDA, 2, sa);
    case 3: return tensor_borrow_on(out, d.dB, LACOS_F32, LACOS_CUDA, 2, sb);
    }
    return fail(LACOS_EINVAL, "which must be 0 (A), 1 (B), 2 (grad A) or 3 (grad B)");
  }
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
  if (m->lora->d_grads) return dev_zero(m->lora->d_grads, m->lora->params_bytes);
  return LACOS_OK;
}

/* ---- layer functions ---- */

lora_slot *lora_slot_for(const lacos_bloom *m, int layer, int target) {
  lora_state *s = m->lora;
  if (!s || !s->enabled || !(s->targets & (1 << target))) return NULL;
  return &s->slots[layer * NTARGETS + target];
}

/* Dropout keep-mask value for the element at counter i of a call (see
   lora_dropout): a function of (seed, call, i), so the backward pass
   regenerates it instead of storing it. */
static inline float dropout_scale(uint64_t seed, uint64_t call, uint64_t i, double p) {
  return rng_uniform(seed ^ (call * 0x9E3779B97F4A7C15ull), i) < p ? 0.0f : (float)(1.0 / (1.0 - p));
}

/* out (N,in) = x · keep, or out += x · keep with accumulate */
static void dropout_apply(float *out, const float *x, int64_t N, int in, const lora_state *s, const lora_dropout *d,
                          bool accumulate) {
  for (int64_t n = 0; n < N; n++) {
    uint64_t base = lora_dropout_counter(d, n, in);
    const float *xr = x + n * in;
    float *o = out + n * in;
    for (int k = 0; k < in; k++) {
      float v = xr[k] * dropout_scale(s->seed, d->call, base + (uint64_t)k, s->dropout);
      if (accumulate) o[k] += v; else o[k] = v;
    }
  }
}

// y (N,out) += s · drop(x) (N,in) · Aᵀ · Bᵀ; h (N,r) receives drop(x)·Aᵀ
int lora_forward(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 const lora_dropout *drop, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  const float *xin = x;
  if (s->dropout > 0 && drop && drop->call) {
    dropout_apply(xd_scratch, x, N, sl->in, s, drop, false);
    xin = xd_scratch;
  }
  threads_count();
  sgemm_nt(h, xin, sl->A, (int)N, r, sl->in, 1.0f, 0.0f);
  sgemm_nt(y, h, sl->B, (int)N, sl->out, r, (float)s->scaling, 1.0f);
  return LACOS_OK;
}

// dx (N,in) +=, dA, dB +=; dy (N,out), x (N,in), h (N,r) from the forward; dh scratch (N,r)
int lora_backward(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd_scratch) {
  const lora_state *s = m->lora;
  int r = s->r;
  float sc = (float)s->scaling;
  threads_count();
  sgemm_tn(sl->dB, dy, h, sl->out, r, (int)N, sc, 1.0f);          /* dB += s·dyᵀ·h */
  sgemm_nn(dh, dy, sl->B, (int)N, r, sl->out, sc, 0.0f);          /* dh = s·dy·B */
  bool dropping = s->dropout > 0 && drop && drop->call;
  const float *xin = x;
  if (dropping) {
    dropout_apply(xd_scratch, x, N, sl->in, s, drop, false);
    xin = xd_scratch;
  }
  sgemm_tn(sl->dA, dh, xin, r, sl->in, (int)N, 1.0f, 1.0f);       /* dA += dhᵀ·drop(x) */
  if (dx) {
    if (!dropping) sgemm_nn(dx, dh, sl->A, (int)N, sl->in, r, 1.0f, 1.0f);
    else {
      sgemm_nn(xd_scratch, dh, sl->A, (int)N, sl->in, r, 1.0f, 0.0f);
      dropout_apply(dx, xd_scratch, N, sl->in, s, drop, true);
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
  return lora_forward(m, sl, y, x, s->h, N, NULL, NULL);
}

/* ---- PEFT import / export ---- */

static const char *const peft_short[NTARGETS] = {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};

static void peft_name(char *buf, size_t n, int layer, int target, char part) {
  snprintf(buf, n, "base_model.model.h.%d.%s.lora_%c.weight", layer, bloom_target_names[target], part);
}

int lacos_lora_save(lacos_bloom *m, const char *dir, const char *base_model) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "%s: the model has no LoRA adapter to save", dir);
  TRY(mkdir_parents(dir));
  TRY(lora_download(m));
  int nslots = lacos_lora_slot_count(m), n = 2 * nslots;
  char **names = calloc((size_t)n, sizeof *names);
  lacos_tensor **ts = calloc((size_t)n, sizeof *ts);
  int st = names && ts ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory");
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  for (int i = 0; i < nslots && !st; i++) {
    int layer, target;
    lora_slot *sl = slot_at(m, i, &layer, &target);
    char buf[160];
    peft_name(buf, sizeof buf, layer, target, 'A');
    names[2 * i] = strdup(buf);
    peft_name(buf, sizeof buf, layer, target, 'B');
    names[2 * i + 1] = strdup(buf);
    int64_t sa[2] = {s->r, sl->in}, sb[2] = {sl->out, s->r};
    st = lacos_tensor_from_buffer(&ts[2 * i], LACOS_F32, 2, sa, sl->A, LACOS_F32);
    if (!st) st = lacos_tensor_empty(&ts[2 * i + 1], LACOS_F32, LACOS_CPU, 2, sb);
    if (!st) {
      float *dst = ts[2 * i + 1]->data;
      for (int r = 0; r < sl->out; r++) {
        int row = target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
        memcpy(dst + (int64_t)row * s->r, sl->B + (int64_t)r * s->r, sizeof(float) * (size_t)s->r);
      }
    }
  }
  char path[4096];
  if (!st) {
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    st = lacos_safetensors_write(path, n, (const char *const *)names, ts, 1, mk, mv);
  }
  if (!st) {
    /* read it back: an adapter file that silently lost tensors is the classic failure */
    lacos_safetensors *back = NULL;
    st = lacos_safetensors_open(&back, path);
    if (!st && lacos_safetensors_count(back) != n)
      st = fail(LACOS_EIO, "%s: wrote %d tensors but the file holds %d", path, n, lacos_safetensors_count(back));
    for (int i = 0; i < n && !st; i++) {
      int k = lacos_safetensors_find(back, names[i]), nd;
      int64_t sh[8];
      if (k < 0 || lacos_safetensors_info(back, k, NULL, &nd, sh, 8) || nd != 2 || sh[0] != ts[i]->shape[0] || sh[1] != ts[i]->shape[1])
        st = fail(LACOS_EIO, "%s: tensor %s did not survive the write", path, names[i]);
    }
    lacos_safetensors_free(back);
  }
  if (!st) {
    json_t *targets = json_array();
    for (int t = 0; t < NTARGETS; t++) if (s->targets & (1 << t)) json_array_append_new(targets, json_string(peft_short[t]));
    json_t *cfg = json_pack("{s:s, s:s?, s:n, s:b, s:i, s:f, s:f, s:o, s:s, s:b, s:b, s:b, s:b, s:n, s:n, s:n, s:{}, s:{}, s:s, s:{s:s, s:s}}",
                            "peft_type", "LORA", "base_model_name_or_path", base_model, "task_type",
                            "inference_mode", 1, "r", s->r, "lora_alpha", s->alpha, "lora_dropout", s->dropout,
                            "target_modules", targets, "bias", "none", "fan_in_fan_out", 0, "use_rslora", (int)s->rslora,
                            "use_dora", 0, "init_lora_weights", 1, "modules_to_save", "layers_to_transform",
                            "revision", "rank_pattern", "alpha_pattern", "peft_version", "0.21.2",
                            "auto_mapping", "base_model_class", "BloomModel", "parent_library", "transformers.models.bloom.modeling_bloom");
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(cfg);
    if (!text) st = fail(LACOS_ENOMEM, "%s: cannot format adapter_config.json", dir);
    else {
      snprintf(path, sizeof path, "%s/adapter_config.json", dir);
      atomic_file af;
      st = atomic_file_open(&af, path);
      if (!st) { fputs(text, af.f); fputc('\n', af.f); st = atomic_file_commit(&af); }
      free(text);
    }
  }
  for (int i = 0; i < n && names; i++) { free(names[i]); if (ts) lacos_tensor_free(ts[i]); }
  free(names);
  free(ts);
  return st;
}

static int target_from_name(const char *s) {
  for (int t = 0; t < NTARGETS; t++)
    if (!strcmp(s, peft_short[t]) || !strcmp(s, bloom_target_names[t])) return t;
  return -1;
}

/* "base_model.model.[transformer.]h.<l>.<module>.lora_<X>[.<adapter>].weight" → layer, target, part */
static bool parse_peft_name(const char *name, int *layer, int *target, char *part) {
  const char *p = name;
  if (!strncmp(p, "base_model.model.", 17)) p += 17;
  if (!strncmp(p, "transformer.", 12)) p += 12;
  if (strncmp(p, "h.", 2)) return false;
  char *end;
  long l = strtol(p + 2, &end, 10);
  if (end == p + 2 || *end != '.' || l < 0 || l > 100000) return false;
  p = end + 1;
  const char *lo = strstr(p, ".lora_");
  if (!lo || (lo[6] != 'A' && lo[6] != 'B')) return false;
  char mod[96];
  size_t ml = (size_t)(lo - p);
  if (ml >= sizeof mod) return false;
  memcpy(mod, p, ml);
  mod[ml] = 0;
  int t = target_from_name(mod);
  if (t < 0) return false;
  const char *rest = lo + 7;
  if (strcmp(rest, ".weight") != 0) {
    /* an adapter name left in: .default.weight */
    const char *w = strrchr(rest, '.');
    if (rest[0] != '.' || !w || strcmp(w, ".weight") != 0 || w == rest) return false;
  }
  *layer = (int)l;
  *target = t;
  *part = lo[6];
  return true;
}

int lacos_lora_load(lacos_bloom *m, const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  char *text;
  size_t len;
  TRY(file_read_all(path, 1 << 20, &text, &len));
  json_error_t jerr;
  json_t *cfg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!cfg) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
  int st = LACOS_OK;
  lacos_lora_config lc;
  lacos_lora_config_init(&lc);
  json_t *v;
  if (!json_is_object(cfg)) { st = fail(LACOS_EFORMAT, "%s: expected a JSON object", path); goto done; }
  v = json_object_get(cfg, "peft_type");
  if (v && (!json_is_string(v) || strcmp(json_string_value(v), "LORA"))) { st = fail(LACOS_EUNSUPPORTED, "%s: peft_type is not LORA", path); goto done; }
  v = json_object_get(cfg, "r");
  if (!json_is_integer(v)) { st = fail(LACOS_EFORMAT, "%s: \"r\" must be an integer", path); goto done; }
  /* checked before the cast: r = 2^32 + 4 must not load as r = 4 (found by fuzz_lora) */
  if (json_integer_value(v) < 1 || json_integer_value(v) > 4096) {
    st = fail(LACOS_EFORMAT, "%s: \"r\" = %lld is out of range (1 to 4096)", path, (long long)json_integer_value(v));
    goto done;
  }
  lc.r = (int)json_integer_value(v);
  v = json_object_get(cfg, "lora_alpha");
  if (v) { if (!json_is_number(v)) { st = fail(LACOS_EFORMAT, "%s: \"lora_alpha\" must be a number", path); goto done; } lc.alpha = json_number_value(v); }
  else lc.alpha = lc.r;
  v = json_object_get(cfg, "lora_dropout");
  if (json_is_number(v)) lc.dropout = json_number_value(v);
  v = json_object_get(cfg, "use_rslora");
  lc.use_rslora = json_is_true(v);
  if (json_is_true(json_object_get(cfg, "use_dora"))) { st = fail(LACOS_EUNSUPPORTED, "%s: DoRA adapters are not supported", path); goto done; }
  if (json_is_true(json_object_get(cfg, "fan_in_fan_out"))) { st = fail(LACOS_EUNSUPPORTED, "%s: fan_in_fan_out = true is not supported", path); goto done; }
  v = json_object_get(cfg, "bias");
  if (v && json_is_string(v) && strcmp(json_string_value(v), "none")) { st = fail(LACOS_EUNSUPPORTED, "%s: bias = \"%s\" is not supported (only \"none\")", path, json_string_value(v)); goto done; }
  v = json_object_get(cfg, "layers_to_transform");
  if (v && !json_is_null(v)) { st = fail(LACOS_EUNSUPPORTED, "%s: layers_to_transform is not supported", path); goto done; }
  v = json_object_get(cfg, "modules_to_save");
  if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) { st = fail(LACOS_EUNSUPPORTED, "%s: modules_to_save is not supported", path); goto done; }
  const char *patterns[2] = {"rank_pattern", "alpha_pattern"};
  for (int k = 0; k < 2; k++) {
    v = json_object_get(cfg, patterns[k]);
    if (v && json_is_object(v) && json_object_size(v) > 0) { st = fail(LACOS_EUNSUPPORTED, "%s: %s is not supported", path, patterns[k]); goto done; }
  }
  v = json_object_get(cfg, "target_modules");
  lc.targets = 0;
  if (json_is_string(v)) { st = fail(LACOS_EUNSUPPORTED, "%s: target_modules as a regular expression is not supported; list the modules", path); goto done; }
  if (!json_is_array(v) || json_array_size(v) == 0) { st = fail(LACOS_EFORMAT, "%s: target_modules must list the adapted modules", path); goto done; }
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *x = json_array_get(v, i);
    int t = json_is_string(x) ? target_from_name(json_string_value(x)) : -1;
    if (t < 0) {
      st = fail(LACOS_EFORMAT, "%s: target module \"%s\" is not a BLOOM linear (query_key_value, dense, dense_h_to_4h, dense_4h_to_h)",
                path, json_is_string(x) ? json_string_value(x) : "?");
      goto done;
    }
    lc.targets |= 1 << t;
  }
  st = lacos_lora_attach(m, &lc);
  if (st) { fail_context("%s", path); goto done; }
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  lacos_safetensors *sf = NULL;
  st = lacos_safetensors_open(&sf, path);
  if (st) { lora_detach_all(m); goto done; }
  int nslots = lacos_lora_slot_count(m), found = 0;
  char *seen = calloc((size_t)(2 * nslots), 1);
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  for (int i = 0; i < lacos_safetensors_count(sf) && !st; i++) {
    const char *name = lacos_safetensors_name(sf, i);
    int layer, target;
    char part;
    if (!parse_peft_name(name, &layer, &target, &part)) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" is not a LoRA weight of a BLOOM linear", path, name);
      break;
    }
    if (layer >= m->cfg.n_layer || !(lc.targets & (1 << target))) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" does not match adapter_config.json or the model (%d layers)", path, name, m->cfg.n_layer);
      break;
    }
    lora_slot *sl = &m->lora->slots[layer * NTARGETS + target];
    int slot = 0;
    for (int l = 0; l < layer; l++) slot += __builtin_popcount((unsigned)lc.targets);
    for (int t = 0; t < target; t++) if (lc.targets & (1 << t)) slot++;
    int k = 2 * slot + (part == 'B');
    if (seen[k]) { st = fail(LACOS_EFORMAT, "%s: LoRA weight \"%s\" appears twice", path, name); break; }
    seen[k] = 1;
    lacos_tensor *t = NULL;
    st = lacos_safetensors_get(&t, sf, name);
    int64_t want0 = part == 'A' ? lc.r : sl->out, want1 = part == 'A' ? sl->in : lc.r;
    if (!st && (t->ndim != 2 || t->shape[0] != want0 || t->shape[1] != want1)) {
      char have[64];
      tensor_shape_str(t, have, sizeof have);
      /* the rank side matching but not the model side: made for another model, not a damaged file */
      bool other_model = t->ndim == 2 && (part == 'A' ? t->shape[0] == want0 : t->shape[1] == want1);
      json_t *bm = json_object_get(cfg, "base_model_name_or_path");
      st = fail(LACOS_EFORMAT, "%s: %s has shape %s, expected (%lld, %lld)%s%s%s", path, name, have, (long long)want0,
                (long long)want1, other_model ? ": the adapter was made for a model of another shape" : "",
                other_model && json_is_string(bm) ? ", its base_model_name_or_path is " : "",
                other_model && json_is_string(bm) ? json_string_value(bm) : "");
    }
    if (!st && t->dtype != LACOS_F32 && t->dtype != LACOS_F16 && t->dtype != LACOS_BF16)
      st = fail(LACOS_EUNSUPPORTED, "%s: %s is %s; expected a float dtype", path, name, lacos_dtype_name(t->dtype));
    if (!st) {
      if (part == 'A') dtype_convert(sl->A, LACOS_F32, t->data, t->dtype, want0 * want1);
      else
        for (int r = 0; r < sl->out; r++) {
          int row = target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
          dtype_convert(sl->B + (int64_t)r * lc.r, LACOS_F32, (const char *)t->data + (size_t)row * (size_t)lc.r * (size_t)lacos_dtype_size(t->dtype), t->dtype, lc.r);
        }
      /* one NaN would make every embedding NaN: refused here, naming the tensor */
      if (!floats_finite(part == 'A' ? sl->A : sl->B, want0 * want1))
        st = fail(LACOS_ENUMERIC, "%s: %s has non-finite values (NaN or infinity)", path, name);
      found++;
    }
    lacos_tensor_free(t);
  }
  if (!st && found != 2 * nslots) {
    for (int k = 0; k < 2 * nslots; k++)
      if (!seen[k]) {
        int layer = 0, target = 0;
        slot_at(m, k / 2, &layer, &target);
        char buf[160];
        peft_name(buf, sizeof buf, layer, target, k % 2 ? 'B' : 'A');
        st = fail(LACOS_EFORMAT, "%s: missing LoRA weight %s (the config adapts %s in every layer)", path, buf, bloom_target_names[target]);
        break;
      }
  }
  free(seen);
  lacos_safetensors_free(sf);
  if (!st && m->lora->d_params) st = lora_upload(m);
  if (st) lora_detach_all(m);
done:
  json_decref(cfg);
  return st;
}
