/* bloom_train.c: the training forward pass (keeping activations) and the
   backward pass through the frozen BLOOM into the LoRA gradients.

   Backward of a block, from d_out = ∂loss/∂(block output), in place:
     fc2 (input grad + LoRA) → gelu' → fc1 → post_attention_layernorm
     (adds into d_out, which becomes ∂/∂res1) → dense → attention → qkv →
     input_layernorm (adds into the same buffer, which becomes ∂/∂input).
   The base weights and LayerNorms are frozen, so only input gradients flow
   through them; LoRA A and B accumulate their gradients on the way. With
   checkpointing, only each block's input is kept and the block's
   activations are recomputed (one block at a time) during the backward.
   A CUDA model runs bloom_cuda.c's twin of these loops over the same batch
   layout. */
#include "device.h"

static int count_targets(int targets) {
  int n = 0;
  for (int t = 0; t < NTARGETS; t++) if (targets & (1 << t)) n++;
  return n;
}

/* Floats of one block's kept activations: x_in, ln1, qkv (3), att, res1,
   ln2, fc_pre (4), fc_post (4) = 16·N·C, LN statistics, attention
   probabilities, LoRA x·Aᵀ. */
static double acts_floats(const lacos_bloom_config *c, double B, double T, int r, int nt) {
  double N = B * T, C = c->hidden_size;
  return 16 * N * C + 4 * N + B * c->n_head * T * T + nt * N * r;
}

/* Everything a batch allocates: kept activations (or one block's plus the
   block inputs with checkpointing), the final LayerNorm, and the backward
   scratch (dx, d_big 4NC, d_mid 3NC, d_small, dh, dropout 4NC). The memory
   planner and the allocation use this one formula. */
double bloom_batch_floats(const lacos_bloom_config *c, int B, int T, int r, int targets, bool ckpt) {
  double N = (double)B * T, C = c->hidden_size, L = c->n_layer;
  double per = acts_floats(c, B, T, r, count_targets(targets));
  double kept = ckpt ? per + L * N * C : L * per;
  return kept + 2 * N * C + 2 * N + 9 * N * C + N * (r > 0 ? r : 1) + 4 * N * C;
}

double lacos_bloom_train_activation_bytes(const lacos_bloom_config *cfg, int B, int T, int r, int targets, int ckpt) {
  return 4 * bloom_batch_floats(cfg, B, T, r, targets, ckpt != 0);
}

double lacos_bloom_train_scratch_bytes(const lacos_bloom_config *cfg, int B, int T, int fast_backward) {
  int h = cfg->hidden_size;
  int shapes[4][2] = {{h, 3 * h}, {h, h}, {h, 4 * h}, {4 * h, h}};
  double most = 0;
  /* one scratch serves every linear: each buffer ends at its largest use,
     and in BLOOM one linear is the largest in all of them at once */
  for (int i = 0; i < 4; i++) {
    double b = int8_scratch_need((int64_t)B * T, shapes[i][0], shapes[i][1], fast_backward != 0);
    if (b > most) most = b;
  }
  return most;
}

void bloom_carve_acts(layer_acts *a, float **p, int64_t N, int C, int B, int T, int NH, const lacos_bloom *m) {
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
  a->fc_pre = *p; *p += 4 * N * C;
  a->fc_post = *p; *p += 4 * N * C;
  for (int t = 0; t < NTARGETS; t++) {
    a->h[t] = NULL;
    if (m->lora && (m->lora->targets & (1 << t))) { a->h[t] = *p; *p += N * m->lora->r; }
  }
}

/* The base linear plus its adapter, keeping h for the backward. */
static int adapted_linear(lacos_bloom *m, lacos_bloom_batch *b, int l, int t, float *y, const float *x, float *h) {
  bloom_layer *ly = &m->layers[l];
  TRY(linear_forward(y, x, &ly->lin[t], b->N, (float)m->opt.threshold, &m->scratch));
  lora_slot *sl = lora_slot_for(m, l, t);
  lora_dropout drop = bloom_dropout(b, l, t);
  if (sl) TRY(lora_forward(m, sl, y, x, h, b->N, &drop, b->xd));
  return LACOS_OK;
}

/* Block l forward from a->x_in, filling a; writes the block output to x_out. */
static int block_forward_train(lacos_bloom *m, lacos_bloom_batch *b, int l, layer_acts *a, float *x_out) {
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = b->N;
  bloom_layer *ly = &m->layers[l];
  float eps = (float)m->cfg.layer_norm_epsilon;
  layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, ly->ln1_w, ly->ln1_b, N, C, eps);
  TRY(adapted_linear(m, b, l, T_QKV, a->qkv, a->ln1, a->h[T_QKV]));
  attention_forward(a->att, a->probs, a->qkv, b->mask, m->slopes, b->B, b->T, C, NH);
  TRY(adapted_linear(m, b, l, T_DENSE, a->res1, a->att, a->h[T_DENSE]));
  add_inplace(a->res1, a->x_in, N * C);
  layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, ly->ln2_w, ly->ln2_b, N, C, eps);
  TRY(adapted_linear(m, b, l, T_FC1, a->fc_pre, a->ln2, a->h[T_FC1]));
  gelu_forward(a->fc_post, a->fc_pre, N * 4 * C);
  TRY(adapted_linear(m, b, l, T_FC2, x_out, a->fc_post, a->h[T_FC2]));
  add_inplace(x_out, a->res1, N * C);
  return LACOS_OK;
}

