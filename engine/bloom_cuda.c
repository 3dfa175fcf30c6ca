/* bloom_cuda.c: a BLOOM model on the GPU — the device copy of its weights
   and the device twins of bloom.c's inference pass and bloom_train.c's
   training passes, calling the kernels of device.h in the same order with
   the same buffers. Read it next to those two files: each function here
   names the one it mirrors, and only the memory moves differ.

   What stays on the host: the model's host copy (weights are generated or
   loaded there, then uploaded once, one allocation per class: linear
   weights, small parameters, embedding table, its row scales); token ids and
   masks (checked there, then uploaded per batch); the pooled embeddings
   (downloaded, so the losses of engine/loss.c run on the CPU as they are:
   they are (B, C) matrices, small next to the network). */
#include "device.h"
#include <math.h>

struct bloom_dev {
  void *big, *small, *wte, *wte_scale;
  size_t big_bytes, small_bytes, wte_bytes, wte_scale_bytes;
  float *emb_ln_w, *emb_ln_b, *lnf_w, *lnf_b, *slopes;
  bloom_layer *layers;       /* host array of device pointers, shaped as m->layers */
  int8_scratch scratch;      /* device buffers for the int8 products */
  attn_scratch attn;         /* and for attention's gathered heads and scores */
  void *ws; size_t ws_bytes; /* inference workspace */
};

/* ------------------------------------------------------------- weights */

void bloom_cuda_free(lacos_bloom *m) {
  bloom_dev *d = m->dev;
  if (!d) return;
  dev_free(d->big, d->big_bytes);
  dev_free(d->small, d->small_bytes);
  dev_free(d->wte, d->wte_bytes);
  dev_free(d->wte_scale, d->wte_scale_bytes);
  dev_free(d->ws, d->ws_bytes);
  int8_scratch_free_cuda(&d->scratch);
  attn_scratch_free_cuda(&d->attn);
  free(d->layers);
  free(d);
  m->dev = NULL;
}

static void *upload_class(const void *host, size_t bytes, const char *what, int *st) {
  if (*st || !host || !bytes) return NULL;
  void *p = dev_alloc(bytes, what);
  if (!p) { *st = lacos_last_status(); return NULL; }
  *st = dev_upload(p, host, bytes);
  return p;
}

/* The device address of a host pointer into one of the model's allocations. */
#define DEV(d, base, ptr) ((ptr) ? (void *)((char *)(d) + ((const char *)(ptr) - (const char *)(base))) : NULL)

int bloom_cuda_upload(lacos_bloom *m) {
  TRY(cuda_init());
  const void *table = m->wte_view ? m->wte_view->data : m->wte;
  size_t table_bytes = m->wte_view ? (size_t)lacos_tensor_nbytes(m->wte_view) : m->wte_bytes;
  if (m->wte_view && !lacos_tensor_is_contiguous(m->wte_view))
    return fail(LACOS_EUNSUPPORTED, "the embedding table is not contiguous; cannot copy it to the GPU");
  /* The memory planner's refusal: say what does not fit before allocating any of it. */
  double need = (double)m->big_bytes + (double)m->small_bytes + (double)table_bytes + (double)m->wte_scale_bytes;
  char name[256];
  double free_b = 0, total_b = 0;
  TRY(cuda_device_info(name, sizeof name, NULL, NULL, NULL, &free_b, &total_b));
  if (need > free_b)
    return fail(LACOS_ELIMIT, "the model's weights need %.2f GiB of GPU memory, but %s has %.2f GiB free of %.2f GiB",
                need / 1073741824.0, name, free_b / 1073741824.0, total_b / 1073741824.0);
  bloom_dev *d = calloc(1, sizeof *d);
  if (!d) return fail(LACOS_ENOMEM, "out of memory");
  m->dev = d;
  d->layers = calloc((size_t)m->cfg.n_layer, sizeof *d->layers);
  if (!d->layers) { bloom_cuda_free(m); return fail(LACOS_ENOMEM, "out of memory"); }
  int st = LACOS_OK;
  d->big = upload_class(m->big, m->big_bytes, "model weights (GPU)", &st);
  if (d->big) d->big_bytes = m->big_bytes;
  d->small = upload_class(m->small, m->small_bytes, "model parameters (GPU)", &st);
  if (d->small) d->small_bytes = m->small_bytes;
  d->wte = upload_class(table, table_bytes, "embedding table (GPU)", &st);
  if (d->wte) d->wte_bytes = table_bytes;
  d->wte_scale = upload_class(m->wte_scale, m->wte_scale_bytes, "embedding scales (GPU)", &st);
  if (d->wte_scale) d->wte_scale_bytes = m->wte_scale_bytes;
  if (st) { bloom_cuda_free(m); return st; }
  d->emb_ln_w = DEV(d->small, m->small, m->emb_ln_w);
  d->emb_ln_b = DEV(d->small, m->small, m->emb_ln_b);
  d->lnf_w = DEV(d->small, m->small, m->lnf_w);
  d->lnf_b = DEV(d->small, m->small, m->lnf_b);
  d->slopes = DEV(d->small, m->small, m->slopes);
  for (int l = 0; l < m->cfg.n_layer; l++) {
    const bloom_layer *h = &m->layers[l];
    bloom_layer *g = &d->layers[l];
    *g = *h;
    g->ln1_w = DEV(d->small, m->small, h->ln1_w);
    g->ln1_b = DEV(d->small, m->small, h->ln1_b);
    g->ln2_w = DEV(d->small, m->small, h->ln2_w);
    g->ln2_b = DEV(d->small, m->small, h->ln2_b);
    for (int t = 0; t < NTARGETS; t++) {
      g->lin[t].w = DEV(d->big, m->big, h->lin[t].w);
      g->lin[t].q = DEV(d->big, m->big, h->lin[t].q);
      g->lin[t].scale = DEV(d->small, m->small, h->lin[t].scale);
      g->lin[t].bias = DEV(d->small, m->small, h->lin[t].bias);
    }
  }
  return LACOS_OK;
}

