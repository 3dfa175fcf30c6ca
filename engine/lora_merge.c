/* lora_merge.c: LoRA merged into an f32 copy of the base weights, for
   export (lacos.h, "Merging"). PEFT's merge (peft/tuners/lora/layer.py,
   Linear.merge / get_delta_weight) adds scaling·B·A to the base weight in
   place; here the base stays as loaded (int8 codes quantised once are not
   requantised, and the forward pass keeps running base + adapter), and the
   delta goes into a dequantised copy that lacos_bloom_weight and
   lacos_bloom_save read. Rows stay in the engine's order ([Q;K;V] for
   query_key_value, as B's rows are), so the delta is one GEMM per linear and
   the checkpoint's interleave is applied where every weight gets it: on the
   way out (bloom_io.c). */
#include "bloom_internal.h"
#include <math.h>

static int nslots(const lacos_bloom *m) { return m->cfg.n_layer * NTARGETS; }

void lora_merge_free(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return;
  mem_free(s->merged, s->merged_bytes, LACOS_CPU);
  mem_free(s->merged_from, s->params_bytes, LACOS_CPU);
  s->merged = s->merged_from = NULL;
  s->merged_bytes = 0;
  s->merge_state = 0;
  for (int i = 0; s->slots && i < nslots(m); i++) s->slots[i].W = NULL;
}

/* W += sign·scaling·B·A for every adapted linear, A and B taken from `from`
   (a buffer with the layout of params). */
static void add_delta(lacos_bloom *m, const float *from, float sign) {
  lora_state *s = m->lora;
  threads_count();
  for (int i = 0; i < nslots(m); i++) {
    lora_slot *sl = &s->slots[i];
    if (!sl->A) continue;
    const float *A = from + (sl->A - s->params), *B = from + (sl->B - s->params);
    sgemm_nn(sl->W, B, A, sl->out, sl->in, s->r, sign * (float)s->scaling, 1.0f);
  }
}

static int any_nonfinite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) if (!isfinite(x[i])) return 1;
  return 0;
}

int lacos_lora_merge(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "the model has no LoRA adapter to merge");
  if (s->merge_state == 1) return fail(LACOS_ESTATE, "the LoRA adapter is already merged (unmerge it first)");
  TRY(lora_download(m));
  int L = m->cfg.n_layer;
  for (int l = 0; l < L; l++)
    for (int t = 0; t < NTARGETS; t++) {
      lora_slot *sl = &s->slots[l * NTARGETS + t];
      if (sl->A && (any_nonfinite(sl->A, (int64_t)s->r * sl->in) || any_nonfinite(sl->B, (int64_t)s->r * sl->out)))
        return fail(LACOS_ENUMERIC, "cannot merge: the LoRA weights of h.%d.%s are not finite", l, bloom_target_names[t]);
    }
  if (!s->merged) {
    size_t floats = 0;
    for (int i = 0; i < nslots(m); i++)
      if (s->slots[i].A) floats += (size_t)s->slots[i].out * (size_t)s->slots[i].in;
    s->merged = mem_alloc(sizeof(float) * floats, LACOS_CPU, "merged LoRA weights (f32 copy of the adapted linears)");
    if (!s->merged) return lacos_last_status();
    s->merged_bytes = sizeof(float) * floats;
    s->merged_from = mem_alloc(s->params_bytes, LACOS_CPU, "merged LoRA weights (the adapter they came from)");
    if (!s->merged_from) { lora_merge_free(m); return lacos_last_status(); }
    float *p = s->merged;
    for (int l = 0; l < L; l++)
      for (int t = 0; t < NTARGETS; t++) {
        lora_slot *sl = &s->slots[l * NTARGETS + t];
        if (!sl->A) continue;
        sl->W = p;
        p += (size_t)sl->out * (size_t)sl->in;
        const linear *ln = &m->layers[l].lin[t];
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < ln->out; r++) linear_weight_row(sl->W + (int64_t)r * ln->in, ln, r);
      }
  }
  memcpy(s->merged_from, s->params, s->params_bytes);
  add_delta(m, s->merged_from, 1.0f);
  s->merge_state = 1;
  for (int i = 0; i < nslots(m); i++) {
    lora_slot *sl = &s->slots[i];
    if (sl->A && any_nonfinite(sl->W, (int64_t)sl->out * sl->in)) {
      lora_merge_free(m);   /* inf - delta is not the base again: drop the copy */
      return fail(LACOS_ENUMERIC, "cannot merge: base + scaling·B·A of h.%d.%s overflows f32",
                  i / NTARGETS, bloom_target_names[i % NTARGETS]);
    }
  }
  return LACOS_OK;
}

int lacos_lora_unmerge(lacos_bloom *m) {
  lora_state *s = m->lora;
  if (!s) return fail(LACOS_ESTATE, "the model has no LoRA adapter to unmerge");
  if (s->merge_state != 1) return fail(LACOS_ESTATE, "the LoRA adapter is not merged");
  add_delta(m, s->merged_from, -1.0f);
  s->merge_state = 2;
  return LACOS_OK;
}

int lacos_lora_merge_state(const lacos_bloom *m) { return m->lora ? m->lora->merge_state : 0; }

int lora_merged_weight(lacos_bloom *m, int layer, int target, const float **W) {
  *W = NULL;
  lora_state *s = m->lora;
  if (!s || !s->merged) return LACOS_OK;
  lora_slot *sl = &s->slots[layer * NTARGETS + target];
  if (!sl->W) return LACOS_OK;
  if (s->merge_state == 1) {
    TRY(lora_download(m));
    if (memcmp(s->params, s->merged_from, s->params_bytes) != 0)
      return fail(LACOS_ESTATE, "the LoRA adapter changed after it was merged (training?): unmerge and merge it again");
  }
  *W = sl->W;
  return LACOS_OK;
}
