/* cuda_parity.h: whole-engine parity between the CPU and the CUDA path,
   shared by test_cuda_ops.c (a real GPU) and test_cuda_emul.c (the host
   emulation of the CUDA backend table, cuda_emul.h). Each test builds the same thing on both devices
   through the public API — tensors, a tiny random BLOOM with LoRA on all
   four linears, optimizers — and compares with NMSE = Σ(a−b)²/Σa² against
   limits the including file sets (0 under emulation: the same functions
   run, so every bit must agree).

   The including file defines LIM_MODEL (whole-network outputs and
   gradients), LIM_STEP (optimizer results, bit-exact by design) and
   PARITY_CFG_HIDDEN/HEADS (the model's shape). */
#include <math.h>

static double nmse(const float *ref, const float *got, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isfinite(ref[i]) != isfinite(got[i])) return INFINITY;
    if (!isfinite(ref[i])) continue;
    double d = (double)ref[i] - (double)got[i];
    num += d * d;
    den += (double)ref[i] * (double)ref[i];
  }
  return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

/* The values of any f32 tensor on the host (a device tensor is downloaded). */
static float *host_copy(const lacos_tensor *t) {
  lacos_tensor *h = NULL;
  if (lacos_tensor_to_device(&h, t, LACOS_CPU)) { printf("#   download failed: %s\n", lacos_last_error()); return NULL; }
  lacos_tensor *c = NULL;
  int s = lacos_tensor_contiguous(&c, h);
  lacos_tensor_free(h);
  if (s) return NULL;
  int64_t n = lacos_tensor_numel(c);
  float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (out) memcpy(out, c->data, sizeof(float) * (size_t)n);
  lacos_tensor_free(c);
  return out;
}

static double nmse_tensors(const lacos_tensor *ref, const lacos_tensor *got) {
  if (lacos_tensor_numel(ref) != lacos_tensor_numel(got)) return INFINITY;
  float *a = host_copy(ref), *b = host_copy(got);
  double e = a && b ? nmse(a, b, lacos_tensor_numel(ref)) : INFINITY;
  free(a);
  free(b);
  return e;
}

/* Every comparison prints its NMSE (the record of how close the devices
   are, kept in the test log), and fails past the limit. */
#define CHECK_NMSE(what, value, limit) do { double v_ = (value); if (!(v_ <= (limit))) { \
  printf("#   %s:%d: %s: NMSE %.3g exceeds %.3g\n", __FILE__, __LINE__, (what), v_, (double)(limit)); \
  test_failed_now = 1; } else printf("#   %s: NMSE %.3g (limit %.3g)\n", (what), v_, (double)(limit)); } while (0)

/* ---- a tiny BLOOM on both devices ---- */

static lacos_bloom *pm_cpu, *pm_dev;
/* int8_skip of the next parity_models (NULL: every linear int8) */
static const char *pm_skip;

static lacos_bloom_config parity_config(void) {
  lacos_bloom_config cfg;
  lacos_bloom_config_named(&cfg, "tiny-xs");
  cfg.vocab_size = 300;
  cfg.hidden_size = PARITY_CFG_HIDDEN;
  cfg.n_head = PARITY_CFG_HEADS;
  cfg.n_layer = 2;
  return cfg;
}

/* The same random model (and adapter, with B moved off zero) on the CPU and
   on the device. targets = 0: no adapter. */
static int parity_models(int quant, double threshold, int embedding_dtype, int targets, double dropout) {
  lacos_bloom_config cfg = parity_config();
  lacos_bloom_options o;
  lacos_bloom_options_init(&o);
  o.quant = quant;
  o.threshold = threshold;
  o.embedding_dtype = embedding_dtype;
  o.int8_skip = pm_skip;
  TRY(lacos_bloom_random(&pm_cpu, &cfg, 11, &o));
  o.device = LACOS_CUDA;
  TRY(lacos_bloom_random(&pm_dev, &cfg, 11, &o));
  if (!targets) return LACOS_OK;
  lacos_lora_config lc;
  lacos_lora_config_init(&lc);
  lc.r = 4;
  lc.alpha = 8;
  lc.targets = targets;
  lc.dropout = dropout;
  lc.seed = 5;
  TRY(lacos_lora_attach(pm_cpu, &lc));
  TRY(lacos_lora_attach(pm_dev, &lc));
  for (int s = 0; s < lacos_lora_slot_count(pm_cpu); s++) {
    lacos_tensor *bc, *bd;
    TRY(lacos_lora_tensor(&bc, pm_cpu, s, 1));
    float *p = bc->data;
    for (int64_t i = 0; i < lacos_tensor_numel(bc); i++) p[i] = (float)(0.2 * (rng_uniform(77, (uint64_t)(s * 100000 + i)) - 0.5));
    int st = lacos_lora_tensor(&bd, pm_dev, s, 1);
    if (!st) st = lacos_tensor_copy(bd, bc);   /* host → device */
    lacos_tensor_free(bc);
    lacos_tensor_free(bd);
    TRY(st);
  }
  return LACOS_OK;
}

