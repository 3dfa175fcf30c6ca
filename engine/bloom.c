/* bloom.c: the BLOOM family (transformers' BloomModel, without the LM head):
   its weight storage (f32 or LLM.int8), random models, the block forward and
   backward composed of the backend's layers, and the inference passes.

   Graph (modeling_bloom.py): word_embeddings → word_embeddings_layernorm →
   N blocks → ln_f, each block
     a = x + dense(attn(input_layernorm(x)))
     y = a + dense_4h_to_h(gelu(dense_h_to_4h(post_attention_layernorm(a))))
   The checkpoint's fused query_key_value rows are interleaved per head; they
   are reordered once at load into [Q; K; V] blocks (bloom_layout.h) so no
   kernel knows about it.

   Storage: one allocation for every linear weight of the model (int8 codes
   or f32, each linear in its own format: int8 models keep the linears
   int8_skip names in f32, int8_skip.c), one for the small f32 parameters
   (LayerNorms, biases, row scales); the embedding table stays in its
   checkpoint dtype. Weights are made on the host (loaded or generated),
   then the model's backend gets its copy (model.h's stores: the same
   memory on the CPU), and every pass runs through the backend table: one
   code path for every device.

   The passes below the blocks (inference, bloom_train.c's training) serve
   every family through its table (model_family): BERT (bert.c) supplies
   its own storage, embeddings and post-LN block, built from the same
   layers and the same adapted linears (block_linear.c). */
#include "bloom_internal.h"
#include "cpu/layers.h"
#include "parallel.h"
#include <math.h>

/* ------------------------------------------------------------- storage */

int bloom_new(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt, const char *where) {
  *out = NULL;
  const backend *be;
  if (backend_get(&be, opt->device)) return fail_context("%s", where);
  lacos_bloom *m;
  TRY(meta_calloc(&m, 1, sizeof *m, "model"));
  m->cfg = *cfg;
  m->fam = family_of(cfg);
  m->opt = *opt;
  m->opt.int8_skip = NULL;
  m->be = be;
  int s = meta_calloc(&m->lin_kind, (size_t)cfg->n_layer * NTARGETS, 1, "linear formats");
  if (!s) s = int8_skip_resolve(cfg, opt->quant, opt->int8_skip, m->lin_kind, where);
  if (!s && opt->int8_skip) s = meta_strdup(&m->int8_skip, opt->int8_skip, "int8_skip");
  if (s) { lacos_bloom_free(m); return s; }
  m->opt.int8_skip = m->int8_skip;
  *out = m;
  return LACOS_OK;
}

int bloom_alloc_storage(lacos_bloom *m) { return m->fam->alloc_storage(m); }

static void bloom_shapes(const lacos_bloom_config *c, int *in, int *out) {
  for (int t = 0; t < NTARGETS; t++) {
    in[t] = c->hidden_size * bloom_lin_in_mult[t];
    out[t] = c->hidden_size * bloom_lin_out_mult[t];
  }
}

/* The top's small parameters: the embedding LayerNorm, ln_f (2C each) and
   the ALiBi slopes. */
static size_t bloom_top_floats(const lacos_bloom_config *c) { return 4 * (size_t)c->hidden_size + (size_t)c->n_head; }

static int bloom_storage_size(const lacos_bloom_config *c, const uint8_t *kinds, size_t *big, size_t *small_n) {
  int in[NTARGETS], out[NTARGETS];
  bloom_shapes(c, in, out);
  return layers_storage_size(c, in, out, kinds, bloom_top_floats(c), big, small_n);
}

/* Carves the two parameter allocations into the per-layer struct of pointers. */
static int bloom_alloc(lacos_bloom *m) {
  const lacos_bloom_config *c = &m->cfg;
  int64_t C = c->hidden_size, L = c->n_layer;
  size_t big, small_n;
  TRY(bloom_storage_size(c, m->lin_kind, &big, &small_n));
  TRY(alloc_storage_blocks(m, L, big, small_n));
  float *p = m->small;
  bloom_params *h = &m->host;
  h->emb_ln_w = p; p += C;
  h->emb_ln_b = p; p += C;
  h->lnf_w = p; p += C;
  h->lnf_b = p; p += C;
  h->slopes = p; p += c->n_head;
  char *w = m->big;
  int in[NTARGETS], out[NTARGETS];
  bloom_shapes(c, in, out);
  for (int64_t l = 0; l < L; l++) carve_layer(&h->layers[l], in, out, (int)C, m->lin_kind + l * NTARGETS, &p, &w);
  alibi_slopes(h->slopes, c->n_head);
  return LACOS_OK;
}

