/* bloom_io.c: BLOOM weights in and out of the Hugging Face layout.

   Names are transformers' BloomModel names (a "transformer." prefix, as
   BloomForCausalLM writes, is accepted by the reader). Loading converts each
   weight row by row from the checkpoint dtype (f32/f16/bf16) straight into
   the model's storage — int8 codes or f32 — so an int8 load never holds an
   f32 copy of a whole matrix; query_key_value rows are reordered from the
   per-head interleave to [Q;K;V] on the way in (and back on the way out).
   The embedding table is used in place (a view on the memory-mapped file). */
#include "bloom_internal.h"
#include <math.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

int bloom_weight_count(const lacos_bloom_config *c) { return 5 + 12 * c->n_layer; }

/* Name i of the checkpoint's tensors, with its shape. */
void bloom_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols) {
  int64_t C = c->hidden_size;
  static const char *const top[5] = {"word_embeddings.weight", "word_embeddings_layernorm.weight",
                                     "word_embeddings_layernorm.bias", "ln_f.weight", "ln_f.bias"};
  if (i < 5) {
    snprintf(name, n, "%s", top[i]);
    *rows = i == 0 ? c->vocab_size : C;
    *cols = i == 0 ? C : 0;
    return;
  }
  int l = (i - 5) / 12, k = (i - 5) % 12;
  static const char *const part[12] = {
    "input_layernorm.weight", "input_layernorm.bias",
    "self_attention.query_key_value.weight", "self_attention.query_key_value.bias",
    "self_attention.dense.weight", "self_attention.dense.bias",
    "post_attention_layernorm.weight", "post_attention_layernorm.bias",
    "mlp.dense_h_to_4h.weight", "mlp.dense_h_to_4h.bias",
    "mlp.dense_4h_to_h.weight", "mlp.dense_4h_to_h.bias"};
  static const int out_mult[12] = {1, 1, 3, 3, 1, 1, 1, 1, 4, 4, 1, 1};
  static const int in_mult[12] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 0};
  snprintf(name, n, "h.%d.%s", l, part[k]);
  *rows = C * out_mult[k];
  *cols = C * in_mult[k];
}

/* Row r of the engine's qkv ([Q;K;V] blocks) ↔ row of the checkpoint's per-head interleave. */
int qkv_checkpoint_row(int r, int C, int NH) {
  int HD = C / NH, part = r / C, head = (r % C) / HD, d = r % HD;
  return head * 3 * HD + part * HD + d;
}

/* Where the vector or matrix named by index i lives in the model. */
typedef struct slot { float *vec; linear *lin; bool qkv, bias_of_qkv; } slot;

static slot slot_of(lacos_bloom *m, int i) {
  slot s = {0};
  if (i < 5) {
    float *v[5] = {NULL, m->emb_ln_w, m->emb_ln_b, m->lnf_w, m->lnf_b};
    s.vec = v[i];
    return s;
  }
  int l = (i - 5) / 12, k = (i - 5) % 12;
  bloom_layer *ly = &m->layers[l];
  switch (k) {
  case 0: s.vec = ly->ln1_w; break;
  case 1: s.vec = ly->ln1_b; break;
  case 2: s.lin = &ly->lin[T_QKV]; s.qkv = true; break;
  case 3: s.vec = ly->lin[T_QKV].bias; s.bias_of_qkv = true; break;
  case 4: s.lin = &ly->lin[T_DENSE]; break;
  case 5: s.vec = ly->lin[T_DENSE].bias; break;
  case 6: s.vec = ly->ln2_w; break;
  case 7: s.vec = ly->ln2_b; break;
  case 8: s.lin = &ly->lin[T_FC1]; break;
  case 9: s.vec = ly->lin[T_FC1].bias; break;
  case 10: s.lin = &ly->lin[T_FC2]; break;
  case 11: s.vec = ly->lin[T_FC2].bias; break;
  }
  return s;
}

static bool float_dtype(int d) { return d == LACOS_F32 || d == LACOS_F16 || d == LACOS_BF16; }

