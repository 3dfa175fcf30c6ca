/* bloom_train.c: the training passes of a model of any family, for every
   backend: the forward pass that keeps activations, and the backward pass
   through the frozen network into the LoRA gradients, with the family's
   block forward and backward (bloom.c, bert.c). With checkpointing, only each block's input is kept and the
   block's activations are recomputed (one block at a time) during the
   backward.

   A batch is one allocation in the backend's memory: the kept activations
   (or one block's plus the block inputs), ln_f's, the backward scratch, the
   pooled embeddings and the token ids and mask. The embeddings and their
   gradient cross to the host, so the losses of engine/loss.c run on the CPU
   as they are: they are (B, C) matrices, small next to the network. */
#include "bloom_internal.h"

static int count_targets(int targets) { return __builtin_popcount((unsigned)targets & ((1u << LORA_KINDS) - 1)); }

/* Floats of one block's kept activations: x_in, ln1, qkv (3), att, res1,
   ln2 = 8·N·C, fc_pre and fc_post (N·I each), LN statistics, attention
   probabilities, LoRA x·Aᵀ. */
static double acts_floats(const lacos_bloom_config *c, double B, double T, int r, int nt) {
  double N = B * T, C = c->hidden_size, I = ffn_width(c);
  return 8 * N * C + 2 * N * I + 4 * N + B * c->n_head * T * T + nt * N * r;
}

/* Everything a batch allocates: kept activations (or one block's plus the
   block inputs with checkpointing), the final LayerNorm, the backward
   scratch (dx, d_big N·I, d_mid 3NC, d_small, dh, dropout N·max(I,C)), the pooled
   embeddings (B·C), the ids and mask (N each, 4 bytes like a float) and
   the rows' dropout keys (8 bytes, aligned: up to 2B + 1) and first-token
   positions (B). The memory planner and the allocation use this one
   formula. */
double bloom_batch_floats(const lacos_bloom_config *c, int B, int T, int r, int targets, bool ckpt) {
  double N = (double)B * T, C = c->hidden_size, L = c->n_layer, I = ffn_width(c), W = I > C ? I : C;
  double per = acts_floats(c, B, T, r, count_targets(targets));
  double kept = ckpt ? per + L * N * C : L * per;
  return kept + 2 * N * C + 2 * N + 5 * N * C + N * I + N * (r > 0 ? r : 1) + N * W + (double)B * C + 2 * N + 3.0 * B + 1;
}

double lacos_bloom_train_activation_bytes(const lacos_bloom_config *cfg, int B, int T, int r, int targets, int ckpt) {
  return 4 * bloom_batch_floats(cfg, B, T, r, targets, ckpt != 0);
}

/* The scratch of a training step on the CPU (the engine counts it): the
   int8 products' buffers of the largest linear or attention's rows, the
   quarter bloom_ctx_init adds when it grows, and the step's host buffers:
   the ids and mask, the B embeddings and their gradient, and the loss's
   working memory over them (loss.c: normalised copies and gradients in
   double, the B×B scores). */
double lacos_bloom_train_scratch_bytes(const lacos_bloom_config *cfg, int B, int T, int fast_backward) {
  int h = cfg->hidden_size, I = ffn_width(cfg);
  linear lins[NTARGETS];
  for (int t = 0; t < NTARGETS; t++)
    lins[t] = (linear){ .in = t == T_FC2 ? I : h, .out = t == T_QKV ? 3 * h : t == T_FC1 ? I : h, .kind = LINEAR_INT8 };
  size_t need = pass_scratch(backend_cpu(), lins, NTARGETS, (int64_t)B * T, 0, fast_backward != 0, B, T, h,
                             cfg->n_head, true);
  double host = 4.0 * (2.0 * B * T + 2.0 * B * h) + 8.0 * (3.0 * B * h + 2.0 * (double)B * B);
  return (double)(need + need / 4) + host;
}