/* The planner's answer comes from the same sizes the allocation carves. */
int lacos_bloom_plan_weight_bytes(double *bytes, const lacos_bloom_config *cfg, const lacos_bloom_options *opt) {
  *bytes = 0;
  TRY(bloom_config_check(cfg, "model config"));
  lacos_bloom_options o;
  if (opt) o = *opt; else lacos_bloom_options_init(&o);
  uint8_t *kinds;
  TRY(meta_calloc(&kinds, (size_t)cfg->n_layer * NTARGETS, 1, "linear formats"));
  size_t big = 0, small_n = 0;
  int s = int8_skip_resolve(cfg, o.quant, o.int8_skip, kinds, "int8_skip");
  if (!s) s = family_of(cfg)->storage_size(cfg, kinds, &big, &small_n);
  mem_free(kinds);
  TRY(s);
  *bytes = (double)big + 4.0 * (double)small_n;
  return LACOS_OK;
}

static const void *wte_table(const lacos_bloom *m) { return m->wte_view ? m->wte_view->data : m->wte; }
static size_t wte_table_bytes(const lacos_bloom *m) {
  return m->wte_view ? (size_t)lacos_tensor_nbytes(m->wte_view) : m->wte_bytes;
}

/* The memory planner's refusal: say what does not fit before allocating any of it. */
static int check_fit(const lacos_bloom *m) {
  const backend *be = m->be;
  double need = (double)m->big_bytes + (double)m->small_bytes + (double)wte_table_bytes(m) + (double)m->wte_scale_bytes;
  char name[256];
  double free_b = 0, total_b = 0;
  TRY(be->info(name, sizeof name, NULL, NULL, NULL, &free_b, &total_b));
  if (need > free_b)
    return fail(LACOS_ELIMIT, "the model's weights need %.2f GiB of %s memory, but %s has %.2f GiB free of %.2f GiB",
                need / 1073741824.0, be->name, name, free_b / 1073741824.0, total_b / 1073741824.0);
  return LACOS_OK;
}

/* The backend's own layout of the linears it runs (linear_prepare: the
   CPU packs int8 codes for oneDNN's matmul in place), once the weights are
   final: the int8 cache has been written from the plain codes by now, and
   every later reader of the codes goes through linear_weight_row. */
static int bloom_prepare_linears(lacos_bloom *m) {
  if (!m->be->linear_prepare) return LACOS_OK;
  for (int l = 0; l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) TRY(m->be->linear_prepare(&m->run.layers[l].lin[t]));
  return LACOS_OK;
}

