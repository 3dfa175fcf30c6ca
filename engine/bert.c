/* bert.c: the BERT family (transformers' BertModel, without the pooler): its
   storage, embeddings and post-LN block, composed of the backend's layers
   and the shared adapted linears (block_linear.c), so LoRA trains
   through it exactly as through BLOOM. The passes around the blocks
   (inference, training, checkpoint io) are the shared ones.

   Graph (modeling_bert.py): word + position + token type embeddings →
   LayerNorm → N blocks, each
     a = LayerNorm₁(x + dense(attn(x)))                  attention.output
     y = LayerNorm₂(a + output.dense(gelu(intermediate.dense(a))))
   with bidirectional attention (every real key is seen; padding keys
   masked) and no position bias, and the exact erf GELU ("gelu"). The
   separate query, key and value linears are stacked at load into one
   [Q;K;V] linear (bert_layout.h's bands), the order attention reads, so the
   fused base product runs once while LoRA keeps three adapters on its thirds.
   Positions are 0..T−1 on every row (BERT pads on the right) and every
   token has type 0: sentence-transformers embeds single texts, and its
   tokenizer gives each token of a single text ([CLS] and [SEP] included,
   and a prompt put before it) type 0 (tests/lua/test_bertexport.lua checks
   all-MiniLM-L6-v2's). Type 1 belongs to the second text of a pair, which
   a sentence embedding never encodes: lacos does not build pairs. */
#include "bloom_internal.h"
#include "cpu/layers.h"
#include <math.h>

/* Storage: linears in one allocation (q, k, v, dense: C×C each; the two
   feed-forward linears C×I), each in its own format, small f32 parameters
   in another (LayerNorms, biases, int8 row scales, the position and token
   type tables). */
static void bert_shapes(const lacos_bloom_config *c, int *in, int *out) {
  const int C = c->hidden_size, I = ffn_width(c);
  in[T_QKV] = C; out[T_QKV] = 3 * C;
  in[T_DENSE] = C; out[T_DENSE] = C;
  in[T_FC1] = C; out[T_FC1] = I;
  in[T_FC2] = I; out[T_FC2] = C;
}

/* The top's small parameters: the embedding LayerNorm (2C), the position
   (P·C) and token type (TV·C) tables. */
static size_t bert_top_floats(const lacos_bloom_config *c) {
  return (size_t)c->hidden_size * (2 + (size_t)c->max_length + (size_t)c->type_vocab_size);
}

static int bert_storage_size(const lacos_bloom_config *c, const uint8_t *kinds, size_t *big, size_t *small_n) {
  int in[NTARGETS], out[NTARGETS];
  bert_shapes(c, in, out);
  return layers_storage_size(c, in, out, kinds, bert_top_floats(c), big, small_n);
}

static int bert_alloc(lacos_bloom *m) {
  const lacos_bloom_config *c = &m->cfg;
  int64_t C = c->hidden_size, L = c->n_layer;
  size_t big, small_n;
  TRY(bert_storage_size(c, m->lin_kind, &big, &small_n));
  TRY(alloc_storage_blocks(m, L, big, small_n));
  float *p = m->small;
  bloom_params *h = &m->host;
  h->emb_ln_w = p; p += C;
  h->emb_ln_b = p; p += C;
  h->pos_emb = p; p += (int64_t)c->max_length * C;
  h->type_emb = p; p += (int64_t)c->type_vocab_size * C;
  char *w = m->big;
  int in[NTARGETS], out[NTARGETS];
  bert_shapes(c, in, out);
  for (int64_t l = 0; l < L; l++) carve_layer(&h->layers[l], in, out, (int)C, m->lin_kind + l * NTARGETS, &p, &w);
  return LACOS_OK;
}