/* ------------------------------------------------------------- helpers */

/* embedding_forward's check, on the host copy of the ids. */
static int check_ids(const int32_t *ids, int64_t N, int V) {
  for (int64_t i = 0; i < N; i++)
    if (ids[i] < 0 || ids[i] >= V)
      return fail(LACOS_EINVAL, "token id %d at position %lld is outside the vocabulary of %d", ids[i], (long long)i, V);
  return LACOS_OK;
}

/* linear_forward on layer l's device linear t, reporting outliers to the host model. */
static int linear_cuda(lacos_bloom *m, int l, int t, float *out, const float *inp, int64_t N) {
  linear *dl = &m->dev->layers[l].lin[t];
  int s = linear_forward_cuda(out, inp, dl, N, (float)m->opt.threshold, &m->dev->scratch);
  m->layers[l].lin[t].outliers = dl->outliers;
  return s;
}

/* bloom_embed */
static int bloom_embed_cuda(lacos_bloom *m, float *x, const int32_t *ids, int64_t N) {
  bloom_dev *d = m->dev;
  int C = m->cfg.hidden_size;
  TRY(embedding_forward_cuda(x, ids, N, d->wte, m->wte_dtype, d->wte_scale, m->cfg.vocab_size, C));
  return layernorm_forward_cuda(x, NULL, NULL, x, d->emb_ln_w, d->emb_ln_b, N, C, (float)m->cfg.layer_norm_epsilon);
}

/* ------------------------------------------------------------- inference (bloom.c) */

/* lora_apply: y += s·x·Aᵀ·Bᵀ when the linear is adapted; h is N·r scratch. */
static int lora_apply_cuda(lacos_bloom *m, int l, int t, float *y, const float *x, int64_t N, float *h) {
  lora_slot sl;
  if (!lora_slot_device(m, l, t, &sl)) return LACOS_OK;
  return lora_forward_cuda(m, &sl, y, x, h, N, NULL, NULL);
}

