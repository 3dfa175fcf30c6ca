/* bloom_internal.h: the model struct shared by bloom.c (forward, storage),
   bloom_io.c (checkpoints), bloom_train.c (backward) and lora.c. */
#ifndef LACOS_BLOOM_INTERNAL_H
#define LACOS_BLOOM_INTERNAL_H
#include "engine.h"
#include "cpu/layers.h"

/* The four linears of a block, in the order PEFT names them. */
enum { T_QKV = 0, T_DENSE = 1, T_FC1 = 2, T_FC2 = 3, NTARGETS = 4 };
extern const char *const bloom_target_names[NTARGETS];   /* "self_attention.query_key_value", ... */

typedef struct bloom_layer {
  float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  linear lin[NTARGETS];
} bloom_layer;

/* One adapted linear: y += scaling · dropout(x)·Aᵀ·Bᵀ. */
typedef struct lora_slot {
  float *A, *B;      /* (r, in), (out, r); B rows in engine order ([Q;K;V] for qkv) */
  float *dA, *dB;    /* gradients, same layout */
  float *W;          /* export copy of the base weight (out, in), engine row order, or NULL */
  int in, out;
} lora_slot;

typedef struct lora_state {
  int r, targets;            /* targets: bit t set = linear t adapted */
  double alpha, scaling, dropout;
  bool rslora, enabled;
  uint64_t seed;
  lora_slot *slots;          /* n_layer × NTARGETS; A == NULL where not adapted */
  float *params, *grads;     /* one allocation each, same layout */
  size_t params_bytes;
  int64_t nparams;
  float *h; size_t h_bytes;  /* inference scratch x·Aᵀ */
  float *d_params, *d_grads; /* CUDA models: the device copy (authoritative), same layout */
  /* lacos_lora_merge: the f32 copies of the adapted base weights (one
     allocation, slot W pointers into it) and the A, B the delta came from */
  float *merged; size_t merged_bytes;
  float *merged_from;        /* params_bytes */
  int merge_state;           /* 0 none, 1 merged, 2 unmerged */
} lora_state;

typedef struct bloom_dev bloom_dev;   /* bloom_cuda.c */

struct lacos_bloom {
  lacos_bloom_config cfg;
  lacos_bloom_options opt;
  /* embedding table: owned (random models) or a view on a mapped checkpoint */
  void *wte; int wte_dtype; bool wte_owned; size_t wte_bytes;
  lacos_tensor *wte_view;
  float *wte_scale; size_t wte_scale_bytes;
  float *emb_ln_w, *emb_ln_b, *lnf_w, *lnf_b, *slopes;
  bloom_layer *layers;
  void *big; size_t big_bytes;      /* every linear weight: int8 codes or f32 */
  float *small; size_t small_bytes; /* LayerNorms, biases, row scales, slopes */
  float *ws; size_t ws_bytes;       /* inference activations */
  int8_scratch scratch;
  lora_state *lora;
  bool checkpointing, fast_backward;
  char *source_dir;                 /* where it was loaded from (for adapter configs) */
  bloom_dev *dev;                   /* device == LACOS_CUDA: the device copy (bloom_cuda.c) */
};

void bloom_free_storage(lacos_bloom *m);
/* config.json as lacos writes it (bloom.c); written atomically, sorted keys. */
struct json_t *bloom_config_json(const lacos_bloom_config *c);
int bloom_config_json_write(struct json_t *root, const char *path);
int bloom_alloc_storage(lacos_bloom *m);

/* bloom_io.c: checkpoint names, the qkv row order, loading from any source
   of named tensors (a safetensors checkpoint in practice). */
/* A weight by name, and the file it lives in (for messages about it). */
typedef int (*weight_getter)(void *ctx, const char *name, lacos_tensor **out, const char **file);
int bloom_weight_count(const lacos_bloom_config *c);
void bloom_weight_name(const lacos_bloom_config *c, int i, char *name, size_t n, int64_t *rows, int64_t *cols);
int qkv_checkpoint_row(int r, int C, int NH);
int bloom_load_from(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                    weight_getter get, void *ctx, const char *where);
int bloom_load_cached(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                      weight_getter get, void *ctx, const char *where, const char *cache);
int bloom_cache_write(const lacos_bloom *m, const char *path);
int bloom_cache_read(lacos_bloom *m, const char *path);
int bloom_check_batch(const lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask);
float *bloom_workspace(lacos_bloom *m, size_t floats);
int bloom_embed(lacos_bloom *m, float *x, const int32_t *ids, int64_t N);
int pooling_mode_check(int pooling);
int bloom_device_check(int device, const char *what);

typedef struct layer_acts {
  float *x_in, *ln1, *ln1_mean, *ln1_rstd, *qkv, *probs, *att, *res1;
  float *ln2, *ln2_mean, *ln2_rstd, *fc_pre, *fc_post;
  float *h[NTARGETS];        /* LoRA x·Aᵀ (N,r) where adapted */
} layer_acts;

