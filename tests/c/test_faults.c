/* test_faults.c: every allocation of a load, an encode and a training step
   (of BLOOM, and of a BERT encoder with int8 linears, LLM.int8 outliers and
   LoRA on bands of the stacked query/key/value), and of loading and running
   tokenizers, can fail, and each failure is a
   clean error. SQLite-style fault
   injection: the allocator's hook (mem_fault_at, engine/memory.c) fails
   the Nth counted allocation, and N walks from 1 until the whole scenario
   runs through without reaching it. At every N the scenario must come back
   (no crash; the sanitizer build checks memory errors and leaks of library
   memory at exit), with a status and a message when it failed, and with
   every counted byte given back — data and bookkeeping, host and device.

   The scenario runs on the CPU and on the host emulation of a device
   (cuda_emul.h is the CUDA backend here), so the device paths' cleanup is
   walked too. */
#include "test.h"
#include "cuda_emul.h"

static char fixroot[1024], fixdir[1100], bertdir[1100];

/* What a scenario loads and how it encodes and trains. */
typedef struct model_case {
  const char *dir;
  int quant;
  double threshold;
  int pooling, train_pooling, targets;
  const char *int8_skip;
} model_case;

/* Load a checkpoint, encode a batch, attach LoRA, one training step with
   MNRL, clipping and 8-bit Adam, then free everything. */
static int run_case(const model_case *c, int device) {
  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.device = device;
  opt.quant = c->quant;
  opt.threshold = c->threshold;
  opt.int8_skip = c->int8_skip;
  lacos_bloom *m = NULL;
  lacos_tensor *ids = NULL, *mask = NULL, *emb = NULL, *temb = NULL, *a = NULL, *p = NULL, *va = NULL, *vp = NULL;
  lacos_tensor *da = NULL, *dp = NULL, *d = NULL;
  lacos_bloom_batch *b = NULL;
  lacos_optim *o = NULL;
  enum { B = 4, T = 5 };
  int32_t idv[B * T], mv[B * T];
  for (int i = 0; i < B * T; i++) { idv[i] = (int32_t)(5 + 7 * i); mv[i] = i % T < T - (i / T) % 2; }
  int64_t sh[2] = {B, T};
  int s = lacos_bloom_load(&m, c->dir, &opt);
  if (!s) s = lacos_tensor_from_buffer(&ids, LACOS_I32, 2, sh, idv, LACOS_I32);
  if (!s) s = lacos_tensor_from_buffer(&mask, LACOS_I32, 2, sh, mv, LACOS_I32);
  if (!s) s = lacos_bloom_encode(&emb, m, ids, mask, c->pooling);
  lacos_lora_config lc;
  lacos_lora_config_init(&lc);
  lc.r = 2;
  lc.targets = c->targets;
  lc.dropout = 0.1;
  if (!s) s = lacos_lora_attach(m, &lc);
  lacos_optim_config oc;
  lacos_optim_config_init(&oc, LACOS_OPTIM_ADAM8BIT);
  oc.min_8bit_size = 64;
  if (!s) s = lacos_optim_new(&o, &oc);
  for (int i = 0; !s && i < lacos_lora_slot_count(m); i++)
    for (int w = 0; !s && w < 2; w++) {
      lacos_tensor *pt = NULL, *gt = NULL;
      char name[32];
      snprintf(name, sizeof name, "%d.%d", i, w);
      s = lacos_lora_tensor(&pt, m, i, w);
      if (!s) s = lacos_lora_tensor(&gt, m, i, w + 2);
      if (!s) s = lacos_optim_add(o, name, pt, gt);
      lacos_tensor_free(pt);
      lacos_tensor_free(gt);
    }
  if (!s) s = lacos_bloom_set_checkpointing(m, 1);
  if (!s) s = lacos_bloom_forward_train(&temb, &b, m, ids, mask, c->train_pooling, 1);
  int64_t half[2] = {B / 2, 0};
  if (!s) s = lacos_tensor_slice(&va, temb, 0, 0, half[0], 1);
  if (!s) s = lacos_tensor_slice(&vp, temb, 0, half[0], B, 1);
  if (!s) s = lacos_tensor_contiguous(&a, va);
  if (!s) s = lacos_tensor_contiguous(&p, vp);
  if (!s) s = lacos_tensor_empty(&da, LACOS_F32, LACOS_CPU, 2, a->shape);
  if (!s) s = lacos_tensor_empty(&dp, LACOS_F32, LACOS_CPU, 2, p->shape);
  double loss = 0, norm = 0;
  if (!s) s = lacos_loss_mnrl(a, p, 20, 0, &loss, da, dp);
  lacos_tensor *parts[2] = {da, dp};
  if (!s) s = lacos_tensor_cat(&d, parts, 2, 0);
  if (!s) s = lacos_bloom_backward(m, b, d);
  if (!s) s = lacos_optim_clip_grad_norm(o, 1.0, &norm);
  if (!s) s = lacos_optim_step(o, -1);
  lacos_tensor *all[] = {ids, mask, emb, temb, a, p, va, vp, da, dp, d};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) lacos_tensor_free(all[i]);
  lacos_bloom_batch_free(b);
  lacos_optim_free(o);
  lacos_bloom_free(m);
  return s;
}

