/* test_lora_peft.c: LoRA against peft on the fixture written by
   tests/reference/make_bloom.py: loading PEFT's adapter (all four linears,
   r = 4, alpha = 8) reproduces peft's embeddings; LoRA gradients of
   sum(w · mean-pooled embeddings) match torch autograd within 1e-4
   relative; a lacos-saved adapter reloads exactly; bad adapters fail with
   a clear message. */
#include "test.h"
#include <sys/stat.h>
#include "../../engine/bloom_internal.h"

static char fix[1024];

static lacos_tensor *npy(const char *name) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", fix, name);
  lacos_tensor *t = NULL;
  if (lacos_tensor_load_npy(&t, p)) printf("#   %s\n", lacos_last_error());
  return t;
}

static lacos_bloom *base_q(int quant, int fast) {
  char p[2048];
  snprintf(p, sizeof p, "%s/base", fix);
  lacos_bloom_options o;
  lacos_bloom_options_init(&o);
  o.quant = quant;
  lacos_bloom *m = NULL;
  if (lacos_bloom_load(&m, p, &o)) printf("#   %s\n", lacos_last_error());
  if (m) lacos_bloom_set_fast_backward(m, fast);
  return m;
}

static lacos_bloom *base(void) {
  char p[2048];
  snprintf(p, sizeof p, "%s/base", fix);
  lacos_bloom_options o;
  lacos_bloom_options_init(&o);
  o.quant = LACOS_QUANT_F32;
  lacos_bloom *m = NULL;
  if (lacos_bloom_load(&m, p, &o)) printf("#   %s\n", lacos_last_error());
  return m;
}

static double rel(const float *a, const float *b, int64_t n) {
  double md = 0, mx = 0;
  for (int64_t i = 0; i < n; i++) { md = fmax(md, fabs((double)a[i] - b[i])); mx = fmax(mx, fabs((double)b[i])); }
  return md / (mx > 0 ? mx : 1);
}