int bloom_to_backend(lacos_bloom *m) {
  const backend *be = m->be;
  if (!be->supports(OP_EMBEDDING, m->wte_dtype))
    return fail(LACOS_EUNSUPPORTED, "embedding table dtype %s is not supported on %s", lacos_dtype_name(m->wte_dtype),
                be->name);
  if (!be->host_memory) {
    if (m->wte_view && !lacos_tensor_is_contiguous(m->wte_view))
      return fail(LACOS_EUNSUPPORTED, "the embedding table is not contiguous; cannot copy it to %s", be->name);
    TRY(check_fit(m));
  }
  m->host.wte = wte_table(m);
  m->host.wte_scale = m->wte_scale;
  m->s_big = (store){ m->big, NULL, m->big_bytes };
  m->s_small = (store){ m->small, NULL, m->small_bytes };
  m->s_wte = (store){ (void *)wte_table(m), NULL, wte_table_bytes(m) };
  m->s_wte_scale = (store){ m->wte_scale, NULL, m->wte_scale_bytes };
  TRY(store_upload(be, &m->s_big, "model weights"));
  TRY(store_upload(be, &m->s_small, "model parameters"));
  TRY(store_upload(be, &m->s_wte, "embedding table"));
  TRY(store_upload(be, &m->s_wte_scale, "embedding scales"));
  if (be->host_memory) {
    m->run = m->host;
    return bloom_prepare_linears(m);
  }
  const bloom_params *h = &m->host;
  bloom_params *d = &m->run;
  TRY(meta_calloc(&d->layers, (size_t)m->cfg.n_layer, sizeof *d->layers, "the layer table"));
  d->wte = m->s_wte.dev;
  d->wte_scale = m->s_wte_scale.dev;
  d->emb_ln_w = store_map(&m->s_small, h->emb_ln_w);
  d->emb_ln_b = store_map(&m->s_small, h->emb_ln_b);
  d->lnf_w = store_map(&m->s_small, h->lnf_w);
  d->lnf_b = store_map(&m->s_small, h->lnf_b);
  d->slopes = store_map(&m->s_small, h->slopes);
  d->pos_emb = store_map(&m->s_small, h->pos_emb);
  d->type_emb = store_map(&m->s_small, h->type_emb);
  for (int l = 0; l < m->cfg.n_layer; l++) {
    const bloom_layer *hl = &h->layers[l];
    bloom_layer *dl = &d->layers[l];
    dl->ln1_w = store_map(&m->s_small, hl->ln1_w);
    dl->ln1_b = store_map(&m->s_small, hl->ln1_b);
    dl->ln2_w = store_map(&m->s_small, hl->ln2_w);
    dl->ln2_b = store_map(&m->s_small, hl->ln2_b);
    for (int t = 0; t < NTARGETS; t++) {
      dl->lin[t] = hl->lin[t];
      dl->lin[t].w = store_map(&m->s_big, hl->lin[t].w);
      dl->lin[t].q = store_map(&m->s_big, hl->lin[t].q);
      dl->lin[t].scale = store_map(&m->s_small, hl->lin[t].scale);
      dl->lin[t].bias = store_map(&m->s_small, hl->lin[t].bias);
    }
  }
  return bloom_prepare_linears(m);
}

void lacos_bloom_free(lacos_bloom *m) {
  if (!m) return;
  const backend *be = m->be;
  lora_detach_all(m);
  workspace_free(be, &m->acts_ws);
  workspace_free(be, &m->scratch_ws);
  workspace_free(be, &m->pos_ws);
  /* a batch still alive keeps the training workspace as its own allocation */
  if (m->train_ws_user) m->train_ws_user->lender = NULL;
  else workspace_free(be, &m->train_ws);
  if (be->linear_release && m->run.layers)
    for (int l = 0; l < m->cfg.n_layer; l++)
      for (int t = 0; t < NTARGETS; t++) be->linear_release(&m->run.layers[l].lin[t]);
  store_free(be, &m->s_big);
  store_free(be, &m->s_small);
  store_free(be, &m->s_wte);
  store_free(be, &m->s_wte_scale);
  if (m->run.layers != m->host.layers) mem_free(m->run.layers);
  mem_free(m->host.layers);
  mem_free(m->big);
  mem_free(m->small);
  if (m->wte_owned) mem_free(m->wte);
  lacos_tensor_free(m->wte_view);
  mem_free(m->wte_scale);
  mem_free(m->source_dir);
  mem_free(m->lin_kind);
  mem_free(m->int8_skip);
  mem_free(m);
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

/* codes: a row of codes per thread (f32 weights are made from codes). */
static void random_linear(linear *l, uint64_t seed, uint64_t stream, int8_t *codes) {
  float scale = RANDOM_STD * sqrtf(3.0f);
  #pragma omp parallel
  {
    int8_t *tmp = codes + (size_t)omp_get_thread_num() * (size_t)l->in;
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
  }
}

static void random_vector(float *v, int n, float center, float spread, uint64_t seed, uint64_t stream) {
  for (int i = 0; i < n; i++)
    v[i] = center + spread * (float)(2.0 * rng_uniform(seed, stream * 1000003ull + (uint64_t)i) - 1.0);
}

/* The embedding table: uniform codes, stored in the model's table dtype. */
static void random_table(lacos_bloom *m, uint64_t seed, int8_t *codes) {
  int64_t C = m->cfg.hidden_size, V = m->cfg.vocab_size;
  int ed = m->wte_dtype;
  float escale = RANDOM_STD * sqrtf(3.0f);
  #pragma omp parallel
  {
    int8_t *row = codes + (size_t)omp_get_thread_num() * (size_t)C;
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < V; r++) {
      random_row_codes(row, (int)C, seed, 0xE0000000ull + (uint64_t)r);
      for (int64_t k = 0; k < C; k++) {
        float v = row[k] * (escale / 127.0f);
        switch (ed) {
        case LACOS_F32: ((float *)m->wte)[r * C + k] = v; break;
        case LACOS_F16: ((uint16_t *)m->wte)[r * C + k] = f32_to_f16(v); break;
        case LACOS_BF16: ((uint16_t *)m->wte)[r * C + k] = f32_to_bf16(v); break;
        case LACOS_I8: ((int8_t *)m->wte)[r * C + k] = row[k]; break;
        }
      }
      if (ed == LACOS_I8) m->wte_scale[r] = escale;
    }
  }
}

