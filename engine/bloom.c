/* bloom.c: the BLOOM network (transformers' BloomModel, without the LM head):
   configs, weight storage (f32 or LLM.int8), random models, and the forward
   pass over the cpu/ layers.

   Graph (modeling_bloom.py): word_embeddings → word_embeddings_layernorm →
   N blocks → ln_f, each block
     a = x + dense(attn(input_layernorm(x)))
     y = a + dense_4h_to_h(gelu(dense_h_to_4h(post_attention_layernorm(a))))
   The checkpoint's fused query_key_value rows are interleaved per head
   (row = head·3·HD + part·HD + d); they are reordered once at load into
   [Q; K; V] blocks (row = part·C + head·HD + d) so no kernel knows about it.

   Storage: one allocation for every linear weight of the model (int8 codes
   or f32), one for the small f32 parameters (LayerNorms, biases, row
   scales); the embedding table stays in its checkpoint dtype. A model with
   device = LACOS_CUDA is built here the same way and then copied to the
   GPU (bloom_cuda.c), whose twin of the passes the public entry points
   dispatch to. */
#include "device.h"
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <jansson.h>

/* ------------------------------------------------------------- configs */

typedef struct named_config { const char *name; int vocab, hidden, layers, heads; } named_config;
static const named_config named_configs[] = {
  {"bloom-560m", 250880, 1024, 24, 16},
  {"bloom-1b1", 250880, 1536, 24, 16},
  {"bloom-1b7", 250880, 2048, 24, 16},
  {"bloom-3b", 250880, 2560, 30, 32},
  {"bloom-7b1", 250880, 4096, 30, 32},
  /* The test ladder: small enough for CI, shaped like BLOOM (12 heads is
     there to exercise ALiBi's non-power-of-two branch). */
  {"tiny-xs", 32768, 64, 2, 4},
  {"tiny-s", 32768, 128, 4, 4},
  {"tiny-m", 32768, 256, 6, 8},
  {"tiny-l", 32768, 384, 8, 12},
};

static void config_defaults(lacos_bloom_config *c) {
  memset(c, 0, sizeof *c);
  c->layer_norm_epsilon = 1e-5;
  c->max_length = 2048;
  c->bos_token_id = 1;
  c->eos_token_id = 2;
  c->pad_token_id = 3;
}

const char *lacos_bloom_config_names(void) {
  return "bloom-560m;bloom-1b1;bloom-1b7;bloom-3b;bloom-7b1;tiny-xs;tiny-s;tiny-m;tiny-l";
}

int lacos_bloom_config_named(lacos_bloom_config *cfg, const char *name) {
  for (size_t i = 0; i < sizeof named_configs / sizeof *named_configs; i++) {
    const named_config *n = &named_configs[i];
    if (strcmp(name, n->name) == 0 || (strncmp(name, "bigscience/", 11) == 0 && strcmp(name + 11, n->name) == 0)) {
      config_defaults(cfg);
      cfg->vocab_size = n->vocab;
      cfg->hidden_size = n->hidden;
      cfg->n_layer = n->layers;
      cfg->n_head = n->heads;
      return LACOS_OK;
    }
  }
  return fail(LACOS_ENOTFOUND, "unknown model name '%s' (known: %s)", name, lacos_bloom_config_names());
}

static int config_check(const lacos_bloom_config *c, const char *where) {
  if (c->vocab_size < 1 || c->vocab_size > 10000000) return fail(LACOS_EFORMAT, "%s: vocab_size %d is out of range", where, c->vocab_size);
  if (c->hidden_size < 1 || c->hidden_size > 65536) return fail(LACOS_EFORMAT, "%s: hidden_size %d is out of range", where, c->hidden_size);
  if (c->n_layer < 1 || c->n_layer > 1000) return fail(LACOS_EFORMAT, "%s: n_layer %d is out of range", where, c->n_layer);
  if (c->n_head < 1 || c->hidden_size % c->n_head)
    return fail(LACOS_EFORMAT, "%s: hidden_size %d is not a multiple of n_head %d", where, c->hidden_size, c->n_head);
  if (!(c->layer_norm_epsilon > 0 && c->layer_norm_epsilon < 1))
    return fail(LACOS_EFORMAT, "%s: layer_norm_epsilon %g is out of range", where, c->layer_norm_epsilon);
  if (c->max_length < 1) return fail(LACOS_EFORMAT, "%s: max_length %d is out of range", where, c->max_length);
  return LACOS_OK;
}