static void parity_free(void) {
  lacos_bloom_free(pm_cpu);
  lacos_bloom_free(pm_dev);
  pm_cpu = pm_dev = NULL;
}

/* A batch with right padding, left padding and a row of padding only. */
static lacos_tensor *p_ids, *p_mask;
static void parity_batch(void) {
  enum { B = 4, T = 7 };
  int32_t ids[B * T], mask[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(rng_u64(3, (uint64_t)i) % 300);
  int32_t m[B * T] = {1, 1, 1, 1, 1, 1, 1,   1, 1, 1, 1, 0, 0, 0,   0, 0, 0, 1, 1, 1, 1,   0, 0, 0, 0, 0, 0, 0};
  memcpy(mask, m, sizeof mask);
  int64_t sh[2] = {B, T};
  lacos_tensor_from_buffer(&p_ids, LACOS_I32, 2, sh, ids, LACOS_I32);
  lacos_tensor_from_buffer(&p_mask, LACOS_I32, 2, sh, mask, LACOS_I32);
}
static void parity_batch_free(void) {
  lacos_tensor_free(p_ids);
  lacos_tensor_free(p_mask);
  p_ids = p_mask = NULL;
}

/* ---- tests ---- */

/* to("cuda") and back, views, copies, and the clean failures of CPU-only
   operations on a device tensor. */
static void parity_tensor_transfer(void) {
  int64_t sh[2] = {5, 7};
  lacos_tensor *a = NULL, *d = NULL, *back = NULL, *tv = NULL, *tvh = NULL, *ref = NULL, *h2 = NULL;
  CHECK_OK(lacos_tensor_rand(&a, LACOS_F32, 2, sh, 1, 1, 0, 1));
  CHECK_OK(lacos_tensor_to_device(&d, a, LACOS_CUDA));
  CHECK(d && d->device == LACOS_CUDA);
  CHECK_OK(lacos_tensor_to_device(&back, d, LACOS_CPU));
  CHECK(back && back->device == LACOS_CPU && memcmp(back->data, a->data, sizeof(float) * 35) == 0);
  /* a strided view of a device tensor comes back with its strides applied */
  CHECK_OK(lacos_tensor_transpose(&tv, d, 0, 1));
  CHECK_OK(lacos_tensor_to_device(&tvh, tv, LACOS_CPU));
  CHECK_OK(lacos_tensor_transpose(&ref, a, 0, 1));
  double diff = -1;
  CHECK_OK(lacos_tensor_maxdiff(ref, tvh, &diff));
  CHECK(diff == 0);
  /* copies: host → device into an existing tensor, device → device */
  CHECK_OK(lacos_tensor_new(&h2, LACOS_F32, LACOS_CUDA, 2, sh));
  CHECK_OK(lacos_tensor_copy(h2, a));
  CHECK(nmse_tensors(a, h2) == 0);
  CHECK_OK(lacos_tensor_fill(h2, 0));
  float *z = host_copy(h2);
  CHECK(z && z[0] == 0 && z[34] == 0);
  free(z);
  /* CPU operations refuse device tensors with the way out in the message */
  int64_t idx[2] = {0, 0};
  double v;
  CHECK_FAIL(lacos_tensor_get(d, idx, &v), LACOS_EDEVICE, "call :to('cpu')");
  CHECK_FAIL(lacos_tensor_set(d, idx, 1.0), LACOS_EDEVICE, "tensor is on cuda");
  lacos_tensor *o = NULL;
  CHECK_FAIL(lacos_tensor_binary(&o, d, a, LACOS_ADD), LACOS_EDEVICE, "tensor is on cuda");
  CHECK_FAIL(lacos_tensor_unary(&o, d, LACOS_EXP), LACOS_EDEVICE, "tensor is on cuda");
  CHECK_FAIL(lacos_tensor_reduce(&o, d, LACOS_SUM, -1, 0), LACOS_EDEVICE, "tensor is on cuda");
  CHECK_FAIL(lacos_tensor_matmul(&o, d, ref), LACOS_EDEVICE, "tensor is on cuda");
  CHECK_FAIL(lacos_tensor_to_dtype(&o, d, LACOS_F64), LACOS_EDEVICE, "to('cpu')");
  char path[512];
  snprintf(path, sizeof path, "%s/dev.npy", test_tmpdir());
  CHECK_FAIL(lacos_tensor_save_npy(d, path), LACOS_EDEVICE, "dev.npy");
  const char *names[1] = {"x"};
  snprintf(path, sizeof path, "%s/dev.safetensors", test_tmpdir());
  CHECK_FAIL(lacos_safetensors_write(path, 1, names, &d, 0, NULL, NULL), LACOS_EDEVICE, "before saving");
  lacos_tensor *emb = NULL;
  CHECK_FAIL(lacos_loss_mnrl(d, d, 20, 0, &v, NULL, NULL), LACOS_EDEVICE, "tensor is on cuda");
  lacos_tensor_free(emb);
  lacos_tensor_free(a); lacos_tensor_free(d); lacos_tensor_free(back); lacos_tensor_free(tv);
  lacos_tensor_free(tvh); lacos_tensor_free(ref); lacos_tensor_free(h2);
}

/* Inference: hidden states of every layer and pooled embeddings, int8 with
   and without outlier columns, f32, and an int8 embedding table. */
static void parity_forward(void) {
  struct { int quant; double thr; int emb; const char *what, *skip; } cases[] = {
    {LACOS_QUANT_INT8, 0, LACOS_F16, "int8", NULL},
    {LACOS_QUANT_INT8, 1.5, LACOS_BF16, "int8 + outliers", NULL},
    {LACOS_QUANT_F32, 0, LACOS_F32, "f32", NULL},
    {LACOS_QUANT_INT8, 0, LACOS_I8, "int8 embedding table", NULL},
    {LACOS_QUANT_INT8, 1.5, LACOS_F16, "int8 with f32 linears (int8_skip)", "h.0.mlp.dense_4h_to_h,self_attention.dense"},
  };
  parity_batch();
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    pm_skip = cases[k].skip;
    CHECK_OK(parity_models(cases[k].quant, cases[k].thr, cases[k].emb, 15, 0));
    pm_skip = NULL;
    if (!pm_dev) { parity_free(); continue; }
    lacos_tensor *hc = NULL, *hd = NULL;
    CHECK_OK(lacos_bloom_forward(&hc, pm_cpu, p_ids, p_mask, 1));
    CHECK_OK(lacos_bloom_forward(&hd, pm_dev, p_ids, p_mask, 1));
    if (hc && hd) CHECK_NMSE(cases[k].what, nmse_tensors(hc, hd), LIM_MODEL);
    int oc[4], od[4];
    CHECK_OK(lacos_bloom_outliers(pm_cpu, 1, oc));
    CHECK_OK(lacos_bloom_outliers(pm_dev, 1, od));
    CHECK(memcmp(oc, od, sizeof oc) == 0);
    if (cases[k].thr > 0) CHECK(oc[0] + oc[1] + oc[2] + oc[3] > 0);   /* the case does exercise outliers */
    for (int pool = 0; pool < 3; pool++) {
      lacos_tensor *ec = NULL, *ed = NULL;
      CHECK_OK(lacos_bloom_encode(&ec, pm_cpu, p_ids, p_mask, pool));
      CHECK_OK(lacos_bloom_encode(&ed, pm_dev, p_ids, p_mask, pool));
      if (ec && ed) {
        CHECK(ed->device == LACOS_CPU);
        CHECK_NMSE(cases[k].what, nmse_tensors(ec, ed), LIM_MODEL);
      }
      lacos_tensor_free(ec);
      lacos_tensor_free(ed);
    }
    lacos_tensor_free(hc);
    lacos_tensor_free(hd);
    parity_free();
  }
  /* a bad token id fails on the device as on the CPU */
  CHECK_OK(parity_models(LACOS_QUANT_INT8, 0, LACOS_F16, 0, 0));
  ((int32_t *)p_ids->data)[3] = 300;
  lacos_tensor *e = NULL;
  CHECK_FAIL(lacos_bloom_encode(&e, pm_dev, p_ids, p_mask, 0), LACOS_EINVAL, "outside the vocabulary of 300");
  parity_free();
  parity_batch_free();
}

