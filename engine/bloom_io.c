/* bloom_io.c: a model's weights in and out of the Hugging Face layout, for
   every family (layout.h names the tensors, the family's slot_of says where
   each goes).

   Names are transformers' BloomModel / BertModel names (a "transformer."
   prefix, as BloomForCausalLM writes, or "bert.", as BertFor* writes, is
   accepted by the reader). Loading converts each
   weight row by row from the checkpoint dtype (f32/f16/bf16) straight into
   the model's storage — int8 codes or f32 — so an int8 load never holds an
   f32 copy of a whole matrix; query_key_value rows are reordered from the
   per-head interleave to [Q;K;V] on the way in (and back on the way out).
   The embedding table is used in place (a view on the memory-mapped file). */
#include "bloom_internal.h"
#include "cpu/layers.h"
#include "parallel.h"
#include <math.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <dirent.h>
#include <zstd.h>
#include <jansson.h>
#include <unistd.h>

/* Where the vector or matrix named by index i lives in the model: a host
   vector (a bias band starts at its row0), or rows row0.. of a linear; qkv
   and bias_of_qkv mark BLOOM's interleaved query_key_value. */
typedef struct slot { float *vec; linear *lin; int row0; bool qkv, bias_of_qkv; int layer, target; } slot;

static slot slot_of(lacos_bloom *m, int i) {
  slot s = {0};
  m->fam->slot_of(m, i, &s.vec, &s.lin, &s.row0, &s.layer, &s.target);
  bool interleaved = m->cfg.family == LACOS_FAMILY_BLOOM && s.target == T_QKV;
  s.qkv = interleaved && s.lin;
  s.bias_of_qkv = interleaved && s.vec;
  return s;
}

/* The prefix a task head's checkpoint puts before the base model's names. */
static const char *family_prefix(const lacos_bloom_config *c) {
  return c->family == LACOS_FAMILY_BERT ? "bert." : "transformer.";
}

static bool float_dtype(int d) { return d == LACOS_F32 || d == LACOS_F16 || d == LACOS_BF16; }

/* Weight i of the checkpoint has the shape config.json implies and a float
   dtype; `where` is the file it was read from. */
static int check_weight(const lacos_bloom_config *c, int i, const lacos_tensor *t, const char *name, const char *where) {
  char want[96];
  int64_t rows, cols;
  layout_weight_name(c, i, want, sizeof want, &rows, &cols);
  int wnd = cols ? 2 : 1;
  if (t->ndim != wnd || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
    char have[96];
    tensor_shape_str(t, have, sizeof have);
    if (cols) snprintf(want, sizeof want, "(%lld, %lld)", (long long)rows, (long long)cols);
    else snprintf(want, sizeof want, "(%lld)", (long long)rows);
    return fail(LACOS_EFORMAT, "%s: tensor %s has shape %s, but config.json implies %s", where, name, have, want);
  }
  if (!float_dtype(t->dtype))
    return fail(LACOS_EUNSUPPORTED, "%s: tensor %s is %s; %s weights must be f32, f16 or bf16", where, name,
                lacos_dtype_name(t->dtype), family_name(c));
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EFORMAT, "%s: tensor %s is not contiguous", where, name);
  return LACOS_OK;
}

/* Every weight the config implies is in the checkpoint with its shape,
   checked before the model's storage is allocated: a config.json claiming
   a far larger model than the weights beside it (corrupted, or fuzzed) fails
   here instead of first reserving (and zeroing part of) the claimed size. */
static int check_weights(const lacos_bloom_config *c, weight_getter get, void *ctx, const char *where, int first, int last) {
  for (int i = first; i < last; i++) {
    char name[96];
    int64_t rows, cols;
    layout_weight_name(c, i, name, sizeof name, &rows, &cols);
    lacos_tensor *t = NULL;
    const char *file = where;
    TRY(get(ctx, name, &t, &file));
    int s = check_weight(c, i, t, name, file);
    lacos_tensor_free(t);
    TRY(s);
  }
  return LACOS_OK;
}

/* row_bufs: a row of in floats per thread, for int8 models (converted rows
   are quantised from it). */
