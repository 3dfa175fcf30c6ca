/* lora_peft.c: LoRA adapters in PEFT's format — adapter_config.json and
   adapter_model.safetensors with tensors named
   base_model.model.h.<l>.<module>.lora_<A|B>.weight — written and read, with
   query_key_value's lora_B rows in the checkpoint's per-head interleave
   (bloom_layout.h) on disk and in the engine's [Q;K;V] order in memory.
   peft.PeftModel.from_pretrained loads ours and we load PEFT's. */
#include "bloom_internal.h"
#include <jansson.h>

static void peft_name(char *buf, size_t n, int layer, int target, char part) {
  snprintf(buf, n, "base_model.model.h.%d.%s.lora_%c.weight", layer, bloom_target_names[target], part);
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
  for (int i = 0; i < nslots && !st; i++) {
    int layer, target;
    lora_slot *sl;
    char buf[160];
    st = lora_slot_at(m, i, &sl, &layer, &target);
    if (st) break;
    peft_name(buf, sizeof buf, layer, target, 'A');
    st = meta_strdup(&names[2 * i], buf, "adapter tensor names");
    peft_name(buf, sizeof buf, layer, target, 'B');
    if (!st) st = meta_strdup(&names[2 * i + 1], buf, "adapter tensor names");
    int64_t sa[2] = {s->r, sl->in}, sb[2] = {sl->out, s->r};
    if (!st) st = lacos_tensor_from_buffer(&ts[2 * i], LACOS_F32, 2, sa, sl->A, LACOS_F32);
    if (!st) st = lacos_tensor_empty(&ts[2 * i + 1], LACOS_F32, LACOS_CPU, 2, sb);
    if (!st) {
      float *dst = ts[2 * i + 1]->data;
      for (int r = 0; r < sl->out; r++) {
        int row = target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
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
    json_t *targets = json_array();
    for (int t = 0; t < NTARGETS; t++) if (s->targets & (1 << t)) json_array_append_new(targets, json_string(bloom_target_short[t]));
    json_t *cfg = json_pack("{s:s, s:s?, s:n, s:b, s:i, s:f, s:f, s:o, s:s, s:b, s:b, s:b, s:b, s:n, s:n, s:n, s:{}, s:{}, s:s, s:{s:s, s:s}}",
                            "peft_type", "LORA", "base_model_name_or_path", base_model, "task_type",
                            "inference_mode", 1, "r", s->r, "lora_alpha", s->alpha, "lora_dropout", s->dropout,
                            "target_modules", targets, "bias", "none", "fan_in_fan_out", 0, "use_rslora", (int)s->rslora,
                            "use_dora", 0, "init_lora_weights", 1, "modules_to_save", "layers_to_transform",
                            "revision", "rank_pattern", "alpha_pattern", "peft_version", "0.21.2",
                            "auto_mapping", "base_model_class", "BloomModel", "parent_library", "transformers.models.bloom.modeling_bloom");
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

/* "base_model.model.[transformer.]h.<l>.<module>.lora_<X>[.<adapter>].weight" → layer, target, part */
static bool parse_peft_name(const char *name, int *layer, int *target, char *part) {
  const char *p = name;
  if (!strncmp(p, "base_model.model.", 17)) p += 17;
  if (!strncmp(p, "transformer.", 12)) p += 12;
  if (strncmp(p, "h.", 2)) return false;
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
  int t = bloom_target_from_name(mod);
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
    if (!parse_peft_name(name, &layer, &target, &part)) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" is not a LoRA weight of a BLOOM linear", path, name);
      break;
    }
    if (layer >= m->cfg.n_layer || !(lc.targets & (1 << target))) {
      st = fail(LACOS_EFORMAT, "%s: tensor \"%s\" does not match adapter_config.json or the model (%d layers)", path, name, m->cfg.n_layer);
      break;
    }
    lora_slot *sl = &m->lora->slots[layer * NTARGETS + target];
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
          int row = target == T_QKV ? qkv_checkpoint_row(r, C, NH) : r;
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
        peft_name(buf, sizeof buf, layer, target, k % 2 ? 'B' : 'A');
        st = fail(LACOS_EFORMAT, "%s: missing LoRA weight %s (the config adapts %s in every layer)", path, buf, bloom_target_names[target]);
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