/* Training forward and backward: embeddings and every LoRA gradient, with
   dropout, with and without checkpointing and the int8 input gradients. */
static void parity_backward(void) {
  parity_batch();
  /* variant 4: every linear of block 1 in f32 (int8_skip), the others int8 */
  for (int variant = 0; variant < 5; variant++) {
    bool ckpt = variant & 1, fast = variant & 2;
    pm_skip = variant == 4 ? "h.1.self_attention.query_key_value,h.1.self_attention.dense,h.1.mlp" : NULL;
    CHECK_OK(parity_models(LACOS_QUANT_INT8, 0, LACOS_F16, 15, 0.1));
    pm_skip = NULL;
    if (!pm_dev) { parity_free(); continue; }
    lacos_bloom *ms[2] = {pm_cpu, pm_dev};
    lacos_tensor *emb[2] = {NULL, NULL};
    int64_t gs[2] = {4, PARITY_CFG_HIDDEN};
    lacos_tensor *demb = NULL;
    CHECK_OK(lacos_tensor_rand(&demb, LACOS_F32, 2, gs, 9, 0, -1, 1));
    for (int k = 0; k < 2; k++) {
      lacos_bloom_set_checkpointing(ms[k], ckpt);
      lacos_bloom_set_fast_backward(ms[k], fast);
      lacos_bloom_batch *b = NULL;
      CHECK_OK(lacos_lora_zero_grad(ms[k]));
      CHECK_OK(lacos_bloom_forward_train(&emb[k], &b, ms[k], p_ids, p_mask, LACOS_POOL_WEIGHTEDMEAN, 3));
      if (b) CHECK_OK(lacos_bloom_backward(ms[k], b, demb));
      lacos_bloom_batch_free(b);
    }
    char what[96];
    snprintf(what, sizeof what, "embeddings (checkpointing %d, fast backward %d)", ckpt, fast);
    if (emb[0] && emb[1]) CHECK_NMSE(what, nmse_tensors(emb[0], emb[1]), LIM_MODEL);
    for (int s = 0; s < lacos_lora_slot_count(pm_cpu); s++)
      for (int which = 2; which < 4; which++) {
        lacos_tensor *gc = NULL, *gd = NULL;
        CHECK_OK(lacos_lora_tensor(&gc, pm_cpu, s, which));
        CHECK_OK(lacos_lora_tensor(&gd, pm_dev, s, which));
        CHECK(gd && gd->device == LACOS_CUDA);
        snprintf(what, sizeof what, "slot %d grad %s (checkpointing %d, fast backward %d)", s, which == 2 ? "A" : "B",
                 ckpt, fast);
        if (gc && gd) CHECK_NMSE(what, nmse_tensors(gc, gd), LIM_MODEL);
        lacos_tensor_free(gc);
        lacos_tensor_free(gd);
      }
    lacos_tensor_free(emb[0]);
    lacos_tensor_free(emb[1]);
    lacos_tensor_free(demb);
    parity_free();
  }
  parity_batch_free();
}

