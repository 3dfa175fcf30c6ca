/* bloom_internal.h: the model (struct lacos_bloom) of every family and its
   batches, shared by bloom_config.c (configurations), bloom.c (storage, the
   BLOOM block forward and backward, inference), bert.c (the BERT family's
   storage, embeddings and blocks), bloom_train.c (training passes),
   bloom_io.c (checkpoints) and LoRA (lora.c, lora_peft.c). A family is a
   table (model_family) of what differs: storage, embeddings, the block
   forward and backward, and where a checkpoint tensor goes; everything else
   is shared. */
#ifndef LACOS_BLOOM_INTERNAL_H
#define LACOS_BLOOM_INTERNAL_H
#include "engine.h"
#include "backend.h"
#include "model.h"
#include "layout.h"
#include "lora.h"

typedef struct bloom_layer {
  float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  linear lin[NTARGETS];
} bloom_layer;

/* The parameters as pointers into one memory: the host's, or the backend's. */
typedef struct bloom_params {
  const void *wte;                  /* (V,C) in the table's dtype */
  const float *wte_scale;           /* (V) row scales of an int8 table, else NULL */
  float *emb_ln_w, *emb_ln_b, *lnf_w, *lnf_b, *slopes;   /* lnf, slopes: NULL for BERT (no final LN, no ALiBi) */
  float *pos_emb, *type_emb;        /* BERT: position (P,C) and token type (TV,C) tables, f32; NULL for BLOOM */
  bloom_layer *layers;              /* n_layer entries (a host array) */
} bloom_params;

struct model_family;

struct lacos_bloom {
  lacos_bloom_config cfg;
  const struct model_family *fam;   /* cfg.family's table */
  lacos_bloom_options opt;
  const backend *be;                /* the device's table: where the passes run */
  /* Host storage: weights are generated or loaded here, and save, weight()
     and merge read it. The embedding table is owned (random models) or a
     view on a mapped checkpoint. */
  void *wte; int wte_dtype; bool wte_owned; size_t wte_bytes;
  lacos_tensor *wte_view;
  float *wte_scale; size_t wte_scale_bytes;
  void *big; size_t big_bytes;      /* every linear weight: int8 codes or f32, each linear in its own format */
  uint8_t *lin_kind;                /* n_layer x NTARGETS: LINEAR_INT8 / LINEAR_F32 (int8_skip.c) */
  char *int8_skip;                  /* opt.int8_skip's own copy (opt.int8_skip points here) */
  float *small; size_t small_bytes; /* LayerNorms, biases, row scales, slopes */
  bloom_params host;
  /* The backend's copy of each storage class, and the parameters there
     (the host storage itself on the CPU). */
  store s_big, s_small, s_wte, s_wte_scale;
  bloom_params run;
  workspace acts_ws;                /* inference activations */
  workspace scratch_ws;             /* layer scratch of every pass */
  lora_state *lora;
  workspace pos_ws;                 /* BERT: the position and token type ids of a pass */
  /* A training batch's memory, kept from one step to the next (grown to the
     largest batch) so that a step does not hand ~1 GB back to the OS and
     fault it in again; lent to one live batch at a time (train_ws_user). */
  workspace train_ws;
  struct lacos_bloom_batch *train_ws_user;
  bool checkpointing, fast_backward;
  char *source_dir;                 /* where it was loaded from (for adapter configs) */
};

/* bloom_config.c */
int bloom_config_check(const lacos_bloom_config *c, const char *where);
/* config.json as lacos writes it; written atomically, sorted keys. */
struct json_t *bloom_config_json(const lacos_bloom_config *c);
int bloom_config_json_write(struct json_t *root, const char *path);

/* bloom.c: storage and the backend copy */
/* A model shell with cfg, opt and the backend of opt.device set; `where`
   names it in the message when the device cannot be used. */
int bloom_new(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt, const char *where);
int bloom_alloc_storage(lacos_bloom *m);
/* Gives the backend its copy of the weights (after load or generation). */
int bloom_to_backend(lacos_bloom *m);
int bloom_check_batch(const lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask);
int pooling_mode_check(int pooling);

/* One block's kept activations (training), or the overlapping buffers of
   an inference pass (bloom_infer_acts). BERT's post-LN block keeps in ln2
   the sum its second LayerNorm normalises (bert.c). */
typedef struct layer_acts {
  float *x_in, *ln1, *ln1_mean, *ln1_rstd, *qkv, *probs, *att, *res1;
  float *ln2, *ln2_mean, *ln2_rstd, *fc_pre, *fc_post;
  float *h[LORA_KINDS];      /* LoRA x·Aᵀ (N,r) of each adapted kind */
} layer_acts;

/* What a block pass needs besides the model: the backend pass, the batch's
   shape and mask (backend memory), the dropout stream (0: none) with each
   row's dropout key and first-token position (backend memory, B each; NULL
   for inference) and LoRA's backward scratch. */