static int json_int_alias(json_t *root, const char *const *keys, int *out, bool required, const char *path) {
  for (int i = 0; keys[i]; i++) {
    json_t *v = json_object_get(root, keys[i]);
    if (!v || json_is_null(v)) continue;   /* transformers writes null for unset ids */
    if (!json_is_integer(v)) return fail(LACOS_EFORMAT, "%s: \"%s\" must be an integer", path, keys[i]);
    json_int_t x = json_integer_value(v);
    if (x < -1 || x > 100000000) return fail(LACOS_EFORMAT, "%s: \"%s\" = %lld is out of range", path, keys[i], (long long)x);
    *out = (int)x;
    return LACOS_OK;
  }
  if (required) return fail(LACOS_EFORMAT, "%s: missing \"%s\"", path, keys[0]);
  return LACOS_OK;
}

int lacos_bloom_config_read(lacos_bloom_config *cfg, const char *path) {
  config_defaults(cfg);
  char *text;
  size_t len;
  TRY(file_read_all(path, 1 << 20, &text, &len));
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  free(text);
  if (!root) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", path, err.line, err.text);
  int s = LACOS_OK;
  if (!json_is_object(root)) { s = fail(LACOS_EFORMAT, "%s: expected a JSON object", path); goto done; }
  json_t *mt = json_object_get(root, "model_type");
  if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bloom") != 0)) {
    s = fail(LACOS_EUNSUPPORTED, "%s: model_type is \"%s\"; lacos runs BLOOM models only", path,
             json_is_string(mt) ? json_string_value(mt) : "?");
    goto done;
  }
  static const char *const k_vocab[] = {"vocab_size", NULL}, *const k_hidden[] = {"hidden_size", "n_embed", NULL},
                           *const k_layer[] = {"n_layer", "num_hidden_layers", NULL},
                           *const k_head[] = {"n_head", "num_attention_heads", NULL},
                           *const k_len[] = {"seq_length", "max_position_embeddings", NULL},
                           *const k_bos[] = {"bos_token_id", NULL}, *const k_eos[] = {"eos_token_id", NULL},
                           *const k_pad[] = {"pad_token_id", NULL};
  if ((s = json_int_alias(root, k_vocab, &cfg->vocab_size, true, path)) ||
      (s = json_int_alias(root, k_hidden, &cfg->hidden_size, true, path)) ||
      (s = json_int_alias(root, k_layer, &cfg->n_layer, true, path)) ||
      (s = json_int_alias(root, k_head, &cfg->n_head, true, path)) ||
      (s = json_int_alias(root, k_len, &cfg->max_length, false, path)) ||
      (s = json_int_alias(root, k_bos, &cfg->bos_token_id, false, path)) ||
      (s = json_int_alias(root, k_eos, &cfg->eos_token_id, false, path)) ||
      (s = json_int_alias(root, k_pad, &cfg->pad_token_id, false, path)))
    goto done;
  json_t *eps = json_object_get(root, "layer_norm_epsilon");
  if (eps) {
    if (!json_is_number(eps)) { s = fail(LACOS_EFORMAT, "%s: \"layer_norm_epsilon\" must be a number", path); goto done; }
    cfg->layer_norm_epsilon = json_number_value(eps);
  }
  json_t *post = json_object_get(root, "apply_residual_connection_post_layernorm");
  if (post && json_is_true(post)) {
    s = fail(LACOS_EUNSUPPORTED, "%s: apply_residual_connection_post_layernorm = true is not supported (no released BLOOM uses it)", path);
    goto done;
  }
  s = config_check(cfg, path);
done:
  json_decref(root);
  return s;
}

json_t *bloom_config_json(const lacos_bloom_config *c) {
  json_t *root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:i, s:b, s:s}",
                           "architectures", "BloomModel", "model_type", "bloom",
                           "vocab_size", c->vocab_size, "hidden_size", c->hidden_size,
                           "n_layer", c->n_layer, "n_head", c->n_head, "seq_length", c->max_length,
                           "layer_norm_epsilon", c->layer_norm_epsilon,
                           "bos_token_id", c->bos_token_id, "eos_token_id", c->eos_token_id,
                           "pad_token_id", c->pad_token_id, "pretraining_tp", 1,
                           "attention_dropout", 0.0, "hidden_dropout", 0.0,
                           "apply_residual_connection_post_layernorm", 0, "initializer_range_x1000", 20,
                           "slow_but_exact", 0, "torch_dtype", "float32");
  if (!root) return NULL;
  json_object_del(root, "initializer_range_x1000");
  json_object_set_new(root, "initializer_range", json_real(0.02));
  return root;
}