static int random_weights(lacos_bloom *m, uint64_t seed) {
  const lacos_bloom_config *cfg = &m->cfg;
  int64_t C = cfg->hidden_size, V = cfg->vocab_size, I = ffn_width(cfg);
  int ed = m->opt.embedding_dtype;
  size_t esz = (size_t)lacos_dtype_size(ed);
  m->wte_bytes = (size_t)V * (size_t)C * esz;
  TRY(mem_alloc(&m->wte, m->wte_bytes, "embedding table"));
  m->wte_owned = true;
  m->wte_dtype = ed;
  if (ed == LACOS_I8) {
    m->wte_scale_bytes = sizeof(float) * (size_t)V;
    TRY(mem_alloc(&m->wte_scale, m->wte_scale_bytes, "embedding scales"));
  }
  /* a row of codes per thread, for the widest row generated */
  int8_t *codes;
  TRY(mem_alloc(&codes, (size_t)omp_get_max_threads() * (size_t)(I > C ? I : C), "random codes"));
  random_table(m, seed, codes);
  bloom_params *h = &m->host;
  /* LayerNorms near (1, 0) and small biases, so that every parameter matters
     in the tests; the released models' init is exactly (1, 0) and 0. */
  random_vector(h->emb_ln_w, (int)C, 1.0f, 0.1f, seed, 1);
  random_vector(h->emb_ln_b, (int)C, 0.0f, 0.02f, seed, 2);
  if (h->lnf_w) random_vector(h->lnf_w, (int)C, 1.0f, 0.1f, seed, 3);
  if (h->lnf_b) random_vector(h->lnf_b, (int)C, 0.0f, 0.02f, seed, 4);
  if (h->pos_emb) random_vector(h->pos_emb, (int)(cfg->max_length * C), 0.0f, 0.02f * sqrtf(3.0f), seed, 5);
  if (h->type_emb) random_vector(h->type_emb, (int)(cfg->type_vocab_size * C), 0.0f, 0.02f * sqrtf(3.0f), seed, 6);
  for (int l = 0; l < cfg->n_layer; l++) {
    bloom_layer *ly = &h->layers[l];
    uint64_t base = 100 + (uint64_t)l * 16;
    random_vector(ly->ln1_w, (int)C, 1.0f, 0.1f, seed, base);
    random_vector(ly->ln1_b, (int)C, 0.0f, 0.02f, seed, base + 1);
    random_vector(ly->ln2_w, (int)C, 1.0f, 0.1f, seed, base + 2);
    random_vector(ly->ln2_b, (int)C, 0.0f, 0.02f, seed, base + 3);
    for (int t = 0; t < NTARGETS; t++) {
      random_linear(&ly->lin[t], seed, base + 4 + (uint64_t)t, codes);
      random_vector(ly->lin[t].bias, ly->lin[t].out, 0.0f, 0.02f, seed, base + 8 + (uint64_t)t);
    }
  }
  mem_free(codes);
  return LACOS_OK;
}

int lacos_bloom_random(lacos_bloom **out, const lacos_bloom_config *cfg, double seed_d, const lacos_bloom_options *opt) {
  *out = NULL;
  TRY(bloom_config_check(cfg, "random model config"));
  lacos_bloom_options o;
  if (opt) o = *opt; else lacos_bloom_options_init(&o);
  if (o.quant != LACOS_QUANT_F32 && o.quant != LACOS_QUANT_INT8) return fail(LACOS_EINVAL, "quant must be f32 or int8");
  int ed = o.embedding_dtype;
  if (ed != LACOS_F32 && ed != LACOS_F16 && ed != LACOS_BF16 && ed != LACOS_I8)
    return fail(LACOS_EINVAL, "embedding dtype must be f32, f16, bf16 or i8");
  lacos_bloom *m;
  TRY(bloom_new(&m, cfg, &o, "random model"));
  int s = bloom_alloc_storage(m);
  if (!s) s = random_weights(m, (uint64_t)seed_d);
  if (!s) s = bloom_to_backend(m);
  if (s) { lacos_bloom_free(m); return s; }
  *out = m;
  return LACOS_OK;
}