/* Optimizer steps over the same parameters on both devices: an 8-bit tensor
   (two blocks and a partial one), a small one with f32 states, a
   non-finite gradient; Adam8bit and AdamW; the gradient norm and clipping. */
static void parity_optimizer(void) {
  for (int kind = 0; kind < 2; kind++) {
    int64_t big = 5000 + 37, small = 300;
    lacos_tensor *p[2][2], *g[2][2];
    lacos_optim *o[2];
    lacos_optim_config c;
    lacos_optim_config_init(&c, kind);
    c.weight_decay = 0.01;
    for (int dev = 0; dev < 2; dev++) {
      CHECK_OK(lacos_optim_new(&o[dev], &c));
      for (int k = 0; k < 2; k++) {
        int64_t n = k ? small : big;
        lacos_tensor *hp, *hg;
        lacos_tensor_rand(&hp, LACOS_F32, 1, &n, 10 + k, 1, 0, 0.1);
        lacos_tensor_rand(&hg, LACOS_F32, 1, &n, 20 + k, 1, 0, 0.01);
        if (dev) {
          CHECK_OK(lacos_tensor_to_device(&p[dev][k], hp, LACOS_CUDA));
          CHECK_OK(lacos_tensor_to_device(&g[dev][k], hg, LACOS_CUDA));
          lacos_tensor_free(hp);
          lacos_tensor_free(hg);
        } else {
          p[dev][k] = hp;
          g[dev][k] = hg;
        }
        CHECK_OK(lacos_optim_add(o[dev], k ? "small" : "big", p[dev][k], g[dev][k]));
      }
    }
    /* a parameter on the other device is refused */
    CHECK_FAIL(lacos_optim_add(o[1], "stray", p[0][1], g[0][1]), LACOS_EDEVICE, "stray");
    for (int step = 1; step <= 4; step++) {
      double norm[2], nf[2];
      for (int dev = 0; dev < 2; dev++) {
        if (step == 3) {   /* a NaN and an inf in the big tensor's gradient */
          lacos_tensor *h = NULL;
          CHECK_OK(lacos_tensor_to_device(&h, g[dev][0], LACOS_CPU));
          ((float *)h->data)[7] = NAN;
          ((float *)h->data)[4100] = INFINITY;
          CHECK_OK(lacos_tensor_copy(g[dev][0], h));
          lacos_tensor_free(h);
        }
        CHECK_OK(lacos_optim_clip_grad_norm(o[dev], step == 2 ? 0.05 : INFINITY, &norm[dev]));
        CHECK_OK(lacos_optim_step(o[dev], -1));
        nf[dev] = lacos_optim_nonfinite(o[dev]);
      }
      if (isfinite(norm[0])) CHECK_NEAR(norm[1], norm[0], 1e-12 * norm[0] + (LIM_STEP > 0 ? 1e-9 * norm[0] : 0));
      else CHECK(!isfinite(norm[1]));   /* from step 3 on the gradient holds a NaN */
      CHECK(nf[0] == nf[1]);
      if (step == 3) CHECK(nf[0] == 2);
      for (int k = 0; k < 2; k++) {
        char what[64];
        snprintf(what, sizeof what, "%s step %d param %d", kind ? "adam8bit" : "adamw", step, k);
        CHECK_NMSE(what, nmse_tensors(p[0][k], p[1][k]), LIM_STEP);
      }
    }
    /* the states, exported as tensors and as dequantised moments */
    int ns = 0;
    CHECK_OK(lacos_optim_state_count(o[0], &ns));
    for (int i = 0; i < ns; i++) {
      lacos_tensor *sc = NULL, *sd = NULL;
      CHECK_OK(lacos_optim_state_tensor(&sc, o[0], i));
      CHECK_OK(lacos_optim_state_tensor(&sd, o[1], i));
      if (sc && sd && sc->dtype == LACOS_U8) {
        lacos_tensor *h = NULL;
        CHECK_OK(lacos_tensor_to_device(&h, sd, LACOS_CPU));
        int64_t n = lacos_tensor_numel(sc), diff = 0;
        for (int64_t j = 0; j < n && h; j++) diff += ((uint8_t *)sc->data)[j] != ((uint8_t *)h->data)[j];
        if (LIM_STEP == 0) CHECK(diff == 0);
        else CHECK(diff <= n / 1000);
        lacos_tensor_free(h);
      } else if (sc && sd && sc->dtype == LACOS_F32) {
        CHECK_NMSE(lacos_optim_state_name(o[0], i), nmse_tensors(sc, sd), LIM_STEP);
      }
      lacos_tensor_free(sc);
      lacos_tensor_free(sd);
    }
    lacos_tensor *mc, *vc, *md, *vd;
    CHECK_OK(lacos_optim_moments(&mc, &vc, o[0], "big"));
    CHECK_OK(lacos_optim_moments(&md, &vd, o[1], "big"));
    CHECK_NMSE("m", nmse_tensors(mc, md), LIM_STEP);
    CHECK_NMSE("v", nmse_tensors(vc, vd), LIM_STEP);
    lacos_tensor_free(mc); lacos_tensor_free(vc); lacos_tensor_free(md); lacos_tensor_free(vd);
    /* zero_grad on the device */
    CHECK_OK(lacos_optim_zero_grad(o[1]));
    float *z = host_copy(g[1][0]);
    CHECK(z && z[0] == 0 && z[5036] == 0);
    free(z);
    for (int dev = 0; dev < 2; dev++) {
      lacos_optim_free(o[dev]);
      for (int k = 0; k < 2; k++) { lacos_tensor_free(p[dev][k]); lacos_tensor_free(g[dev][k]); }
    }
  }
}