static int load_one(lacos_bloom *m, int i, const lacos_tensor *t, const char *name, const char *where) {
  const lacos_bloom_config *c = &m->cfg;
  char want[64];
  int64_t rows, cols;
  bloom_weight_name(c, i, want, sizeof want, &rows, &cols);
  int wnd = cols ? 2 : 1;
  if (t->ndim != wnd || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
    char have[96];
    tensor_shape_str(t, have, sizeof have);
    if (cols) snprintf(want, sizeof want, "(%lld, %lld)", (long long)rows, (long long)cols);
    else snprintf(want, sizeof want, "(%lld)", (long long)rows);
    return fail(LACOS_EFORMAT, "%s: tensor %s has shape %s, but config.json implies %s", where, name, have, want);
  }
  if (!float_dtype(t->dtype))
    return fail(LACOS_EUNSUPPORTED, "%s: tensor %s is %s; BLOOM weights must be f32, f16 or bf16", where, name, lacos_dtype_name(t->dtype));
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EFORMAT, "%s: tensor %s is not contiguous", where, name);
  slot s = slot_of(m, i);
  int C = c->hidden_size, NH = c->n_head;
  if (s.vec) {
    if (s.bias_of_qkv) {
      for (int r = 0; r < 3 * C; r++) s.vec[r] = (float)dtype_load(t->data, qkv_checkpoint_row(r, C, NH), t->dtype);
    } else {
      dtype_convert(s.vec, LACOS_F32, t->data, t->dtype, rows);
    }
    return LACOS_OK;
  }
  linear *l = s.lin;
  int esz = lacos_dtype_size(t->dtype);
  int bad_row = -1;
  #pragma omp parallel
  {
    float *row = malloc(sizeof(float) * (size_t)l->in);
    #pragma omp for schedule(static)
    for (int r = 0; r < l->out; r++) {
      int src = s.qkv ? qkv_checkpoint_row(r, C, NH) : r;
      const char *p = (const char *)t->data + (size_t)src * (size_t)l->in * (size_t)esz;
      float *dst = l->kind == LINEAR_F32 ? l->w + (int64_t)r * l->in : row;
      dtype_convert(dst, LACOS_F32, p, t->dtype, l->in);
      for (int k = 0; k < l->in; k++)
        if (!isfinite(dst[k])) {
          #pragma omp atomic write
          bad_row = r;
          break;
        }
      if (l->kind == LINEAR_INT8) linear_quantize_weights(l, row, r, 1);
    }
    free(row);
  }
  if (bad_row >= 0) return fail(LACOS_ENUMERIC, "%s: tensor %s has non-finite values (row %d)", where, name, bad_row);
  return LACOS_OK;
}

/* A converted weight's pages are not needed again: drop them from this
   process (they stay in the page cache), so loading a 14 GB checkpoint does
   not show — or hold — 14 GB of resident memory on top of the model. */
static void release_pages(const lacos_tensor *t) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)t->data, b = a + (uintptr_t)lacos_tensor_nbytes(t);
  uintptr_t a0 = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1), b0 = b & ~((uintptr_t)page - 1);
  if (b0 > a0) madvise((void *)a0, b0 - a0, MADV_DONTNEED);
}

int bloom_load_from(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                    weight_getter get, void *ctx, const char *where) {
  *out = NULL;
  lacos_bloom *m = calloc(1, sizeof *m);
  if (!m) return fail(LACOS_ENOMEM, "out of memory");
  m->cfg = *cfg;
  m->opt = *opt;
  int s = bloom_alloc_storage(m);
  for (int i = 0; i < bloom_weight_count(cfg) && !s; i++) {
    char name[64];
    int64_t rows, cols;
    bloom_weight_name(cfg, i, name, sizeof name, &rows, &cols);
    lacos_tensor *t = NULL;
    s = get(ctx, name, &t);
    if (s) break;
    if (i == 0) {
      /* the embedding table stays in the file: a view, in its own dtype */
      if (t->ndim != 2 || t->shape[0] != cfg->vocab_size || t->shape[1] != cfg->hidden_size) {
        char have[96];
        tensor_shape_str(t, have, sizeof have);
        s = fail(LACOS_EFORMAT, "%s: tensor %s has shape %s, but config.json implies (%d, %d)", where, name, have,
                 cfg->vocab_size, cfg->hidden_size);
      } else if (!float_dtype(t->dtype)) {
        s = fail(LACOS_EUNSUPPORTED, "%s: tensor %s is %s; expected f32, f16 or bf16", where, name, lacos_dtype_name(t->dtype));
      } else {
        m->wte_view = t;
        m->wte_dtype = t->dtype;
        t = NULL;
      }
    } else {
      s = load_one(m, i, t, name, where);
      release_pages(t);
    }
    lacos_tensor_free(t);
  }
  if (s) { lacos_bloom_free(m); return s; }
  *out = m;
  return LACOS_OK;
}

/* A weight in the checkpoint layout, f32 (dequantised for int8 models). */
int lacos_bloom_weight(lacos_tensor **out, lacos_bloom *m, const char *name) {
  *out = NULL;
  const lacos_bloom_config *c = &m->cfg;
  const char *n = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
  for (int i = 0; i < bloom_weight_count(c); i++) {
    char cand[64];
    int64_t rows, cols;
    bloom_weight_name(c, i, cand, sizeof cand, &rows, &cols);
    if (strcmp(cand, n) != 0) continue;
    int64_t shape[2] = {rows, cols};
    TRY(lacos_tensor_empty(out, LACOS_F32, LACOS_CPU, cols ? 2 : 1, shape));
    float *dst = (*out)->data;
    int C = c->hidden_size, NH = c->n_head;
    if (i == 0) {
      const void *table = m->wte_view ? m->wte_view->data : m->wte;
      if (m->wte_dtype == LACOS_I8) {
        for (int64_t r = 0; r < rows; r++)
          for (int64_t k = 0; k < cols; k++) dst[r * cols + k] = ((const int8_t *)table)[r * cols + k] * (m->wte_scale[r] / 127.0f);
      } else dtype_convert(dst, LACOS_F32, table, m->wte_dtype, rows * cols);
      return LACOS_OK;
    }
    slot s = slot_of(m, i);
    if (s.vec) {
      for (int64_t r = 0; r < rows; r++) dst[s.bias_of_qkv ? qkv_checkpoint_row((int)r, C, NH) : r] = s.vec[r];
      return LACOS_OK;
    }
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < s.lin->out; r++)
      linear_weight_row(dst + (int64_t)(s.qkv ? qkv_checkpoint_row(r, C, NH) : r) * cols, s.lin, r);
    return LACOS_OK;
  }
  return fail(LACOS_ENOTFOUND, "no weight named '%s' in a BLOOM model", name);
}