int bloom_config_json_write(json_t *root, const char *path) {
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return fail(LACOS_ENOMEM, "%s: cannot format the config JSON", path);
  atomic_file af;
  int s = atomic_file_open(&af, path);
  if (!s) {
    fputs(text, af.f);
    fputc('\n', af.f);
    s = atomic_file_commit(&af);
  }
  free(text);
  return s;
}

int lacos_bloom_config_write(const lacos_bloom_config *c, const char *path) {
  TRY(config_check(c, path));
  json_t *root = bloom_config_json(c);
  if (!root) return fail(LACOS_ENOMEM, "%s: cannot build the config JSON", path);
  int s = bloom_config_json_write(root, path);
  json_decref(root);
  return s;
}

double lacos_bloom_config_params(const lacos_bloom_config *c) {
  double C = c->hidden_size;
  double per_layer = 12 * C * C + 13 * C;   /* four linears with biases and two LayerNorms */
  return c->vocab_size * C + 4 * C + c->n_layer * per_layer;
}

void lacos_bloom_options_init(lacos_bloom_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->quant = LACOS_QUANT_INT8;
  opt->threshold = 0;
  opt->device = LACOS_CPU;
  opt->embedding_dtype = LACOS_F16;
}

/* The device option: the CPU, or CUDA when it can be used (the message
   says why not: no CUDA in this build, or no device). */
int bloom_device_check(int device, const char *what) {
  if (device == LACOS_CPU) return LACOS_OK;
  if (device != LACOS_CUDA) return fail(LACOS_EINVAL, "%s: unknown device %d (cpu or cuda)", what, device);
  char why[400];
  if (!cuda_available(why, sizeof why)) return fail(LACOS_EDEVICE, "%s: device cuda requested, but %s", what, why);
  return LACOS_OK;
}

/* ------------------------------------------------------------- storage */

static const int lin_out_mult[NTARGETS] = {3, 1, 4, 1}, lin_in_mult[NTARGETS] = {1, 1, 1, 4};

void bloom_free_storage(lacos_bloom *m) {
  if (!m) return;
  for (int l = 0; m->layers && l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) linear_release(&m->layers[l].lin[t]);
  mem_free(m->big, m->big_bytes, LACOS_CPU);
  mem_free(m->small, m->small_bytes, LACOS_CPU);
  if (m->wte_owned) mem_free(m->wte, m->wte_bytes, LACOS_CPU);
  lacos_tensor_free(m->wte_view);
  mem_free(m->wte_scale, m->wte_scale_bytes, LACOS_CPU);
  free(m->layers);
  m->big = m->small = NULL;
  m->layers = NULL;
}