void lacos_bloom_batch_free(lacos_bloom_batch *b) {
  if (!b) return;
  if (b->device == LACOS_CUDA) dev_free(b->mem, b->bytes);
  else mem_free(b->mem, b->bytes, LACOS_CPU);
  free(b->acts);
  free(b->ids);
  free(b->mask);
  free(b->row_key);
  free(b->row_start);
  free(b);
}

int bloom_batch_rows(lacos_bloom_batch *b, const int64_t *keys) {
  b->row_key = malloc(sizeof(uint64_t) * (size_t)b->B);
  b->row_start = malloc(sizeof(int32_t) * (size_t)b->B);
  if (!b->row_key || !b->row_start) return fail(LACOS_ENOMEM, "out of memory");
  for (int i = 0; i < b->B; i++) {
    if (keys && (keys[i] < 0 || keys[i] >= ((int64_t)1 << 31)))
      return fail(LACOS_EINVAL, "row key %lld of row %d is outside 0..2^31-1", (long long)keys[i], i);
    b->row_key[i] = keys ? (uint64_t)keys[i] : (uint64_t)i;
    int p = 0;
    while (p < b->T && !b->mask[(int64_t)i * b->T + p]) p++;   /* left padding */
    b->row_start[i] = p < b->T ? p : 0;
  }
  return LACOS_OK;
}

double lacos_bloom_batch_bytes(const lacos_bloom_batch *b) { return b ? (double)b->bytes : 0; }

int lacos_bloom_set_checkpointing(lacos_bloom *m, int on) { m->checkpointing = on != 0; return LACOS_OK; }
int lacos_bloom_get_checkpointing(const lacos_bloom *m) { return m->checkpointing; }
int lacos_bloom_set_fast_backward(lacos_bloom *m, int on) { m->fast_backward = on != 0; return LACOS_OK; }
int lacos_bloom_get_fast_backward(const lacos_bloom *m) { return m->fast_backward; }

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
  if (m->opt.device == LACOS_CUDA) return bloom_forward_train_cuda(emb, out, m, ids, mask, pooling, stream, row_keys);
  int B = (int)ids->shape[0], T = (int)ids->shape[1], C = m->cfg.hidden_size, L = m->cfg.n_layer, NH = m->cfg.n_head;
  int64_t N = (int64_t)B * T;
  int r = m->lora ? m->lora->r : 0;
  lacos_bloom_batch *b = calloc(1, sizeof *b);
  if (!b) return fail(LACOS_ENOMEM, "out of memory");
  b->B = B; b->T = T; b->N = N; b->pooling = pooling; b->stream = (uint64_t)stream;
  b->checkpointed = m->checkpointing;
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
  if (floats * 4 > 1e15) { lacos_bloom_batch_free(b); return fail(LACOS_ELIMIT, "batch of %d x %d is too large", B, T); }
  b->bytes = (size_t)floats * sizeof(float);
  b->mem = mem_alloc(b->bytes, LACOS_CPU, "training activations");
  if (!b->mem) { lacos_bloom_batch_free(b); return lacos_last_status(); }
  float *p = b->mem;
  for (int i = 0; i < nkept; i++) bloom_carve_acts(&b->acts[i], &p, N, C, B, T, NH, m);
  if (b->checkpointed) { b->ckpt = p; p += (int64_t)L * N * C; }
  float *ckpt = b->ckpt;
  b->x_final = p; p += N * C;
  b->lnf_out = p; p += N * C;
  b->lnf_mean = p; p += N;
  b->lnf_rstd = p; p += N;
  b->dx = p; p += N * C;
  b->d_big = p; p += 4 * N * C;
  b->d_mid = p; p += 3 * N * C;
  b->d_small = p; p += N * C;
  b->dh = p; p += N * (r > 0 ? r : 1);
  b->xd = p;
  /* Forward: embeddings, then the blocks. Each block reads its input from
     acts.x_in (or the checkpoint slot) and writes the next input. */
  int s = LACOS_OK;
  float *x0 = b->checkpointed ? ckpt : b->acts[0].x_in;
  s = bloom_embed(m, x0, b->ids, N);
  for (int l = 0; l < L && !s; l++) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) memcpy(a->x_in, ckpt + (int64_t)l * N * C, sizeof(float) * (size_t)N * C);
    float *next = l + 1 < L ? (b->checkpointed ? ckpt + (int64_t)(l + 1) * N * C : b->acts[l + 1].x_in) : b->x_final;
    s = block_forward_train(m, b, l, a, next);
  }
  if (!s) {
    layernorm_forward(b->lnf_out, b->lnf_mean, b->lnf_rstd, b->x_final, m->lnf_w, m->lnf_b, N, C,
                      (float)m->cfg.layer_norm_epsilon);
    int64_t shape[2] = {B, C};
    s = lacos_tensor_empty(emb, LACOS_F32, LACOS_CPU, 2, shape);
    if (!s) pooling_forward((*emb)->data, b->lnf_out, b->mask, B, T, C, pooling);
  }
  if (s) { lacos_bloom_batch_free(b); return s; }
  *out = b;
  return LACOS_OK;
}

