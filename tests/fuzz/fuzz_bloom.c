/* fuzz_bloom.c: libFuzzer target for the BLOOM checkpoint loader: config.json
   (lacos_bloom_config_read), the weights' names, shapes and dtypes against
   the config (lacos_bloom_load, engine/bloom_io.c) and the int8 weight cache
   (bloom_cache_read).

   Input: one control byte (bit 0: int8 instead of f32, bit 1: put the third
   part where the int8 cache of this checkpoint is looked for, bit 2: run a
   forward pass), then CONFIG-JSON [SEP MODEL-SAFETENSORS [SEP CACHE]].
   Invariants: a config that reads writes back and reads back the same; a
   model that loads has that config, every weight readable with its
   checkpoint shape, and embeds a short batch into finite-or-not numbers
   without a crash; a failure comes with a message and frees everything.
   tests/c/test_fuzz_bloom.c replays the corpus in `make test`. */
#include "fuzz_common.h"

static char cache_dir[600];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("bloom");
  /* the int8 cache goes to a directory of ours (emptied with the rest), never ~/.cache */
  snprintf(cache_dir, sizeof cache_dir, "%s/cache", fuzz_dir);
  setenv("LACOS_CACHE", cache_dir, 1);
  return 0;
}

static bool same_config(const lacos_bloom_config *a, const lacos_bloom_config *b) {
  return a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size && a->n_layer == b->n_layer &&
         a->n_head == b->n_head && a->layer_norm_epsilon == b->layer_norm_epsilon && a->max_length == b->max_length &&
         a->bos_token_id == b->bos_token_id && a->eos_token_id == b->eos_token_id && a->pad_token_id == b->pad_token_id;
}

static void exercise(lacos_bloom *m, const lacos_bloom_config *cfg, bool forward) {
  lacos_bloom_config got;
  FUZZ_REQUIRE(lacos_bloom_get_config(m, &got) == LACOS_OK && same_config(&got, cfg));
  int nw = lacos_bloom_weight_count(m);
  FUZZ_REQUIRE(nw > 0);
  for (int i = 0; i < nw && i < 8; i++) {
    const char *name = lacos_bloom_weight_name(m, i);
    FUZZ_REQUIRE(name != NULL);
    lacos_tensor *w = NULL;
    FUZZ_REQUIRE(lacos_bloom_weight(&w, m, name) == LACOS_OK);
    lacos_tensor_free(w);
  }
  if (!forward) return;
  int64_t shape[2] = {2, 3};
  int32_t ids[6], mask[6] = {1, 1, 1, 1, 1, 0};
  for (int i = 0; i < 6; i++) ids[i] = (i * 7) % cfg->vocab_size;
  lacos_tensor *ti = NULL, *tm = NULL, *emb = NULL;
  FUZZ_REQUIRE(lacos_tensor_from_buffer(&ti, LACOS_I32, 2, shape, ids, LACOS_I32) == LACOS_OK);
  FUZZ_REQUIRE(lacos_tensor_from_buffer(&tm, LACOS_I32, 2, shape, mask, LACOS_I32) == LACOS_OK);
  int s = lacos_bloom_encode(&emb, m, ti, tm, LACOS_POOL_MEAN);
  if (s) fuzz_require_error(s);
  else FUZZ_REQUIRE(emb->ndim == 2 && emb->shape[0] == 2 && emb->shape[1] == cfg->hidden_size);
  lacos_tensor_free(emb);
  lacos_tensor_free(ti);
  lacos_tensor_free(tm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  mkdir(cache_dir, 0700);
  fuzz_bytes in = { data, size };
  unsigned ctl = fuzz_byte(&in);
  const uint8_t *parts[3];
  size_t lens[3];
  int np = fuzz_split(in.p, in.n, parts, lens, 3);
  fuzz_put("config.json", parts[0], lens[0]);
  if (np > 1) fuzz_put("model.safetensors", parts[1], lens[1]);
  char path[1024], back[1024];
  fuzz_path(path, sizeof path, "config.json");
  fuzz_path(back, sizeof back, "back.json");
  double before = lacos_memory_allocated(LACOS_CPU);

  lacos_bloom_config cfg, cfg2;
  int s = lacos_bloom_config_read(&cfg, path);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(strstr(lacos_last_error(), "config.json") != NULL);
  } else {
    FUZZ_TRACE("  config read\n");
    FUZZ_REQUIRE(lacos_bloom_config_write(&cfg, back) == LACOS_OK);
    FUZZ_REQUIRE(lacos_bloom_config_read(&cfg2, back) == LACOS_OK && same_config(&cfg, &cfg2));
    FUZZ_REQUIRE(lacos_bloom_config_params(&cfg) > 0);
    unlink(back);
  }
  if (np < 2) return 0;

  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.quant = ctl & 1 ? LACOS_QUANT_INT8 : LACOS_QUANT_F32;
  opt.cache = (ctl & 2) != 0;
  if (opt.cache && np > 2) {
    char cache[1024];
    if (lacos_bloom_cache_path(fuzz_dir, &opt, cache, sizeof cache) == LACOS_OK) {
      FILE *f = fopen(cache, "wb");
      FUZZ_REQUIRE(f != NULL);
      if (lens[2]) FUZZ_REQUIRE(fwrite(parts[2], 1, lens[2], f) == lens[2]);
      fclose(f);
    }
  }
  lacos_bloom *m = (lacos_bloom *)1;
  s = lacos_bloom_load(&m, fuzz_dir, &opt);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(m == NULL);
  } else {
    FUZZ_TRACE("  model loaded\n");
    exercise(m, &cfg, (ctl & 4) != 0);
    lacos_bloom_free(m);
  }
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
  return 0;
}