// out (N,C) = LayerNorm(word[ids] + position[t] + type[0]); tmp (N,C) scratch
static int bert_embed(lacos_bloom *m, const bloom_ctx *x, float *out, const int32_t *ids, float *tmp) {
  const backend *be = m->be;
  const lacos_bloom_config *c = &m->cfg;
  int C = c->hidden_size;
  int64_t N = x->N;
  /* the rows' position ids 0..T−1 and type ids 0, made on the host */
  size_t bytes = sizeof(int32_t) * (size_t)N;
  if (m->pos_ws.bytes < 2 * bytes) TRY(workspace_reserve(be, &m->pos_ws, 2 * bytes, "position ids"));
  int32_t *host;
  TRY(mem_calloc(&host, 2 * (size_t)N, sizeof(int32_t), "position ids"));
  for (int64_t i = 0; i < N; i++) host[i] = (int32_t)(i % x->T);
  int s = be->upload(m->pos_ws.p, host, 2 * bytes);
  mem_free(host);
  TRY(s);
  const int32_t *pos = m->pos_ws.p, *types = pos + N;
  TRY(be->embedding_forward(out, ids, N, m->run.wte, m->wte_dtype, m->run.wte_scale, c->vocab_size, C));
  TRY(be->embedding_forward(tmp, pos, N, m->run.pos_emb, LACOS_F32, NULL, c->max_length, C));
  TRY(be->add_inplace(out, tmp, N * C));
  TRY(be->embedding_forward(tmp, types, N, m->run.type_emb, LACOS_F32, NULL, c->type_vocab_size, C));
  TRY(be->add_inplace(out, tmp, N * C));
  return be->layernorm_forward(out, NULL, NULL, out, m->run.emb_ln_w, m->run.emb_ln_b, N, C,
                               (float)c->layer_norm_epsilon);
}

/* The block: reads a->x_in; keeps res1 (the first LayerNorm's input), ln1
   (its output), fc_pre, fc_post and in ln2 the second LayerNorm's input;
   writes the block's output to x_out. */
static int bert_block_forward(lacos_bloom *m, const bloom_ctx *x, int l, layer_acts *a, float *x_out) {
  const backend *be = m->be;
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  const bloom_layer *ly = &m->run.layers[l];
  float eps = (float)m->cfg.layer_norm_epsilon;
  int gelu = m->cfg.gelu_exact ? GELU_ERF : GELU_TANH;
  TRY(block_linear(m, x, l, T_QKV, a->qkv, a->x_in, a));
  TRY(be->attention_forward(a->att, a->probs, a->qkv, x->mask, NULL, false, x->B, x->T, C, NH, x->p.ws));
  /* each output dense, its residual, then its LayerNorm on each row (post-LN) */
  TRY(block_linear_then(m, x, l, T_DENSE, a->res1, a->att, a,
                        (linear_epilogue){ .gelu = -1, .residual = a->x_in, .ln = a->ln1, .ln_mean = a->ln1_mean,
                                          .ln_rstd = a->ln1_rstd, .ln_w = ly->ln1_w, .ln_b = ly->ln1_b, .ln_eps = eps }));
  TRY(block_linear_then(m, x, l, T_FC1, a->fc_post, a->ln1, a, (linear_epilogue){ .gelu = gelu, .pre = a->fc_pre }));
  return block_linear_then(m, x, l, T_FC2, a->ln2, a->fc_post, a,
                           (linear_epilogue){ .gelu = -1, .residual = a->ln1, .ln = x_out, .ln_mean = a->ln2_mean,
                                             .ln_rstd = a->ln2_rstd, .ln_w = ly->ln2_w, .ln_b = ly->ln2_b, .ln_eps = eps });
}

/* Backward of a block, from d = ∂loss/∂(block output), in place:
     LayerNorm₂ → ∂/∂(a + ffn) (d_small) → output.dense → gelu' →
     intermediate.dense (adds into the same ∂/∂a) → LayerNorm₁ → ∂/∂res1
     (d) → attention.output.dense → attention → qkv (adds into d, which
     becomes ∂/∂input). Base weights and LayerNorms are frozen: only input
     gradients flow through them; LoRA's gradients accumulate on the way.
   Scratch: d_big (N,I), d_mid (N,3C), d_small (N,C); x->xd (N,max(I,C)). */