/* block_forward_infer: one block in place on x (N,C); buf holds 9·N·C floats. */
static int block_forward_infer_cuda(lacos_bloom *m, int l, float *x, float *buf, float *h, const int32_t *mask, int B,
                                    int T) {
  const lacos_bloom_config *c = &m->cfg;
  int C = c->hidden_size;
  int64_t N = (int64_t)B * T;
  const bloom_layer *ly = &m->dev->layers[l];
  float eps = (float)c->layer_norm_epsilon;
  float *a = buf, *qkv = a + N * C, *att = qkv + 3 * N * C, *fc = att + N * C;
  TRY(layernorm_forward_cuda(a, NULL, NULL, x, ly->ln1_w, ly->ln1_b, N, C, eps));
  TRY(linear_cuda(m, l, T_QKV, qkv, a, N));
  TRY(lora_apply_cuda(m, l, T_QKV, qkv, a, N, h));
  TRY(attention_forward_cuda(att, NULL, qkv, mask, m->dev->slopes, B, T, C, c->n_head, &m->dev->attn));
  TRY(linear_cuda(m, l, T_DENSE, a, att, N));
  TRY(lora_apply_cuda(m, l, T_DENSE, a, att, N, h));
  TRY(add_inplace_cuda(x, a, N * C));
  TRY(layernorm_forward_cuda(a, NULL, NULL, x, ly->ln2_w, ly->ln2_b, N, C, eps));
  TRY(linear_cuda(m, l, T_FC1, fc, a, N));
  TRY(lora_apply_cuda(m, l, T_FC1, fc, a, N, h));
  TRY(gelu_forward_cuda(fc, fc, N * 4 * C));
  TRY(linear_cuda(m, l, T_FC2, a, fc, N));
  TRY(lora_apply_cuda(m, l, T_FC2, a, fc, N, h));
  return add_inplace_cuda(x, a, N * C);
}

/* The inference workspace: hidden (N·C), blocks (9·N·C), LoRA scratch
   (N·r), pooled (B·C), ids and mask (N ints each). */
typedef struct infer_ws { float *hidden, *buf, *h, *pooled; int32_t *ids, *mask; } infer_ws;

static int infer_workspace(lacos_bloom *m, int B, int T, infer_ws *w) {
  bloom_dev *d = m->dev;
  size_t N = (size_t)B * T, C = (size_t)m->cfg.hidden_size, r = m->lora ? (size_t)m->lora->r : 1;
  size_t sizes[6] = {N * C * 4, 9 * N * C * 4, N * r * 4, (size_t)B * C * 4, N * 4, N * 4}, total = 0;
  for (int i = 0; i < 6; i++) total += dev_arena_round(sizes[i]);
  if (d->ws_bytes < total) {
    dev_free(d->ws, d->ws_bytes);
    d->ws_bytes = 0;
    d->ws = dev_alloc(total, "activations (GPU)");
    if (!d->ws) return lacos_last_status();
    d->ws_bytes = total;
  }
  dev_arena a = {d->ws, d->ws_bytes, 0};   /* carved afresh per call, never freed through the arena */
  w->hidden = dev_arena_take(&a, sizes[0], "hidden");
  w->buf = dev_arena_take(&a, sizes[1], "block buffers");
  w->h = dev_arena_take(&a, sizes[2], "LoRA scratch");
  w->pooled = dev_arena_take(&a, sizes[3], "pooled");
  w->ids = dev_arena_take(&a, sizes[4], "ids");
  w->mask = dev_arena_take(&a, sizes[5], "mask");
  return LACOS_OK;
}

/* bloom_run: embeddings and all blocks into w->hidden (ending as ln_f's
   output); states (host, (L+1)·N·C) receives the hidden states. */
static int bloom_run_cuda(lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, infer_ws *w, float *states) {
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t N = (int64_t)B * T;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  TRY(check_ids(ids->data, N, m->cfg.vocab_size));
  TRY(infer_workspace(m, B, T, w));
  TRY(dev_upload(w->ids, ids->data, sizeof(int32_t) * (size_t)N));
  TRY(dev_upload(w->mask, mask->data, sizeof(int32_t) * (size_t)N));
  TRY(bloom_embed_cuda(m, w->hidden, w->ids, N));
  for (int l = 0; l < L; l++) {
    if (states) TRY(dev_download(states + (size_t)l * N * C, w->hidden, nc_bytes));
    TRY(block_forward_infer_cuda(m, l, w->hidden, w->buf, w->h, w->mask, B, T));
  }
  TRY(layernorm_forward_cuda(w->hidden, NULL, NULL, w->hidden, m->dev->lnf_w, m->dev->lnf_b, N, C,
                             (float)m->cfg.layer_norm_epsilon));
  if (states) TRY(dev_download(states + (size_t)L * N * C, w->hidden, nc_bytes));
  return LACOS_OK;
}

