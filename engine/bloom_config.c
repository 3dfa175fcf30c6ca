/* bloom_config.c: model configurations — BLOOM's released shapes and the
   test ladder by name, config.json read and written (transformers'
   BloomConfig and BertConfig keys and aliases; model_type picks the
   family), parameter counts — and the default load options. */
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
  if (c->family != LACOS_FAMILY_BLOOM && c->family != LACOS_FAMILY_BERT)
    return fail(LACOS_EINVAL, "%s: unknown model family %d", where, c->family);
  if (c->intermediate_size < 0 || c->intermediate_size > 1 << 20)
    return fail(LACOS_EFORMAT, "%s: intermediate_size %d is out of range", where, c->intermediate_size);
  if (c->family == LACOS_FAMILY_BERT) {
    if (c->type_vocab_size < 1 || c->type_vocab_size > 1000)
      return fail(LACOS_EFORMAT, "%s: type_vocab_size %d is out of range", where, c->type_vocab_size);
    if (c->max_length > 1 << 20) return fail(LACOS_EFORMAT, "%s: max_position_embeddings %d is out of range", where, c->max_length);
  } else if (c->intermediate_size && c->intermediate_size != 4 * c->hidden_size) {
    return fail(LACOS_EFORMAT, "%s: a BLOOM block's feed-forward width is 4·hidden_size, not %d", where, c->intermediate_size);
  }
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

/* BertConfig: the keys that shape a BertModel, and the ones lacos refuses
   rather than misread. */
static int bert_config_read(lacos_bloom_config *cfg, json_t *root, const char *path) {
  cfg->family = LACOS_FAMILY_BERT;
  cfg->layer_norm_epsilon = 1e-12;
  cfg->max_length = 512;
  cfg->type_vocab_size = 2;
  cfg->bos_token_id = cfg->eos_token_id = -1;
  cfg->pad_token_id = 0;
  cfg->gelu_exact = 1;
  static const char *const k_vocab[] = {"vocab_size", NULL}, *const k_hidden[] = {"hidden_size", NULL},
                           *const k_layer[] = {"num_hidden_layers", NULL}, *const k_head[] = {"num_attention_heads", NULL},
                           *const k_ffn[] = {"intermediate_size", NULL}, *const k_len[] = {"max_position_embeddings", NULL},
                           *const k_types[] = {"type_vocab_size", NULL}, *const k_pad[] = {"pad_token_id", NULL};
  TRY(json_int_alias(root, k_vocab, &cfg->vocab_size, true, path));
  TRY(json_int_alias(root, k_hidden, &cfg->hidden_size, true, path));
  TRY(json_int_alias(root, k_layer, &cfg->n_layer, true, path));
  TRY(json_int_alias(root, k_head, &cfg->n_head, true, path));
  TRY(json_int_alias(root, k_ffn, &cfg->intermediate_size, true, path));
  TRY(json_int_alias(root, k_len, &cfg->max_length, false, path));
  TRY(json_int_alias(root, k_types, &cfg->type_vocab_size, false, path));
  TRY(json_int_alias(root, k_pad, &cfg->pad_token_id, false, path));
  json_t *eps = json_object_get(root, "layer_norm_eps");
  if (eps) {
    if (!json_is_number(eps)) return fail(LACOS_EFORMAT, "%s: \"layer_norm_eps\" must be a number", path);
    cfg->layer_norm_epsilon = json_number_value(eps);
  }
  json_t *act = json_object_get(root, "hidden_act");
  if (act) {
    const char *a = json_is_string(act) ? json_string_value(act) : "?";
    if (!strcmp(a, "gelu")) cfg->gelu_exact = 1;
    else if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh")) cfg->gelu_exact = 0;
    else return fail(LACOS_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh)", path, a);
  }
  json_t *pos = json_object_get(root, "position_embedding_type");
  if (pos && !json_is_null(pos) && (!json_is_string(pos) || strcmp(json_string_value(pos), "absolute")))
    return fail(LACOS_EUNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported (absolute only)", path,
                json_is_string(pos) ? json_string_value(pos) : "?");
  if (json_is_true(json_object_get(root, "is_decoder")) || json_is_true(json_object_get(root, "add_cross_attention")))
    return fail(LACOS_EUNSUPPORTED, "%s: a BERT decoder (is_decoder, add_cross_attention) is not supported; lacos runs encoders", path);
  return bloom_config_check(cfg, path);
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
  if (mt && json_is_string(mt) && strcmp(json_string_value(mt), "bert") == 0) {
    s = bert_config_read(cfg, root, path);
    goto done;
  }
  if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bloom") != 0)) {
    s = fail(LACOS_EUNSUPPORTED, "%s: model_type is \"%s\"; lacos runs BLOOM and BERT models (bloom, bert)", path,
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

static json_t *bert_config_json(const lacos_bloom_config *c) {
  return json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:s, s:i, s:f, s:f, s:f, s:s}",
                   "architectures", "BertModel", "model_type", "bert", "vocab_size", c->vocab_size,
                   "hidden_size", c->hidden_size, "num_hidden_layers", c->n_layer,
                   "num_attention_heads", c->n_head, "intermediate_size", c->intermediate_size,
                   "max_position_embeddings", c->max_length, "type_vocab_size", c->type_vocab_size,
                   "layer_norm_eps", c->layer_norm_epsilon, "hidden_act", c->gelu_exact ? "gelu" : "gelu_new",
                   "position_embedding_type", "absolute", "pad_token_id", c->pad_token_id,
                   "hidden_dropout_prob", 0.0, "attention_probs_dropout_prob", 0.0, "initializer_range", 0.02,
                   "torch_dtype", "float32");
}

json_t *bloom_config_json(const lacos_bloom_config *c) {
  if (c->family == LACOS_FAMILY_BERT) return bert_config_json(c);
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
  if (c->family == LACOS_FAMILY_BERT) {
    double I = c->intermediate_size ? c->intermediate_size : 4 * C;
    double per = 4 * C * C + 2 * C * I + 9 * C + I;   /* q, k, v, dense, two FFN linears with biases, two LayerNorms */
    return (c->vocab_size + c->max_length + c->type_vocab_size) * C + 2 * C + c->n_layer * per;
  }
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