void bloom_carve_acts(layer_acts *a, float **p, int64_t N, int C, int I, int B, int T, int NH, const lora_state *lora) {
  a->x_in = *p; *p += N * C;
  a->ln1 = *p; *p += N * C;
  a->ln1_mean = *p; *p += N;
  a->ln1_rstd = *p; *p += N;
  a->qkv = *p; *p += 3 * N * C;
  a->probs = *p; *p += (int64_t)B * NH * T * T;
  a->att = *p; *p += N * C;
  a->res1 = *p; *p += N * C;
  a->ln2 = *p; *p += N * C;
  a->ln2_mean = *p; *p += N;
  a->ln2_rstd = *p; *p += N;
  a->fc_pre = *p; *p += (int64_t)I * N;
  a->fc_post = *p; *p += (int64_t)I * N;
  for (int k = 0; k < LORA_KINDS; k++) {
    a->h[k] = NULL;
    if (lora && (lora->targets & (1 << k))) { a->h[k] = *p; *p += N * lora->r; }
  }
}

void lacos_bloom_batch_free(lacos_bloom_batch *b) {
  if (!b) return;
  if (b->lender) b->lender->train_ws_user = NULL;   /* the memory stays with the model for the next batch */
  else if (b->mem) b->be->free(b->mem, b->mem_bytes);
  mem_free(b->acts);
  mem_free(b);
}

double lacos_bloom_batch_bytes(const lacos_bloom_batch *b) { return b ? (double)b->bytes : 0; }
double lacos_bloom_train_workspace_bytes(const lacos_bloom *m) { return m ? (double)m->train_ws.bytes : 0; }

int lacos_bloom_set_checkpointing(lacos_bloom *m, int on) { m->checkpointing = on != 0; return LACOS_OK; }
int lacos_bloom_get_checkpointing(const lacos_bloom *m) { return m->checkpointing; }
int lacos_bloom_set_fast_backward(lacos_bloom *m, int on) { m->fast_backward = on != 0; return LACOS_OK; }
int lacos_bloom_get_fast_backward(const lacos_bloom *m) { return m->fast_backward; }

/* The batch: its one allocation carved as bloom_batch_floats counts it. */
static int batch_new(lacos_bloom_batch **out, lacos_bloom *m, int B, int T, int pooling, double stream) {
  *out = NULL;
  int C = m->cfg.hidden_size, L = m->cfg.n_layer, NH = m->cfg.n_head, I = ffn_width(&m->cfg);
  int64_t N = (int64_t)B * T, W = I > C ? I : C;
  int r = m->lora ? m->lora->r : 0;
  lacos_bloom_batch *b;
  TRY(meta_calloc(&b, 1, sizeof *b, "training batch"));
  b->B = B; b->T = T; b->N = N; b->pooling = pooling; b->stream = (uint64_t)stream;
  b->checkpointed = m->checkpointing;
  b->be = m->be;
  int nkept = b->checkpointed ? 1 : L;
  int s = meta_calloc(&b->acts, (size_t)nkept, sizeof *b->acts, "training batch");
  double floats = bloom_batch_floats(&m->cfg, B, T, r, m->lora ? m->lora->targets : 0, b->checkpointed);
  if (!s && floats * 4 > 1e15) s = fail(LACOS_ELIMIT, "batch of %d x %d is too large", B, T);
  size_t bytes = (size_t)floats * sizeof(float);
  if (!s && !m->train_ws_user) {
    /* the model's training workspace, when no other live batch holds it */
    s = workspace_reserve(m->be, &m->train_ws, bytes, "training activations");
    if (!s) { b->mem = m->train_ws.p; b->mem_bytes = m->train_ws.bytes; b->lender = m; m->train_ws_user = b; }
  } else if (!s) {
    s = m->be->alloc((void **)&b->mem, bytes, "training activations");
    if (!s) b->mem_bytes = bytes;
  }
  if (s) { lacos_bloom_batch_free(b); return s; }
  b->bytes = bytes;
  float *p = b->mem;
  for (int i = 0; i < nkept; i++) bloom_carve_acts(&b->acts[i], &p, N, C, I, B, T, NH, m->lora);
  if (b->checkpointed) { b->ckpt = p; p += (int64_t)L * N * C; }
  b->x_final = p; p += N * C;
  b->lnf_out = p; p += N * C;
  b->lnf_mean = p; p += N;
  b->lnf_rstd = p; p += N;
  b->dx = p; p += N * C;
  b->d_big = p; p += (int64_t)I * N;
  b->d_mid = p; p += 3 * N * C;
  b->d_small = p; p += N * C;
  b->dh = p; p += N * (r > 0 ? r : 1);
  b->xd = p; p += W * N;
  b->pooled = p; p += (int64_t)B * C;
  b->ids = (int32_t *)p; p += N;
  b->mask = (int32_t *)p; p += N;
  if ((uintptr_t)p % 8) p++;
  b->row_key = (uint64_t *)p; p += 2 * (int64_t)B;
  b->row_start = (int32_t *)p;
  *out = b;
  return LACOS_OK;
}