/* ------------------------------------------------------------- queries */

int lacos_bloom_get_config(const lacos_bloom *m, lacos_bloom_config *cfg) { *cfg = m->cfg; return LACOS_OK; }
int lacos_bloom_quant(const lacos_bloom *m) { return m->opt.quant; }
double lacos_bloom_weight_bytes(const lacos_bloom *m) {
  double packed = 0;   /* what the backend's linear_prepare keeps beside the codes */
  for (int l = 0; m->run.layers && l < m->cfg.n_layer; l++)
    for (int t = 0; t < NTARGETS; t++) packed += (double)m->run.layers[l].lin[t].packed_bytes;
  return (double)m->big_bytes + (double)m->small_bytes + (double)m->wte_bytes + (double)m->wte_scale_bytes +
         (m->wte_view ? lacos_tensor_nbytes(m->wte_view) : 0) + packed;
}

int lacos_bloom_outliers(const lacos_bloom *m, int layer, int *counts) {
  if (layer < 0 || layer >= m->cfg.n_layer) return fail(LACOS_EINVAL, "layer %d out of range (0..%d)", layer, m->cfg.n_layer - 1);
  for (int t = 0; t < NTARGETS; t++) counts[t] = m->run.layers[layer].lin[t].outliers;
  return LACOS_OK;
}

/* ------------------------------------------------------------- the block */

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
  if (ids->device != LACOS_CPU || mask->device != LACOS_CPU) return fail(LACOS_EDEVICE, "token ids must be on the CPU");
  if (!m->be->supports(OP_ATTENTION, ids->shape[1]) || !m->be->supports(OP_POOLING, ids->shape[1]))
    return fail(LACOS_ELIMIT, "sequences of %lld tokens are too long for %s", (long long)ids->shape[1], m->be->name);
  return ids_check(ids->data, lacos_tensor_numel(ids), m->cfg.vocab_size);
}

int pooling_mode_check(int pooling) {
  if (pooling < LACOS_POOL_MEAN || pooling > LACOS_POOL_MEAN_SQRT_LEN)
    return fail(LACOS_EINVAL, "unknown pooling mode %d (mean, weightedmean, lasttoken, cls, max, mean_sqrt_len_tokens)",
                pooling);
  return LACOS_OK;
}

int bloom_ctx_init(lacos_bloom *m, bloom_ctx *x, int B, int T, const int32_t *mask, uint64_t stream, bool training) {
  memset(x, 0, sizeof *x);
  x->B = B;
  x->T = T;
  x->N = (int64_t)B * T;
  x->mask = mask;
  x->stream = stream;
  pass *p = &x->p;
  p->be = m->be;
  p->threshold = (float)m->opt.threshold;
  p->fast_backward = m->fast_backward;
  p->lora = lora_hyper_of(m);
  /* every block has the same four shapes, but each linear its own format
     (int8_skip): the most any block's linears need */
  size_t need = 0;
  for (int l = 0; l < m->cfg.n_layer; l++) {
    size_t n = pass_scratch(m->be, m->run.layers[l].lin, NTARGETS, x->N, p->threshold, p->fast_backward, B, T,
                            m->cfg.hidden_size, m->cfg.n_head, training);
    if (n > need) need = n;
  }
  /* a quarter more when it grows: batches of varying length do not
     reallocate it at every new maximum */
  if (m->scratch_ws.bytes < need) TRY(workspace_reserve(m->be, &m->scratch_ws, need + need / 4, "layer scratch"));
  p->ws = (scratch){ m->scratch_ws.p, m->scratch_ws.bytes };
  return LACOS_OK;
}

int bloom_embed(lacos_bloom *m, const bloom_ctx *x, float *out, const int32_t *ids, float *tmp) {
  (void)tmp;
  const backend *be = m->be;
  int C = m->cfg.hidden_size;
  TRY(be->embedding_forward(out, ids, x->N, m->run.wte, m->wte_dtype, m->run.wte_scale, m->cfg.vocab_size, C));
  return be->layernorm_forward(out, NULL, NULL, out, m->run.emb_ln_w, m->run.emb_ln_b, x->N, C,
                               (float)m->cfg.layer_norm_epsilon);
}