/* A few steps of the recipe on both devices — MNRL on the pooled
   embeddings (on the host for both), backward, 8-bit Adam on the LoRA
   tensors — with losses, gradients and parameters compared at each step. */
static void parity_train_steps(void) {
  CHECK_OK(parity_models(LACOS_QUANT_INT8, 0, LACOS_F16, 15, 0.05));
  if (!pm_dev) { parity_free(); return; }
  parity_batch();
  /* 4 sentences: anchors 0,1 and positives 2,3 (row 3 is all padding, as a hard case) */
  lacos_bloom *ms[2] = {pm_cpu, pm_dev};
  lacos_optim *opt[2];
  lacos_optim_config c;
  lacos_optim_config_init(&c, LACOS_OPTIM_ADAM8BIT);
  c.lr = 1e-2;
  c.min_8bit_size = 64;   /* so the tiny adapter's tensors take 8-bit states */
  for (int k = 0; k < 2; k++) {
    CHECK_OK(lacos_optim_new(&opt[k], &c));
    for (int s = 0; s < lacos_lora_slot_count(ms[k]); s++)
      for (int which = 0; which < 2; which++) {
        lacos_tensor *pp = NULL, *gg = NULL;
        CHECK_OK(lacos_lora_tensor(&pp, ms[k], s, which));
        CHECK_OK(lacos_lora_tensor(&gg, ms[k], s, which + 2));
        char name[32];
        snprintf(name, sizeof name, "%d.%d", s, which);
        if (pp && gg) CHECK_OK(lacos_optim_add(opt[k], name, pp, gg));
        lacos_tensor_free(pp);
        lacos_tensor_free(gg);
      }
  }
  for (int step = 1; step <= 3; step++) {
    double loss[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
      lacos_tensor *emb = NULL, *a = NULL, *cand = NULL, *da = NULL, *dc = NULL, *d = NULL;
      lacos_bloom_batch *b = NULL;
      CHECK_OK(lacos_bloom_forward_train(&emb, &b, ms[k], p_ids, p_mask, LACOS_POOL_MEAN, step));
      if (!emb) { lacos_bloom_batch_free(b); continue; }
      lacos_tensor *va, *vc;
      lacos_tensor_slice(&va, emb, 0, 0, 2, 1);
      lacos_tensor_slice(&vc, emb, 0, 2, 4, 1);
      lacos_tensor_contiguous(&a, va);
      lacos_tensor_contiguous(&cand, vc);
      lacos_tensor_free(va);
      lacos_tensor_free(vc);
      int64_t sh[2] = {2, PARITY_CFG_HIDDEN};
      lacos_tensor_empty(&da, LACOS_F32, LACOS_CPU, 2, sh);
      lacos_tensor_empty(&dc, LACOS_F32, LACOS_CPU, 2, sh);
      CHECK_OK(lacos_loss_mnrl(a, cand, 20, 0, &loss[k], da, dc));
      lacos_tensor *parts[2] = {da, dc};
      CHECK_OK(lacos_tensor_cat(&d, parts, 2, 0));
      CHECK_OK(lacos_bloom_backward(ms[k], b, d));
      lacos_bloom_batch_free(b);
      double norm;
      CHECK_OK(lacos_optim_clip_grad_norm(opt[k], 1.0, &norm));
      CHECK_OK(lacos_optim_step(opt[k], -1));
      lacos_tensor_free(emb); lacos_tensor_free(a); lacos_tensor_free(cand);
      lacos_tensor_free(da); lacos_tensor_free(dc); lacos_tensor_free(d);
    }
    CHECK(isfinite(loss[0]));
    CHECK_NEAR(loss[1], loss[0], LIM_MODEL > 0 ? 1e-3 * fabs(loss[0]) : 0);
    for (int s = 0; s < lacos_lora_slot_count(pm_cpu); s++)
      for (int which = 0; which < 4; which++) {
        lacos_tensor *tc = NULL, *td = NULL;
        CHECK_OK(lacos_lora_tensor(&tc, pm_cpu, s, which));
        CHECK_OK(lacos_lora_tensor(&td, pm_dev, s, which));
        char what[64];
        snprintf(what, sizeof what, "step %d slot %d tensor %d", step, s, which);
        if (tc && td) CHECK_NMSE(what, nmse_tensors(tc, td), LIM_MODEL);
        lacos_tensor_free(tc);
        lacos_tensor_free(td);
      }
    for (int k = 0; k < 2; k++) CHECK_OK(lacos_optim_zero_grad(opt[k]));
  }
  lacos_optim_free(opt[0]);
  lacos_optim_free(opt[1]);
  parity_free();
  parity_batch_free();
}