int lacos_bloom_weight_count(const lacos_bloom *m) { return bloom_weight_count(&m->cfg); }

const char *lacos_bloom_weight_name(const lacos_bloom *m, int i) {
  static _Thread_local char name[64];
  if (i < 0 || i >= bloom_weight_count(&m->cfg)) { fail(LACOS_EINVAL, "weight index %d out of range", i); return NULL; }
  int64_t rows, cols;
  bloom_weight_name(&m->cfg, i, name, sizeof name, &rows, &cols);
  return name;
}

/* ------------------------------------------------------------- checkpoints */

typedef struct st_source { lacos_safetensors *st; const char *dir; } st_source;

static int st_get(void *ctx, const char *name, lacos_tensor **out) {
  st_source *src = ctx;
  int s = lacos_safetensors_get(out, src->st, name);
  if (s == LACOS_ENOTFOUND) return fail(LACOS_ENOTFOUND, "%s: the checkpoint has no tensor \"%s\" (nor \"transformer.%s\")", src->dir, name, name);
  return s;
}

int lacos_bloom_load(lacos_bloom **out, const char *dir, const lacos_bloom_options *opt) {
  *out = NULL;
  lacos_bloom_options o;
  if (opt) o = *opt; else lacos_bloom_options_init(&o);
  if (o.device != LACOS_CPU) return fail(LACOS_EDEVICE, "%s: CUDA requested, but this lacos was built without CUDA support", dir);
  if (o.quant != LACOS_QUANT_F32 && o.quant != LACOS_QUANT_INT8) return fail(LACOS_EINVAL, "quant must be f32 or int8");
  if (o.threshold < 0 || !isfinite(o.threshold)) return fail(LACOS_EINVAL, "the outlier threshold must be >= 0");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  lacos_bloom_config cfg;
  TRY(lacos_bloom_config_read(&cfg, path));
  lacos_safetensors *st;
  TRY(lacos_safetensors_open(&st, dir));
  st_source src = {st, dir};
  int s = bloom_load_from(out, &cfg, &o, st_get, &src, dir);
  lacos_safetensors_free(st);   /* views (the embedding table) keep their mapping */
  if (!s) (*out)->source_dir = strdup(dir);
  return s;
}

typedef struct save_ctx { lacos_bloom *m; int dtype; char **names; } save_ctx;

static int save_provider(void *ctx, int i, lacos_tensor **out) {
  save_ctx *c = ctx;
  lacos_tensor *f = NULL;
  TRY(lacos_bloom_weight(&f, c->m, c->names[i]));
  int s = lacos_tensor_to_dtype(out, f, c->dtype);
  lacos_tensor_free(f);
  return s;
}

/* Streams the weights shard by shard, so saving never holds more than one
   shard's tensors in memory. */
int lacos_bloom_save(lacos_bloom *m, const char *dir, int dtype, double max_shard_bytes) {
  if (dtype != LACOS_F32 && dtype != LACOS_F16 && dtype != LACOS_BF16)
    return fail(LACOS_EINVAL, "%s: checkpoints are saved in f32, f16 or bf16", dir);
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", dir);
  int n = bloom_weight_count(&m->cfg);
  char **names = calloc((size_t)n, sizeof *names);
  double *bytes = calloc((size_t)n, sizeof *bytes);
  int s = names && bytes ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory");
  for (int i = 0; i < n && !s; i++) {
    int64_t rows, cols;
    char name[64];
    bloom_weight_name(&m->cfg, i, name, sizeof name, &rows, &cols);
    if (!(names[i] = strdup(name))) s = fail(LACOS_ENOMEM, "out of memory");
    bytes[i] = (double)rows * (double)(cols ? cols : 1) * lacos_dtype_size(dtype);
  }
  save_ctx ctx = {m, dtype, names};
  if (!s) s = safetensors_write_sharded_with(dir, n, (const char *const *)names, bytes, max_shard_bytes, save_provider, &ctx);
  if (!s) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    s = lacos_bloom_config_write(&m->cfg, path);
  }
  for (int i = 0; i < n && names; i++) free(names[i]);
  free(names);
  free(bytes);
  return s;
}