static int load_one(lacos_bloom *m, int i, const lacos_tensor *t, const char *name, const char *where,
                    float *row_bufs) {
  const lacos_bloom_config *c = &m->cfg;
  int64_t rows, cols;
  char want[96];
  layout_weight_name(c, i, want, sizeof want, &rows, &cols);
  TRY(check_weight(c, i, t, name, where));
  slot s = slot_of(m, i);
  int C = c->hidden_size, NH = c->n_head;
  if (s.vec) {
    if (s.bias_of_qkv) {
      for (int r = 0; r < 3 * C; r++) s.vec[r] = (float)dtype_load(t->data, qkv_checkpoint_row(r, C, NH), t->dtype);
    } else {
      dtype_convert(s.vec, LACOS_F32, t->data, t->dtype, rows * (cols ? cols : 1));   /* BERT's tables are 2-D */
      if (!floats_finite(s.vec, rows * (cols ? cols : 1)))
        return fail(LACOS_ENUMERIC, "%s: tensor %s has non-finite values", where, name);
    }
    return LACOS_OK;
  }
  linear *l = s.lin;
  int esz = lacos_dtype_size(t->dtype);
  int bad_row = -1;
  #pragma omp parallel
  {
    float *row = row_bufs + (size_t)omp_get_thread_num() * (size_t)l->in;
    #pragma omp for schedule(static)
    for (int r = 0; r < (int)rows; r++) {
      int src = s.qkv ? qkv_checkpoint_row(r, C, NH) : r, dr = s.row0 + r;
      const char *p = (const char *)t->data + (size_t)src * (size_t)l->in * (size_t)esz;
      float *dst = l->kind == LINEAR_F32 ? l->w + (int64_t)dr * l->in : row;
      dtype_convert(dst, LACOS_F32, p, t->dtype, l->in);
      for (int k = 0; k < l->in; k++)
        if (!isfinite(dst[k])) {
          #pragma omp atomic write
          bad_row = r;
          break;
        }
      if (l->kind == LINEAR_INT8) linear_quantize_weights(l, row, dr, 1);
    }
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
  TRY(check_weights(cfg, get, ctx, where, 0, layout_weight_count(cfg)));
  lacos_bloom *m;
  TRY(bloom_new(&m, cfg, opt, where));
  int s = bloom_alloc_storage(m);
  float *row_bufs = NULL;   /* the widest row (the second feed-forward linear's I) per thread */
  size_t widest = (size_t)(ffn_width(cfg) > cfg->hidden_size ? ffn_width(cfg) : cfg->hidden_size);
  if (!s) s = mem_alloc(&row_bufs, sizeof(float) * (size_t)omp_get_max_threads() * widest, "weight rows");
  for (int i = 0; i < layout_weight_count(cfg) && !s; i++) {
    char name[96];
    int64_t rows, cols;
    layout_weight_name(cfg, i, name, sizeof name, &rows, &cols);
    lacos_tensor *t = NULL;
    const char *file = where;
    s = get(ctx, name, &t, &file);
    if (s) break;
    if (i == 0) {
      /* the embedding table stays in the file: a view, in its own dtype */
      if (t->ndim != 2 || t->shape[0] != cfg->vocab_size || t->shape[1] != cfg->hidden_size) {
        char have[96];
        tensor_shape_str(t, have, sizeof have);
        s = fail(LACOS_EFORMAT, "%s: tensor %s has shape %s, but config.json implies (%d, %d)", file, name, have,
                 cfg->vocab_size, cfg->hidden_size);
      } else if (!float_dtype(t->dtype)) {
        s = fail(LACOS_EUNSUPPORTED, "%s: tensor %s is %s; expected f32, f16 or bf16", file, name, lacos_dtype_name(t->dtype));
      } else {
        m->wte_view = t;
        m->wte_dtype = t->dtype;
        t = NULL;
      }
    } else {
      s = load_one(m, i, t, name, file, row_bufs);
      release_pages(t);
    }
    lacos_tensor_free(t);
  }
  mem_free(row_bufs);
  if (s) { lacos_bloom_free(m); return s; }
  *out = m;
  return LACOS_OK;
}

/* Like bloom_load_from, but the linear weights and small parameters come
   from the int8 cache; only the embedding table is taken from the checkpoint. */
int bloom_load_cached(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                      weight_getter get, void *ctx, const char *where, const char *cache) {
  *out = NULL;
  TRY(check_weights(cfg, get, ctx, where, 0, layout_weight_count(cfg)));
  lacos_bloom *m;
  TRY(bloom_new(&m, cfg, opt, where));
  int s = bloom_alloc_storage(m);
  if (!s) s = bloom_cache_read(m, cache);
  lacos_tensor *t = NULL;
  const char *file = where;
  char wname[96];
  int64_t wr, wc;
  layout_weight_name(cfg, 0, wname, sizeof wname, &wr, &wc);
  if (!s) s = get(ctx, wname, &t, &file);
  if (!s && (t->ndim != 2 || t->shape[0] != cfg->vocab_size || t->shape[1] != cfg->hidden_size || !float_dtype(t->dtype)))
    s = fail(LACOS_EFORMAT, "%s: %s does not match config.json", file, wname);
  if (s) { lacos_tensor_free(t); lacos_bloom_free(m); return s; }
  m->wte_view = t;
  m->wte_dtype = t->dtype;
  if (m->host.slopes) alibi_slopes(m->host.slopes, cfg->n_head);
  *out = m;
  return LACOS_OK;
}

/* A weight in the checkpoint layout, f32 (dequantised for int8 models;
   from the merged copy for linears a merged LoRA adapter covers). */
int lacos_bloom_weight(lacos_tensor **out, lacos_bloom *m, const char *name) {
  *out = NULL;
  const lacos_bloom_config *c = &m->cfg;
  const char *pre = family_prefix(c);
  const char *n = strncmp(name, pre, strlen(pre)) == 0 ? name + strlen(pre) : name;
  for (int i = 0; i < layout_weight_count(c); i++) {
    char cand[96];
    int64_t rows, cols;
    layout_weight_name(c, i, cand, sizeof cand, &rows, &cols);
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
      int64_t n_el = rows * (cols ? cols : 1);
      for (int64_t r = 0; r < n_el; r++) dst[s.bias_of_qkv ? qkv_checkpoint_row((int)r, C, NH) : r] = s.vec[r];
      return LACOS_OK;
    }
    const float *merged = NULL;
    int st = lora_merged_weight(m, s.layer, s.target, s.row0, &merged);
    if (st) { lacos_tensor_free(*out); *out = NULL; return st; }
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < (int)rows; r++) {
      float *row = dst + (int64_t)(s.qkv ? qkv_checkpoint_row(r, C, NH) : r) * cols;
      if (merged) memcpy(row, merged + (int64_t)r * cols, sizeof(float) * (size_t)cols);
      else linear_weight_row(row, s.lin, s.row0 + r);
    }
    return LACOS_OK;
  }
  return fail(LACOS_ENOTFOUND, "no weight named '%s' in a %s model", name, family_name(c));
}