static int scenario(int device) {
  model_case c = { fixdir, LACOS_QUANT_F32, 0, LACOS_POOL_WEIGHTEDMEAN, LACOS_POOL_MEAN,
                   LACOS_LORA_QKV | LACOS_LORA_DENSE, NULL };
  return run_case(&c, device);
}

/* BERT: int8 linears with outlier columns (threshold 1 finds some in a
   random model's activations), CLS pooling to encode and max pooling to
   train, LoRA on query and value (two bands of the stacked linear) and the
   three dense linears; layer 1's query, key and value and both
   intermediate linears kept in f32 (int8_skip). */
static int scenario_bert(int device) {
  model_case c = { bertdir, LACOS_QUANT_INT8, 1.0, LACOS_POOL_CLS, LACOS_POOL_MAX,
                   LACOS_LORA_QUERY | LACOS_LORA_VALUE | LACOS_LORA_DENSE | LACOS_LORA_H_TO_4H | LACOS_LORA_4H_TO_H,
                   "layer.1.attention.self.value,intermediate.dense" };
  return run_case(&c, device);
}

/* A tiny random BERT checkpoint written once, outside the walk. */
static int make_bert(void) {
  lacos_bloom_config cfg;
  int s = lacos_bloom_config_named(&cfg, "tiny-xs");
  if (s) return s;
  cfg.family = LACOS_FAMILY_BERT;
  cfg.vocab_size = 160; cfg.hidden_size = 16; cfg.n_layer = 2; cfg.n_head = 4;
  cfg.intermediate_size = 24; cfg.type_vocab_size = 2; cfg.gelu_exact = 1; cfg.max_length = 16;
  cfg.pad_token_id = 0;
  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.quant = LACOS_QUANT_F32;
  opt.embedding_dtype = LACOS_F32;
  lacos_bloom *m = NULL;
  s = lacos_bloom_random(&m, &cfg, 7, &opt);
  if (!s) s = lacos_bloom_save(m, bertdir, LACOS_F32, 0);
  lacos_bloom_free(m);
  return s;
}

/* Load the BLOOM-like tokenizer (byte-level BPE with added tokens) and a
   WordPiece one (normalizer, template post-processor), encode texts that
   hit the added tokens, the piece cache and the template, then decode. */
static int scenario_tokenizers(int device) {
  (void)device;
  const char *files[2] = { "bloom/tiny-a/tokenizer.json", "wordpiece/wp-small.json" };
  const char *texts[4] = { "Hello world</s> again<pad>", "naïve café, Ünïcödé 東京 [CLS] x [SEP]",
                           "  spaces\tand\nlines  ", "" };
  int s = LACOS_OK;
  for (int f = 0; f < 2 && !s; f++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixroot, files[f]);
    lacos_tokenizer *t = NULL;
    const int32_t *ids, *off;
    s = lacos_tokenizer_load(&t, path);
    if (!s) s = lacos_tokenizer_encode_list(t, &ids, &off, texts, NULL, 4);
    if (!s) {
      const char *text;
      double len;
      s = lacos_tokenizer_decode(t, &text, &len, ids, off[4], 0);
    }
    lacos_tensor *bi = NULL, *bm = NULL;
    if (!s) s = lacos_tokenizer_encode_batch(&bi, &bm, t, texts, NULL, 4, NULL);
    lacos_tensor_free(bi);
    lacos_tensor_free(bm);
    lacos_tokenizer_free(t);
  }
  return s;
}