static int batch_ctx(lacos_bloom *m, const lacos_bloom_batch *b, bloom_ctx *x) {
  TRY(bloom_ctx_init(m, x, b->B, b->T, b->mask, b->stream, true));
  x->row_key = b->row_key;
  x->row_start = b->row_start;
  x->dh = b->dh;
  x->xd = b->xd;
  return LACOS_OK;
}

/* The rows' dropout keys (keys[i], or the row index without keys) and
   first-token positions, into the batch's memory. */
static int batch_rows(const backend *be, lacos_bloom_batch *b, const int64_t *keys, const int32_t *mask) {
  for (int i = 0; keys && i < b->B; i++)
    if (keys[i] < 0 || keys[i] >= ((int64_t)1 << 31))
      return fail(LACOS_EINVAL, "row key %lld of row %d is outside 0..2^31-1", (long long)keys[i], i);
  uint64_t *key;   /* B keys, then B positions */
  TRY(meta_calloc(&key, (size_t)b->B, sizeof(uint64_t) + sizeof(int32_t), "dropout row keys"));
  int32_t *start = (int32_t *)(key + b->B);
  for (int i = 0; i < b->B; i++) {
    int p = 0;
    while (p < b->T && !mask[(int64_t)i * b->T + p]) p++;   /* left padding */
    key[i] = keys ? (uint64_t)keys[i] : (uint64_t)i;
    start[i] = p < b->T ? p : 0;
  }
  int s = be->upload(b->row_key, key, sizeof(uint64_t) * (size_t)b->B);
  if (!s) s = be->upload(b->row_start, start, sizeof(int32_t) * (size_t)b->B);
  mem_free(key);
  return s;
}

int lacos_bloom_forward_train(lacos_tensor **emb, lacos_bloom_batch **out, lacos_bloom *m,
                              const lacos_tensor *ids, const lacos_tensor *mask, int pooling, double stream) {
  return lacos_bloom_forward_train_rows(emb, out, m, ids, mask, pooling, stream, NULL);
}