int lacos_bloom_weight_count(const lacos_bloom *m) { return layout_weight_count(&m->cfg); }

const char *lacos_bloom_weight_name(const lacos_bloom *m, int i) {
  static _Thread_local char name[96];
  if (i < 0 || i >= layout_weight_count(&m->cfg)) { fail(LACOS_EINVAL, "weight index %d out of range", i); return NULL; }
  int64_t rows, cols;
  layout_weight_name(&m->cfg, i, name, sizeof name, &rows, &cols);
  return name;
}

/* ------------------------------------------------------------- checkpoints */

typedef struct st_source { lacos_safetensors *st; const char *dir; bool bert; } st_source;

static int st_get(void *ctx, const char *name, lacos_tensor **out, const char **file) {
  st_source *src = ctx;
  char alt[160];
  snprintf(alt, sizeof alt, "bert.%s", name);
  /* BERT's task heads keep the encoder under "bert." (safetensors.c itself
     resolves BLOOM's "transformer.") */
  if (src->bert && lacos_safetensors_find(src->st, name) < 0 && lacos_safetensors_find(src->st, alt) >= 0) name = alt;
  int s = lacos_safetensors_get(out, src->st, name);
  if (s == LACOS_ENOTFOUND)
    return fail(LACOS_ENOTFOUND, "%s: the checkpoint has no tensor \"%s\" (nor \"%s%s\")", src->dir, name,
                src->bert ? "bert." : "transformer.", name);
  int i = s ? -1 : lacos_safetensors_find(src->st, name);
  if (i >= 0) *file = lacos_safetensors_file(src->st, i);   /* the shard, when sharded */
  return s;
}