typedef struct bloom_ctx {
  pass p;
  int B, T;
  int64_t N;
  const int32_t *mask;
  uint64_t stream;
  const uint64_t *row_key;
  const int32_t *row_start;
  float *dh, *xd;            /* (N,r) and (N,4C); NULL for inference */
  /* An inference pass over BLOOM's blocks, whose buffers are the same for
     every block: block l's last epilogue also writes block l+1's
     input_layernorm into ln1 (ln_f over the output after the last block),
     so block l+1 starts at its qkv. Off for training (each block's
     activations are its own, and recomputed blocks start alone). */
  bool chain_ln;
} bloom_ctx;

/* A pass context for a batch of B×T on m's backend, its layer scratch
   reserved (training: with the backward entries'). */
int bloom_ctx_init(lacos_bloom *m, bloom_ctx *x, int B, int T, const int32_t *mask, uint64_t stream, bool training);
/* embeddings → word_embeddings_layernorm, x (N,C); ids in the backend's memory */
int bloom_embed(lacos_bloom *m, const bloom_ctx *x, float *out, const int32_t *ids, float *tmp);
/* The LoRA dropout of kind k of block l: a fresh mask stream per call
   (none without a dropout stream). */
static inline lora_dropout bloom_dropout(const bloom_ctx *x, int l, int k) {
  lora_dropout d = { 0, x->T, x->row_key, x->row_start };
  if (x->stream) d.call = x->stream * 8192 + (uint64_t)l * LORA_KINDS + (uint64_t)k + 1;
  return d;
}

/* The base linear t of block l plus every adapter on it (y (N,out)), each
   keeping its x·Aᵀ in a->h; and the input gradient through them (dx
   overwritten), the adapters' gradients accumulated. Shared by the
   families' blocks. */
int block_linear(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *y, const float *in, layer_acts *a);
int block_linear_back(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *dx, const float *dy, const float *in,
                      const layer_acts *a);
/* Whether any enabled adapter sits on linear t of block l. */
bool block_linear_adapted(const lacos_bloom *m, int l, int t);
/* block_linear followed by what comes after it in a block (ops.h's
   linear_epilogue; ep->pre may be y, an inference pass running the GELU
   in place): in one call to the backend's linear_forward_fused when it has
   one and no adapter must come between the product and the epilogue. */
int block_linear_then(lacos_bloom *m, const bloom_ctx *x, int l, int t, float *y, const float *in, layer_acts *a,
                      linear_epilogue ep);

/* int8_skip.c: kinds (n_layer x NTARGETS) = each linear's format for quant
   and the int8_skip patterns (NULL: none); `where` names the model in a
   message. */
int int8_skip_resolve(const lacos_bloom_config *c, int quant, const char *skip, uint8_t *kinds, const char *where);
/* Linear t of block l's module name ("encoder.layer.3.attention.self"). */
void linear_module_name(const lacos_bloom_config *c, int l, int t, char *name, size_t n);

/* What a family supplies (bloom.c: bloom_family; bert.c: bert_family). */
typedef struct model_family {
  /* the host storage of cfg's shape, carved into m->host */
  int (*alloc_storage)(lacos_bloom *m);
  /* its size with the linears in formats kinds: big bytes, small_n floats
     (one formula for the allocation and the memory planner) */
  int (*storage_size)(const lacos_bloom_config *c, const uint8_t *kinds, size_t *big, size_t *small_n);
  /* x (N,C) = the embedding pass of ids (backend memory); tmp (N,C) scratch */
  int (*embed)(lacos_bloom *m, const bloom_ctx *x, float *out, const int32_t *ids, float *tmp);
  /* the block: reads a->x_in, fills a, writes the block's output to x_out */
  int (*block_forward)(lacos_bloom *m, const bloom_ctx *x, int l, layer_acts *a, float *x_out);
  /* d (N,C): ∂/∂(block output) in, ∂/∂(block input) out (when need_dx);
     scratch d_big (N,I), d_mid (N,3C), d_small (N,C) */
  int (*block_backward)(lacos_bloom *m, const bloom_ctx *x, int l, const layer_acts *a, float *d, bool need_dx,
                        float *d_big, float *d_mid, float *d_small);
  /* Checkpoint tensor i (layout.h's numbering): a host vector of m to fill
     (*vec, n floats), or a band of a linear's rows (*lin, row0, rows); NULL
     both for the word embeddings, which stay a view. */
  void (*slot_of)(lacos_bloom *m, int i, float **vec, linear **lin, int *row0, int *layer, int *target);
} model_family;
extern const model_family bloom_family, bert_family;
static inline const model_family *family_of(const lacos_bloom_config *c) {
  return c->family == LACOS_FAMILY_BERT ? &bert_family : &bloom_family;
}
/* The families' storage: the layer table, one allocation of big bytes for
   every linear weight (zeroed: the padding between linears is written to
   the int8 cache too) and one of small_n floats for the small parameters. */
static inline int alloc_storage_blocks(lacos_bloom *m, int64_t L, size_t big, size_t small_n) {
  TRY(meta_calloc(&m->host.layers, (size_t)L, sizeof *m->host.layers, "the layer table"));
  TRY(mem_calloc(&m->big, big, 1, "model weights"));
  m->big_bytes = big;
  TRY(mem_calloc(&m->small, small_n, sizeof(float), "model parameters"));
  m->small_bytes = small_n * sizeof(float);
  return LACOS_OK;
}

