/* int8_skip.c: which linears of an int8 model keep f32 weights (lacos.h,
   lacos_bloom_options.int8_skip): module-name patterns resolved against a
   family's linears into one format per linear, before any storage is
   carved. The storage (carve_layer), the int8 cache key, the planner and
   every reader of weights then follow each linear's own kind.

   Matching follows transformers' llm_int8_skip_modules (a module and
   everything in it) with PEFT's suffix rule for names: a pattern names a
   module by its full name or its last dotted components, and every linear
   in that module. So "output.dense" names BERT's attention.output.dense as
   well as its feed-forward output.dense, "layer.2.output.dense" only the
   latter of layer 2, "mlp" both feed-forward linears of every BLOOM block
   and "h.1" every linear of block 1 (but not of block 11). The unit is the engine's linear: BERT's query, key
   and value are one fused [Q;K;V] product (bert.c), so a pattern naming any
   of them, or their parent module attention.self, selects the fused one. */
#include "bloom_internal.h"

enum { NAME_CAP = 160, PATTERN_CAP = 128 };

/* The module names linear t of block l answers to: its own, and for BERT's
   fused linear the three it stands for. Returns how many (names[0] is the
   linear's own name). */
static int linear_names(const lacos_bloom_config *c, int l, int t, char names[4][NAME_CAP]) {
  char block[64];
  layout_block_name(c, l, block, sizeof block);
  if (c->family != LACOS_FAMILY_BERT) {
    snprintf(names[0], NAME_CAP, "%s.%s", block, bloom_target_names[t]);
    return 1;
  }
  if (t == T_QKV) {
    static const char *const parts[4] = {"attention.self", "attention.self.query", "attention.self.key",
                                         "attention.self.value"};
    for (int i = 0; i < 4; i++) snprintf(names[i], NAME_CAP, "%s.%s", block, parts[i]);
    return 4;
  }
  snprintf(names[0], NAME_CAP, "%s.%s", block, lora_kind_module(c, t));
  return 1;
}

void linear_module_name(const lacos_bloom_config *c, int l, int t, char *name, size_t n) {
  char names[4][NAME_CAP];
  linear_names(c, l, t, names);
  snprintf(name, n, "%s", names[0]);
}

/* The pattern is a run of whole dotted components of the name: the linear
   itself or a module holding it, by its full name or its last components. */
static bool names_it(const char *name, const char *pattern) {
  size_t p = strlen(pattern);
  for (const char *at = name; at; at = strchr(at, '.') ? strchr(at, '.') + 1 : NULL)
    if (strncmp(at, pattern, p) == 0 && (at[p] == 0 || at[p] == '.')) return true;
  return false;
}

/* The family's linears in one line, for a message: the per-block names
   with the block range. */
static void linears_listed(const lacos_bloom_config *c, char *out, size_t n) {
  const char *block = c->family == LACOS_FAMILY_BERT ? "encoder.layer" : "h";
  size_t k = (size_t)snprintf(out, n, "%s.N.{", block);
  for (int t = 0; t < NTARGETS && k < n; t++) {
    char names[4][NAME_CAP];
    int many = linear_names(c, 0, t, names);
    for (int i = many > 1 ? 1 : 0; i < many && k < n; i++) {
      const char *tail = names[i] + strlen(block) + 3;   /* past "<block>.0." */
      k += (size_t)snprintf(out + k, n - k, "%s%s", k > strlen(block) + 4 ? ", " : "", tail);
    }
  }
  if (k < n)
    snprintf(out + k, n - k, "} for N in 0..%d%s", c->n_layer - 1,
             c->family == LACOS_FAMILY_BERT ? " (query, key and value are one fused linear in lacos, attention.self: "
                                              "naming any of them keeps all three in f32)" : "");
}

int int8_skip_resolve(const lacos_bloom_config *c, int quant, const char *skip, uint8_t *kinds, const char *where) {
  int n = c->n_layer * NTARGETS;
  uint8_t base = quant == LACOS_QUANT_INT8 ? LINEAR_INT8 : LINEAR_F32;
  for (int i = 0; i < n; i++) kinds[i] = base;
  if (!skip) return LACOS_OK;
  if (quant != LACOS_QUANT_INT8)
    return fail(LACOS_EINVAL, "%s: int8_skip keeps named linears in f32 out of an int8 model, but quant is f32 "
                "(every linear is f32 already): drop the skip list or load int8", where);
  const char *pre = c->family == LACOS_FAMILY_BERT ? "bert." : "transformer.";
  int index = 0;
  const char *s = skip;
  for (;;) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    const char *a = s, *b = s + len;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    index++;
    if (a == b)
      return fail(LACOS_EINVAL, "%s: int8_skip \"%.200s\": pattern %d is empty", where, skip, index);
    if ((size_t)(b - a) >= PATTERN_CAP)
      return fail(LACOS_EINVAL, "%s: int8_skip: pattern %d is longer than %d characters", where, index, PATTERN_CAP - 1);
    char pattern[PATTERN_CAP];
    memcpy(pattern, a, (size_t)(b - a));
    pattern[b - a] = 0;
    const char *p = strncmp(pattern, pre, strlen(pre)) == 0 ? pattern + strlen(pre) : pattern;
    int matched = 0;
    for (int l = 0; l < c->n_layer; l++)
      for (int t = 0; t < NTARGETS; t++) {
        char names[4][NAME_CAP];
        int many = linear_names(c, l, t, names);
        for (int k = 0; k < many; k++)
          if (names_it(names[k], p)) { kinds[l * NTARGETS + t] = LINEAR_F32; matched++; break; }
      }
    if (!matched) {
      char list[1024];
      linears_listed(c, list, sizeof list);
      return fail(LACOS_EINVAL, "%s: int8_skip pattern \"%s\" names none of the model's linears; a pattern is a "
                  "module's name or its last dotted components (the linear's, or a module holding it), and this %s "
                  "model's linears are %s", where, pattern,
                  family_name(c), list);
    }
    if (!end) break;
    s = end + 1;
  }
  return LACOS_OK;
}

/* ---- lacos.h's queries ---- */

int lacos_bloom_linear_count(const lacos_bloom *m) { return m->cfg.n_layer * NTARGETS; }

const char *lacos_bloom_linear_name(const lacos_bloom *m, int i) {
  static _Thread_local char name[NAME_CAP];
  if (i < 0 || i >= lacos_bloom_linear_count(m)) {
    fail(LACOS_EINVAL, "linear index %d out of range (0..%d)", i, lacos_bloom_linear_count(m) - 1);
    return NULL;
  }
  linear_module_name(&m->cfg, i / NTARGETS, i % NTARGETS, name, sizeof name);
  return name;
}

int lacos_bloom_linear_quant(const lacos_bloom *m, int i) {
  if (i < 0 || i >= lacos_bloom_linear_count(m)) return -1;
  return m->host.layers[i / NTARGETS].lin[i % NTARGETS].kind == LINEAR_INT8 ? LACOS_QUANT_INT8 : LACOS_QUANT_F32;
}
