/* lora_peft.c: LoRA adapters in PEFT's format — adapter_config.json and
   adapter_model.safetensors with tensors named
   base_model.model.<block>.<module>.lora_<A|B>.weight (h.<l>.… for BLOOM,
   encoder.layer.<l>.… for BERT) — written and read, with BLOOM's
   query_key_value lora_B rows in the checkpoint's per-head interleave
   (bloom_layout.h) on disk and in the engine's [Q;K;V] order in memory.
   target_modules is read as PEFT matches it: a module is adapted when its
   name under the model equals an entry or ends with "." + the entry.
   peft.PeftModel.from_pretrained loads ours and we load PEFT's. */
#include "bloom_internal.h"
#include <jansson.h>

static void peft_name(char *buf, size_t n, const lacos_bloom_config *c, int layer, int kind, char part) {
  char block[64];
  layout_block_name(c, layer, block, sizeof block);
  snprintf(buf, n, "base_model.model.%s.%s.lora_%c.weight", block, lora_kind_module(c, kind), part);
}

/* PEFT's rule for a list entry: key == t, or key ends with "." t. */
static bool peft_matches(const char *key, const char *t) {
  size_t kl = strlen(key), tl = strlen(t);
  if (!strcmp(key, t)) return true;
  return kl > tl && key[kl - tl - 1] == '.' && !strcmp(key + kl - tl, t);
}

/* target_modules as PEFT will match them against the base model's module
   names. BLOOM: the short names. BERT: "dense" matches all three of a
   block's dense linears and "output.dense" matches attention.output.dense
   too, so the list names what suffixes can; a set they cannot say (output.dense
   alone) is written with each block's full name. */
static json_t *target_list(const lacos_bloom_config *c, int targets) {
  json_t *list = json_array();
  if (!list) return NULL;
  if (c->family != LACOS_FAMILY_BERT) {
    for (int t = 0; t < NTARGETS; t++) if (targets & (1 << t)) json_array_append_new(list, json_string(bloom_target_short[t]));
    return list;
  }
  static const char *const qkv[3] = {"query", "key", "value"};
  for (int k = NTARGETS; k < LORA_KINDS; k++) if (targets & (1 << k)) json_array_append_new(list, json_string(qkv[k - NTARGETS]));
  int dense = targets & (LACOS_LORA_DENSE | LACOS_LORA_H_TO_4H | LACOS_LORA_4H_TO_H);
  if (dense == (LACOS_LORA_DENSE | LACOS_LORA_H_TO_4H | LACOS_LORA_4H_TO_H)) json_array_append_new(list, json_string("dense"));
  else {
    if (dense & LACOS_LORA_DENSE) json_array_append_new(list, json_string("attention.output.dense"));
    if (dense & LACOS_LORA_H_TO_4H) json_array_append_new(list, json_string("intermediate.dense"));
    if (dense & LACOS_LORA_4H_TO_H) {
      if (dense & LACOS_LORA_DENSE) json_array_append_new(list, json_string("output.dense"));
      else
        for (int l = 0; l < c->n_layer; l++) {
          char name[96];
          snprintf(name, sizeof name, "encoder.layer.%d.output.dense", l);
          json_array_append_new(list, json_string(name));
        }
    }
  }
  return list;
}

/* The kinds a target_modules list adapts, the same in every block (lacos
   adapts a kind in all blocks or none); -1 with the error set otherwise. */
