/* bloom_config.c: BLOOM configurations — the released shapes and the test
   ladder by name, config.json read and written (transformers' BloomConfig
   keys and aliases), parameter counts — and the default load options. */
#include "bloom_internal.h"
#include <jansson.h>

typedef struct named_config { const char *name; int vocab, hidden, layers, heads; } named_config;
static const named_config named_configs[] = {
  {"bloom-560m", 250880, 1024, 24, 16},
  {"bloom-1b1", 250880, 1536, 24, 16},
  {"bloom-1b7", 250880, 2048, 24, 16},
  {"bloom-3b", 250880, 2560, 30, 32},
  {"bloom-7b1", 250880, 4096, 30, 32},
  /* The test ladder: small enough for CI, shaped like BLOOM (12 heads is
     there to exercise ALiBi's non-power-of-two branch). */
  {"tiny-xs", 32768, 64, 2, 4},
  {"tiny-s", 32768, 128, 4, 4},
  {"tiny-m", 32768, 256, 6, 8},
  {"tiny-l", 32768, 384, 8, 12},
};

static void config_defaults(lacos_bloom_config *c) {
  memset(c, 0, sizeof *c);
  c->layer_norm_epsilon = 1e-5;
  c->max_length = 2048;
  c->bos_token_id = 1;
  c->eos_token_id = 2;
  c->pad_token_id = 3;
}

const char *lacos_bloom_config_names(void) {
  return "bloom-560m;bloom-1b1;bloom-1b7;bloom-3b;bloom-7b1;tiny-xs;tiny-s;tiny-m;tiny-l";
}

int lacos_bloom_config_named(lacos_bloom_config *cfg, const char *name) {
  for (size_t i = 0; i < sizeof named_configs / sizeof *named_configs; i++) {
    const named_config *n = &named_configs[i];
    if (strcmp(name, n->name) == 0 || (strncmp(name, "bigscience/", 11) == 0 && strcmp(name + 11, n->name) == 0)) {
      config_defaults(cfg);
      cfg->vocab_size = n->vocab;
      cfg->hidden_size = n->hidden;
      cfg->n_layer = n->layers;
      cfg->n_head = n->heads;
      return LACOS_OK;
    }
  }
  return fail(LACOS_ENOTFOUND, "unknown model name '%s' (known: %s)", name, lacos_bloom_config_names());
}

int bloom_config_check(const lacos_bloom_config *c, const char *where) {
  if (c->vocab_size < 1 || c->vocab_size > 10000000) return fail(LACOS_EFORMAT, "%s: vocab_size %d is out of range", where, c->vocab_size);
  if (c->hidden_size < 1 || c->hidden_size > 65536) return fail(LACOS_EFORMAT, "%s: hidden_size %d is out of range", where, c->hidden_size);
  if (c->n_layer < 1 || c->n_layer > 1000) return fail(LACOS_EFORMAT, "%s: n_layer %d is out of range", where, c->n_layer);
  if (c->n_head < 1 || c->hidden_size % c->n_head)
    return fail(LACOS_EFORMAT, "%s: hidden_size %d is not a multiple of n_head %d", where, c->hidden_size, c->n_head);
  if (!(c->layer_norm_epsilon > 0 && c->layer_norm_epsilon < 1))
    return fail(LACOS_EFORMAT, "%s: layer_norm_epsilon %g is out of range", where, c->layer_norm_epsilon);
  if (c->max_length < 1) return fail(LACOS_EFORMAT, "%s: max_length %d is out of range", where, c->max_length);
  return LACOS_OK;
}

static int json_int_alias(json_t *root, const char *const *keys, int *out, bool required, const char *path) {
  for (int i = 0; keys[i]; i++) {
    json_t *v = json_object_get(root, keys[i]);
    if (!v || json_is_null(v)) continue;   /* transformers writes null for unset ids */
    if (!json_is_integer(v)) return fail(LACOS_EFORMAT, "%s: \"%s\" must be an integer", path, keys[i]);
    json_int_t x = json_integer_value(v);
    if (x < -1 || x > 100000000) return fail(LACOS_EFORMAT, "%s: \"%s\" = %lld is out of range", path, keys[i], (long long)x);
    *out = (int)x;
    return LACOS_OK;
  }
  if (required) return fail(LACOS_EFORMAT, "%s: missing \"%s\"", path, keys[0]);
  return LACOS_OK;
}

