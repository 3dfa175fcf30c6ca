/* tokenizer_template.c: the post-processors that put special tokens around
   a text or a pair of texts and give each id a type id (token_type_ids):

   - TemplateProcessing (huggingface/tokenizers processors/template.rs):
     "single" and "pair" are lists of pieces, {"Sequence": {"id": "A"|"B",
     "type_id": n}} or {"SpecialToken": {"id": name, "type_id": n}}, and
     "special_tokens" maps each name to the ids it stands for (BERT's
     [CLS] $A [SEP], and [CLS] $A [SEP] $B:1 [SEP]:1 for pairs);
   - BertProcessing (processors/bert.rs): that same BERT template written as
     {"cls": [token, id], "sep": [token, id]}.

   Upstream builds a template from the file without checking it and panics
   when it meets a name missing from special_tokens; here such a file is
   refused at load, as is a template that leaves out its text or names an
   id the vocabulary does not have. */
#include "tokenizer_internal.h"
#include <jansson.h>

typedef struct piece {
  int seq;        /* 0: text A, 1: text B, -1: a special token */
  int special;    /* index into specials when seq < 0 */
  int32_t type_id;
} piece;

struct tok_template {
  piece *single, *pair;
  int n_single, n_pair;
  int32_t *ids;   /* every special token's ids, one after another */
  int *off;       /* special k has ids[off[k] .. off[k+1]) */
  int n_specials;
  int added[2];   /* ids added around one text / a pair */
};

void tok_template_free(tok_template *tp) {
  if (!tp) return;
  mem_free(tp->single);
  mem_free(tp->pair);
  mem_free(tp->ids);
  mem_free(tp->off);
  mem_free(tp);
}

int tok_template_added(const tok_template *tp, int pair) { return tp ? tp->added[pair ? 1 : 0] : 0; }

size_t tok_template_apply(const tok_template *tp, const int32_t *a, size_t na, const int32_t *b, size_t nb, int pair,
                          int specials, int32_t *ids, int32_t *types) {
  const piece *p = pair ? tp->pair : tp->single;
  int n = pair ? tp->n_pair : tp->n_single;
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    const int32_t *src;
    size_t len;
    if (p[i].seq < 0 && !specials) continue;
    if (p[i].seq < 0) { src = tp->ids + tp->off[p[i].special]; len = (size_t)(tp->off[p[i].special + 1] - tp->off[p[i].special]); }
    else if (p[i].seq == 0) { src = a; len = na; }
    else { src = b; len = nb; }
    if (len) memcpy(ids + k, src, len * sizeof *ids);
    if (types) for (size_t j = 0; j < len; j++) types[k + j] = p[i].type_id;
    k += len;
  }
  return k;
}

/* ------------------------------------------------------------ loading */

/* Special tokens as the template names them: name -> ids. */
typedef struct specials_in { const char **names; int n; } specials_in;

static int find_special(const specials_in *sp, const char *name) {
  for (int i = 0; i < sp->n; i++) if (!strcmp(sp->names[i], name)) return i;
  return -1;
}

static int type_id_of(const json_t *o, const char *where, int32_t *out) {
  const json_t *v = json_object_get(o, "type_id");
  if (!v) { *out = 0; return LACOS_OK; }
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
    return fail(LACOS_EFORMAT, "%s.type_id must be a non-negative integer", where);
  *out = (int32_t)json_integer_value(v);
  return LACOS_OK;
}