/* lacos_bloom_forward: the hidden states come back to the host. */
int bloom_forward_cuda(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask,
                       int all_layers) {
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t shape[4] = {L + 1, B, T, C};
  if (all_layers) TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 4, shape));
  else TRY(lacos_tensor_empty(hidden, LACOS_F32, LACOS_CPU, 3, shape + 1));
  infer_ws w;
  int s = bloom_run_cuda(m, ids, mask, &w, all_layers ? (*hidden)->data : NULL);
  if (!s && !all_layers) s = dev_download((*hidden)->data, w.hidden, sizeof(float) * (size_t)B * T * C);
  if (s) { lacos_tensor_free(*hidden); *hidden = NULL; }
  return s;
}

/* lacos_bloom_encode: pooled on the device, (B,C) to the host. */
int bloom_encode_cuda(lacos_tensor **emb, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask, int pooling) {
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size;
  int64_t shape[2] = {B, C};
  TRY(lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape));
  infer_ws w;
  int s = bloom_run_cuda(m, ids, mask, &w, NULL);
  if (!s) s = pooling_forward_cuda(w.pooled, w.hidden, w.mask, B, T, C, pooling);
  if (!s) s = dev_download((*emb)->data, w.pooled, sizeof(float) * (size_t)B * C);
  if (s) { lacos_tensor_free(*emb); *emb = NULL; }
  return s;
}

/* ------------------------------------------------------------- training (bloom_train.c) */

/* adapted_linear */
static int adapted_linear_cuda(lacos_bloom *m, lacos_bloom_batch *b, int l, int t, float *y, const float *x, float *h) {
  TRY(linear_cuda(m, l, t, y, x, b->N));
  lora_slot sl;
  lora_dropout drop = bloom_dropout(b, l, t);
  if (lora_slot_device(m, l, t, &sl)) TRY(lora_forward_cuda(m, &sl, y, x, h, b->N, &drop, b->xd));
  return LACOS_OK;
}

/* block_forward_train */
static int block_forward_train_cuda(lacos_bloom *m, lacos_bloom_batch *b, int l, layer_acts *a, float *x_out) {
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = b->N;
  const bloom_layer *ly = &m->dev->layers[l];
  float eps = (float)m->cfg.layer_norm_epsilon;
  TRY(layernorm_forward_cuda(a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, ly->ln1_w, ly->ln1_b, N, C, eps));
  TRY(adapted_linear_cuda(m, b, l, T_QKV, a->qkv, a->ln1, a->h[T_QKV]));
  TRY(attention_forward_cuda(a->att, a->probs, a->qkv, b->d_mask, m->dev->slopes, b->B, b->T, C, NH, &m->dev->attn));
  TRY(adapted_linear_cuda(m, b, l, T_DENSE, a->res1, a->att, a->h[T_DENSE]));
  TRY(add_inplace_cuda(a->res1, a->x_in, N * C));
  TRY(layernorm_forward_cuda(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, ly->ln2_w, ly->ln2_b, N, C, eps));
  TRY(adapted_linear_cuda(m, b, l, T_FC1, a->fc_pre, a->ln2, a->h[T_FC1]));
  TRY(gelu_forward_cuda(a->fc_post, a->fc_pre, N * 4 * C));
  TRY(adapted_linear_cuda(m, b, l, T_FC2, x_out, a->fc_post, a->h[T_FC2]));
  return add_inplace_cuda(x_out, a->res1, N * C);
}

/* lacos_bloom_forward_train: the same batch layout in device memory, plus
   the device-only buffers after it. */