static int targets_of_list(const lacos_bloom_config *c, json_t *v, const char *path) {
  int bits = -1;
  for (size_t i = 0; i < json_array_size(v); i++)
    if (!json_is_string(json_array_get(v, i))) return fail(LACOS_EFORMAT, "%s: target_modules must be strings", path), -1;
  for (int l = 0; l < c->n_layer; l++) {
    int b = 0;
    char block[64], key[160];
    layout_block_name(c, l, block, sizeof block);
    for (int k = 0; k < LORA_KINDS; k++) {
      const char *mod = lora_kind_module(c, k);
      if (!mod) continue;
      snprintf(key, sizeof key, "%s.%s", block, mod);
      for (size_t i = 0; i < json_array_size(v); i++)
        if (peft_matches(key, json_string_value(json_array_get(v, i)))) b |= 1 << k;
    }
    if (bits >= 0 && b != bits) {
      fail(LACOS_EUNSUPPORTED, "%s: target_modules adapt different modules in different layers; lacos adapts the same in every layer", path);
      return -1;
    }
    bits = b;
  }
  if (bits <= 0) {
    char first[96] = "?";
    if (json_array_size(v)) snprintf(first, sizeof first, "%s", json_string_value(json_array_get(v, 0)));
    fail(LACOS_EFORMAT, "%s: target_modules (\"%s\"...) name no linear of a %s block (%s)", path, first, family_name(c),
         c->family == LACOS_FAMILY_BERT ? "query, key, value, dense" : "query_key_value, dense, dense_h_to_4h, dense_4h_to_h");
    return -1;
  }
  return bits;
}

int lacos_lora_save(lacos_bloom *m, const char *dir, const char *base_model) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "%s: the model has no LoRA adapter to save", dir);
  TRY(mkdir_parents(dir));
  TRY(lora_download(m));
  int nslots = lacos_lora_slot_count(m), n = 2 * nslots;
  char **names = NULL;
  lacos_tensor **ts = NULL;
  int st = meta_calloc(&names, (size_t)n, sizeof *names, "adapter tensor names");
  if (!st) st = meta_calloc(&ts, (size_t)n, sizeof *ts, "adapter tensors");
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  bool bloom_qkv = m->cfg.family == LACOS_FAMILY_BLOOM;
  for (int i = 0; i < nslots && !st; i++) {
    int layer, target;
    lora_slot *sl;
    char buf[160];
    st = lora_slot_at(m, i, &sl, &layer, &target);
    if (st) break;
    peft_name(buf, sizeof buf, &m->cfg, layer, target, 'A');
    st = meta_strdup(&names[2 * i], buf, "adapter tensor names");
    peft_name(buf, sizeof buf, &m->cfg, layer, target, 'B');
    if (!st) st = meta_strdup(&names[2 * i + 1], buf, "adapter tensor names");
    int64_t sa[2] = {s->r, sl->in}, sb[2] = {sl->out, s->r};
    if (!st) st = lacos_tensor_from_buffer(&ts[2 * i], LACOS_F32, 2, sa, sl->A, LACOS_F32);
    if (!st) st = lacos_tensor_empty(&ts[2 * i + 1], LACOS_F32, LACOS_CPU, 2, sb);
    if (!st) {
      float *dst = ts[2 * i + 1]->data;
      for (int r = 0; r < sl->out; r++) {
        int row = bloom_qkv && target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
        memcpy(dst + (int64_t)row * s->r, sl->B + (int64_t)r * s->r, sizeof(float) * (size_t)s->r);
      }
    }
  }
  char path[4096];
  if (!st) {
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    st = lacos_safetensors_write(path, n, (const char *const *)names, ts, 1, mk, mv);
  }
  if (!st) {
    /* read it back: an adapter file that silently lost tensors is the classic failure */
    lacos_safetensors *back = NULL;
    st = lacos_safetensors_open(&back, path);
    if (!st && lacos_safetensors_count(back) != n)
      st = fail(LACOS_EIO, "%s: wrote %d tensors but the file holds %d", path, n, lacos_safetensors_count(back));
    for (int i = 0; i < n && !st; i++) {
      int k = lacos_safetensors_find(back, names[i]), nd;
      int64_t sh[8];
      if (k < 0 || lacos_safetensors_info(back, k, NULL, &nd, sh, 8) || nd != 2 || sh[0] != ts[i]->shape[0] || sh[1] != ts[i]->shape[1])
        st = fail(LACOS_EIO, "%s: tensor %s did not survive the write", path, names[i]);
    }
    lacos_safetensors_free(back);
  }
  if (!st) {
    json_t *targets = target_list(&m->cfg, s->targets);
    bool bert = m->cfg.family == LACOS_FAMILY_BERT;
    json_t *cfg = json_pack("{s:s, s:s?, s:n, s:b, s:i, s:f, s:f, s:o, s:s, s:b, s:b, s:b, s:b, s:n, s:n, s:n, s:{}, s:{}, s:s, s:{s:s, s:s}}",
                            "peft_type", "LORA", "base_model_name_or_path", base_model, "task_type",
                            "inference_mode", 1, "r", s->r, "lora_alpha", s->alpha, "lora_dropout", s->dropout,
                            "target_modules", targets, "bias", "none", "fan_in_fan_out", 0, "use_rslora", (int)s->rslora,
                            "use_dora", 0, "init_lora_weights", 1, "modules_to_save", "layers_to_transform",
                            "revision", "rank_pattern", "alpha_pattern", "peft_version", "0.21.2",
                            "auto_mapping", "base_model_class", bert ? "BertModel" : "BloomModel", "parent_library",
                            bert ? "transformers.models.bert.modeling_bert" : "transformers.models.bloom.modeling_bloom");
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(cfg);
    if (!text) st = fail(LACOS_ENOMEM, "%s: cannot format adapter_config.json", dir);
    else {
      snprintf(path, sizeof path, "%s/adapter_config.json", dir);
      atomic_file af;
      st = atomic_file_open(&af, path);
      if (!st) { fputs(text, af.f); fputc('\n', af.f); st = atomic_file_commit(&af); }
      free(text);
    }
  }
  for (int i = 0; i < n && names; i++) { mem_free(names[i]); if (ts) lacos_tensor_free(ts[i]); }
  mem_free(names);
  mem_free(ts);
  return st;
}

