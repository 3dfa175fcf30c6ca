/* test_bloom_grad.c: the whole network's backward pass. LoRA gradients of
   a tiny random BLOOM (all four linears adapted, left- and right-padded
   sequences, every pooling mode, dropout on and off) against central finite
   differences of the forward pass; checkpointing against no checkpointing;
   the training forward against the inference forward; the batches' memory
   kept by the model from one step to the next. */
#include "test.h"
#include "../../engine/bloom_internal.h"

static lacos_bloom *model;
static lacos_tensor *ids, *mask, *wt;
static int pooling_mode;
static double stream;

static double loss_now(void) {
  lacos_tensor *emb = NULL;
  lacos_bloom_batch *b = NULL;
  if (lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, stream)) {
    printf("#   forward failed: %s\n", lacos_last_error());
    return NAN;
  }
  double s = 0;
  const float *e = emb->data, *w = wt->data;
  for (int64_t i = 0; i < lacos_tensor_numel(emb); i++) s += (double)e[i] * w[i];
  lacos_tensor_free(emb);
  lacos_bloom_batch_free(b);
  return s;
}

static void setup(int quant) {
  lacos_bloom_config cfg;
  lacos_bloom_config_named(&cfg, "tiny-xs");
  cfg.vocab_size = 200;
  cfg.hidden_size = 24;
  cfg.n_head = 3;            /* a non-power-of-two head count */
  cfg.n_layer = 2;
  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.quant = quant;
  opt.embedding_dtype = LACOS_F32;
  CHECK_OK(lacos_bloom_random(&model, &cfg, 7, &opt));
  lacos_lora_config lc;
  lacos_lora_config_init(&lc);
  lc.r = 4;
  lc.alpha = 8;
  lc.targets = 15;
  lc.seed = 3;
  CHECK_OK(lacos_lora_attach(model, &lc));
  /* B starts at zero in PEFT's init; give it values so every path carries gradient. */
  for (int s = 0; s < lacos_lora_slot_count(model); s++) {
    lacos_tensor *B;
    CHECK_OK(lacos_lora_tensor(&B, model, s, 1));
    float *p = B->data;
    for (int64_t i = 0; i < lacos_tensor_numel(B); i++) p[i] = (float)(0.2 * (rng_uniform(99, (uint64_t)(s * 1000 + i)) - 0.5));
    lacos_tensor_free(B);
  }
  int32_t idv[3 * 6] = {5, 17, 33, 2, 90, 150,   0, 0, 0, 44, 45, 46,   7, 8, 9, 10, 0, 0};
  int32_t mv[3 * 6] = {1, 1, 1, 1, 1, 1,   0, 0, 0, 1, 1, 1,   1, 1, 1, 1, 0, 0};
  int64_t sh[2] = {3, 6};
  lacos_tensor_from_buffer(&ids, LACOS_I32, 2, sh, idv, LACOS_I32);
  lacos_tensor_from_buffer(&mask, LACOS_I32, 2, sh, mv, LACOS_I32);
  int64_t ws[2] = {3, 24};
  lacos_tensor_rand(&wt, LACOS_F32, 2, ws, 11, 0, -1, 1);
}

static void teardown(void) {
  lacos_bloom_free(model);
  lacos_tensor_free(ids);
  lacos_tensor_free(mask);
  lacos_tensor_free(wt);
  model = NULL;
}

/* Analytic LoRA gradients against central differences on sampled entries;
   returns the worst |numeric − analytic| in units of the tolerance (≤ 1 passes). */
static double gradcheck(void) {
  CHECK_OK(lacos_lora_zero_grad(model));
  lacos_tensor *emb;
  lacos_bloom_batch *b;
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, stream));
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  lacos_tensor_free(emb);
  lacos_bloom_batch_free(b);
  double worst = 0;
  int checked = 0;
  for (int s = 0; s < lacos_lora_slot_count(model); s++) {
    for (int which = 0; which < 2; which++) {
      lacos_tensor *p, *g;
      CHECK_OK(lacos_lora_tensor(&p, model, s, which));
      CHECK_OK(lacos_lora_tensor(&g, model, s, which + 2));
      int64_t n = lacos_tensor_numel(p);
      for (int k = 0; k < 4; k++) {
        int64_t i = (int64_t)(rng_u64(5, (uint64_t)(s * 10 + which * 4 + k)) % (uint64_t)n);
        float *x = (float *)p->data + i, keep = *x, h = 1e-2f;
        *x = keep + h; double lp = loss_now();
        *x = keep - h; double lm = loss_now();
        *x = keep;
        double num = (lp - lm) / (2 * h), ana = ((float *)g->data)[i];
        /* f32 central differences carry ~1e-5 absolute noise: allow 2% + 1e-4 */
        double err = fabs(num - ana) / (0.02 * fmax(fabs(num), fabs(ana)) + 1e-4);
        if (err > worst) worst = err;
        if (getenv("GRAD_VERBOSE")) printf("#     slot %d %c[%lld]: numeric %.6e analytic %.6e\n", s, which ? 'B' : 'A', (long long)i, num, ana);
        checked++;
      }
      lacos_tensor_free(p);
      lacos_tensor_free(g);
    }
  }
  CHECK(checked > 0);
  return worst;
}