static int bert_block_backward(lacos_bloom *m, const bloom_ctx *x, int l, const layer_acts *a, float *d, bool need_dx,
                               float *d_big, float *d_mid, float *d_small) {
  const backend *be = m->be;
  int C = m->cfg.hidden_size, NH = m->cfg.n_head, I = ffn_width(&m->cfg);
  int64_t N = x->N;
  const bloom_layer *ly = &m->run.layers[l];
  int gelu = m->cfg.gelu_exact ? GELU_ERF : GELU_TANH;
  size_t nc = sizeof(float) * (size_t)N * C, ni = sizeof(float) * (size_t)N * I;
  float *d_a = d_small, *d_fc = d_big, *d_qkv = d_mid, *d_ln = d_mid;
  /* LayerNorm₂: ∂/∂(a + ffn) → d_a, which the residual hands to a as is */
  TRY(be->zero(d_a, nc));
  TRY(be->layernorm_backward(d_a, NULL, NULL, d, a->ln2, ly->ln2_w, a->ln2_mean, a->ln2_rstd, N, C));
  TRY(block_linear_back(m, x, l, T_FC2, d_fc, d_a, a->fc_post, a));
  /* gelu_backward accumulates: stage through the dropout scratch (free here) */
  TRY(be->zero(x->xd, ni));
  TRY(be->gelu_backward(x->xd, a->fc_pre, d_fc, N * I, gelu));
  TRY(be->copy(d_fc, x->xd, ni));
  TRY(block_linear_back(m, x, l, T_FC1, d_ln, d_fc, a->ln1, a));
  TRY(be->add_inplace(d_a, d_ln, N * C));
  /* LayerNorm₁: ∂/∂res1 → d, which the residual hands to the input as is */
  TRY(be->zero(d, nc));
  TRY(be->layernorm_backward(d, NULL, NULL, d_a, a->res1, ly->ln1_w, a->ln1_mean, a->ln1_rstd, N, C));
  float *d_att = d_small;
  TRY(block_linear_back(m, x, l, T_DENSE, d_att, d, a->att, a));
  TRY(be->zero(d_qkv, 3 * nc));
  TRY(be->attention_backward(d_qkv, d_att, a->probs, a->qkv, x->mask, false, x->B, x->T, C, NH, x->p.ws));
  if (!need_dx && !block_linear_adapted(m, l, T_QKV)) return LACOS_OK;
  TRY(block_linear_back(m, x, l, T_QKV, d_small, d_qkv, a->x_in, a));
  if (need_dx) TRY(be->add_inplace(d, d_small, N * C));
  return LACOS_OK;
}

/* Where BERT's checkpoint tensor i goes (bert_layout.h). */
static void bert_slot_of(lacos_bloom *m, int i, float **vec, linear **lin, int *row0, int *layer, int *target) {
  bert_weight w = bert_weight_of(&m->cfg, i);
  bloom_params *h = &m->host;
  *vec = NULL; *lin = NULL; *row0 = w.row0; *layer = w.layer; *target = w.target;
  bloom_layer *ly = w.layer >= 0 ? &h->layers[w.layer] : NULL;
  switch (w.what) {
  case BERT_W_POSITION: *vec = h->pos_emb; break;
  case BERT_W_TYPE: *vec = h->type_emb; break;
  case BERT_W_EMB_LN_W: *vec = h->emb_ln_w; break;
  case BERT_W_EMB_LN_B: *vec = h->emb_ln_b; break;
  case BERT_W_LIN_W: *lin = &ly->lin[w.target]; break;
  case BERT_W_LIN_B: *vec = ly->lin[w.target].bias + w.row0; break;
  case BERT_W_LN1_W: *vec = ly->ln1_w; break;
  case BERT_W_LN1_B: *vec = ly->ln1_b; break;
  case BERT_W_LN2_W: *vec = ly->ln2_w; break;
  case BERT_W_LN2_B: *vec = ly->ln2_b; break;
  default: break;   /* the word embeddings: a view, not a slot */
  }
}

const model_family bert_family = {
  .alloc_storage = bert_alloc,
  .storage_size = bert_storage_size,
  .embed = bert_embed,
  .block_forward = bert_block_forward,
  .block_backward = bert_block_backward,
  .slot_of = bert_slot_of,
};