static int cache_path(const char *dir, const uint8_t *kinds, int L, char *path, int cap);

int lacos_bloom_load(lacos_bloom **out, const char *dir, const lacos_bloom_options *opt) {
  *out = NULL;
  lacos_bloom_options o;
  if (opt) o = *opt; else lacos_bloom_options_init(&o);
  const backend *be;
  if (backend_get(&be, o.device)) return fail_context("%s", dir);
  if (o.quant != LACOS_QUANT_F32 && o.quant != LACOS_QUANT_INT8) return fail(LACOS_EINVAL, "quant must be f32 or int8");
  if (o.threshold < 0 || !isfinite(o.threshold)) return fail(LACOS_EINVAL, "the outlier threshold must be >= 0");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  lacos_bloom_config cfg;
  TRY(lacos_bloom_config_read(&cfg, path));
  lacos_safetensors *st;
  TRY(lacos_safetensors_open(&st, dir));
  st_source src = {st, dir, cfg.family == LACOS_FAMILY_BERT};
  char cache[4096] = "";
  uint8_t *kinds = NULL;
  int s = meta_calloc(&kinds, (size_t)cfg.n_layer * NTARGETS, 1, "linear formats");
  if (!s) s = int8_skip_resolve(&cfg, o.quant, o.int8_skip, kinds, dir);
  if (s) { mem_free(kinds); lacos_safetensors_free(st); return s; }
  bool use_cache = o.cache && o.quant == LACOS_QUANT_INT8 &&
                   cache_path(dir, kinds, cfg.n_layer, cache, sizeof cache) == LACOS_OK;
  mem_free(kinds);
  if (use_cache && access(cache, R_OK) == 0) {
    s = bloom_load_cached(out, &cfg, &o, st_get, &src, dir, cache);
    if (!s) {
      lacos_safetensors_free(st);
      s = meta_strdup(&(*out)->source_dir, dir, "model directory");
      if (!s) s = bloom_to_backend(*out);
      if (s) { lacos_bloom_free(*out); *out = NULL; }
      return s;
    }
    /* an unreadable cache is rebuilt, never trusted */
    unlink(cache);
  }
  s = bloom_load_from(out, &cfg, &o, st_get, &src, dir);
  if (!s && use_cache) bloom_cache_write(*out, cache);   /* best effort: a read-only cache dir just means no cache */
  lacos_safetensors_free(st);   /* views (the embedding table) keep their mapping */
  if (!s) s = meta_strdup(&(*out)->source_dir, dir, "model directory");
  if (!s) s = bloom_to_backend(*out);
  if (s) { lacos_bloom_free(*out); *out = NULL; }
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

/* config.json of a saved checkpoint: the source checkpoint's own file when
   the model was loaded from one that still describes it (so what lacos does
   not model — a null pad_token_id, tie_word_embeddings, transformers_version
   — survives an export), else one made from the config. Either way its dtype
   names what the weights are: transformers loading with dtype="auto" must
   not cast an f32 export down to the dtype the source was stored in. */
static int save_config(const lacos_bloom *m, const char *path, int dtype) {
  const char *torch_name = dtype == LACOS_F16 ? "float16" : dtype == LACOS_BF16 ? "bfloat16" : "float32";
  json_t *root = NULL;
  if (m->source_dir) {
    char src[4096];
    snprintf(src, sizeof src, "%s/config.json", m->source_dir);
    lacos_bloom_config c;
    if (lacos_bloom_config_read(&c, src) == LACOS_OK && c.vocab_size == m->cfg.vocab_size &&
        c.hidden_size == m->cfg.hidden_size && c.n_layer == m->cfg.n_layer && c.n_head == m->cfg.n_head &&
        c.layer_norm_epsilon == m->cfg.layer_norm_epsilon)
      root = json_load_file(src, JSON_REJECT_DUPLICATES, NULL);
    lacos_error_clear();
  }
  if (root) {
    bool any = false;
    for (int k = 0; k < 2; k++) {
      const char *key = k ? "dtype" : "torch_dtype";   /* transformers 4 wrote the first, 5 writes the second */
      if (json_object_get(root, key)) { json_object_set_new(root, key, json_string(torch_name)); any = true; }
    }
    if (!any) json_object_set_new(root, "torch_dtype", json_string(torch_name));
  } else {
    root = bloom_config_json(&m->cfg);
    if (!root) return fail(LACOS_ENOMEM, "%s: cannot build the config JSON", path);
    json_object_set_new(root, "torch_dtype", json_string(torch_name));
  }
  int s = bloom_config_json_write(root, path);
  json_decref(root);
  return s;
}

/* Streams the weights shard by shard, so saving never holds more than one
   shard's tensors in memory. */
int lacos_bloom_save(lacos_bloom *m, const char *dir, int dtype, double max_shard_bytes) {
  if (dtype != LACOS_F32 && dtype != LACOS_F16 && dtype != LACOS_BF16)
    return fail(LACOS_EINVAL, "%s: checkpoints are saved in f32, f16 or bf16", dir);
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fail_errno("%s: cannot create the directory", dir);
  int n = layout_weight_count(&m->cfg);
  char **names = NULL;
  double *bytes = NULL;
  int s = meta_calloc(&names, (size_t)n, sizeof *names, "weight names");
  if (!s) s = meta_calloc(&bytes, (size_t)n, sizeof *bytes, "weight sizes");
  for (int i = 0; i < n && !s; i++) {
    int64_t rows, cols;
    char name[96];
    layout_weight_name(&m->cfg, i, name, sizeof name, &rows, &cols);
    s = meta_strdup(&names[i], name, "weight names");
    bytes[i] = (double)rows * (double)(cols ? cols : 1) * lacos_dtype_size(dtype);
  }
  save_ctx ctx = {m, dtype, names};
  if (!s) s = safetensors_write_sharded_with(dir, n, (const char *const *)names, bytes, max_shard_bytes, save_provider, &ctx);
  if (!s) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    s = save_config(m, path, dtype);
  }
  for (int i = 0; i < n && names; i++) mem_free(names[i]);
  mem_free(names);
  mem_free(bytes);
  return s;
}