/* "base_model.model.[transformer.|bert.]<block>.<l>.<module>.lora_<X>[.<adapter>].weight" → layer, kind, part */
static bool parse_peft_name(const lacos_bloom_config *c, const char *name, int *layer, int *target, char *part) {
  const char *p = name;
  bool bert = c->family == LACOS_FAMILY_BERT;
  const char *head = bert ? "bert." : "transformer.", *block = bert ? "encoder.layer." : "h.";
  if (!strncmp(p, "base_model.model.", 17)) p += 17;
  if (!strncmp(p, head, strlen(head))) p += strlen(head);
  if (strncmp(p, block, strlen(block))) return false;
  p += strlen(block) - 2;
  char *end;
  long l = strtol(p + 2, &end, 10);
  if (end == p + 2 || *end != '.' || l < 0 || l > 100000) return false;
  p = end + 1;
  const char *lo = strstr(p, ".lora_");
  if (!lo || (lo[6] != 'A' && lo[6] != 'B')) return false;
  char mod[96];
  size_t ml = (size_t)(lo - p);
  if (ml >= sizeof mod) return false;
  memcpy(mod, p, ml);
  mod[ml] = 0;
  int t = -1;
  for (int k = 0; k < LORA_KINDS && t < 0; k++)
    if (lora_kind_module(c, k) && !strcmp(mod, lora_kind_module(c, k))) t = k;
  if (t < 0) return false;
  const char *rest = lo + 7;
  if (strcmp(rest, ".weight") != 0) {
    /* an adapter name left in: .default.weight */
    const char *w = strrchr(rest, '.');
    if (rest[0] != '.' || !w || strcmp(w, ".weight") != 0 || w == rest) return false;
  }
  *layer = (int)l;
  *target = t;
  *part = lo[6];
  return true;
}