static void walk(int (*scenario)(int), int device, const char *label) {
  double data0 = lacos_memory_allocated(LACOS_CPU), meta0 = lacos_memory_overhead(),
         dev0 = lacos_memory_allocated(LACOS_CUDA);
  /* the whole scenario once, to know it works and how many allocations it makes */
  mem_fault_at(0);
  int s = scenario(device);
  int64_t total = mem_fault_count();
  CHECK_OK(s);
  if (s) return;
  int failed = 0, recovered = 0, leaks = 0, silent = 0;
  int64_t n = 1;
  for (; n <= total + 1; n++) {
    lacos_error_clear();
    mem_fault_at(n);
    s = scenario(device);
    bool fired = !mem_fault_pending();
    mem_fault_at(0);
    if (!fired) break;   /* the scenario made fewer than n allocations: every one was failed once */
    if (s) {
      failed++;
      if (!lacos_last_error()[0]) {
        silent++;
        if (silent <= 3) printf("#   allocation %lld: status %d without a message\n", (long long)n, s);
      }
    } else recovered++;   /* a best-effort allocation (a cache) whose failure the caller may skip */
    double data = lacos_memory_allocated(LACOS_CPU), meta = lacos_memory_overhead(), dev = lacos_memory_allocated(LACOS_CUDA);
    if (data != data0 || meta != meta0 || dev != dev0) {
      leaks++;
      if (leaks <= 3)
        printf("#   allocation %lld (%s): %.0f data, %.0f bookkeeping, %.0f device bytes not given back\n", (long long)n,
               s ? lacos_last_error() : "recovered", data - data0, meta - meta0, dev - dev0);
      data0 = data; meta0 = meta; dev0 = dev;   /* report each leak once */
    }
  }
  printf("#   %s: %lld allocations; failing each gave %d clean errors, %d recoveries\n", label, (long long)total, failed,
         recovered);
  CHECK(n > total);      /* the walk reached the end */
  CHECK(failed > 0);
  CHECK(leaks == 0);
  CHECK(silent == 0);
}

static void faults_cpu(void) { walk(scenario, LACOS_CPU, "cpu"); }
static void faults_device(void) { walk(scenario, LACOS_CUDA, "emulated device"); }
static void faults_bert(void) {
  CHECK_OK(make_bert());
  walk(scenario_bert, LACOS_CPU, "bert cpu");
  walk(scenario_bert, LACOS_CUDA, "bert emulated device");
}
static void faults_tokenizers(void) { walk(scenario_tokenizers, LACOS_CPU, "tokenizers"); }

/* The hook itself: the Nth allocation fails once, with a message, and then
   allocations work again. */
static void hook_fails_the_nth(void) {
  void *a = NULL, *b = NULL, *c = NULL;
  mem_fault_at(2);
  CHECK_OK(mem_alloc(&a, 100, "first"));
  CHECK_FAIL(meta_alloc(&b, 100, "second"), LACOS_ENOMEM, "second: out of memory (injected failure of allocation 2)");
  CHECK(b == NULL && !mem_fault_pending());
  CHECK_OK(mem_alloc(&c, 100, "third"));
  CHECK(mem_fault_count() == 3);
  mem_fault_at(0);
  mem_free(a);
  mem_free(c);
}

int main(void) {
  const char *root = getenv("LACOS_ROOT");
  snprintf(fixroot, sizeof fixroot, "%s/tests/fixtures", root ? root : ".");
  snprintf(fixdir, sizeof fixdir, "%s/bloom/tiny-a", fixroot);
  snprintf(bertdir, sizeof bertdir, "%s/faults-bert-%d", test_tmpdir(), (int)getpid());
  lacos_threads_set(2);
  RUN(hook_fails_the_nth);
  RUN(faults_cpu);
  RUN(faults_device);
  RUN(faults_bert);
  RUN(faults_tokenizers);
  TEST_EXIT();
}