/* An adapter saved from the device model loads into a CPU model unchanged,
   and one saved on the CPU loads onto the device. */
static void parity_lora_files(void) {
  CHECK_OK(parity_models(LACOS_QUANT_INT8, 0, LACOS_F16, 5, 0));
  if (!pm_dev) { parity_free(); return; }
  char dir[512], dir2[512];
  snprintf(dir, sizeof dir, "%s/adapter-from-cuda", test_tmpdir());
  snprintf(dir2, sizeof dir2, "%s/adapter-from-cpu", test_tmpdir());
  CHECK_OK(lacos_lora_save(pm_dev, dir, "tiny"));
  CHECK_OK(lacos_lora_save(pm_cpu, dir2, "tiny"));
  lacos_lora_detach(pm_cpu);
  lacos_lora_detach(pm_dev);
  CHECK_OK(lacos_lora_load(pm_cpu, dir));
  CHECK_OK(lacos_lora_load(pm_dev, dir2));
  for (int s = 0; s < lacos_lora_slot_count(pm_cpu); s++)
    for (int which = 0; which < 2; which++) {
      lacos_tensor *tc = NULL, *td = NULL;
      CHECK_OK(lacos_lora_tensor(&tc, pm_cpu, s, which));
      CHECK_OK(lacos_lora_tensor(&td, pm_dev, s, which));
      if (tc && td) CHECK(nmse_tensors(tc, td) == 0);
      lacos_tensor_free(tc);
      lacos_tensor_free(td);
    }
  parity_free();
}