/* ------------------------------------------------------------- int8 cache */

/* The linear weights (int8 codes, f32 where int8_skip keeps a linear) and
   every small f32 parameter (row scales included) of a model, zstd-compressed, behind a one-line header.
   Loading from it skips reading and converting the checkpoint's linear
   weights; the embedding table is still mapped from the checkpoint. */
static const char CACHE_MAGIC[] = "LACOS-INT8-CACHE 2";

static int cmp_name256(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Which linears are f32, one hex digit a block (bit t: linear t; kinds
   NULL: none): the cache's key and header say which formats the stored
   weights are in. out holds L + 1 chars. */
static void formats_hex(const uint8_t *kinds, int L, char *out) {
  for (int l = 0; l < L; l++) {
    int d = 0;
    for (int t = 0; t < NTARGETS; t++) d |= (kinds && kinds[l * NTARGETS + t] == LINEAR_F32) << t;
    out[l] = "0123456789abcdef"[d];
  }
  out[L] = 0;
}

/* kinds NULL: every linear int8. */
static int cache_path(const char *dir, const uint8_t *kinds, int L, char *path, int cap) {
  char abs[4096];
  if (!realpath(dir, abs)) return fail_errno("%s", dir);
  /* fingerprint: directory + each weight file's name, size and mtime (a
     line of at most 256 + 60 bytes per file) + the f32 linears, when any */
  enum { MAX_FILES = 512 };
  size_t cap_fp = sizeof CACHE_MAGIC + strlen(abs) + 2 + (size_t)MAX_FILES * 320 + (size_t)L + 8, fpn = 0;
  char *fp;
  TRY(meta_alloc(&fp, cap_fp, "cache fingerprint"));
  fpn += (size_t)snprintf(fp, cap_fp, "%s\n%s\n", CACHE_MAGIC, abs);
  bool mixed = false;
  for (int i = 0; kinds && i < L * NTARGETS; i++) mixed |= kinds[i] == LINEAR_F32;
  if (mixed) {
    fpn += (size_t)snprintf(fp + fpn, cap_fp - fpn, "f32 ");
    formats_hex(kinds, L, fp + fpn);
    fpn += (size_t)L;
    fp[fpn++] = '\n';
  }
  DIR *d = opendir(abs);
  if (d) {
    struct dirent *e;
    char names[MAX_FILES][256];
    int n = 0;
    while ((e = readdir(d)) && n < MAX_FILES)
      if (strstr(e->d_name, ".safetensors") || !strcmp(e->d_name, "config.json")) snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name256);
    for (int i = 0; i < n; i++) {
      char p[4400];
      struct stat sb;
      if (snprintf(p, sizeof p, "%s/%s", abs, names[i]) >= (int)sizeof p) continue;   /* longer than any real path */
      if (stat(p, &sb) == 0)
        fpn += (size_t)snprintf(fp + fpn, cap_fp - fpn, "%s %lld %lld.%09ld\n", names[i], (long long)sb.st_size,
                                (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
    }
  }
  char hex[65];
  int s = lacos_sha256_buffer(fp, (double)fpn, hex);
  mem_free(fp);
  TRY(s);
  const char *root = getenv("LACOS_CACHE");
  char base[4096];
  if (root && *root) snprintf(base, sizeof base, "%s", root);
  else snprintf(base, sizeof base, "%s/.cache/lacos", getenv("HOME") ? getenv("HOME") : "/tmp");
  snprintf(path, (size_t)cap, "%s/int8-%.24s.zst", base, hex);
  return LACOS_OK;
}

int lacos_bloom_cache_path(const char *dir, const lacos_bloom_options *opt, char *path, int cap) {
  if (!opt || !opt->int8_skip) return cache_path(dir, NULL, 0, path, cap);
  char cfg_path[4096];
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
  lacos_bloom_config cfg;
  TRY(lacos_bloom_config_read(&cfg, cfg_path));
  uint8_t *kinds;
  TRY(meta_calloc(&kinds, (size_t)cfg.n_layer * NTARGETS, 1, "linear formats"));
  int s = int8_skip_resolve(&cfg, opt->quant, opt->int8_skip, kinds, dir);
  if (!s) s = cache_path(dir, kinds, cfg.n_layer, path, cap);
  mem_free(kinds);
  return s;
}

int bloom_cache_write(const lacos_bloom *m, const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) { *slash = 0; TRY(mkdir_parents(dir)); }
  char *hexs;
  TRY(meta_alloc(&hexs, (size_t)m->cfg.n_layer + 1, "cache header"));
  formats_hex(m->lin_kind, m->cfg.n_layer, hexs);
  atomic_file af;
  int opened = atomic_file_open(&af, path);
  if (opened) { mem_free(hexs); return opened; }
  fprintf(af.f, "%s %d %d %d %d %zu %zu %s\n", CACHE_MAGIC, m->cfg.vocab_size, m->cfg.hidden_size, m->cfg.n_layer,
          m->cfg.n_head, m->big_bytes, m->small_bytes, hexs);
  mem_free(hexs);
  ZSTD_CCtx *cz = ZSTD_createCCtx();
  if (cz) ZSTD_CCtx_setParameter(cz, ZSTD_c_checksumFlag, 1);   /* a damaged cache fails to decompress */
  size_t cap = ZSTD_CStreamOutSize();
  char *buf = NULL;
  int s = cz ? mem_alloc(&buf, cap, "cache buffer") : fail(LACOS_ENOMEM, "out of memory for zstd");
  const void *parts[2] = {m->big, m->small};
  size_t sizes[2] = {m->big_bytes, m->small_bytes};
  for (int k = 0; k < 2 && !s; k++) {
    ZSTD_inBuffer in = {parts[k], sizes[k], 0};
    ZSTD_EndDirective mode = k == 1 ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer out = {buf, cap, 0};
      size_t left = ZSTD_compressStream2(cz, &out, &in, mode);
      if (ZSTD_isError(left)) { s = fail(LACOS_EIO, "%s: zstd: %s", path, ZSTD_getErrorName(left)); break; }
      if (fwrite(buf, 1, out.pos, af.f) != out.pos) { s = fail_errno("%s: write failed", path); break; }
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
    }
  }
  ZSTD_freeCCtx(cz);
  mem_free(buf);
  if (s) { atomic_file_abort(&af); return s; }
  return atomic_file_commit(&af);
}

