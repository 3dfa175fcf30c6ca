/* fuzz_lora.c: libFuzzer target for the LoRA adapter loader (lacos_lora_load,
   engine/lora.c: adapter_config.json and adapter_model.safetensors as PEFT
   or lacos writes them) on a tiny random BLOOM of the shape of the test
   fixtures (vocab 256, hidden 32, 2 layers, 4 heads).

   Input: ADAPTER-CONFIG-JSON SEP ADAPTER-SAFETENSORS. Invariants: a failed
   load leaves the model without an adapter and explains itself; a loaded
   adapter has the rank, alpha and targets the config says, and saving it
   and loading that back gives the same A and B values. A crash, leak or
   undefined behaviour is a finding. tests/c/test_fuzz_lora.c replays the
   corpus in `make test`. */
#include "fuzz_common.h"
#include <jansson.h>
#include <math.h>

static lacos_bloom *model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("lora");
  lacos_bloom_config cfg;
  FUZZ_REQUIRE(lacos_bloom_config_named(&cfg, "tiny-xs") == LACOS_OK);
  cfg.vocab_size = 256;
  cfg.hidden_size = 32;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.quant = LACOS_QUANT_F32;
  opt.embedding_dtype = LACOS_F32;
  FUZZ_REQUIRE(lacos_bloom_random(&model, &cfg, 1, &opt) == LACOS_OK);
  return 0;
}

/* The values of every adapter tensor, concatenated. */
static float *snapshot(size_t *n) {
  int slots = lacos_lora_slot_count(model);
  size_t total = 0;
  for (int s = 0; s < slots; s++)
    for (int w = 0; w < 2; w++) {
      lacos_tensor *t = NULL;
      FUZZ_REQUIRE(lacos_lora_tensor(&t, model, s, w) == LACOS_OK);
      total += (size_t)lacos_tensor_numel(t);
      lacos_tensor_free(t);
    }
  float *v = malloc(sizeof *v * (total ? total : 1)), *at = v;
  FUZZ_REQUIRE(v != NULL);
  for (int s = 0; s < slots; s++)
    for (int w = 0; w < 2; w++) {
      lacos_tensor *t = NULL;
      FUZZ_REQUIRE(lacos_lora_tensor(&t, model, s, w) == LACOS_OK);
      int64_t k = lacos_tensor_numel(t);
      FUZZ_REQUIRE(lacos_tensor_read_f32(t, at, k) == LACOS_OK);
      at += k;
      lacos_tensor_free(t);
    }
  *n = total;
  return v;
}

static bool same_bits(const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return false;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  lacos_lora_detach(model);
  const uint8_t *parts[2];
  size_t lens[2];
  int np = fuzz_split(data, size, parts, lens, 2);
  fuzz_put("adapter_config.json", parts[0], lens[0]);
  if (np > 1) fuzz_put("adapter_model.safetensors", parts[1], lens[1]);
  double before = lacos_memory_allocated(LACOS_CPU);
  int s = lacos_lora_load(model, fuzz_dir);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(lacos_lora_slot_count(model) == 0);
    FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
    return 0;
  }
  FUZZ_TRACE("  adapter loaded\n");
  /* what the file says is what was attached */
  json_t *cfg = json_loadb((const char *)parts[0], lens[0], 0, NULL);
  FUZZ_REQUIRE(cfg != NULL);
  lacos_lora_config lc;
  FUZZ_REQUIRE(lacos_lora_get_config(model, &lc) == LACOS_OK);
  FUZZ_REQUIRE(json_is_integer(json_object_get(cfg, "r")) && json_integer_value(json_object_get(cfg, "r")) == lc.r);
  json_t *alpha = json_object_get(cfg, "lora_alpha");
  FUZZ_REQUIRE(alpha ? json_number_value(alpha) == lc.alpha : lc.alpha == lc.r);
  json_decref(cfg);
  FUZZ_REQUIRE(lacos_lora_slot_count(model) == 2 * __builtin_popcount((unsigned)lc.targets));

  size_t n1, n2;
  float *v1 = snapshot(&n1);
  char out[1024];
  fuzz_path(out, sizeof out, "saved");
  FUZZ_REQUIRE(lacos_lora_save(model, out, "fuzz") == LACOS_OK);
  lacos_lora_detach(model);
  FUZZ_REQUIRE(lacos_lora_load(model, out) == LACOS_OK);
  float *v2 = snapshot(&n2);
  FUZZ_REQUIRE(n1 == n2 && same_bits(v1, v2, n1));
  lacos_lora_config lc2;
  FUZZ_REQUIRE(lacos_lora_get_config(model, &lc2) == LACOS_OK);
  FUZZ_REQUIRE(lc2.r == lc.r && lc2.alpha == lc.alpha && lc2.targets == lc.targets && lc2.use_rslora == lc.use_rslora);
  free(v1);
  free(v2);
  lacos_lora_detach(model);
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
  return 0;
}