/* Carves the two parameter allocations into the per-layer struct of pointers. */
int bloom_alloc_storage(lacos_bloom *m) {
  const lacos_bloom_config *c = &m->cfg;
  int64_t C = c->hidden_size, L = c->n_layer;
  bool q8 = m->opt.quant == LACOS_QUANT_INT8;
  size_t welem = (size_t)(12 * C * C), esz = q8 ? 1 : 4;
  size_t big, small_n;
  if (!size_mul(welem, (size_t)L, &big) || !size_mul(big, esz, &big))
    return fail(LACOS_ELIMIT, "model weights overflow the address space");
  /* per layer: 2 LayerNorms (4C), biases (9C), row scales (9C, int8 only) */
  small_n = (size_t)(L * (13 + (q8 ? 9 : 0)) * C + 4 * C + c->n_head);
  m->layers = calloc((size_t)L, sizeof *m->layers);
  if (!m->layers) return fail(LACOS_ENOMEM, "out of memory for the layer table");
  m->big = mem_alloc(big, LACOS_CPU, "model weights");
  if (!m->big) return lacos_last_status();
  m->big_bytes = big;
  m->small = mem_calloc(small_n * sizeof(float), LACOS_CPU, "model parameters");
  if (!m->small) return lacos_last_status();
  m->small_bytes = small_n * sizeof(float);
  float *p = m->small;
  m->emb_ln_w = p; p += C;
  m->emb_ln_b = p; p += C;
  m->lnf_w = p; p += C;
  m->lnf_b = p; p += C;
  m->slopes = p; p += c->n_head;
  char *w = m->big;
  for (int64_t l = 0; l < L; l++) {
    bloom_layer *ly = &m->layers[l];
    ly->ln1_w = p; p += C;
    ly->ln1_b = p; p += C;
    ly->ln2_w = p; p += C;
    ly->ln2_b = p; p += C;
    for (int t = 0; t < NTARGETS; t++) {
      linear *ln = &ly->lin[t];
      ln->in = (int)(C * lin_in_mult[t]);
      ln->out = (int)(C * lin_out_mult[t]);
      ln->kind = q8 ? LINEAR_INT8 : LINEAR_F32;
      ln->bias = p; p += ln->out;
      if (q8) { ln->q = (int8_t *)w; ln->scale = p; p += ln->out; }
      else ln->w = (float *)w;
      w += (size_t)ln->in * ln->out * esz;
    }
  }
  alibi_slopes(m->slopes, c->n_head);
  return LACOS_OK;
}

/* The weights are final (loaded, read from the int8 cache or generated):
   a CPU model packs its int8 codes once for the int8 products
   (linear_prepare); a CUDA model is copied to the GPU. */
int bloom_weights_ready(lacos_bloom *m) {
  if (m->opt.device == LACOS_CUDA) return bloom_cuda_upload(m);
  for (int l = 0; l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) TRY(linear_prepare(&m->layers[l].lin[t]));
  return LACOS_OK;
}

/* ------------------------------------------------------------- random models */

/* Weights are uniform codes in [-127, 127] times a per-row scale, with one
   code per row forced to ±127: the f32 model is exactly the dequantised int8
   model, so quantising a saved random checkpoint reproduces the same int8
   weights bit for bit. The uniform half-width std·√3 gives std 0.02 (BLOOM's
   initializer_range). */
static const float RANDOM_STD = 0.02f;

static void random_row_codes(int8_t *q, int n, uint64_t seed, uint64_t row) {
  for (int k = 0; k < n; k += 8) {
    uint64_t r = rng_u64(seed, row * 0x100000000ull + (uint64_t)k);
    for (int b = 0; b < 8 && k + b < n; b++) {
      int v = (int)((r >> (8 * b)) & 0xff) % 255 - 127;
      q[k + b] = (int8_t)v;
    }
  }
  q[row % (uint64_t)n] = (row & 1) ? -127 : 127;
}

static void random_linear(linear *l, uint64_t seed, uint64_t stream) {
  float scale = RANDOM_STD * sqrtf(3.0f);
  #pragma omp parallel
  {
    int8_t *tmp = l->kind == LINEAR_F32 ? malloc((size_t)l->in) : NULL;
    #pragma omp for schedule(static)
    for (int r = 0; r < l->out; r++) {
      uint64_t row = stream * 1000003ull + (uint64_t)r;
      if (l->kind == LINEAR_INT8) {
        random_row_codes(l->q + (int64_t)r * l->in, l->in, seed, row);
        l->scale[r] = scale;
      } else {
        random_row_codes(tmp, l->in, seed, row);
        float *w = l->w + (int64_t)r * l->in;
        for (int k = 0; k < l->in; k++) w[k] = tmp[k] * (scale / 127.0f);
      }
    }
    free(tmp);
  }
}

static void random_vector(float *v, int n, float center, float spread, uint64_t seed, uint64_t stream) {
  for (int i = 0; i < n; i++)
    v[i] = center + spread * (float)(2.0 * rng_uniform(seed, stream * 1000003ull + (uint64_t)i) - 1.0);
}