int bloom_forward_train_cuda(lacos_tensor **emb, lacos_bloom_batch **out, lacos_bloom *m, const lacos_tensor *ids,
                             const lacos_tensor *mask, int pooling, double stream, const int64_t *row_keys) {
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer, NH = m->cfg.n_head;
  int64_t N = (int64_t)B * T;
  int r = m->lora ? m->lora->r : 0;
  TRY(check_ids(ids->data, N, m->cfg.vocab_size));
  lacos_bloom_batch *b = calloc(1, sizeof *b);
  if (!b) return fail(LACOS_ENOMEM, "out of memory");
  b->B = B; b->T = T; b->N = N; b->pooling = pooling; b->stream = (uint64_t)stream;
  b->checkpointed = m->checkpointing;
  b->device = LACOS_CUDA;
  b->ids = malloc(sizeof(int32_t) * (size_t)N);
  b->mask = malloc(sizeof(int32_t) * (size_t)N);
  int nkept = b->checkpointed ? 1 : L;
  b->acts = calloc((size_t)nkept, sizeof *b->acts);
  if (!b->ids || !b->mask || !b->acts) { lacos_bloom_batch_free(b); return fail(LACOS_ENOMEM, "out of memory"); }
  memcpy(b->ids, ids->data, sizeof(int32_t) * (size_t)N);
  memcpy(b->mask, mask->data, sizeof(int32_t) * (size_t)N);
  int rs = bloom_batch_rows(b, row_keys);
  if (rs) { lacos_bloom_batch_free(b); return rs; }
  double floats = bloom_batch_floats(&m->cfg, B, T, r, m->lora ? m->lora->targets : 0, b->checkpointed);
  floats += (double)B * C + 2.0 * (double)N + 3.0 * B + 2;   /* pooled, ids, mask, dropout row keys */
  if (floats * 4 > 1e15) { lacos_bloom_batch_free(b); return fail(LACOS_ELIMIT, "batch of %d x %d is too large", B, T); }
  b->bytes = (size_t)floats * sizeof(float);
  b->mem = dev_alloc(b->bytes, "training activations (GPU)");
  if (!b->mem) { lacos_bloom_batch_free(b); return lacos_last_status(); }
  float *p = b->mem;
  for (int i = 0; i < nkept; i++) bloom_carve_acts(&b->acts[i], &p, N, C, B, T, NH, m);
  if (b->checkpointed) { b->ckpt = p; p += (int64_t)L * N * C; }
  b->x_final = p; p += N * C;
  b->lnf_out = p; p += N * C;
  b->lnf_mean = p; p += N;
  b->lnf_rstd = p; p += N;
  b->dx = p; p += N * C;
  b->d_big = p; p += 4 * N * C;
  b->d_mid = p; p += 3 * N * C;
  b->d_small = p; p += N * C;
  b->dh = p; p += N * (r > 0 ? r : 1);
  b->xd = p; p += 4 * N * C;
  b->d_pooled = p; p += (int64_t)B * C;
  b->d_ids = (int32_t *)p; p += N;
  b->d_mask = (int32_t *)p; p += N;
  if ((uintptr_t)p % 8) p++;   /* 8-byte keys */
  b->d_row_key = (uint64_t *)p; p += 2 * (int64_t)B;
  b->d_row_start = (int32_t *)p;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  int s = dev_upload(b->d_ids, b->ids, sizeof(int32_t) * (size_t)N);
  if (!s) s = dev_upload(b->d_mask, b->mask, sizeof(int32_t) * (size_t)N);
  if (!s) s = dev_upload(b->d_row_key, b->row_key, sizeof(uint64_t) * (size_t)B);
  if (!s) s = dev_upload(b->d_row_start, b->row_start, sizeof(int32_t) * (size_t)B);
  float *x0 = b->checkpointed ? b->ckpt : b->acts[0].x_in;
  if (!s) s = bloom_embed_cuda(m, x0, b->d_ids, N);
  for (int l = 0; l < L && !s; l++) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) s = dev_copy(a->x_in, b->ckpt + (int64_t)l * N * C, nc_bytes);
    float *next = l + 1 < L ? (b->checkpointed ? b->ckpt + (int64_t)(l + 1) * N * C : b->acts[l + 1].x_in) : b->x_final;
    if (!s) s = block_forward_train_cuda(m, b, l, a, next);
  }
  if (!s) s = layernorm_forward_cuda(b->lnf_out, b->lnf_mean, b->lnf_rstd, b->x_final, m->dev->lnf_w, m->dev->lnf_b, N,
                                     C, (float)m->cfg.layer_norm_epsilon);
  if (!s) s = pooling_forward_cuda(b->d_pooled, b->lnf_out, b->d_mask, B, T, C, pooling);
  int64_t shape[2] = {B, C};
  if (!s) s = lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape);
  if (!s) s = dev_download((*emb)->data, b->d_pooled, sizeof(float) * (size_t)B * C);
  if (s) {
    lacos_tensor_free(*emb);
    *emb = NULL;
    lacos_bloom_batch_free(b);
    return s;
  }
  *out = b;
  return LACOS_OK;
}