static void lora_gradients_all_poolings(void) {
  setup(LACOS_QUANT_F32);
  const char *names[3] = {"mean", "weightedmean", "lasttoken"};
  for (int p = 0; p < 3; p++) {
    pooling_mode = p;
    stream = 0;
    double w = gradcheck();
    printf("#   %s pooling: worst error %.2f of tolerance\n", names[p], w);
    CHECK(w <= 1);
  }
  teardown();
}

static void lora_gradients_with_dropout(void) {
  setup(LACOS_QUANT_F32);
  lacos_lora_config lc;
  lacos_lora_get_config(model, &lc);
  /* re-attach with dropout, then restore non-zero B */
  lora_state *s = model->lora;
  s->dropout = 0.3;
  pooling_mode = LACOS_POOL_MEAN;
  stream = 42;   /* the same masks in every evaluation */
  double w = gradcheck();
  printf("#   dropout 0.3: worst error %.2f of tolerance\n", w);
  CHECK(w <= 1);
  /* a different stream gives a different loss (the masks do change) */
  double l1 = loss_now();
  stream = 43;
  CHECK(fabs(loss_now() - l1) > 1e-6);
  teardown();
}

static void checkpointing_is_exact(void) {
  setup(LACOS_QUANT_INT8);
  pooling_mode = LACOS_POOL_WEIGHTEDMEAN;
  stream = 0;
  int n = (int)lacos_lora_param_count(model);
  float *g0 = malloc(sizeof(float) * (size_t)n);
  lacos_tensor *emb, *emb_inf;
  lacos_bloom_batch *b;
  CHECK_OK(lacos_lora_zero_grad(model));
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, 0));
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  memcpy(g0, model->lora->grads, sizeof(float) * (size_t)n);
  /* the training forward equals the inference forward */
  CHECK_OK(lacos_bloom_encode(&emb_inf, model, ids, mask, pooling_mode));
  double d;
  CHECK_OK(lacos_tensor_maxdiff(emb, emb_inf, &d));
  CHECK(d == 0);
  lacos_tensor_free(emb);
  lacos_tensor_free(emb_inf);
  lacos_bloom_batch_free(b);
  lacos_bloom_set_checkpointing(model, 1);
  CHECK_OK(lacos_lora_zero_grad(model));
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, 0));
  double kept_bytes = lacos_bloom_batch_bytes(b);
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  CHECK(memcmp(g0, model->lora->grads, sizeof(float) * (size_t)n) == 0);
  lacos_tensor_free(emb);
  lacos_bloom_batch_free(b);
  /* the planner predicts what the batch allocates */
  lacos_bloom_config cfg;
  lacos_bloom_get_config(model, &cfg);
  CHECK_NEAR(lacos_bloom_train_activation_bytes(&cfg, 3, 6, 4, 15, 1), kept_bytes, 64);
  /* gradients accumulate */
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, 0));
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  double worst = 0;
  for (int i = 0; i < n; i++) worst = fmax(worst, fabs(model->lora->grads[i] - 2 * g0[i]));
  CHECK(worst < 1e-5);
  lacos_tensor_free(emb);
  lacos_bloom_batch_free(b);
  free(g0);
  teardown();
}