struct lacos_bloom_batch {
  int B, T, pooling;
  int64_t N;
  uint64_t stream;
  int32_t *ids, *mask;
  float *mem;
  size_t bytes;
  layer_acts *acts;          /* n_layer entries, or 1 scratch entry with checkpointing */
  bool checkpointed;
  float *ckpt;               /* with checkpointing: the n_layer block inputs (N,C) */
  float *x_final, *lnf_out, *lnf_mean, *lnf_rstd;
  /* backward scratch */
  float *dx, *d_big, *d_mid, *d_small, *dh, *xd;
  /* CUDA batches: mem is device memory; ids and mask stay on the host too */
  int device;
  int32_t *d_ids, *d_mask;
  float *d_pooled;           /* (B,C): the embeddings, then their gradient */
  /* LoRA dropout keys (B): each row's key and the position of its first
     token (left padding), on the host and, for CUDA batches, on the device */
  uint64_t *row_key, *d_row_key;
  int32_t *row_start, *d_row_start;
};

/* The LoRA dropout of one call. A mask element is drawn from counter
   row_key[b]·2^32 + (p − row_start[b])·in + k for token position p of row b
   and input feature k, so that a sentence gets the same mask whatever else
   shares its batch: a GradCache chunk, another rank's share of the global
   batch, or a padding length (data-parallel results must not depend on the
   number of ranks). call = 0: no dropout. */
typedef struct lora_dropout {
  uint64_t call;
  int T;
  const uint64_t *row_key;
  const int32_t *row_start;
} lora_dropout;
static inline uint64_t lora_dropout_counter(const lora_dropout *d, int64_t n, int in) {
  int64_t b = n / d->T, p = n % d->T;
  return (d->row_key[b] << 32) + (uint64_t)(p - d->row_start[b]) * (uint64_t)in;
}

/* bloom_train.c, shared with bloom_cuda.c: the batch layout (one formula
   for the planner and the allocation) and the LoRA dropout stream of a call. */
double bloom_batch_floats(const lacos_bloom_config *c, int B, int T, int r, int targets, bool ckpt);
void bloom_carve_acts(layer_acts *a, float **p, int64_t N, int C, int B, int T, int NH, const lacos_bloom *m);
static inline lora_dropout bloom_dropout(const lacos_bloom_batch *b, int l, int t) {
  lora_dropout d = { 0, b->T, b->device == LACOS_CUDA ? b->d_row_key : b->row_key,
                     b->device == LACOS_CUDA ? b->d_row_start : b->row_start };
  if (b->stream) d.call = b->stream * 4096 + (uint64_t)l * NTARGETS + (uint64_t)t + 1;
  return d;
}
/* Fills b->row_key and b->row_start (host) from keys (B entries; NULL: the
   row index) and b->mask. */
int bloom_batch_rows(lacos_bloom_batch *b, const int64_t *keys);

/* bloom_cuda.c: a model on the GPU. upload copies the host weights to the
   device (after load or random generation); the passes mirror bloom.c and
   bloom_train.c with the kernels of device.h. */
int bloom_cuda_upload(lacos_bloom *m);
void bloom_cuda_free(lacos_bloom *m);
int bloom_forward_cuda(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask,
                       int all_layers);
int bloom_encode_cuda(lacos_tensor **emb, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int pooling);
int bloom_forward_train_cuda(lacos_tensor **emb, lacos_bloom_batch **out, lacos_bloom *m, const lacos_tensor *ids,
                             const lacos_tensor *mask, int pooling, double stream, const int64_t *row_keys);
int bloom_backward_cuda(lacos_bloom *m, lacos_bloom_batch *b, const lacos_tensor *demb);

/* lora.c */
int lora_apply(lacos_bloom *m, int layer, int target, float *y, const float *x, int64_t N);
void lora_detach_all(lacos_bloom *m);
lora_slot *lora_slot_for(const lacos_bloom *m, int layer, int target);
/* Training: drop->call != 0 selects a fresh dropout mask stream (0 = none);
   xd_scratch holds N·in floats when dropout is on. */
int lora_forward(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                 const lora_dropout *drop, float *xd_scratch);
int lora_backward(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy, const float *x,
                  const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd_scratch);
/* CUDA models: host copy → device (after attach and load), device → host
   (before save); the device slot of an adapted, enabled linear. */
int lora_upload(lacos_bloom *m);
int lora_download(lacos_bloom *m);
bool lora_slot_device(const lacos_bloom *m, int layer, int target, lora_slot *out);
/* The merged export copy of linear (layer, target), engine row order: *W =
   NULL when there is none; LACOS_ESTATE when the adapter changed since it
   was merged. */
int lora_merged_weight(lacos_bloom *m, int layer, int target, const float **W);
void lora_merge_free(lacos_bloom *m);
#endif