int lacos_bloom_config_read(lacos_bloom_config *cfg, const char *path) {
  config_defaults(cfg);
  char *text;
  size_t len;
  TRY(file_read_all(path, 1 << 20, &text, &len));
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  mem_free(text);
  if (!root) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", path, err.line, err.text);
  int s = LACOS_OK;
  if (!json_is_object(root)) { s = fail(LACOS_EFORMAT, "%s: expected a JSON object", path); goto done; }
  json_t *mt = json_object_get(root, "model_type");
  if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bloom") != 0)) {
    s = fail(LACOS_EUNSUPPORTED, "%s: model_type is \"%s\"; lacos runs BLOOM models only", path,
             json_is_string(mt) ? json_string_value(mt) : "?");
    goto done;
  }
  static const char *const k_vocab[] = {"vocab_size", NULL}, *const k_hidden[] = {"hidden_size", "n_embed", NULL},
                           *const k_layer[] = {"n_layer", "num_hidden_layers", NULL},
                           *const k_head[] = {"n_head", "num_attention_heads", NULL},
                           *const k_len[] = {"seq_length", "max_position_embeddings", NULL},
                           *const k_bos[] = {"bos_token_id", NULL}, *const k_eos[] = {"eos_token_id", NULL},
                           *const k_pad[] = {"pad_token_id", NULL};
  if ((s = json_int_alias(root, k_vocab, &cfg->vocab_size, true, path)) ||
      (s = json_int_alias(root, k_hidden, &cfg->hidden_size, true, path)) ||
      (s = json_int_alias(root, k_layer, &cfg->n_layer, true, path)) ||
      (s = json_int_alias(root, k_head, &cfg->n_head, true, path)) ||
      (s = json_int_alias(root, k_len, &cfg->max_length, false, path)) ||
      (s = json_int_alias(root, k_bos, &cfg->bos_token_id, false, path)) ||
      (s = json_int_alias(root, k_eos, &cfg->eos_token_id, false, path)) ||
      (s = json_int_alias(root, k_pad, &cfg->pad_token_id, false, path)))
    goto done;
  json_t *eps = json_object_get(root, "layer_norm_epsilon");
  if (eps) {
    if (!json_is_number(eps)) { s = fail(LACOS_EFORMAT, "%s: \"layer_norm_epsilon\" must be a number", path); goto done; }
    cfg->layer_norm_epsilon = json_number_value(eps);
  }
  json_t *post = json_object_get(root, "apply_residual_connection_post_layernorm");
  if (post && json_is_true(post)) {
    s = fail(LACOS_EUNSUPPORTED, "%s: apply_residual_connection_post_layernorm = true is not supported (no released BLOOM uses it)", path);
    goto done;
  }
  s = bloom_config_check(cfg, path);
done:
  json_decref(root);
  return s;
}

json_t *bloom_config_json(const lacos_bloom_config *c) {
  json_t *root = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:i, s:b, s:s}",
                           "architectures", "BloomModel", "model_type", "bloom",
                           "vocab_size", c->vocab_size, "hidden_size", c->hidden_size,
                           "n_layer", c->n_layer, "n_head", c->n_head, "seq_length", c->max_length,
                           "layer_norm_epsilon", c->layer_norm_epsilon,
                           "bos_token_id", c->bos_token_id, "eos_token_id", c->eos_token_id,
                           "pad_token_id", c->pad_token_id, "pretraining_tp", 1,
                           "attention_dropout", 0.0, "hidden_dropout", 0.0,
                           "apply_residual_connection_post_layernorm", 0, "initializer_range_x1000", 20,
                           "slow_but_exact", 0, "torch_dtype", "float32");
  if (!root) return NULL;
  json_object_del(root, "initializer_range_x1000");
  json_object_set_new(root, "initializer_range", json_real(0.02));
  return root;
}

int bloom_config_json_write(json_t *root, const char *path) {
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return fail(LACOS_ENOMEM, "%s: cannot format the config JSON", path);
  atomic_file af;
  int s = atomic_file_open(&af, path);
  if (!s) {
    fputs(text, af.f);
    fputc('\n', af.f);
    s = atomic_file_commit(&af);
  }
  free(text);
  return s;
}

int lacos_bloom_config_write(const lacos_bloom_config *c, const char *path) {
  TRY(bloom_config_check(c, path));
  json_t *root = bloom_config_json(c);
  if (!root) return fail(LACOS_ENOMEM, "%s: cannot build the config JSON", path);
  int s = bloom_config_json_write(root, path);
  json_decref(root);
  return s;
}

double lacos_bloom_config_params(const lacos_bloom_config *c) {
  double C = c->hidden_size;
  double per_layer = 12 * C * C + 13 * C;   /* four linears with biases and two LayerNorms */
  return c->vocab_size * C + 4 * C + c->n_layer * per_layer;
}

void lacos_bloom_options_init(lacos_bloom_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->quant = LACOS_QUANT_INT8;
  opt->threshold = 0;
  opt->device = LACOS_CPU;
  opt->embedding_dtype = LACOS_F16;
}