/* Every device allocation is given back: models, batches, adapters,
   optimizers, tensors. */
static void parity_memory_returns(void) {
  double before = lacos_memory_allocated(LACOS_CUDA);
  CHECK_OK(parity_models(LACOS_QUANT_INT8, 0, LACOS_F16, 15, 0));
  parity_batch();
  lacos_tensor *emb = NULL;
  lacos_bloom_batch *b = NULL;
  if (pm_dev) {
    CHECK_OK(lacos_bloom_encode(&emb, pm_dev, p_ids, p_mask, 0));
    lacos_tensor_free(emb);
    CHECK_OK(lacos_bloom_forward_train(&emb, &b, pm_dev, p_ids, p_mask, 0, 0));
    CHECK(lacos_memory_allocated(LACOS_CUDA) > before);
    CHECK(lacos_bloom_batch_bytes(b) > 0);
    lacos_bloom_batch_free(b);
    lacos_tensor_free(emb);
  }
  parity_free();
  parity_batch_free();
  CHECK_NEAR(lacos_memory_allocated(LACOS_CUDA), before, 0);
}

/* The soft limit applies to device memory too. */
static void parity_memory_limit(void) {
  double before = lacos_memory_allocated(LACOS_CUDA);
  lacos_memory_set_limit(LACOS_CUDA, before + 4096);
  lacos_tensor *t = NULL;
  int64_t n = 1 << 20;
  CHECK_FAIL(lacos_tensor_new(&t, LACOS_F32, LACOS_CUDA, 1, &n), LACOS_ELIMIT, "GPU memory limit");
  lacos_memory_set_limit(LACOS_CUDA, 0);
  CHECK(t == NULL);
  CHECK_NEAR(lacos_memory_allocated(LACOS_CUDA), before, 0);
}

#define PARITY_TESTS(X) \
  X(parity_tensor_transfer) X(parity_forward) X(parity_backward) X(parity_optimizer) \
  X(parity_train_steps) X(parity_lora_files) X(parity_memory_returns) X(parity_memory_limit)