int lacos_bloom_random(lacos_bloom **out, const lacos_bloom_config *cfg, double seed_d, const lacos_bloom_options *opt) {
  *out = NULL;
  TRY(config_check(cfg, "random model config"));
  lacos_bloom_options o;
  if (opt) o = *opt; else lacos_bloom_options_init(&o);
  TRY(bloom_device_check(o.device, "random model"));
  if (o.quant != LACOS_QUANT_F32 && o.quant != LACOS_QUANT_INT8) return fail(LACOS_EINVAL, "quant must be f32 or int8");
  int ed = o.embedding_dtype;
  if (ed != LACOS_F32 && ed != LACOS_F16 && ed != LACOS_BF16 && ed != LACOS_I8)
    return fail(LACOS_EINVAL, "embedding dtype must be f32, f16, bf16 or i8");
  lacos_bloom *m = calloc(1, sizeof *m);
  if (!m) return fail(LACOS_ENOMEM, "out of memory");
  m->cfg = *cfg;
  m->opt = o;
  int s = bloom_alloc_storage(m);
  if (s) { lacos_bloom_free(m); return s; }
  uint64_t seed = (uint64_t)seed_d;
  int64_t C = cfg->hidden_size, V = cfg->vocab_size;
  /* Embedding table: uniform codes, stored in the requested dtype. */
  size_t esz = (size_t)lacos_dtype_size(ed), bytes = (size_t)V * (size_t)C * esz;
  m->wte = mem_alloc(bytes, LACOS_CPU, "embedding table");
  if (!m->wte) { lacos_bloom_free(m); return lacos_last_status(); }
  m->wte_owned = true;
  m->wte_bytes = bytes;
  m->wte_dtype = ed;
  if (ed == LACOS_I8) {
    m->wte_scale_bytes = sizeof(float) * (size_t)V;
    m->wte_scale = mem_alloc(m->wte_scale_bytes, LACOS_CPU, "embedding scales");
    if (!m->wte_scale) { lacos_bloom_free(m); return lacos_last_status(); }
  }
  float escale = RANDOM_STD * sqrtf(3.0f);
  #pragma omp parallel
  {
    int8_t *codes = malloc((size_t)C);
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < V; r++) {
      random_row_codes(codes, (int)C, seed, 0xE0000000ull + (uint64_t)r);
      for (int64_t k = 0; k < C; k++) {
        float v = codes[k] * (escale / 127.0f);
        switch (ed) {
        case LACOS_F32: ((float *)m->wte)[r * C + k] = v; break;
        case LACOS_F16: ((uint16_t *)m->wte)[r * C + k] = f32_to_f16(v); break;
        case LACOS_BF16: ((uint16_t *)m->wte)[r * C + k] = f32_to_bf16(v); break;
        case LACOS_I8: ((int8_t *)m->wte)[r * C + k] = codes[k]; break;
        }
      }
      if (ed == LACOS_I8) m->wte_scale[r] = escale;
    }
    free(codes);
  }
  /* LayerNorms near (1, 0) and small biases, so that every parameter matters
     in the tests; the released models' init is exactly (1, 0) and 0. */
  random_vector(m->emb_ln_w, (int)C, 1.0f, 0.1f, seed, 1);
  random_vector(m->emb_ln_b, (int)C, 0.0f, 0.02f, seed, 2);
  random_vector(m->lnf_w, (int)C, 1.0f, 0.1f, seed, 3);
  random_vector(m->lnf_b, (int)C, 0.0f, 0.02f, seed, 4);
  for (int l = 0; l < cfg->n_layer; l++) {
    bloom_layer *ly = &m->layers[l];
    uint64_t base = 100 + (uint64_t)l * 16;
    random_vector(ly->ln1_w, (int)C, 1.0f, 0.1f, seed, base);
    random_vector(ly->ln1_b, (int)C, 0.0f, 0.02f, seed, base + 1);
    random_vector(ly->ln2_w, (int)C, 1.0f, 0.1f, seed, base + 2);
    random_vector(ly->ln2_b, (int)C, 0.0f, 0.02f, seed, base + 3);
    for (int t = 0; t < NTARGETS; t++) {
      random_linear(&ly->lin[t], seed, base + 4 + (uint64_t)t);
      random_vector(ly->lin[t].bias, ly->lin[t].out, 0.0f, 0.02f, seed, base + 8 + (uint64_t)t);
    }
  }
  if ((s = bloom_weights_ready(m))) { lacos_bloom_free(m); return s; }
  *out = m;
  return LACOS_OK;
}

/* ------------------------------------------------------------- queries */

void lacos_bloom_free(lacos_bloom *m) {
  if (!m) return;
  bloom_cuda_free(m);
  bloom_free_storage(m);
  mem_free(m->ws, m->ws_bytes, LACOS_CPU);
  int8_scratch_free(&m->scratch);
  lora_detach_all(m);
  free(m->source_dir);
  free(m);
}