static void fast_backward_is_close(void) {
  setup(LACOS_QUANT_INT8);
  pooling_mode = LACOS_POOL_MEAN;
  int n = (int)lacos_lora_param_count(model);
  float *g0 = malloc(sizeof(float) * (size_t)n);
  lacos_tensor *emb;
  lacos_bloom_batch *b;
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, 0));
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  memcpy(g0, model->lora->grads, sizeof(float) * (size_t)n);
  lacos_bloom_batch_free(b);
  lacos_tensor_free(emb);
  lacos_bloom_set_fast_backward(model, 1);
  CHECK_OK(lacos_lora_zero_grad(model));
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, pooling_mode, 0));
  CHECK_OK(lacos_bloom_backward(model, b, wt));
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) {
    double d = model->lora->grads[i] - g0[i];
    num += d * d;
    den += (double)g0[i] * g0[i];
  }
  printf("#   int8 backward products: relative gradient error %.2e\n", sqrt(num / den));
  CHECK(sqrt(num / den) < 0.05);
  lacos_bloom_batch_free(b);
  lacos_tensor_free(emb);
  free(g0);
  teardown();
}

static void backward_needs_adapter(void) {
  setup(LACOS_QUANT_F32);
  lacos_tensor *emb;
  lacos_bloom_batch *b;
  CHECK_OK(lacos_bloom_forward_train(&emb, &b, model, ids, mask, 0, 0));
  lacos_lora_detach(model);
  CHECK_FAIL(lacos_bloom_backward(model, b, wt), LACOS_ESTATE, "LoRA");
  lacos_tensor *bad;
  int64_t sh[2] = {2, 24};
  lacos_tensor_new(&bad, LACOS_F32, LACOS_CPU, 2, sh);
  CHECK_FAIL(lacos_bloom_backward(model, b, bad), LACOS_EINVAL, "embedding gradient");
  lacos_tensor_free(bad);
  lacos_tensor_free(emb);
  lacos_bloom_batch_free(b);
  teardown();
}

/* A batch borrows the model's training memory, kept from one step to the
   next; a second live batch allocates its own; either may outlive the model. */
static void batches_reuse_the_model_memory(void) {
  double before = lacos_memory_allocated(LACOS_CPU);
  setup(LACOS_QUANT_INT8);
  pooling_mode = LACOS_POOL_MEAN;
  lacos_tensor *e1, *e2, *e3, *small_ids, *small_mask;
  lacos_bloom_batch *b1, *b2, *b3;
  int64_t sh[2] = {2, 6};
  CHECK_OK(lacos_tensor_from_buffer(&small_ids, LACOS_I32, 2, sh, ids->data, LACOS_I32));
  CHECK_OK(lacos_tensor_from_buffer(&small_mask, LACOS_I32, 2, sh, mask->data, LACOS_I32));
  CHECK_OK(lacos_bloom_forward_train(&e1, &b1, model, ids, mask, pooling_mode, 0));
  void *mem = b1->mem;
  CHECK(b1->lender == model);
  lacos_bloom_batch_free(b1);
  /* a smaller batch, then the same size again: the same memory */
  CHECK_OK(lacos_bloom_forward_train(&e2, &b2, model, small_ids, small_mask, pooling_mode, 0));
  CHECK(b2->mem == (float *)mem);
  lacos_tensor_free(e2);
  lacos_bloom_batch_free(b2);
  CHECK_OK(lacos_bloom_forward_train(&e2, &b2, model, ids, mask, pooling_mode, 0));
  CHECK(b2->mem == (float *)mem && b2->lender == model);
  /* while it lives, another batch has memory of its own and the same embeddings */
  CHECK_OK(lacos_bloom_forward_train(&e3, &b3, model, ids, mask, pooling_mode, 0));
  CHECK(b3->mem != b2->mem && b3->lender == NULL);
  double d = -1;
  CHECK_OK(lacos_tensor_maxdiff(e1, e3, &d));
  CHECK(d == 0);
  CHECK_OK(lacos_tensor_maxdiff(e1, e2, &d));
  CHECK(d == 0);
  lacos_tensor_free(e1);
  lacos_tensor_free(e2);
  lacos_tensor_free(e3);
  lacos_tensor_free(small_ids);
  lacos_tensor_free(small_mask);
  /* the model goes first: the borrowing batch keeps the memory, then frees it */
  teardown();
  CHECK(b2->lender == NULL);
  lacos_bloom_batch_free(b2);
  lacos_bloom_batch_free(b3);
  CHECK(lacos_memory_allocated(LACOS_CPU) == before);
}

int main(void) {
  RUN(lora_gradients_all_poolings);
  RUN(lora_gradients_with_dropout);
  RUN(checkpointing_is_exact);
  RUN(fast_backward_is_close);
  RUN(backward_needs_adapter);
  RUN(batches_reuse_the_model_memory);
  TEST_EXIT();
}