static void peft_adapter_embeddings_and_gradients(void) {
  lacos_bloom *m = base();
  CHECK(m != NULL);
  if (!m) return;
  char ad[2048];
  snprintf(ad, sizeof ad, "%s/adapter", fix);
  CHECK_OK(lacos_lora_load(m, ad));
  lacos_tensor *ids = npy("ids.npy"), *mask = npy("mask.npy"), *w = npy("weights.npy"),
               *want = npy("embeddings.npy"), *want0 = npy("embeddings_base.npy"), *emb = NULL, *emb0 = NULL;
  CHECK_OK(lacos_bloom_encode(&emb, m, ids, mask, LACOS_POOL_MEAN));
  double r = rel(emb->data, want->data, lacos_tensor_numel(want));
  printf("#   embeddings with the PEFT adapter: max relative difference %.2e\n", r);
  CHECK(r < 1e-4);
  CHECK_OK(lacos_lora_set_enabled(m, 0));
  CHECK_OK(lacos_bloom_encode(&emb0, m, ids, mask, LACOS_POOL_MEAN));
  CHECK(rel(emb0->data, want0->data, lacos_tensor_numel(want0)) < 1e-4);
  CHECK(rel(emb0->data, want->data, lacos_tensor_numel(want)) > 1e-3);   /* the adapter does something */
  CHECK_OK(lacos_lora_set_enabled(m, 1));
  /* gradients */
  lacos_tensor *e = NULL;
  lacos_bloom_batch *b = NULL;
  CHECK_OK(lacos_lora_zero_grad(m));
  CHECK_OK(lacos_bloom_forward_train(&e, &b, m, ids, mask, LACOS_POOL_MEAN, 0));
  CHECK_OK(lacos_bloom_backward(m, b, w));
  char gp[2048];
  snprintf(gp, sizeof gp, "%s/grads.safetensors", fix);
  lacos_safetensors *g = NULL;
  CHECK_OK(lacos_safetensors_open(&g, gp));
  double worst = 0;
  int compared = 0;
  for (int s = 0; s < lacos_lora_slot_count(m) && g; s++) {
    int layer, target;
    lacos_lora_slot_info(m, s, &layer, &target);
    static const char *const mods[4] = {"self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};
    for (int part = 0; part < 2; part++) {
      char name[160];
      snprintf(name, sizeof name, "h.%d.%s.lora_%c.weight", layer, mods[target], part ? 'B' : 'A');
      lacos_tensor *ref = NULL, *ours = NULL;
      CHECK_OK(lacos_safetensors_get(&ref, g, name));
      CHECK_OK(lacos_lora_tensor(&ours, m, s, part + 2));
      if (!ref || !ours) continue;
      /* qkv lora_B rows: the reference is in the checkpoint's interleaved order */
      const float *rp = ref->data, *op = ours->data;
      int64_t rows = ours->shape[0], cols = ours->shape[1];
      double md = 0, mx = 0;
      for (int64_t i = 0; i < rows; i++) {
        int64_t ri = (part == 1 && target == 0) ? 0 : i;
        if (part == 1 && target == 0) {
          int C = (int)(rows / 3), HD = C / 4, p = (int)(i / C), head = (int)((i % C) / HD), d = (int)(i % HD);
          ri = head * 3 * HD + p * HD + d;
        }
        for (int64_t k = 0; k < cols; k++) {
          md = fmax(md, fabs((double)op[i * cols + k] - rp[ri * cols + k]));
          mx = fmax(mx, fabs((double)rp[ri * cols + k]));
        }
      }
      worst = fmax(worst, md / mx);
      compared++;
      lacos_tensor_free(ref);
      lacos_tensor_free(ours);
    }
  }
  printf("#   %d LoRA gradients against torch autograd: max relative difference %.2e\n", compared, worst);
  CHECK(compared == 16);
  CHECK(worst < 1e-4);
  lacos_safetensors_free(g);
  lacos_tensor_free(e);
  lacos_bloom_batch_free(b);
  /* save with lacos, reload into a fresh base: identical embeddings */
  char out[1100];
  snprintf(out, sizeof out, "%s/saved-adapter", test_tmpdir());
  CHECK_OK(lacos_lora_save(m, out, "tests/fixtures/bloom/lora-a/base"));
  lacos_bloom *m2 = base();
  CHECK_OK(lacos_lora_load(m2, out));
  lacos_tensor *e2 = NULL;
  CHECK_OK(lacos_bloom_encode(&e2, m2, ids, mask, LACOS_POOL_MEAN));
  double d = 1;
  if (e2) lacos_tensor_maxdiff(e2, emb, &d);
  CHECK(d == 0);
  lacos_tensor_free(e2);
  lacos_bloom_free(m2);
  lacos_tensor_free(ids); lacos_tensor_free(mask); lacos_tensor_free(w); lacos_tensor_free(want);
  lacos_tensor_free(want0); lacos_tensor_free(emb); lacos_tensor_free(emb0);
  lacos_bloom_free(m);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

static void bad_adapters(void) {
  lacos_bloom *m = base();
  if (!m) { CHECK(0); return; }
  char dir[1100], cfgp[1200], cmd[4000];
  snprintf(dir, sizeof dir, "%s/bad-adapter", test_tmpdir());
  mkdir(dir, 0777);
  CHECK_FAIL(lacos_lora_load(m, dir), LACOS_ENOTFOUND, "adapter_config.json");
  snprintf(cfgp, sizeof cfgp, "%s/adapter_config.json", dir);
  put(cfgp, "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"]}");
  CHECK_FAIL(lacos_lora_load(m, dir), LACOS_EFORMAT, "q_proj");
  put(cfgp, "{\"peft_type\": \"LORA\", \"r\": 4, \"use_dora\": true, \"target_modules\": [\"dense\"]}");
  CHECK_FAIL(lacos_lora_load(m, dir), LACOS_EUNSUPPORTED, "DoRA");
  /* the fixture's weights with a config claiming fewer targets: an unexpected tensor */
  snprintf(cmd, sizeof cmd, "cp '%s/adapter/adapter_model.safetensors' '%s/'", fix, dir);
  CHECK(system(cmd) == 0);
  put(cfgp, "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"query_key_value\"]}");
  CHECK_FAIL(lacos_lora_load(m, dir), LACOS_EFORMAT, "does not match adapter_config.json");
  /* a wrong rank */
  put(cfgp, "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 8, \"target_modules\": [\"query_key_value\", \"dense\", \"dense_h_to_4h\", \"dense_4h_to_h\"]}");
  CHECK_FAIL(lacos_lora_load(m, dir), LACOS_EFORMAT, "expected (8,");
  CHECK(m->lora == NULL);   /* a failed load leaves no half-loaded adapter */
  lacos_bloom_free(m);
}

/* The int8 model (threshold 0) against torch's f32 gradients: relative L2
   error of all LoRA gradients together, exact and int8 backward products.
   Stated tolerance: 5%; measured 0.30% (exact) and 0.36% (int8 products). */
static void int8_gradients_within_tolerance(void) {
  for (int fast = 0; fast <= 1; fast++) {
    lacos_bloom *m = base_q(LACOS_QUANT_INT8, fast);
    if (!m) { CHECK(0); return; }
    char ad[2048], gp[2048];
    snprintf(ad, sizeof ad, "%s/adapter", fix);
    snprintf(gp, sizeof gp, "%s/grads.safetensors", fix);
    CHECK_OK(lacos_lora_load(m, ad));
    lacos_tensor *ids = npy("ids.npy"), *mask = npy("mask.npy"), *w = npy("weights.npy"), *e = NULL;
    lacos_bloom_batch *b = NULL;
    CHECK_OK(lacos_lora_zero_grad(m));
    CHECK_OK(lacos_bloom_forward_train(&e, &b, m, ids, mask, LACOS_POOL_MEAN, 0));
    CHECK_OK(lacos_bloom_backward(m, b, w));
    lacos_safetensors *g = NULL;
    CHECK_OK(lacos_safetensors_open(&g, gp));
    double num = 0, den = 0;
    static const char *const mods[4] = {"self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};
    for (int s = 0; s < lacos_lora_slot_count(m) && g; s++) {
      int layer, target;
      lacos_lora_slot_info(m, s, &layer, &target);
      for (int part = 0; part < 2; part++) {
        char name[160];
        snprintf(name, sizeof name, "h.%d.%s.lora_%c.weight", layer, mods[target], part ? 'B' : 'A');
        lacos_tensor *ref = NULL, *ours = NULL;
        lacos_safetensors_get(&ref, g, name);
        lacos_lora_tensor(&ours, m, s, part + 2);
        if (!ref || !ours) { CHECK(0); continue; }
        int64_t rows = ours->shape[0], cols = ours->shape[1];
        for (int64_t i = 0; i < rows; i++) {
          int64_t ri = i;
          if (part == 1 && target == 0) {
            int C = (int)(rows / 3), HD = C / 4, p = (int)(i / C), head = (int)((i % C) / HD), d = (int)(i % HD);
            ri = head * 3 * HD + p * HD + d;
          }
          for (int64_t k = 0; k < cols; k++) {
            double a = ((float *)ours->data)[i * cols + k], r = ((float *)ref->data)[ri * cols + k];
            num += (a - r) * (a - r);
            den += r * r;
          }
        }
        lacos_tensor_free(ref);
        lacos_tensor_free(ours);
      }
    }
    double rel = sqrt(num / den);
    printf("#   int8 model, %s backward products: LoRA gradients relative L2 error %.3e against torch f32\n",
           fast ? "int8" : "exact", rel);
    CHECK(rel < 0.05);
    lacos_safetensors_free(g);
    lacos_tensor_free(e); lacos_tensor_free(ids); lacos_tensor_free(mask); lacos_tensor_free(w);
    lacos_bloom_batch_free(b);
    lacos_bloom_free(m);
  }
}

int main(void) {
  const char *root = getenv("LACOS_ROOT");
  snprintf(fix, sizeof fix, "%s/tests/fixtures/bloom/lora-a", root ? root : ".");
  RUN(peft_adapter_embeddings_and_gradients);
  RUN(bad_adapters);
  RUN(int8_gradients_within_tolerance);
  TEST_EXIT();
}