int lacos_bloom_get_config(const lacos_bloom *m, lacos_bloom_config *cfg) { *cfg = m->cfg; return LACOS_OK; }
int lacos_bloom_quant(const lacos_bloom *m) { return m->opt.quant; }
double lacos_bloom_weight_bytes(const lacos_bloom *m) {
  double packed = 0;
  for (int l = 0; l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) packed += linear_prepared_bytes(&m->layers[l].lin[t]);
  return (double)m->big_bytes + (double)m->small_bytes + (double)m->wte_bytes + (double)m->wte_scale_bytes +
         (m->wte_view ? lacos_tensor_nbytes(m->wte_view) : 0) + packed;
}

int lacos_bloom_outliers(const lacos_bloom *m, int layer, int *counts) {
  if (layer < 0 || layer >= m->cfg.n_layer) return fail(LACOS_EINVAL, "layer %d out of range (0..%d)", layer, m->cfg.n_layer - 1);
  for (int t = 0; t < NTARGETS; t++) counts[t] = m->layers[layer].lin[t].outliers;
  return LACOS_OK;
}

/* ------------------------------------------------------------- forward */

int bloom_check_batch(const lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask) {
  TRY(tensor_check(ids, "token ids", LACOS_I32, 2));
  TRY(tensor_check(mask, "attention mask", LACOS_I32, 2));
  if (!lacos_tensor_is_contiguous(ids) || !lacos_tensor_is_contiguous(mask))
    return fail(LACOS_EINVAL, "token ids and mask must be contiguous");
  if (ids->shape[0] != mask->shape[0] || ids->shape[1] != mask->shape[1])
    return fail(LACOS_EINVAL, "token ids (%lld, %lld) and mask (%lld, %lld) differ in shape",
                (long long)ids->shape[0], (long long)ids->shape[1], (long long)mask->shape[0], (long long)mask->shape[1]);
  if (ids->shape[1] > m->cfg.max_length)
    return fail(LACOS_ELIMIT, "sequences of %lld tokens exceed the model's limit of %d",
                (long long)ids->shape[1], m->cfg.max_length);
  if (ids->device != LACOS_CPU) return fail(LACOS_EDEVICE, "token ids must be on the CPU");
  return LACOS_OK;
}

float *bloom_workspace(lacos_bloom *m, size_t floats) {
  size_t bytes = floats * sizeof(float);
  if (m->ws_bytes >= bytes) return m->ws;
  mem_free(m->ws, m->ws_bytes, LACOS_CPU);
  m->ws_bytes = 0;
  m->ws = mem_alloc(bytes, LACOS_CPU, "activations");
  if (m->ws) m->ws_bytes = bytes;
  return m->ws;
}

int bloom_embed(lacos_bloom *m, float *x, const int32_t *ids, int64_t N) {
  const void *table = m->wte_view ? m->wte_view->data : m->wte;
  TRY(embedding_forward(x, ids, N, table, m->wte_dtype, m->wte_scale, m->cfg.vocab_size, m->cfg.hidden_size));
  layernorm_forward(x, NULL, NULL, x, m->emb_ln_w, m->emb_ln_b, N, m->cfg.hidden_size, (float)m->cfg.layer_norm_epsilon);
  return LACOS_OK;
}

/* One block in inference mode, in place on x (N,C); buf holds 9·N·C floats. */
static int block_forward_infer(lacos_bloom *m, int l, float *x, float *buf, const int32_t *mask, int B, int T) {
  const lacos_bloom_config *c = &m->cfg;
  int C = c->hidden_size;
  int64_t N = (int64_t)B * T;
  bloom_layer *ly = &m->layers[l];
  float eps = (float)c->layer_norm_epsilon, thr = (float)m->opt.threshold;
  float *a = buf, *qkv = a + N * C, *att = qkv + 3 * N * C, *fc = att + N * C;
  layernorm_forward(a, NULL, NULL, x, ly->ln1_w, ly->ln1_b, N, C, eps);
  TRY(linear_forward(qkv, a, &ly->lin[T_QKV], N, thr, &m->scratch));
  TRY(lora_apply(m, l, T_QKV, qkv, a, N));
  attention_forward(att, NULL, qkv, mask, m->slopes, B, T, C, c->n_head);
  TRY(linear_forward(a, att, &ly->lin[T_DENSE], N, thr, &m->scratch));
  TRY(lora_apply(m, l, T_DENSE, a, att, N));
  add_inplace(x, a, N * C);
  layernorm_forward(a, NULL, NULL, x, ly->ln2_w, ly->ln2_b, N, C, eps);
  TRY(linear_forward(fc, a, &ly->lin[T_FC1], N, thr, &m->scratch));
  TRY(lora_apply(m, l, T_FC1, fc, a, N));
  gelu_forward(fc, fc, N * 4 * C);
  TRY(linear_forward(a, fc, &ly->lin[T_FC2], N, thr, &m->scratch));
  TRY(lora_apply(m, l, T_FC2, a, fc, N));
  add_inplace(x, a, N * C);
  return LACOS_OK;
}