static int bloom_block_forward(lacos_bloom *m, const bloom_ctx *x, int l, layer_acts *a, float *x_out) {
  const backend *be = m->be;
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = x->N;
  const bloom_layer *ly = &m->run.layers[l];
  float eps = (float)m->cfg.layer_norm_epsilon;
  if (!x->chain_ln || l == 0)
    TRY(be->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, ly->ln1_w, ly->ln1_b, N, C, eps));
  TRY(block_linear(m, x, l, T_QKV, a->qkv, a->ln1, a));
  TRY(be->attention_forward(a->att, a->probs, a->qkv, x->mask, m->run.slopes, true, x->B, x->T, C, NH, x->p.ws));
  /* dense, the residual, then post_attention_layernorm on each row */
  TRY(block_linear_then(m, x, l, T_DENSE, a->res1, a->att, a,
                        (linear_epilogue){ .gelu = -1, .residual = a->x_in, .ln = a->ln2, .ln_mean = a->ln2_mean,
                                          .ln_rstd = a->ln2_rstd, .ln_w = ly->ln2_w, .ln_b = ly->ln2_b, .ln_eps = eps }));
  int gelu = m->cfg.gelu_exact ? GELU_ERF : GELU_TANH;
  TRY(block_linear_then(m, x, l, T_FC1, a->fc_post, a->ln2, a, (linear_epilogue){ .gelu = gelu, .pre = a->fc_pre }));
  linear_epilogue out = {.gelu = -1, .residual = a->res1, .ln_eps = eps};
  if (x->chain_ln && l + 1 < m->cfg.n_layer) {   /* the next block's input_layernorm */
    const bloom_layer *next = &m->run.layers[l + 1];
    out.ln = a->ln1, out.ln_mean = a->ln1_mean, out.ln_rstd = a->ln1_rstd, out.ln_w = next->ln1_w, out.ln_b = next->ln1_b;
  } else if (x->chain_ln && m->run.lnf_w) {   /* ln_f, in place */
    out.ln = x_out, out.ln_w = m->run.lnf_w, out.ln_b = m->run.lnf_b;
  }
  return block_linear_then(m, x, l, T_FC2, x_out, a->fc_post, a, out);
}

/* Backward of a block, from d = ∂loss/∂(block output), in place:
     fc2 (input grad + LoRA) → gelu' → fc1 → post_attention_layernorm
     (adds into d, which becomes ∂/∂res1) → dense → attention → qkv →
     input_layernorm (adds into the same buffer, which becomes ∂/∂input).
   The base weights and LayerNorms are frozen, so only input gradients flow
   through them; LoRA A and B accumulate their gradients on the way. */
static int bloom_block_backward(lacos_bloom *m, const bloom_ctx *x, int l, const layer_acts *a, float *d, bool need_dx,
                         float *d_big, float *d_mid, float *d_small) {
  const backend *be = m->be;
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = x->N;
  const bloom_layer *ly = &m->run.layers[l];
  float *d_fc = d_big;       /* (N,4C): first ∂/∂gelu output, then ∂/∂fc_pre */
  float *d_ln = d_small, *d_qkv = d_mid, *d_att = d_small;
  size_t fc_bytes = sizeof(float) * (size_t)N * 4 * C;
  TRY(block_linear_back(m, x, l, T_FC2, d_fc, d, a->fc_post, a));
  /* gelu_backward accumulates: stage through the dropout scratch (free here) */
  TRY(be->zero(x->xd, fc_bytes));
  TRY(be->gelu_backward(x->xd, a->fc_pre, d_fc, N * 4 * C, m->cfg.gelu_exact ? GELU_ERF : GELU_TANH));
  TRY(be->copy(d_fc, x->xd, fc_bytes));
  /* fc1 → d_ln, then post_attention_layernorm adds into d (now ∂/∂res1) */
  TRY(block_linear_back(m, x, l, T_FC1, d_ln, d_fc, a->ln2, a));
  TRY(be->layernorm_backward(d, NULL, NULL, d_ln, a->res1, ly->ln2_w, a->ln2_mean, a->ln2_rstd, N, C));
  /* dense → d_att; attention → d_qkv; qkv → d_ln */
  TRY(block_linear_back(m, x, l, T_DENSE, d_att, d, a->att, a));
  TRY(be->zero(d_qkv, sizeof(float) * (size_t)N * 3 * C));
  TRY(be->attention_backward(d_qkv, d_att, a->probs, a->qkv, x->mask, true, x->B, x->T, C, NH, x->p.ws));
  if (!need_dx && !block_linear_adapted(m, l, T_QKV)) return LACOS_OK;
  TRY(block_linear_back(m, x, l, T_QKV, d_ln, d_qkv, a->ln1, a));
  if (need_dx) TRY(be->layernorm_backward(d, NULL, NULL, d_ln, a->x_in, ly->ln1_w, a->ln1_mean, a->ln1_rstd, N, C));
  return LACOS_OK;
}