int lacos_bloom_forward_train_rows(lacos_tensor **emb, lacos_bloom_batch **out, lacos_bloom *m,
                                   const lacos_tensor *ids, const lacos_tensor *mask, int pooling, double stream,
                                   const int64_t *row_keys) {
  *emb = NULL;
  *out = NULL;
  TRY(bloom_check_batch(m, ids, mask));
  TRY(pooling_mode_check(pooling));
  if (stream < 0) return fail(LACOS_EINVAL, "dropout stream must be >= 0");
  const backend *be = m->be;
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer;
  int64_t N = (int64_t)B * T;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  lacos_bloom_batch *b;
  TRY(batch_new(&b, m, B, T, pooling, stream));
  bloom_ctx x;
  int s = be->upload(b->ids, ids->data, sizeof(int32_t) * (size_t)N);
  if (!s) s = be->upload(b->mask, mask->data, sizeof(int32_t) * (size_t)N);
  if (!s) s = batch_rows(be, b, row_keys, mask->data);
  if (!s) s = batch_ctx(m, b, &x);
  /* Embeddings, then the blocks. Each block reads its input from acts.x_in
     (copied from the checkpoint slot) and writes the next input. */
  float *x0 = b->checkpointed ? b->ckpt : b->acts[0].x_in;
  if (!s) s = m->fam->embed(m, &x, x0, b->ids, b->d_small);
  for (int l = 0; l < L && !s; l++) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) s = be->copy(a->x_in, b->ckpt + (int64_t)l * N * C, nc_bytes);
    float *next = l + 1 < L ? (b->checkpointed ? b->ckpt + (int64_t)(l + 1) * N * C : b->acts[l + 1].x_in) : b->x_final;
    if (!s) s = m->fam->block_forward(m, &x, l, a, next);
  }
  /* the final LayerNorm (BLOOM's ln_f; a BERT encoder ends with its last block) */
  const float *last = m->run.lnf_w ? b->lnf_out : b->x_final;
  if (!s && m->run.lnf_w)
    s = be->layernorm_forward(b->lnf_out, b->lnf_mean, b->lnf_rstd, b->x_final, m->run.lnf_w, m->run.lnf_b, N, C,
                              (float)m->cfg.layer_norm_epsilon);
  if (!s) s = be->pooling_forward(b->pooled, last, b->mask, B, T, C, pooling, 0);
  int64_t shape[2] = {B, C};
  if (!s) s = lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape);
  if (!s) s = be->download((*emb)->data, b->pooled, sizeof(float) * (size_t)B * C);
  if (s) {
    lacos_tensor_free(*emb);
    *emb = NULL;
    lacos_bloom_batch_free(b);
    return s;
  }
  *out = b;
  return LACOS_OK;
}

int lacos_bloom_backward(lacos_bloom *m, lacos_bloom_batch *b, const lacos_tensor *demb) {
  TRY(tensor_check(demb, "embedding gradient", LACOS_F32, 2));
  int C = m->cfg.hidden_size, L = m->cfg.n_layer;
  if (demb->shape[0] != b->B || demb->shape[1] != C || !lacos_tensor_is_contiguous(demb))
    return fail(LACOS_EINVAL, "embedding gradient must be a contiguous (%d, %d) tensor", b->B, C);
  if (demb->device != LACOS_CPU) return fail(LACOS_EDEVICE, "embedding gradient must be on the CPU");
  if (!m->lora) return fail(LACOS_ESTATE, "nothing to train: attach a LoRA adapter first");
  if (b->be != m->be) return fail(LACOS_EINVAL, "this batch was made by a model on another device");
  const backend *be = m->be;
  int64_t N = b->N;
  size_t nc_bytes = sizeof(float) * (size_t)N * C;
  bloom_ctx x;
  TRY(batch_ctx(m, b, &x));
  float *d = b->dx, *dl = b->d_small;
  TRY(be->upload(b->pooled, demb->data, sizeof(float) * (size_t)b->B * C));
  TRY(be->zero(dl, nc_bytes));
  TRY(be->zero(d, nc_bytes));
  if (m->run.lnf_w) {
    TRY(be->pooling_backward(dl, b->pooled, b->lnf_out, b->mask, b->B, b->T, C, b->pooling, 0));
    TRY(be->layernorm_backward(d, NULL, NULL, dl, b->x_final, m->run.lnf_w, b->lnf_mean, b->lnf_rstd, N, C));
  } else {
    TRY(be->pooling_backward(d, b->pooled, b->x_final, b->mask, b->B, b->T, C, b->pooling, 0));
  }
  for (int l = L - 1; l >= 0; l--) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) {
      /* recompute this block's activations from its saved input; its
         output is not needed again, and d_mid is free here */
      TRY(be->copy(a->x_in, b->ckpt + (int64_t)l * N * C, nc_bytes));
      TRY(m->fam->block_forward(m, &x, l, a, b->d_mid));
    }
    TRY(m->fam->block_backward(m, &x, l, a, d, l > 0, b->d_big, b->d_mid, b->d_small));
  }
  return be->sync();
}