/* Runs embeddings and all blocks; hidden (N,C) ends as ln_f output. With
   states != NULL, states holds (L+1) slots of N·C: the embedding-LN output,
   each block's output, and finally ln_f of the last block (transformers'
   output_hidden_states). */
static int bloom_run(lacos_bloom *m, const int32_t *ids, const int32_t *mask, int B, int T, float *hidden, float *states) {
  int C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t N = (int64_t)B * T;
  float *buf = bloom_workspace(m, (size_t)N * C * 9);
  if (!buf) return lacos_last_status();
  TRY(bloom_embed(m, hidden, ids, N));
  for (int l = 0; l < L; l++) {
    if (states) memcpy(states + (size_t)l * N * C, hidden, sizeof(float) * (size_t)N * C);
    TRY(block_forward_infer(m, l, hidden, buf, mask, B, T));
  }
  layernorm_forward(hidden, NULL, NULL, hidden, m->lnf_w, m->lnf_b, N, C, (float)m->cfg.layer_norm_epsilon);
  if (states) memcpy(states + (size_t)L * N * C, hidden, sizeof(float) * (size_t)N * C);
  return LACOS_OK;
}

int lacos_bloom_forward(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int all_layers) {
  *hidden = NULL;
  TRY(bloom_check_batch(m, ids, mask));
  if (m->opt.device == LACOS_CUDA) return bloom_forward_cuda(hidden, m, ids, mask, all_layers);
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t shape[4] = {L + 1, B, T, C};
  if (all_layers) TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 4, shape));
  else TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 3, shape + 1));
  float *h = all_layers ? NULL : (*hidden)->data;
  int s;
  if (all_layers) {
    float *tmp = mem_alloc(sizeof(float) * (size_t)B * T * C, LACOS_CPU, "hidden states");
    s = tmp ? bloom_run(m, ids->data, mask->data, B, T, tmp, (*hidden)->data) : lacos_last_status();
    mem_free(tmp, sizeof(float) * (size_t)B * T * C, LACOS_CPU);
  } else {
    s = bloom_run(m, ids->data, mask->data, B, T, h, NULL);
  }
  if (s) { lacos_tensor_free(*hidden); *hidden = NULL; }
  return s;
}

int pooling_mode_check(int pooling) {
  if (pooling < LACOS_POOL_MEAN || pooling > LACOS_POOL_LASTTOKEN)
    return fail(LACOS_EINVAL, "unknown pooling mode %d (mean, weightedmean, lasttoken)", pooling);
  return LACOS_OK;
}

int lacos_bloom_encode(lacos_tensor **emb, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int pooling) {
  *emb = NULL;
  TRY(bloom_check_batch(m, ids, mask));
  TRY(pooling_mode_check(pooling));
  if (m->opt.device == LACOS_CUDA) return bloom_encode_cuda(emb, m, ids, mask, pooling);
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size;
  int64_t shape[2] = {B, C};
  TRY(lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape));
  float *h = mem_alloc(sizeof(float) * (size_t)B * T * C, LACOS_CPU, "hidden states");
  int s = h ? bloom_run(m, ids->data, mask->data, B, T, h, NULL) : lacos_last_status();
  if (!s) pooling_forward((*emb)->data, h, mask->data, B, T, C, pooling);
  mem_free(h, sizeof(float) * (size_t)B * T * C, LACOS_CPU);
  if (s) { lacos_tensor_free(*emb); *emb = NULL; }
  return s;
}
