/* model.h: the model machinery a family (bloom.c; a second family the same
   way) composes its passes from, for every backend alike:
   - stores: a class of parameters (all linear weights, all small vectors,
     an embedding table) as one host allocation with its copy in the
     backend's memory, and the map from a host pointer to its copy;
   - workspaces (backend.h): one backend allocation per purpose, grown to
     the largest batch and reused, carved with an arena;
   - a pass: the backend and the layer scratch of one forward or backward,
     and the adapted linear (base linear + LoRA) its blocks are built of. */
#ifndef LACOS_MODEL_H
#define LACOS_MODEL_H
#include "engine.h"
#include "backend.h"

/* ---- stores ---- */

typedef struct store {
  void *host;        /* the host allocation (NULL for an empty class) */
  void *dev;         /* its copy in the backend's memory; == host on a host-memory backend */
  size_t bytes;
} store;

/* Copies a class to the backend (a host-memory backend shares it). */
int store_upload(const backend *be, store *s, const char *what);
void store_free(const backend *be, store *s);
/* The backend address of a host pointer into the class (NULL stays NULL). */
static inline void *store_map(const store *s, const void *host_ptr) {
  if (!host_ptr) return NULL;
  return (char *)s->dev + ((const char *)host_ptr - (const char *)s->host);
}

/* ---- a pass ---- */

typedef struct pass {
  const backend *be;
  scratch ws;              /* layer scratch (linears, attention), sized by pass_scratch */
  float threshold;         /* LLM.int8 outlier threshold of the linears */
  bool fast_backward;      /* int8 products for input gradients */
  lora_hyper lora;         /* the adapters' configuration (r = 0: none) */
} pass;

/* The layer scratch one pass over N rows needs for these linears and an
   attention of (B, T, C, NH); training passes keep attention probabilities
   and need the backward entries' scratch too. */
size_t pass_scratch(const backend *be, const linear *lins, int nlins, int64_t N, float threshold, bool fast_backward,
                    int B, int T, int C, int NH, bool training);

/* y (N,out) = x·Wᵀ + b (+ LoRA when sl != NULL: h (N,r) keeps drop(x)·Aᵀ,
   drop selects the dropout mask (NULL: none), xd its scratch). */
int adapted_forward(const pass *p, linear *l, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                    const lora_dropout *drop, float *xd);
/* dx (N,in) = dy·W (overwritten, not accumulated: the callers' buffers are
   reused between linears) plus the adapter's share; dA, dB +=. */
int adapted_backward(const pass *p, const linear *l, const lora_slot *sl, float *dx, const float *dy, const float *x,
                     const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd);

/* Token ids must index the embedding table: checked on the host, because a
   device kernel cannot report a bad one. */
int ids_check(const int32_t *ids, int64_t N, int V);
#endif