int lacos_lora_load(lacos_bloom *m, const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  char *text;
  size_t len;
  TRY(file_read_all(path, 1 << 20, &text, &len));
  json_error_t jerr;
  json_t *cfg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  mem_free(text);
  if (!cfg) return fail(LACOS_EFORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
  int st = LACOS_OK;
  lacos_lora_config lc;
  lacos_lora_config_init(&lc);
  json_t *v;
  if (!json_is_object(cfg)) { st = fail(LACOS_EFORMAT, "%s: expected a JSON object", path); goto done; }
  v = json_object_get(cfg, "peft_type");
  if (v && (!json_is_string(v) || strcmp(json_string_value(v), "LORA"))) { st = fail(LACOS_EUNSUPPORTED, "%s: peft_type is not LORA", path); goto done; }
  v = json_object_get(cfg, "r");
  if (!json_is_integer(v)) { st = fail(LACOS_EFORMAT, "%s: \"r\" must be an integer", path); goto done; }
  /* checked before the cast: r = 2^32 + 4 must not load as r = 4 (found by fuzz_lora) */
  if (json_integer_value(v) < 1 || json_integer_value(v) > 4096) {
    st = fail(LACOS_EFORMAT, "%s: \"r\" = %lld is out of range (1 to 4096)", path, (long long)json_integer_value(v));
    goto done;
  }
  lc.r = (int)json_integer_value(v);
  v = json_object_get(cfg, "lora_alpha");
  if (v) { if (!json_is_number(v)) { st = fail(LACOS_EFORMAT, "%s: \"lora_alpha\" must be a number", path); goto done; } lc.alpha = json_number_value(v); }
  else lc.alpha = lc.r;
  v = json_object_get(cfg, "lora_dropout");
  if (json_is_number(v)) lc.dropout = json_number_value(v);
  v = json_object_get(cfg, "use_rslora");
  lc.use_rslora = json_is_true(v);
  if (json_is_true(json_object_get(cfg, "use_dora"))) { st = fail(LACOS_EUNSUPPORTED, "%s: DoRA adapters are not supported", path); goto done; }
  if (json_is_true(json_object_get(cfg, "fan_in_fan_out"))) { st = fail(LACOS_EUNSUPPORTED, "%s: fan_in_fan_out = true is not supported", path); goto done; }
  v = json_object_get(cfg, "bias");
  if (v && json_is_string(v) && strcmp(json_string_value(v), "none")) { st = fail(LACOS_EUNSUPPORTED, "%s: bias = \"%s\" is not supported (only \"none\")", path, json_string_value(v)); goto done; }
  v = json_object_get(cfg, "layers_to_transform");
  if (v && !json_is_null(v)) { st = fail(LACOS_EUNSUPPORTED, "%s: layers_to_transform is not supported", path); goto done; }
  v = json_object_get(cfg, "modules_to_save");
  if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) { st = fail(LACOS_EUNSUPPORTED, "%s: modules_to_save is not supported", path); goto done; }
  const char *patterns[2] = {"rank_pattern", "alpha_pattern"};
  for (int k = 0; k < 2; k++) {
    v = json_object_get(cfg, patterns[k]);
    if (v && json_is_object(v) && json_object_size(v) > 0) { st = fail(LACOS_EUNSUPPORTED, "%s: %s is not supported", path, patterns[k]); goto done; }
  }
  v = json_object_get(cfg, "target_modules");
  lc.targets = 0;
  if (json_is_string(v)) { st = fail(LACOS_EUNSUPPORTED, "%s: target_modules as a regular expression is not supported; list the modules", path); goto done; }
  if (!json_is_array(v) || json_array_size(v) == 0) { st = fail(LACOS_EFORMAT, "%s: target_modules must list the adapted modules", path); goto done; }
  if (m->cfg.family == LACOS_FAMILY_BLOOM) {
    /* BLOOM's lists name its linears outright; anything else is a mistake
       worth naming (q_proj from another model) */
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *x = json_array_get(v, i);
      int t = json_is_string(x) ? bloom_target_from_name(json_string_value(x)) : -1;
      if (t < 0) {
        st = fail(LACOS_EFORMAT, "%s: target module \"%s\" is not a BLOOM linear (query_key_value, dense, dense_h_to_4h, dense_4h_to_h)",
                  path, json_is_string(x) ? json_string_value(x) : "?");
        goto done;
      }
      lc.targets |= 1 << t;
    }
  } else {
    int bits = targets_of_list(&m->cfg, v, path);
    if (bits < 0) { st = lacos_last_status(); goto done; }
    lc.targets = bits;
  }
  st = lacos_lora_attach(m, &lc);
  if (st) { fail_context("%s", path); goto done; }
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  lacos_safetensors *sf = NULL;
  st = lacos_safetensors_open(&sf, path);
  if (st) { lora_detach_all(m); goto done; }
  int nslots = lacos_lora_slot_count(m), found = 0;
  char *seen;
  st = meta_calloc(&seen, (size_t)(2 * nslots), 1, "adapter tensor list");
  if (st) { lacos_safetensors_free(sf); lora_detach_all(m); goto done; }
  int C = m->cfg.hidden_size, NH = m->cfg.n_head;
  for (int i = 0; i < lacos_safetensors_count(sf) && !st; i++) {
    const char *name = lacos_safetensors_name(sf, i);
    int layer, target;
    char part;
    if (!parse_peft_name(&m->cfg, name, &layer, &target, &part)) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" is not a LoRA weight of a %s linear", path, name, family_name(&m->cfg));
      break;
    }
    if (layer >= m->cfg.n_layer || !(lc.targets & (1 << target))) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" does not match adapter_config.json or the model (%d layers)", path, name, m->cfg.n_layer);
      break;
    }
    lora_slot *sl = &m->lora->slots[layer * LORA_KINDS + target];
    int slot = 0;
    for (int l = 0; l < layer; l++) slot += __builtin_popcount((unsigned)lc.targets);
    for (int t = 0; t < target; t++) if (lc.targets & (1 << t)) slot++;
    int k = 2 * slot + (part == 'B');
    if (seen[k]) { st = fail(LACOS_EFORMAT, "%s: LoRA weight \"%s\" appears twice", path, name); break; }
    seen[k] = 1;
    lacos_tensor *t = NULL;
    st = lacos_safetensors_get(&t, sf, name);
    int64_t want0 = part == 'A' ? lc.r : sl->out, want1 = part == 'A' ? sl->in : lc.r;
    if (!st && (t->ndim != 2 || t->shape[0] != want0 || t->shape[1] != want1)) {
      char have[64];
      tensor_shape_str(t, have, sizeof have);
      /* the rank side matching but not the model side: made for another model, not a damaged file */
      bool other_model = t->ndim == 2 && (part == 'A' ? t->shape[0] == want0 : t->shape[1] == want1);
      json_t *bm = json_object_get(cfg, "base_model_name_or_path");
      st = fail(LACOS_EFORMAT, "%s: %s has shape %s, expected (%lld, %lld)%s%s%s", path, name, have, (long long)want0,
                (long long)want1, other_model ? ": the adapter was made for a model of another shape" : "",
                other_model && json_is_string(bm) ? ", its base_model_name_or_path is " : "",
                other_model && json_is_string(bm) ? json_string_value(bm) : "");
    }
    if (!st && t->dtype != LACOS_F32 && t->dtype != LACOS_F16 && t->dtype != LACOS_BF16)
      st = fail(LACOS_EUNSUPPORTED, "%s: %s is %s; expected a float dtype", path, name, lacos_dtype_name(t->dtype));
    if (!st) {
      if (part == 'A') dtype_convert(sl->A, LACOS_F32, t->data, t->dtype, want0 * want1);
      else
        for (int r = 0; r < sl->out; r++) {
          int row = m->cfg.family == LACOS_FAMILY_BLOOM && target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
          dtype_convert(sl->B + (int64_t)r * lc.r, LACOS_F32, (const char *)t->data + (size_t)row * (size_t)lc.r * (size_t)lacos_dtype_size(t->dtype), t->dtype, lc.r);
        }
      /* one NaN would make every embedding NaN: refused here, naming the tensor */
      if (!floats_finite(part == 'A' ? sl->A : sl->B, want0 * want1))
        st = fail(LACOS_ENUMERIC, "%s: %s has non-finite values (NaN or infinity)", path, name);
      found++;
    }
    lacos_tensor_free(t);
  }
  if (!st && found != 2 * nslots) {
    for (int k = 0; k < 2 * nslots; k++)
      if (!seen[k]) {
        int layer = 0, target = 0;
        lora_slot *unused;
        lora_slot_at(m, k / 2, &unused, &layer, &target);
        char buf[160];
        peft_name(buf, sizeof buf, &m->cfg, layer, target, k % 2 ? 'B' : 'A');
        st = fail(LACOS_EFORMAT, "%s: missing LoRA weight %s (the config adapts %s in every layer)", path, buf,
                  lora_kind_module(&m->cfg, target));
        break;
      }
  }
  mem_free(seen);
  lacos_safetensors_free(sf);
  if (!st) st = lora_upload(m);
  if (st) lora_detach_all(m);
done:
  json_decref(cfg);
  return st;
}