static int linear_back(lacos_bloom *m, lacos_bloom_batch *b, int l, int t, float *dx, const float *dy,
                       const float *x, const float *h) {
  bloom_layer *ly = &m->layers[l];
  memset(dx, 0, sizeof(float) * (size_t)b->N * (size_t)ly->lin[t].in);
  TRY(linear_backward_input(dx, dy, &ly->lin[t], b->N, m->fast_backward, &m->scratch));
  lora_slot *sl = lora_slot_for(m, l, t);
  lora_dropout drop = bloom_dropout(b, l, t);
  if (sl) TRY(lora_backward(m, sl, dx, dy, x, h, b->dh, b->N, &drop, b->xd));
  return LACOS_OK;
}

/* d (N,C): gradient of the block output in, gradient of the block input out. */
static int block_backward(lacos_bloom *m, lacos_bloom_batch *b, int l, const layer_acts *a, float *d, bool need_dx) {
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  int64_t N = b->N;
  bloom_layer *ly = &m->layers[l];
  float *d_fc = b->d_big;    /* (N,4C): first ∂/∂gelu output, then ∂/∂fc_pre */
  float *d_ln = b->d_small, *d_qkv = b->d_mid, *d_att = b->d_small;
  TRY(linear_back(m, b, l, T_FC2, d_fc, d, a->fc_post, a->h[T_FC2]));
  /* gelu_backward accumulates: stage through the dropout scratch (free here) */
  memset(b->xd, 0, sizeof(float) * (size_t)N * 4 * C);
  gelu_backward(b->xd, a->fc_pre, d_fc, N * 4 * C);
  memcpy(d_fc, b->xd, sizeof(float) * (size_t)N * 4 * C);
  /* fc1 → d_ln, then post_attention_layernorm adds into d (now ∂/∂res1) */
  TRY(linear_back(m, b, l, T_FC1, d_ln, d_fc, a->ln2, a->h[T_FC1]));
  layernorm_backward(d, NULL, NULL, d_ln, a->res1, ly->ln2_w, a->ln2_mean, a->ln2_rstd, N, C);
  /* dense → d_att; attention → d_qkv; qkv → d_ln */
  TRY(linear_back(m, b, l, T_DENSE, d_att, d, a->att, a->h[T_DENSE]));
  memset(d_qkv, 0, sizeof(float) * (size_t)N * 3 * C);
  attention_backward(d_qkv, d_att, a->probs, a->qkv, b->mask, b->B, b->T, C, NH);
  if (!need_dx && !lora_slot_for(m, l, T_QKV)) return LACOS_OK;
  TRY(linear_back(m, b, l, T_QKV, d_ln, d_qkv, a->ln1, a->h[T_QKV]));
  if (need_dx) layernorm_backward(d, NULL, NULL, d_ln, a->x_in, ly->ln1_w, a->ln1_mean, a->ln1_rstd, N, C);
  return LACOS_OK;
}

int lacos_bloom_backward(lacos_bloom *m, lacos_bloom_batch *b, const lacos_tensor *demb) {
  TRY(tensor_check(demb, "embedding gradient", LACOS_F32, 2));
  int C = m->cfg.hidden_size, L = m->cfg.n_layer;
  if (demb->shape[0] != b->B || demb->shape[1] != C || !lacos_tensor_is_contiguous(demb))
    return fail(LACOS_EINVAL, "embedding gradient must be a contiguous (%d, %d) tensor", b->B, C);
  if (!m->lora) return fail(LACOS_ESTATE, "nothing to train: attach a LoRA adapter first");
  if (b->device != m->opt.device) return fail(LACOS_EINVAL, "this batch was made by a model on another device");
  if (m->opt.device == LACOS_CUDA) return bloom_backward_cuda(m, b, demb);
  int64_t N = b->N;
  float *d = b->dx, *dl = b->d_small;
  memset(dl, 0, sizeof(float) * (size_t)N * C);
  pooling_backward(dl, demb->data, b->mask, b->B, b->T, C, b->pooling);
  memset(d, 0, sizeof(float) * (size_t)N * C);
  layernorm_backward(d, NULL, NULL, dl, b->x_final, m->lnf_w, b->lnf_mean, b->lnf_rstd, N, C);
  for (int l = L - 1; l >= 0; l--) {
    layer_acts *a = &b->acts[b->checkpointed ? 0 : l];
    if (b->checkpointed) {
      /* recompute this block's activations from its saved input */
      memcpy(a->x_in, b->ckpt + (int64_t)l * N * C, sizeof(float) * (size_t)N * C);
      float *sink = b->d_mid;   /* block output not needed again; d_mid is free here */
      TRY(block_forward_train(m, b, l, a, sink));
    }
    TRY(block_backward(m, b, l, a, d, l > 0));
  }
  return LACOS_OK;
}