/* ------------------------------------------------------------- inference */

/* The inference workspace: hidden (N·C), one block's buffers (5·N·C +
   N·I), LoRA's x·Aᵀ (N·r), pooled (B·C), ids and mask (N ints each). */
typedef struct infer_ws { float *hidden, *buf, *h, *pooled; int32_t *ids, *mask; } infer_ws;

static int infer_workspace(lacos_bloom *m, int B, int T, infer_ws *w) {
  size_t N = (size_t)B * T, C = (size_t)m->cfg.hidden_size, r = m->lora ? (size_t)m->lora->r : 1;
  size_t I = (size_t)ffn_width(&m->cfg);
  size_t sizes[6] = {N * C * 4, (5 * N * C + N * I) * 4, N * r * 4, (size_t)B * C * 4, N * 4, N * 4}, total = 0;
  for (int i = 0; i < 6; i++) total += arena_round(sizes[i]);
  /* growing: an idle training workspace goes first, so that training and
     then inference in one process peak no higher than either */
  if (m->acts_ws.bytes < total && !m->train_ws_user) workspace_free(m->be, &m->train_ws);
  TRY(workspace_reserve(m->be, &m->acts_ws, total, "activations"));
  arena a = arena_over(m->acts_ws);
  TRY(arena_take(&a, &w->hidden, sizes[0], "hidden states"));
  TRY(arena_take(&a, &w->buf, sizes[1], "block buffers"));
  TRY(arena_take(&a, &w->h, sizes[2], "LoRA activations"));
  TRY(arena_take(&a, &w->pooled, sizes[3], "pooled"));
  TRY(arena_take(&a, &w->ids, sizes[4], "token ids"));
  return arena_take(&a, &w->mask, sizes[5], "attention mask");
}

/* An inference pass keeps no activations: a block's buffers overlap where
   a value is dead before the next is written (BLOOM: ln1, att and ln2 share
   one N·C buffer; BERT: its LayerNorms run in place, over res1 and over
   the block's output; fc_pre and fc_post share one N·I buffer, GELU
   running in place), and the block writes its output over its input. */
static void bloom_infer_acts(layer_acts *a, const lacos_bloom_config *c, float *x, float *buf, float *h, int64_t N) {
  memset(a, 0, sizeof *a);
  int64_t C = c->hidden_size;
  float *one = buf, *qkv = one + N * C, *res1 = qkv + 3 * N * C, *fc = res1 + N * C;
  a->x_in = x;
  a->att = one;
  if (c->family == LACOS_FAMILY_BERT) { a->ln1 = res1; a->ln2 = x; }
  else a->ln1 = a->ln2 = one;
  a->qkv = qkv;
  a->res1 = res1;
  a->fc_pre = a->fc_post = fc;
  for (int k = 0; k < LORA_KINDS; k++) a->h[k] = h;
}

/* Embeddings and all blocks into w->hidden (ending as ln_f's output, or
   the last block's without a final LayerNorm);
   states (host, (L+1)·N·C) receives the hidden states (transformers'
   output_hidden_states): the embedding-LN output, each block's output, and
   finally ln_f of the last block. */