int bloom_cache_read(lacos_bloom *m, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail_errno("%s", path);
  /* the header: the shape, both sizes and which linears are f32 */
  size_t line_cap = 256 + (size_t)m->cfg.n_layer;
  char *line = NULL, *want = NULL;
  int s = meta_alloc(&line, line_cap, "cache header");
  if (!s) s = meta_alloc(&want, (size_t)m->cfg.n_layer + 1, "cache header");
  if (s) { if (line) mem_free(line); fclose(f); return s; }
  formats_hex(m->lin_kind, m->cfg.n_layer, want);
  int v, h, l, nh, at = -1;
  size_t big, small;
  bool ok = fgets(line, (int)line_cap, f) && strncmp(line, CACHE_MAGIC, strlen(CACHE_MAGIC)) == 0 &&
            sscanf(line + strlen(CACHE_MAGIC), "%d %d %d %d %zu %zu %n", &v, &h, &l, &nh, &big, &small, &at) == 6 &&
            at > 0 && v == m->cfg.vocab_size && h == m->cfg.hidden_size && l == m->cfg.n_layer &&
            nh == m->cfg.n_head && big == m->big_bytes && small == m->small_bytes &&
            strncmp(line + strlen(CACHE_MAGIC) + at, want, (size_t)l) == 0 &&
            line[strlen(CACHE_MAGIC) + (size_t)at + (size_t)l] == '\n';
  mem_free(line);
  mem_free(want);
  if (!ok) {
    fclose(f);
    return fail(LACOS_EFORMAT, "%s: the cache does not describe this model", path);
  }
  ZSTD_DCtx *dz = ZSTD_createDCtx();
  size_t cap = ZSTD_DStreamInSize();
  char *buf = NULL;
  s = dz ? mem_alloc(&buf, cap, "cache buffer") : fail(LACOS_ENOMEM, "out of memory for zstd");
  if (s) { ZSTD_freeDCtx(dz); fclose(f); return s; }
  void *parts[2] = {m->big, m->small};
  size_t sizes[2] = {m->big_bytes, m->small_bytes};
  int k = 0;
  ZSTD_outBuffer out = {parts[0], sizes[0], 0};
  size_t got = 0, ret = 1;
  ZSTD_inBuffer in = {buf, 0, 0};
  while (k < 2) {
    if (in.pos == in.size) {
      got = fread(buf, 1, cap, f);
      if (got == 0) break;
      in.size = got;
      in.pos = 0;
    }
    ret = ZSTD_decompressStream(dz, &out, &in);
    if (ZSTD_isError(ret)) { s = fail(LACOS_EFORMAT, "%s: zstd: %s", path, ZSTD_getErrorName(ret)); break; }
    if (out.pos == out.size) {
      if (++k < 2) { out.dst = parts[k]; out.size = sizes[k]; out.pos = 0; }
    }
  }
  if (!s && (k < 2 || ret != 0)) s = fail(LACOS_EFORMAT, "%s: the cache is truncated", path);
  ZSTD_freeDCtx(dz);
  mem_free(buf);
  fclose(f);
  return s;
}
