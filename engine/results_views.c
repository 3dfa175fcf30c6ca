/* results_views.c: the report views of the results database (schema
   version 3). What a report needs to know about the tables — which STS
   rows are final, which sets are English and which multilingual, what a
   run's evaluation conditions and training recipe were, which params name
   a sweep point — is written here once, in SQL, so that `lacos results`
   (lua/lacos/report.lua, lua/lacos/cmd/results.lua) and `sqlite3` read the
   same answers and the Lua side holds no schema knowledge.

   Scores in these views are cosine Spearman x100 (the scale every human
   output uses) in columns named `score`, `*_avg`; the tables keep the raw
   correlations (-1..1) in `spearman` and `pearson`.

   The views:
     sts_final    the final (step -1) score of each run, dataset, language
                  and split (the newest when one was evaluated twice), with
                  the task's display name, its family (en: the 7 English
                  sets of SentEval's STS average; multi: one language or
                  language pair of STS17 or stsb-multi-mt; other) and its
                  place in the canonical column order
     run_scores   per run, over its final test-split scores: the English
                  and multilingual averages and counts, and the headline
                  score (the English average when the run has English sets,
                  else the multilingual one, else the mean) with what it
                  averages (score_of)
     run_list     run_summary and run_scores side by side (lacos results list)
     run_points   per run, what a scaling report groups on: model, size,
                  training pairs, seed, synthetic and baseline flags, the
                  evaluation conditions (JSON: which sets, how many pairs of
                  each, text variant, aggregation, similarity, pooling,
                  quantisation, the data's sha256) and the training recipe
                  (JSON; NULL for a run that trained on no pairs)
     train_curves per run and step, the logged loss (with a flag for a
                  non-finite one), learning rate, gradient norm, tokens/s

   results.c applies LACOS_DB_MIGRATION_VIEWS as the migration to version 3,
   like every other version: never edit it once released; a later version
   drops and recreates the views it changes. */
#include "results_views.h"

/* A param of run r: its text, or its number (an integer when whole, so
   JSON says 50, not 50.0). */
#define PARAM(key) "(SELECT CASE WHEN p.value_num IS NOT NULL AND abs(p.value_num) < 9e15" \
  " AND p.value_num = CAST(p.value_num AS INTEGER) THEN CAST(p.value_num AS INTEGER)" \
  " ELSE coalesce(p.value_text, p.value_num) END FROM params p WHERE p.run_id = r.id AND p.key = '" key "')"

/* The English sets, under the names the experiments record and `lacos
   sts` records. */
#define ENGLISH_SETS "('STS12','STS13','STS14','STS15','STS16','STSBenchmark','SICK-R'," \
                     "'sts12','sts13','sts14','sts15','sts16','stsb','sick')"
#define IS_ENGLISH "(s.dataset IN " ENGLISH_SETS " AND coalesce(s.language, '') IN ('', 'en', 'all'))"
#define IS_MULTI "((s.dataset IN ('STS17', 'sts17', 'stsb-multi-mt') OR s.dataset LIKE 'sts17/%' " \
                 "OR s.dataset LIKE 'stsb-multi-mt/%') AND coalesce(s.language, '') NOT IN ('', 'all'))"

/* An ordered, comma-separated list of the distinct values of one column of
   run r's final test scores (the same values always give the same text). */
#define DISTINCT_LIST(col) \
  "(SELECT group_concat(v, ',') FROM (SELECT DISTINCT f." col " AS v FROM sts_final f" \
  " WHERE f.run_id = r.id AND f.split = 'test' AND f." col " IS NOT NULL ORDER BY v))"