static int bloom_run(lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, infer_ws *w, float *states) {
  const backend *be = m->be;
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t N = (int64_t)B * T;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  TRY(infer_workspace(m, B, T, w));
  TRY(be->upload(w->ids, ids->data, sizeof(int32_t) * (size_t)N));
  TRY(be->upload(w->mask, mask->data, sizeof(int32_t) * (size_t)N));
  bloom_ctx x;
  TRY(bloom_ctx_init(m, &x, B, T, w->mask, 0, false));
  x.chain_ln = m->cfg.family == LACOS_FAMILY_BLOOM && L > 0;
  TRY(m->fam->embed(m, &x, w->hidden, w->ids, w->buf));
  layer_acts a;
  bloom_infer_acts(&a, &m->cfg, w->hidden, w->buf, w->h, N);
  for (int l = 0; l < L; l++) {
    if (states) TRY(be->download(states + (size_t)l * N * C, w->hidden, nc_bytes));
    TRY(m->fam->block_forward(m, &x, l, &a, w->hidden));
  }
  if (m->run.lnf_w && !x.chain_ln)   /* chained: the last block's epilogue ran it */
    TRY(be->layernorm_forward(w->hidden, NULL, NULL, w->hidden, m->run.lnf_w, m->run.lnf_b, N, C,
                              (float)m->cfg.layer_norm_epsilon));
  if (states) TRY(be->download(states + (size_t)L * N * C, w->hidden, nc_bytes));
  return LACOS_OK;
}

int lacos_bloom_forward(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int all_layers) {
  *hidden = NULL;
  TRY(bloom_check_batch(m, ids, mask));
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t shape[4] = {L + 1, B, T, C};
  if (all_layers) TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 4, shape));
  else TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 3, shape + 1));
  infer_ws w;
  int s = bloom_run(m, ids, mask, &w, all_layers ? (*hidden)->data : NULL);
  if (!s && !all_layers) s = m->be->download((*hidden)->data, w.hidden, sizeof(float) * (size_t)B * T * C);
  if (s) { lacos_tensor_free(*hidden); *hidden = NULL; }
  return s;
}

int lacos_bloom_encode(lacos_tensor **emb, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int pooling) {
  return lacos_bloom_encode_prompt(emb, m, ids, mask, pooling, 0);
}

int lacos_bloom_encode_prompt(lacos_tensor **emb, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask,
                              int pooling, int prompt_tokens) {
  *emb = NULL;
  TRY(bloom_check_batch(m, ids, mask));
  TRY(pooling_mode_check(pooling));
  if (prompt_tokens < 0) return fail(LACOS_EINVAL, "prompt_tokens must be >= 0, got %d", prompt_tokens);
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size;
  int64_t shape[2] = {B, C};
  TRY(lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape));
  infer_ws w;
  int s = bloom_run(m, ids, mask, &w, NULL);
  if (!s) s = m->be->pooling_forward(w.pooled, w.hidden, w.mask, B, T, C, pooling, prompt_tokens);
  if (!s) s = m->be->download((*emb)->data, w.pooled, sizeof(float) * (size_t)B * C);
  if (s) { lacos_tensor_free(*emb); *emb = NULL; }
  return s;
}

static void bloom_slot_of(lacos_bloom *m, int i, float **vec, linear **lin, int *row0, int *layer, int *target);

const model_family bloom_family = {
  .alloc_storage = bloom_alloc,
  .storage_size = bloom_storage_size,
  .embed = bloom_embed,
  .block_forward = bloom_block_forward,
  .block_backward = bloom_block_backward,
  .slot_of = bloom_slot_of,
};

/* Where BLOOM's checkpoint tensor i goes (bloom_layout.h's numbering; the
   query_key_value rows' interleave is bloom_io.c's business). */
static void bloom_slot_of(lacos_bloom *m, int i, float **vec, linear **lin, int *row0, int *layer, int *target) {
  *vec = NULL; *lin = NULL; *row0 = 0; *layer = -1; *target = -1;
  if (i < 5) {
    float *v[5] = {NULL, m->host.emb_ln_w, m->host.emb_ln_b, m->host.lnf_w, m->host.lnf_b};
    *vec = v[i];
    return;
  }
  int l = (i - 5) / 12, k = (i - 5) % 12;
  bloom_layer *ly = &m->host.layers[l];
  *layer = l;
  static const int tgt[12] = {-1, -1, T_QKV, T_QKV, T_DENSE, T_DENSE, -1, -1, T_FC1, T_FC1, T_FC2, T_FC2};
  *target = tgt[k];
  switch (k) {
  case 0: *vec = ly->ln1_w; break;
  case 1: *vec = ly->ln1_b; break;
  case 6: *vec = ly->ln2_w; break;
  case 7: *vec = ly->ln2_b; break;
  default:
    if (k % 2 == 0) *lin = &ly->lin[tgt[k]];
    else *vec = ly->lin[tgt[k]].bias;
  }
}