/* linear_back */
static int linear_back_cuda(lacos_bloom *m, lacos_bloom_batch *b, int l, int t, float *dx, const float *dy,
                            const float *x, const float *h) {
  const linear *dl = &m->dev->layers[l].lin[t];
  TRY(dev_zero(dx, sizeof(float) * (size_t)b->N * (size_t)dl->in));
  TRY(linear_backward_input_cuda(dx, dy, dl, b->N, m->fast_backward, &m->dev->scratch));
  lora_slot sl;
  lora_dropout drop = bloom_dropout(b, l, t);
  if (lora_slot_device(m, l, t, &sl))
    TRY(lora_backward_cuda(m, &sl, dx, dy, x, h, b->dh, b->N, &drop, b->xd));
  return LACOS_OK;
}

/* block_backward: d (N,C) from ∂/∂(block output) to ∂/∂(block input). */
static int block_backward_cuda(lacos_bloom *m, lacos_bloom_batch *b, int l, const layer_acts *a, float *d, bool need_dx) {
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = b->N;
  const bloom_layer *ly = &m->dev->layers[l];
  float *d_fc = b->d_big, *d_ln = b->d_small, *d_qkv = b->d_mid, *d_att = b->d_small;
  size_t fc_bytes = sizeof(float) * (size_t)N * 4 * C;
  TRY(linear_back_cuda(m, b, l, T_FC2, d_fc, d, a->fc_post, a->h[T_FC2]));
  TRY(dev_zero(b->xd, fc_bytes));
  TRY(gelu_backward_cuda(b->xd, a->fc_pre, d_fc, N * 4 * C));
  TRY(dev_copy(d_fc, b->xd, fc_bytes));
  TRY(linear_back_cuda(m, b, l, T_FC1, d_ln, d_fc, a->ln2, a->h[T_FC1]));
  TRY(layernorm_backward_cuda(d, NULL, NULL, d_ln, a->res1, ly->ln2_w, a->ln2_mean, a->ln2_rstd, N, C));
  TRY(linear_back_cuda(m, b, l, T_DENSE, d_att, d, a->att, a->h[T_DENSE]));
  TRY(dev_zero(d_qkv, sizeof(float) * (size_t)N * 3 * C));
  TRY(attention_backward_cuda(d_qkv, d_att, a->probs, a->qkv, b->d_mask, b->B, b->T, C, NH, &m->dev->attn));
  if (!need_dx && !lora_slot_for(m, l, T_QKV)) return LACOS_OK;
  TRY(linear_back_cuda(m, b, l, T_QKV, d_ln, d_qkv, a->ln1, a->h[T_QKV]));
  if (need_dx) TRY(layernorm_backward_cuda(d, NULL, NULL, d_ln, a->x_in, ly->ln1_w, a->ln1_mean, a->ln1_rstd, N, C));
  return LACOS_OK;
}

/* lacos_bloom_backward: demb (host) goes up, the LoRA gradients accumulate
   in the device copy. */
int bloom_backward_cuda(lacos_bloom *m, lacos_bloom_batch *b, const lacos_tensor *demb) {
  int C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t N = b->N;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  float *d = b->dx, *dl = b->d_small;
  TRY(dev_upload(b->d_pooled, demb->data, sizeof(float) * (size_t)b->B * C));
  TRY(dev_zero(dl, nc_bytes));
  TRY(pooling_backward_cuda(dl, b->d_pooled, b->d_mask, b->B, b->T, C, b->pooling));
  TRY(dev_zero(d, nc_bytes));
  TRY(layernorm_backward_cuda(d, NULL, NULL, dl, b->x_final, m->dev->lnf_w, b->lnf_mean, b->lnf_rstd, N, C));
  for (int l = L - 1; l >= 0; l--) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) {
      TRY(dev_copy(a->x_in, b->ckpt + (int64_t)l * N * C, nc_bytes));
      TRY(block_forward_train_cuda(m, b, l, a, b->d_mid));
    }
    TRY(block_backward_cuda(m, b, l, a, d, l > 0));
  }
  return cuda_sync();
}