const char LACOS_DB_MIGRATION_VIEWS[] =
  "CREATE VIEW sts_final AS\n"
  "SELECT s.run_id, s.id AS sts_id, s.dataset, s.language, s.split, s.n_pairs, s.spearman, s.pearson,\n"
  "  100.0 * s.spearman AS score,\n"
  "  CASE WHEN " IS_ENGLISH " OR instr(s.dataset, '/') > 0 OR coalesce(s.language, '') IN ('', 'all')\n"
  "       THEN s.dataset ELSE s.dataset || ' ' || s.language END AS task,\n"
  "  CASE WHEN " IS_ENGLISH " THEN 'en' WHEN " IS_MULTI " THEN 'multi' ELSE 'other' END AS family,\n"
  "  CASE lower(s.dataset) WHEN 'sts12' THEN 1 WHEN 'sts13' THEN 2 WHEN 'sts14' THEN 3 WHEN 'sts15' THEN 4\n"
  "    WHEN 'sts16' THEN 5 WHEN 'stsbenchmark' THEN 6 WHEN 'stsb' THEN 6 WHEN 'sick-r' THEN 7 WHEN 'sick' THEN 7\n"
  "    ELSE 100 END AS task_order,\n"
  "  s.similarity, s.pooling, s.text_variant, s.aggregation, s.model, s.adapter, s.quantisation, s.dtype,\n"
  "  s.batch_size, s.dataset_sha256, s.lacos_version, s.created_at\n"
  "FROM sts_results s\n"
  "WHERE s.step = -1 AND s.id = (SELECT max(s2.id) FROM sts_results s2 WHERE s2.run_id = s.run_id AND s2.step = -1\n"
  "  AND s2.dataset = s.dataset AND s2.language IS s.language AND s2.split = s.split);\n"

  "CREATE VIEW run_scores AS\n"
  "SELECT run_id,\n"
  "  sum(family = 'en') AS n_en, avg(CASE WHEN family = 'en' THEN score END) AS en_avg,\n"
  "  sum(family = 'multi') AS n_multi, avg(CASE WHEN family = 'multi' THEN score END) AS multi_avg,\n"
  "  sum(family = 'other') AS n_other, avg(CASE WHEN family = 'other' THEN score END) AS other_avg,\n"
  "  CASE WHEN sum(family = 'en') > 0 THEN avg(CASE WHEN family = 'en' THEN score END)\n"
  "       WHEN sum(family = 'multi') > 0 THEN avg(CASE WHEN family = 'multi' THEN score END)\n"
  "       ELSE avg(score) END AS score,\n"
  "  CASE WHEN sum(family = 'en') = 1 THEN max(CASE WHEN family = 'en' THEN task END)\n"
  "       WHEN sum(family = 'en') > 1 THEN 'en avg of ' || sum(family = 'en')\n"
  "       WHEN sum(family = 'multi') = 1 THEN max(CASE WHEN family = 'multi' THEN task END)\n"
  "       WHEN sum(family = 'multi') > 1 THEN 'multi avg of ' || sum(family = 'multi')\n"
  "       WHEN count(*) = 1 THEN max(task) ELSE 'avg of ' || count(*) END AS score_of\n"
  "FROM sts_final WHERE split = 'test' AND score IS NOT NULL GROUP BY run_id;\n"

  "CREATE VIEW run_list AS\n"
  "SELECT s.*, c.score, c.score_of, c.en_avg, c.n_en, c.multi_avg, c.n_multi\n"
  "FROM run_summary s LEFT JOIN run_scores c ON c.run_id = s.id;\n"

  "CREATE VIEW run_points AS\n"
  "SELECT r.id AS run_id, r.experiment_id, e.name AS experiment, r.status, r.seed, r.created_at, r.ended_at,\n"
  "  " PARAM("model") " AS model,\n"
  "  " PARAM("model_params") " AS model_params,\n"
  "  coalesce(" PARAM("n_pairs") ", " PARAM("pairs") ") AS pairs,\n"
  "  " PARAM("pairs") " AS pairs_asked,\n"
  "  CASE WHEN " PARAM("synthetic") " IN ('true', 1) THEN 1 ELSE 0 END AS synthetic,\n"
  "  CASE WHEN coalesce(" PARAM("baseline") ", 'false') IN ('false', 0, '') THEN 0 ELSE 1 END AS baseline,\n"
  "  json_object(\n"
  "    'sets', (SELECT group_concat(task, ', ') FROM (SELECT f.task FROM sts_final f\n"
  "             WHERE f.run_id = r.id AND f.split = 'test' ORDER BY f.family, f.task_order, f.task)),\n"
  "    'pairs_per_set', coalesce(" PARAM("eval_limit") ", 0),\n"
  "    'similarity', " DISTINCT_LIST("similarity") ",\n"
  "    'text_variant', " DISTINCT_LIST("text_variant") ",\n"
  "    'aggregation', " DISTINCT_LIST("aggregation") ",\n"
  "    'pooling', " DISTINCT_LIST("pooling") ",\n"
  "    'quantisation', " DISTINCT_LIST("quantisation") ",\n"
  "    'data_sha256', " DISTINCT_LIST("dataset_sha256") ") AS conditions,\n"
  "  CASE WHEN coalesce(" PARAM("n_pairs") ", " PARAM("pairs") ", 0) = 0 THEN NULL ELSE json_object(\n"
  "    'training_data', " PARAM("training_data") ",\n"
  "    'loss', " PARAM("loss") ",\n"
  "    'r', " PARAM("r") ",\n"
  "    'alpha', " PARAM("alpha") ",\n"
  "    'targets', " PARAM("targets") ",\n"
  "    'dropout', " PARAM("dropout") ",\n"
  "    'lr', " PARAM("lr") ",\n"
  "    'epochs', " PARAM("epochs") ",\n"
  "    'batch_size', " PARAM("batch_size") ",\n"
  "    'max_length', " PARAM("max_length") ",\n"
  "    'recipe', " PARAM("recipe") ") END AS recipe\n"
  "FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id;\n"

  "CREATE VIEW train_curves AS\n"
  "SELECT run_id, step,\n"
  "  max(CASE WHEN key = 'loss' THEN value END) AS loss,\n"
  "  max(CASE WHEN key = 'loss' AND is_finite = 0 THEN 1 ELSE 0 END) AS loss_nonfinite,\n"
  "  max(CASE WHEN key = 'lr' THEN value END) AS lr,\n"
  "  max(CASE WHEN key = 'grad_norm' THEN value END) AS grad_norm,\n"
  "  max(CASE WHEN key = 'tokens_per_s' THEN value END) AS tokens_per_s\n"
  "FROM metrics WHERE key IN ('loss', 'lr', 'grad_norm', 'tokens_per_s') GROUP BY run_id, step;\n";
