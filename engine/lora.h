/* lora.h: a model's LoRA adapter — its state (lora.c: attach, detach, the
   backend copy, merge into export weights) and PEFT's file format
   (lora_peft.c). The layer math is the backend's (engine/cpu/lora.c,
   kernels/lora.cu). */
#ifndef LACOS_LORA_H
#define LACOS_LORA_H
#include "engine.h"
#include "backend.h"
#include "layout.h"

typedef struct lora_state {
  int r, targets;            /* targets: bit t set = linear t adapted */
  double alpha, scaling, dropout;
  bool rslora, enabled;
  uint64_t seed;
  lora_slot *slots;          /* n_layer × LORA_KINDS, host pointers; A == NULL where not adapted */
  float *params, *grads;     /* the host copy: one allocation each, the same layout */
  size_t params_bytes;
  int64_t nparams;
  /* The copy the passes and the optimizer use, in the model backend's
     memory: the host copy itself on the CPU, else authoritative (the host
     copy is refreshed by lora_download before it is read). */
  const backend *be;
  float *run_params, *run_grads;
  /* lacos_lora_merge: the f32 copies of the adapted base weights (one
     allocation, slot W pointers into it) and the A, B the delta came from */
  float *merged; size_t merged_bytes;
  float *merged_from;        /* params_bytes */
  int merge_state;           /* 0 none, 1 merged, 2 unmerged */
} lora_state;

/* lora.c */
void lora_detach_all(lacos_bloom *m);
/* The engine linear (T_*) LoRA kind k adapts in m's family, -1 for none. */
int lora_slot_linear(const lacos_bloom *m, int k);
/* Host slot of an adapted, enabled kind (layout.h), else NULL. */
lora_slot *lora_slot_for(const lacos_bloom *m, int layer, int kind);
/* The same slot with pointers in the backend's memory; false when the
   kind has no enabled adapter. */
bool lora_run_slot(const lacos_bloom *m, int layer, int kind, lora_slot *out);
/* The configuration the layer math needs (r = 0 without an enabled adapter). */
lora_hyper lora_hyper_of(const lacos_bloom *m);
/* Host copy → backend copy (after attach and load), and back (before the
   host copy is read: save, merge, export). No-ops on the CPU. */
int lora_upload(lacos_bloom *m);
int lora_download(lacos_bloom *m);
/* The i-th adapted slot (layer-major order), its layer and kind. */
int lora_slot_at(const lacos_bloom *m, int i, lora_slot **out, int *layer, int *target);
/* The merged export copy of the band of engine linear (layer, target)
   that starts at row row0 (the whole linear for BLOOM; BERT's query, key or
   value third of qkv), engine row order: *W = NULL when no adapter covers
   it; LACOS_ESTATE when the adapter changed since it was merged. */
int lora_merged_weight(lacos_bloom *m, int layer, int target, int row0, const float **W);
#endif