static int parse_pieces(const json_t *list, const specials_in *sp, int is_pair, const char *where, piece **out, int *n_out) {
  if (!json_is_array(list)) return fail(LACOS_EFORMAT, "%s must be an array of pieces", where);
  size_t n = json_array_size(list);
  piece *p;
  TRY(meta_calloc(&p, n ? n : 1, sizeof *p, "tokenizer template"));
  int seen[2] = {0, 0};
  for (size_t i = 0; i < n; i++) {
    char w[160];
    snprintf(w, sizeof w, "%s[%zu]", where, i);
    const json_t *e = json_array_get(list, i);
    const json_t *seq = json_is_object(e) ? json_object_get(e, "Sequence") : NULL;
    const json_t *spt = json_is_object(e) ? json_object_get(e, "SpecialToken") : NULL;
    const json_t *body = seq ? seq : spt;
    const json_t *id = json_is_object(body) ? json_object_get(body, "id") : NULL;
    int s = LACOS_OK;
    if (!json_is_object(body) || !json_is_string(id) || json_object_size(e) != 1)
      s = fail(LACOS_EFORMAT, "%s must be {\"Sequence\": {\"id\": ..., \"type_id\": ...}} or {\"SpecialToken\": {...}}", w);
    if (!s) s = type_id_of(body, w, &p[i].type_id);
    if (!s && seq) {
      const char *name = json_string_value(id);
      if (!strcmp(name, "A")) p[i].seq = 0;
      else if (!strcmp(name, "B")) p[i].seq = 1;
      else s = fail(LACOS_EFORMAT, "%s: the sequence id must be \"A\" or \"B\", not \"%.40s\"", w, name);
      if (!s && p[i].seq == 1 && !is_pair) s = fail(LACOS_EFORMAT, "%s: the single-text template uses the second text $B", w);
      if (!s && seen[p[i].seq]++) s = fail(LACOS_EUNSUPPORTED, "%s: the text $%s appears twice in the template", w, name);
    } else if (!s) {
      p[i].seq = -1;
      p[i].special = find_special(sp, json_string_value(id));
      if (p[i].special < 0)
        s = fail(LACOS_EFORMAT, "%s: special token \"%.60s\" is not in post_processor.special_tokens", w, json_string_value(id));
    }
    if (s) { mem_free(p); return s; }
  }
  if (!seen[0] || (is_pair && !seen[1])) {
    mem_free(p);
    return fail(LACOS_EFORMAT, "%s leaves out the text%s ($A%s)", where, is_pair ? "s" : "", is_pair ? " and $B" : "");
  }
  *out = p;
  *n_out = (int)n;
  return LACOS_OK;
}

static int check_id(const tok_vocab *voc, json_int_t id, const char *where) {
  if (id < 0 || id > INT32_MAX || !voc->known(voc->t, (int64_t)id))
    return fail(LACOS_EFORMAT, "%s: id %lld is not a token of this tokenizer", where, (long long)id);
  return LACOS_OK;
}

static int parse_template(tok_template *tp, const tok_vocab *voc, const json_t *pp, const char *where) {
  const json_t *st = json_object_get(pp, "special_tokens");
  if (!json_is_object(st)) return fail(LACOS_EFORMAT, "%s.special_tokens must be an object", where);
  size_t ns = json_object_size(st);
  specials_in sp = {NULL, 0};
  TRY(meta_calloc(&sp.names, ns ? ns : 1, sizeof *sp.names, "tokenizer template"));
  int s = meta_calloc(&tp->off, ns + 1, sizeof *tp->off, "tokenizer template");
  if (s) { mem_free(sp.names); return s; }
  size_t total = 0;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)st, key, val) total += json_array_size(json_object_get(val, "ids"));
  s = meta_calloc(&tp->ids, total ? total : 1, sizeof *tp->ids, "tokenizer template");
  json_object_foreach((json_t *)st, key, val) {
    if (s) break;
    char w[200];
    snprintf(w, sizeof w, "%s.special_tokens[\"%.60s\"]", where, key);
    const json_t *ids = json_object_get(val, "ids"), *toks = json_object_get(val, "tokens");
    if (!json_is_object(val) || !json_is_array(ids)) { s = fail(LACOS_EFORMAT, "%s.ids must be an array", w); break; }
    if (toks && (!json_is_array(toks) || json_array_size(toks) != json_array_size(ids))) {
      s = fail(LACOS_EFORMAT, "%s: ids and tokens must be lists of the same length", w);
      break;
    }
    int k = sp.n;
    tp->off[k + 1] = tp->off[k];
    for (size_t i = 0; i < json_array_size(ids) && !s; i++) {
      const json_t *v = json_array_get(ids, i);
      if (!json_is_integer(v)) { s = fail(LACOS_EFORMAT, "%s.ids[%zu] must be an integer", w, i); break; }
      s = check_id(voc, json_integer_value(v), w);
      if (!s) tp->ids[tp->off[k + 1]++] = (int32_t)json_integer_value(v);
    }
    sp.names[sp.n++] = key;
  }
  tp->n_specials = sp.n;
  char w[160];
  if (!s) { snprintf(w, sizeof w, "%s.single", where); s = parse_pieces(json_object_get(pp, "single"), &sp, 0, w, &tp->single, &tp->n_single); }
  if (!s) { snprintf(w, sizeof w, "%s.pair", where); s = parse_pieces(json_object_get(pp, "pair"), &sp, 1, w, &tp->pair, &tp->n_pair); }
  mem_free(sp.names);
  return s;
}