/* A linear's share of the big allocation: its codes or f32 weights, rounded
   to 64 bytes so f32 weights after int8 codes start aligned; and of the
   small one: its bias and, int8, its row scales. */
static inline size_t linear_big_bytes(int in, int out, int kind) {
  size_t b = (size_t)in * (size_t)out * (kind == LINEAR_INT8 ? 1 : 4);
  return (b + 63) & ~(size_t)63;
}
static inline size_t linear_small_floats(int out, int kind) { return (size_t)out * (kind == LINEAR_INT8 ? 2 : 1); }

/* The storage of L layers of linears in[t] -> out[t] in formats kinds
   (L x NTARGETS), two LayerNorms (4C) a layer, on top of `top` floats of
   the family's own. */
static inline int layers_storage_size(const lacos_bloom_config *c, const int *in, const int *out, const uint8_t *kinds,
                                      size_t top, size_t *big, size_t *small_n) {
  size_t b = 0, s = top;
  for (int l = 0; l < c->n_layer; l++) {
    bool ok = size_add(s, 4 * (size_t)c->hidden_size, &s);
    for (int t = 0; t < NTARGETS && ok; t++) {
      int k = kinds[l * NTARGETS + t];
      ok = size_add(b, linear_big_bytes(in[t], out[t], k), &b) && size_add(s, linear_small_floats(out[t], k), &s);
    }
    if (!ok || s > SIZE_MAX / sizeof(float)) return fail(LACOS_ELIMIT, "model weights overflow the address space");
  }
  *big = b;
  *small_n = s;
  return LACOS_OK;
}

/* A layer of the families' storage carved in their one order: its two
   LayerNorms (C each, weight then bias) and each linear t (in[t] → out[t])
   in its format kinds[t]: its bias and, int8, its row scales from the
   small parameters *p, its codes or f32 weights from *w. */
static inline void carve_layer(bloom_layer *ly, const int *in, const int *out, int C, const uint8_t *kinds, float **p,
                               char **w) {
  ly->ln1_w = *p; *p += C;
  ly->ln1_b = *p; *p += C;
  ly->ln2_w = *p; *p += C;
  ly->ln2_b = *p; *p += C;
  for (int t = 0; t < NTARGETS; t++) {
    linear *ln = &ly->lin[t];
    ln->in = in[t];
    ln->out = out[t];
    ln->kind = kinds[t];
    ln->bias = *p; *p += ln->out;
    if (ln->kind == LINEAR_INT8) { ln->q = (int8_t *)*w; ln->scale = *p; *p += ln->out; }
    else ln->w = (float *)*w;
    *w += linear_big_bytes(in[t], out[t], ln->kind);
  }
}
/* The feed-forward width I (4C for BLOOM). */
static inline int ffn_width(const lacos_bloom_config *c) {
  return c->intermediate_size ? c->intermediate_size : 4 * c->hidden_size;
}

struct lacos_bloom_batch {
  int B, T, pooling;
  int64_t N;
  uint64_t stream;
  const backend *be;         /* whose memory mem is */
  float *mem;                /* everything below: one allocation */
  size_t mem_bytes;          /* its size (the workspace's when lent: it may be larger than bytes) */
  lacos_bloom *lender;       /* whose train_ws mem is (NULL: the batch's own allocation) */
  size_t bytes;
  layer_acts *acts;          /* host array: n_layer entries, or 1 scratch entry with checkpointing */
  bool checkpointed;
  float *ckpt;               /* with checkpointing: the n_layer block inputs (N,C) */
  float *x_final, *lnf_out, *lnf_mean, *lnf_rstd;
  float *dx, *d_big, *d_mid, *d_small, *dh, *xd;   /* backward scratch */
  float *pooled;             /* (B,C): the embeddings, then their gradient */
  int32_t *ids, *mask;       /* (B,T) */
  uint64_t *row_key;         /* (B): LoRA dropout's key of each row */
  int32_t *row_start;        /* (B): the position of each row's first token (left padding) */
};

/* bloom_train.c: the batch layout (one formula for the planner and the
   allocation). */
double bloom_batch_floats(const lacos_bloom_config *c, int B, int T, int r, int targets, bool ckpt);
void bloom_carve_acts(layer_acts *a, float **p, int64_t N, int C, int I, int B, int T, int NH, const lora_state *lora);

/* bloom_io.c: loading from any source of named tensors (a safetensors
   checkpoint in practice); a weight by name, and the file it lives in. */
typedef int (*weight_getter)(void *ctx, const char *name, lacos_tensor **out, const char **file);
int bloom_load_from(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                    weight_getter get, void *ctx, const char *where);
int bloom_load_cached(lacos_bloom **out, const lacos_bloom_config *cfg, const lacos_bloom_options *opt,
                      weight_getter get, void *ctx, const char *where, const char *cache);
int bloom_cache_write(const lacos_bloom *m, const char *path);
int bloom_cache_read(lacos_bloom *m, const char *path);
#endif