/* BertProcessing: {"sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}. */
static int parse_bert(tok_template *tp, const tok_vocab *voc, const json_t *pp, const char *where) {
  int32_t id[2];
  const char *names[2] = {"cls", "sep"};
  for (int i = 0; i < 2; i++) {
    const json_t *v = json_object_get(pp, names[i]);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
        !json_is_integer(json_array_get(v, 1)))
      return fail(LACOS_EFORMAT, "%s.%s must be [token, id]", where, names[i]);
    char w[160];
    snprintf(w, sizeof w, "%s.%s", where, names[i]);
    TRY(check_id(voc, json_integer_value(json_array_get(v, 1)), w));
    id[i] = (int32_t)json_integer_value(json_array_get(v, 1));
  }
  TRY(meta_alloc(&tp->ids, 2 * sizeof *tp->ids, "tokenizer template"));
  TRY(meta_alloc(&tp->off, 3 * sizeof *tp->off, "tokenizer template"));
  TRY(meta_alloc(&tp->single, 3 * sizeof *tp->single, "tokenizer template"));
  TRY(meta_alloc(&tp->pair, 5 * sizeof *tp->pair, "tokenizer template"));
  tp->ids[0] = id[0];
  tp->ids[1] = id[1];
  tp->off[0] = 0; tp->off[1] = 1; tp->off[2] = 2;
  tp->n_specials = 2;
  /* [CLS] $A [SEP], and [CLS] $A [SEP] $B:1 [SEP]:1 */
  const piece cls = {-1, 0, 0}, sep = {-1, 1, 0}, sep1 = {-1, 1, 1}, a = {0, 0, 0}, b = {1, 0, 1};
  tp->single[0] = cls; tp->single[1] = a; tp->single[2] = sep;
  tp->pair[0] = cls; tp->pair[1] = a; tp->pair[2] = sep; tp->pair[3] = b; tp->pair[4] = sep1;
  tp->n_single = 3;
  tp->n_pair = 5;
  return LACOS_OK;
}

static int count_added(const tok_template *tp, const piece *p, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) if (p[i].seq < 0) k += tp->off[p[i].special + 1] - tp->off[p[i].special];
  return k;
}

int tok_template_parse(tok_template **out, const tok_vocab *voc, const json_t *pp, const char *where) {
  *out = NULL;
  const json_t *tv = json_object_get(pp, "type");
  const char *type = json_is_string(tv) ? json_string_value(tv) : "";
  tok_template *tp;
  TRY(meta_calloc(&tp, 1, sizeof *tp, "tokenizer template"));
  int s = !strcmp(type, "BertProcessing") ? parse_bert(tp, voc, pp, where) : parse_template(tp, voc, pp, where);
  if (s) { tok_template_free(tp); return s; }
  tp->added[0] = count_added(tp, tp->single, tp->n_single);
  tp->added[1] = count_added(tp, tp->pair, tp->n_pair);
  *out = tp;
  return LACOS_OK;
}
