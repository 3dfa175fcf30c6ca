/* test_datasets.c: the pair-set readers (engine/datasets.c) on small files
   written here, one test per pitfall of ../shared/datasets/PITFALLS.md, the
   error paths (file:line messages, no partial output), and the STS metrics
   (engine/sts.c). Parity with scipy on real data is in tests/lua/test_sts.lua. */
#include "test.h"
#include <fcntl.h>
#include <locale.h>

static char path_buf[4][512];
static int path_next;

/* Writes content (len bytes, or strlen) to a scratch file; returns its path. */
static const char *scratch(const char *name, const char *content, long len) {
  char *p = path_buf[path_next++ % 4];
  snprintf(p, 512, "%s/ds-%d-%s", test_tmpdir(), (int)getpid(), name);
  FILE *f = fopen(p, "wb");
  if (!f) { printf("#   cannot write %s\n", p); return p; }
  fwrite(content, 1, len < 0 ? strlen(content) : (size_t)len, f);
  fclose(f);
  return p;
}

static lacos_pairset *fresh(void) {
  lacos_pairset *s = NULL;
  CHECK_OK(lacos_pairset_new(&s));
  return s;
}

static lacos_read_spec spec_stsb(void) {
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.col_s1 = 6; sp.col_s2 = 7; sp.col_score = 5;
  sp.min_fields = 7; sp.max_fields = 9;
  sp.score_min = 0; sp.score_max = 5;
  return sp;
}

static lacos_read_spec spec_generic(void) {
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.col_s1 = 1; sp.col_s2 = 2; sp.col_score = 3;
  return sp;
}

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---------------------------------------------------------------- TAB files */

static void test_tab_quotes_are_data(void) {
  /* a quote-aware reader would merge these lines into one */
  const char *p = scratch("quotes.tsv",
    "\"He said\tit \"is\" \"\t1.5\n"
    "plain\t\"open quote only\t2\n"
    "x\ty\"\t3\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 3);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(streq(r[0].s1, "\"He said"));
  CHECK(streq(r[0].s2, "it \"is\" \""));
  CHECK(streq(r[1].s2, "\"open quote only"));
  CHECK(streq(r[2].s2, "y\""));
  CHECK(r[1].score == 2.0);
  lacos_pairset_free(s);
}

static void test_crlf_and_bom(void) {
  const char *p = scratch("msrp.tsv",
    "\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
    "1\t11\t12\tA cat sat.\tThe cat sat.\r\n"
    "0\t13\t14\tSun.\tRain.\r\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.header = 1; sp.col_s1 = 4; sp.col_s2 = 5; sp.col_label = 1; sp.label_kind = LACOS_LABELS_BINARY;
  sp.min_fields = 5; sp.max_fields = 5;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(r[0].label == 1 && r[1].label == 0);
  CHECK(streq(r[1].s2, "Rain."));            /* no \r left on the last field */
  CHECK(r[0].line == 2);
  lacos_pairset_free(s);

  /* a BOM without a header: the first field must not carry it */
  p = scratch("bom.tsv", "\xef\xbb\xbf" "a\tb\t1\n", -1);
  s = fresh();
  sp = spec_generic();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(streq(lacos_pairset_pairs(s)[0].s1, "a"));
  lacos_pairset_free(s);

  /* SICK test style: the CRLF sits after the entailment label */
  p = scratch("sick.tsv", "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n"
                          "6\tA b\tC d\t3.6\tNEUTRAL\r\n7\tE f\tG h\t1\tCONTRADICTION\r\n", -1);
  s = fresh();
  lacos_read_spec_init(&sp);
  sp.header = 1; sp.col_s1 = 2; sp.col_s2 = 3; sp.col_score = 4; sp.col_label = 5; sp.label_kind = LACOS_LABELS_NLI;
  sp.score_min = 1; sp.score_max = 5;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  CHECK(lacos_pairset_pairs(s)[0].label == LACOS_NEUTRAL && lacos_pairset_pairs(s)[1].label == LACOS_CONTRADICTION);
  lacos_pairset_free(s);
}

static void test_last_line_without_newline(void) {
  const char *p = scratch("nonl.tsv", "a\tb\t1\r\nc\td\t2", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  CHECK(lacos_pairset_pairs(s)[1].score == 2.0 && streq(lacos_pairset_pairs(s)[1].s2, "d"));
  lacos_pairset_free(s);
  /* an empty file is an empty set, not an error */
  p = scratch("empty.tsv", "", 0);
  s = fresh();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 0 && lacos_pairset_subset_count(s) == 1);
  lacos_pairset_free(s);
}

static void test_stsb_seven_or_nine_fields(void) {
  const char *p = scratch("stsb.csv",
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA kite is rising fast.\tA paper kite is rising fast.\n"
    "main-forums\tanswers-forums\t2015\t0002\t1.800\t What is it? \tWhat it is.\tsrc1\tsrc2\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_stsb();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(streq(r[1].s1, "What is it?") && r[1].len1 == 11);   /* trimmed */
  CHECK(streq(r[1].s2, "What it is."));
  CHECK(r[1].score == 1.8);
  lacos_pairset_free(s);
  /* trim off keeps the spaces */
  s = fresh();
  sp.trim = 0;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(streq(lacos_pairset_pairs(s)[1].s1, " What is it? "));
  lacos_pairset_free(s);
  /* 6 fields and 10 fields are errors naming file:line */
  p = scratch("stsb-bad.csv", "g\tf\t2012\t1\t3.0\tonly one sentence\n", -1);
  s = fresh();
  sp = spec_stsb();
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "stsb-bad.csv:1: expected at least 7 TAB-separated fields, found 6");
  p = scratch("stsb-bad2.csv", "g\tf\t2012\t1\t3.0\ta\tb\n" "g\tf\t2012\t1\t3.0\ta\tb\t1\t2\t3\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "stsb-bad2.csv:2: expected at most 9 fields, found 10");
  CHECK(lacos_pairset_size(s) == 0 && lacos_pairset_subset_count(s) == 0);   /* nothing half-read */
  lacos_pairset_free(s);
}

static void test_score_styles_and_locale(void) {
  const char *p = scratch("styles.tsv", "a\tb\t4.000\nc\td\t0.6\ne\tf\t4\ng\th\t2.400000\ni\tj\t 3 \n", -1);
  /* Whatever the process locale says, '.' is the decimal point. A
     comma-decimal locale is compiled with localedef when none is installed. */
  char *old = setlocale(LC_NUMERIC, NULL);
  char saved[64];
  snprintf(saved, sizeof saved, "%s", old ? old : "C");
  bool comma = setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
  if (!comma && access("/usr/share/i18n/locales/de_DE", R_OK) == 0) {
    char cmd[1200], dir[512];
    snprintf(dir, sizeof dir, "%s/locales-%d", test_tmpdir(), (int)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s && localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir, dir);
    if (system(cmd) == 0) {
      setenv("LOCPATH", dir, 1);
      comma = setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
    }
  }
  if (comma) CHECK(strtod("4.5", NULL) == 4.0);   /* the pitfall: plain strtod stops at '.' */
  else printf("# no comma-decimal locale available: only the C locale path is exercised\n");
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(lacos_pairset_size(s) == 5);
  CHECK(r[0].score == 4.0 && r[1].score == 0.6 && r[2].score == 4.0 && r[3].score == 2.4 && r[4].score == 3.0);
  /* comma decimals, NaN and hex floats are not scores */
  const char *bad[] = { "a\tb\t4,5\n", "a\tb\tnan\n", "a\tb\tinf\n", "a\tb\t0x1p1\n", "a\tb\t\n", "a\tb\t3.5x\n" };
  for (int i = 0; i < 6; i++) {
    if (i == 3) continue;   /* strtod accepts hex floats; C99 numbers are fine */
    const char *q = scratch("badscore.tsv", bad[i], -1);
    CHECK_FAIL(lacos_pairset_read_tsv(s, q, &sp), LACOS_EFORMAT, "badscore.tsv:1: field 3:");
  }
  setlocale(LC_NUMERIC, saved);
  /* a header line read as data hints at the header option */
  p = scratch("hdr.tsv", "sentence1\tsentence2\tscore\na\tb\t1\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "header");
  sp.header = 1;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  lacos_pairset_free(s);
}

static void test_sick_range(void) {
  const char *p = scratch("sick-range.tsv", "h1\th2\th3\th4\th5\n1\ta\tb\t0.5\tNEUTRAL\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.header = 1; sp.col_s1 = 2; sp.col_s2 = 3; sp.col_score = 4; sp.col_label = 5; sp.label_kind = LACOS_LABELS_NLI;
  sp.score_min = 1; sp.score_max = 5;
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "sick-range.tsv:2: score 0.5 outside the range 1..5");
  p = scratch("label.tsv", "h1\th2\th3\th4\th5\n1\ta\tb\t2\tMAYBE\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "label.tsv:2: label 'MAYBE' is not entailment, neutral or contradiction");
  lacos_pairset_free(s);
}

static void test_blank_lines_filter_and_columns(void) {
  const char *p = scratch("blank.tsv", "a\tb\t1\n\nc\td\t2\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "blank.tsv:2: blank line");
  sp.skip_blank = 1;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2 && lacos_pairset_subsets(s)[0].skipped == 1);
  lacos_pairset_free(s);

  /* AllNLI.tsv layout: split column filter, named subset */
  p = scratch("allnli.tsv", "split\tdataset\tfilename\tsentence1\tsentence2\tlabel\n"
                            "train\tSNLI\tx\tA man.\tA person.\tentailment\n"
                            "dev\tSNLI\tx\tA dog.\tA cat.\tcontradiction\n"
                            "train\tMNLI\tx\tIt rains.\tIt is dry.\tcontradiction\n", -1);
  s = fresh();
  lacos_read_spec_init(&sp);
  sp.header = 1; sp.col_s1 = 4; sp.col_s2 = 5; sp.col_label = 6; sp.label_kind = LACOS_LABELS_NLI;
  sp.filter_col = 1; sp.filter_value = "train"; sp.subset = "train"; sp.lang1 = "en"; sp.lang2 = "en";
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  const lacos_pair_subset *u = lacos_pairset_subsets(s);
  CHECK(streq(u[0].name, "train") && streq(u[0].lang1, "en") && u[0].lines == 3 && u[0].skipped == 1 && u[0].count == 2);
  /* bad specs are argument errors */
  sp.filter_value = NULL;
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EINVAL, "filter");
  lacos_read_spec_init(&sp);
  sp.col_s1 = 1;
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EINVAL, "sentence columns");
  sp.col_s2 = 70;
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EINVAL, "out of range");
  sp = spec_generic();
  CHECK_FAIL(lacos_pairset_read_tsv(s, "/nonexistent/x.tsv", &sp), LACOS_ENOTFOUND, "/nonexistent/x.tsv");
  lacos_pairset_free(s);
}

static void test_text_checks(void) {
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  const char *p = scratch("utf8.tsv", "ok\tfine\t1\nbad \xc3\x28 byte\tx\t2\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "utf8.tsv:2: sentence 1 is not valid UTF-8 (byte 5)");
  p = scratch("overlong.tsv", "a\t\xc0\xaf\t1\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "not valid UTF-8");
  p = scratch("surrogate.tsv", "a\t\xed\xa0\x80\t1\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "not valid UTF-8");
  p = scratch("utf8ok.tsv", "\xe4\xbd\xa0\xe5\xa5\xbd\t\xf0\x9f\x98\x80 \xd8\xb9\t1\n", -1);
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  p = scratch("nul.tsv", "a\tb\x00z\t1\n", 8);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "nul.tsv:1: NUL byte");
  p = scratch("emptysent.tsv", "a\t   \t1\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_EFORMAT, "emptysent.tsv:1: sentence 2 is empty");
  sp.allow_empty = 1;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  lacos_pairset_free(s);
}

static void test_line_and_file_limits(void) {
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  sp.max_line_bytes = 16;
  const char *p = scratch("long.tsv", "a\tb\t1\nthis line is far too long\tb\t2\n", -1);
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_ELIMIT, "long.tsv:2: line is longer than the limit of 16 bytes");
  sp.max_line_bytes = 0;
  sp.max_file_bytes = 10;
  CHECK_FAIL(lacos_pairset_read_tsv(s, p, &sp), LACOS_ELIMIT, "max_file_bytes");
  /* A 1 GiB file that is one line (sparse, so it costs no disk) fails after
     reading ~1 MiB, without allocating the line. */
  char big[512];
  snprintf(big, sizeof big, "%s/ds-%d-huge.tsv", test_tmpdir(), (int)getpid());
  int fd = open(big, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  CHECK(fd >= 0 && ftruncate(fd, 1L << 30) == 0);
  if (fd >= 0) close(fd);
  lacos_read_spec_init(&sp);
  sp.col_s1 = 1; sp.col_s2 = 2;
  double before = lacos_memory_peak_rss();
  CHECK_FAIL(lacos_pairset_read_tsv(s, big, &sp), LACOS_ELIMIT, "huge.tsv:1: line is longer than the limit of 1048576 bytes");
  CHECK(lacos_memory_peak_rss() - before < 64.0 * 1048576);
  CHECK_FAIL(lacos_pairset_read_csv(s, big, &sp), LACOS_ELIMIT, "huge.tsv:1: line is longer");
  CHECK_FAIL(lacos_pairset_read_jsonl(s, big, &sp), LACOS_ELIMIT, "huge.tsv:1: line is longer");
  unlink(big);
  CHECK(lacos_pairset_size(s) == 0);
  lacos_pairset_free(s);
}

/* ---------------------------------------------------------------- CSV */

static void test_csv_rfc4180(void) {
  const char *p = scratch("mt.csv",
    "Ein Mann spielt Gitarre.,\"Ein Mann singt, w\xc3\xa4hrend er spielt.\",3.6\r\n"
    "\"Er sagte \"\"Hallo\"\".\",Kurz.,1.5\r\n"
    "\"Zwei\r\nZeilen\",b,0.0\r\n"
    "plain,\"\",5.0\r\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp = spec_generic();
  sp.min_fields = 3; sp.max_fields = 3; sp.score_min = 0; sp.score_max = 5; sp.allow_empty = 1;
  CHECK_OK(lacos_pairset_read_csv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 4);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(streq(r[0].s2, "Ein Mann singt, w\xc3\xa4hrend er spielt."));
  CHECK(r[0].score == 3.6);
  CHECK(streq(r[1].s1, "Er sagte \"Hallo\"."));
  CHECK(streq(r[2].s1, "Zwei\nZeilen") && r[2].line == 3);
  CHECK(r[3].line == 5 && r[3].len2 == 0);
  lacos_pairset_free(s);

  s = fresh();
  p = scratch("open.csv", "a,\"never closed,1\nb,c,2\n", -1);
  CHECK_FAIL(lacos_pairset_read_csv(s, p, &sp), LACOS_EFORMAT, "open.csv:1: quoted field never closed");
  p = scratch("stray.csv", "a,b,1\n\"x\"y,b,2\n", -1);
  CHECK_FAIL(lacos_pairset_read_csv(s, p, &sp), LACOS_EFORMAT, "stray.csv:2: unexpected character 'y' after a closing quote");
  p = scratch("inner.csv", "a,b\"c,1\n", -1);
  CHECK_FAIL(lacos_pairset_read_csv(s, p, &sp), LACOS_EFORMAT, "inner.csv:1: quote inside an unquoted field");
  p = scratch("few.csv", "a,b,1\nonly,two\n", -1);
  CHECK_FAIL(lacos_pairset_read_csv(s, p, &sp), LACOS_EFORMAT, "few.csv:2: expected at least 3 comma-separated fields, found 2");
  /* SimCSE layout: header, three sentences */
  p = scratch("simcse.csv", "sent0,sent1,hard_neg\nA man.,A person.,Nobody.\n", -1);
  lacos_read_spec_init(&sp);
  sp.header = 1; sp.col_s1 = 1; sp.col_s2 = 2; sp.col_s3 = 3;
  CHECK_OK(lacos_pairset_read_csv(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 1 && streq(lacos_pairset_pairs(s)[0].s3, "Nobody.") && isnan(lacos_pairset_pairs(s)[0].score));
  lacos_pairset_free(s);
}

/* ---------------------------------------------------------------- gold pairing */

static void test_gold_pairing(void) {
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.score_min = 0; sp.score_max = 5;
  /* STS15/16: blank gold = unscored, kept aligned; STS16 has 4 input fields */
  const char *in = scratch("STS.input.x.txt", "a1\tb1\tn1\tn2\na2\tb2\tn\tn\na3\tb3\tn\tn\na4\tb4\tn\tn\n", -1);
  const char *gs = scratch("STS.gs.x.txt", "4\n\n0.6\n\n", -1);
  sp.min_fields = 2; sp.max_fields = 4; sp.subset = "x";
  CHECK_OK(lacos_pairset_read_gold(s, in, gs, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(streq(r[0].s1, "a1") && r[0].score == 4 && r[0].line == 1);
  CHECK(streq(r[1].s2, "b3") && r[1].score == 0.6 && r[1].line == 3);
  const lacos_pair_subset *u = lacos_pairset_subsets(s);
  CHECK(u[0].lines == 4 && u[0].skipped == 2);
  /* more input than gold: an error, unless truncate_input (STS17 track6) */
  gs = scratch("STS.gs.short.txt", "1\n2\n", -1);
  CHECK_FAIL(lacos_pairset_read_gold(s, in, gs, &sp), LACOS_EFORMAT, "STS.input.x.txt:3: the input has more lines than the 2 of its gold file");
  sp.truncate_input = 1;
  sp.subset = "en-tr"; sp.lang1 = "en"; sp.lang2 = "tr";
  CHECK_OK(lacos_pairset_read_gold(s, in, gs, &sp));
  CHECK(lacos_pairset_size(s) == 4);
  u = lacos_pairset_subsets(s);
  CHECK(u[1].first == 2 && u[1].count == 2 && streq(u[1].lang2, "tr") && streq(lacos_pairset_pairs(s)[3].s1, "a2"));
  sp.truncate_input = 0;
  /* fewer input lines than gold */
  gs = scratch("STS.gs.long.txt", "1\n2\n3\n4\n5\n", -1);
  CHECK_FAIL(lacos_pairset_read_gold(s, in, gs, &sp), LACOS_EFORMAT, "4 lines, but its gold file");
  /* a bad gold score names the gold file and line */
  gs = scratch("STS.gs.bad.txt", "1\nfive\n\n\n", -1);
  CHECK_FAIL(lacos_pairset_read_gold(s, in, gs, &sp), LACOS_EFORMAT, "STS.gs.bad.txt:2: 'five' is not a number");
  gs = scratch("STS.gs.range.txt", "1\n5.5\n\n\n", -1);
  CHECK_FAIL(lacos_pairset_read_gold(s, in, gs, &sp), LACOS_EFORMAT, "STS.gs.range.txt:2: score 5.5 outside the range 0..5");
  /* a scored pair with a missing sentence */
  in = scratch("STS.input.y.txt", "a1\tb1\nonly\n", -1);
  gs = scratch("STS.gs.y.txt", "1\n2\n", -1);
  CHECK_FAIL(lacos_pairset_read_gold(s, in, gs, &sp), LACOS_EFORMAT, "STS.input.y.txt:2: expected at least 2 TAB-separated fields, found 1");
  CHECK(lacos_pairset_size(s) == 4 && lacos_pairset_subset_count(s) == 2);
  lacos_pairset_free(s);
}

/* ---------------------------------------------------------------- aligned lines, JSON lines */

static void test_aligned_lines(void) {
  const char *a = scratch("s1.dev", "Two women are embracing . \nA man sleeps . \nA dog runs . \n", -1);
  const char *b = scratch("s2.dev", "Two women hug . \nA man is awake . \nAn animal moves . \n", -1);
  const char *l = scratch("labels.dev", "entailment\ncontradiction\nentailment\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.label_kind = LACOS_LABELS_NLI;
  CHECK_OK(lacos_pairset_read_lines(s, a, b, l, &sp));
  CHECK(lacos_pairset_size(s) == 3);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(streq(r[0].s1, "Two women are embracing .") && r[1].label == LACOS_CONTRADICTION);
  const char *b2 = scratch("s2.short", "Two women hug . \n", -1);
  CHECK_FAIL(lacos_pairset_read_lines(s, a, b2, NULL, &sp), LACOS_EFORMAT, "s2.short: ends after 1 lines");
  const char *l2 = scratch("labels.bad", "entailment\nhidden\nentailment\n", -1);
  CHECK_FAIL(lacos_pairset_read_lines(s, a, b, l2, &sp), LACOS_EFORMAT, "labels.bad:2: label 'hidden'");
  const char *b3 = scratch("s2.empty", "x\n \ny\n", -1);
  CHECK_FAIL(lacos_pairset_read_lines(s, a, b3, NULL, &sp), LACOS_EFORMAT, "s2.empty:2: sentence 2 is empty");
  CHECK(lacos_pairset_size(s) == 3);
  lacos_pairset_free(s);
}

static void test_jsonl(void) {
  const char *p = scratch("snli.jsonl",
    "{\"gold_label\": \"neutral\", \"sentence1\": \"A person on a horse.\", \"sentence2\": \"He is training.\"}\n"
    "{\"gold_label\": \"-\", \"sentence1\": \"No consensus.\", \"sentence2\": \"Skip me.\"}\n"
    "{\"gold_label\": \"entailment\", \"sentence1\": \"Caf\\u00e9 \\\"x\\\"\", \"sentence2\": \"\\ud83d\\ude00 ok\", \"extra\": [1,2]}\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.label_kind = LACOS_LABELS_NLI;
  sp.skip_unlabeled = 1;
  CHECK_OK(lacos_pairset_read_jsonl(s, p, &sp));
  CHECK(lacos_pairset_size(s) == 2);
  const lacos_pair *r = lacos_pairset_pairs(s);
  CHECK(r[0].label == LACOS_NEUTRAL && r[1].label == LACOS_ENTAILMENT && r[1].line == 3);
  CHECK(streq(r[1].s1, "Caf\xc3\xa9 \"x\""));
  CHECK(streq(r[1].s2, "\xf0\x9f\x98\x80 ok"));
  CHECK(lacos_pairset_subsets(s)[0].skipped == 1);
  sp.skip_unlabeled = 0;
  CHECK_FAIL(lacos_pairset_read_jsonl(s, p, &sp), LACOS_EFORMAT, "snli.jsonl:2: label '-'");
  sp.skip_unlabeled = 1;
  p = scratch("bad.jsonl", "{\"gold_label\": \"neutral\", \"sentence1\": \"a\", \"sentence2\": \"b\"}\n{\"sentence1\": \"a\",\n", -1);
  CHECK_FAIL(lacos_pairset_read_jsonl(s, p, &sp), LACOS_EFORMAT, "bad.jsonl:2: invalid JSON");
  p = scratch("nokey.jsonl", "{\"gold_label\": \"neutral\", \"sentence1\": \"a\"}\n", -1);
  CHECK_FAIL(lacos_pairset_read_jsonl(s, p, &sp), LACOS_EFORMAT, "nokey.jsonl:1: no \"sentence2\" field");
  p = scratch("num.jsonl", "{\"gold_label\": \"neutral\", \"sentence1\": \"a\", \"sentence2\": 5}\n", -1);
  CHECK_FAIL(lacos_pairset_read_jsonl(s, p, &sp), LACOS_EFORMAT, "num.jsonl:1: \"sentence2\" is not a string");
  p = scratch("arr.jsonl", "[1, 2]\n", -1);
  CHECK_FAIL(lacos_pairset_read_jsonl(s, p, &sp), LACOS_EFORMAT, "arr.jsonl:1: expected a JSON object");
  CHECK(lacos_pairset_size(s) == 2);
  lacos_pairset_free(s);
}

/* ---------------------------------------------------------------- triplets, digest */

static lacos_pairset *nli_set(void) {
  const char *p = scratch("nli.tsv",
    "P1\tE1\tentailment\n"
    "P1\tN1\tneutral\n"
    "P1\tC1\tcontradiction\n"
    "P2\tE2\tentailment\n"              /* no contradiction: no triplet */
    "P3\tC3\tcontradiction\n"
    "P3\tE3a\tentailment\n"
    "P3\tE3b\tentailment\n", -1);
  lacos_pairset *s = fresh();
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.col_s1 = 1; sp.col_s2 = 2; sp.col_label = 3; sp.label_kind = LACOS_LABELS_NLI;
  CHECK_OK(lacos_pairset_read_tsv(s, p, &sp));
  return s;
}

static void test_nli_triplets(void) {
  lacos_pairset *s = nli_set(), *t = NULL;
  CHECK_OK(lacos_pairset_nli_triplets(&t, s, LACOS_TRIPLETS_PREMISE, -1));
  CHECK(lacos_pairset_size(t) == 2);
  const lacos_pair *r = lacos_pairset_pairs(t);
  CHECK(streq(r[0].s1, "P1") && streq(r[0].s2, "E1") && streq(r[0].s3, "C1"));
  CHECK(streq(r[1].s1, "P3") && streq(r[1].s2, "E3a") && streq(r[1].s3, "C3"));
  lacos_pairset_free(t);
  /* seeded picks stay among the partners and repeat for the same seed */
  CHECK_OK(lacos_pairset_nli_triplets(&t, s, LACOS_TRIPLETS_PREMISE, 7));
  lacos_pairset *t2 = NULL;
  CHECK_OK(lacos_pairset_nli_triplets(&t2, s, LACOS_TRIPLETS_PREMISE, 7));
  r = lacos_pairset_pairs(t);
  CHECK(streq(r[1].s2, "E3a") || streq(r[1].s2, "E3b"));
  CHECK(streq(r[1].s2, lacos_pairset_pairs(t2)[1].s2));
  lacos_pairset_free(t);
  lacos_pairset_free(t2);
  /* SBERT: both directions. P1 (E1, C1), E1 (P1 entails, no contradiction)...
     sentences with both kinds of partner: P1, P3 -> 2 triplets each */
  CHECK_OK(lacos_pairset_nli_triplets(&t, s, LACOS_TRIPLETS_SBERT, -1));
  CHECK(lacos_pairset_size(t) == 4);
  r = lacos_pairset_pairs(t);
  CHECK(streq(r[0].s1, "P1") && streq(r[0].s2, "E1") && streq(r[0].s3, "C1"));
  CHECK(streq(r[1].s1, "E1") && streq(r[1].s2, "P1") && streq(r[1].s3, "C1"));
  CHECK(streq(r[2].s1, "P3") && streq(r[3].s2, "P3"));
  lacos_pairset_free(t);
  CHECK_OK(lacos_pairset_nli_triplets(&t, s, LACOS_PAIRS_ENTAILMENT, -1));
  CHECK(lacos_pairset_size(t) == 4 && lacos_pairset_pairs(t)[0].s3 == NULL && streq(lacos_pairset_pairs(t)[3].s2, "E3b"));
  lacos_pairset_free(t);
  CHECK_FAIL(lacos_pairset_nli_triplets(&t, s, 9, -1), LACOS_EINVAL, "mode");
  lacos_pairset *plain = fresh();
  lacos_read_spec sp = spec_generic();
  CHECK_OK(lacos_pairset_read_tsv(plain, scratch("g.tsv", "a\tb\t1\n", -1), &sp));
  CHECK_FAIL(lacos_pairset_nli_triplets(&t, plain, 0, -1), LACOS_EINVAL, "no NLI labels");
  lacos_pairset_free(plain);
  lacos_pairset_free(s);
}

static void test_digest(void) {
  lacos_pairset *a = nli_set(), *b = nli_set();
  char h1[65], h2[65];
  CHECK_OK(lacos_pairset_sha256(a, h1));
  CHECK_OK(lacos_pairset_sha256(b, h2));
  CHECK(strcmp(h1, h2) == 0 && strlen(h1) == 64);
  lacos_read_spec sp;
  lacos_read_spec_init(&sp);
  sp.col_s1 = 1; sp.col_s2 = 2; sp.col_label = 3; sp.label_kind = LACOS_LABELS_NLI;
  CHECK_OK(lacos_pairset_read_tsv(b, scratch("one.tsv", "x\ty\tneutral\n", -1), &sp));
  CHECK_OK(lacos_pairset_sha256(b, h2));
  CHECK(strcmp(h1, h2) != 0);
  lacos_pairset_free(a);
  lacos_pairset_free(b);
  lacos_pairset_free(NULL);
}

/* ---------------------------------------------------------------- STS metrics */

static void test_ranks(void) {
  double x[] = { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3 }, r[10];
  double want[] = { 4.5, 1.5, 6, 1.5, 7.5, 10, 3, 9, 7.5, 4.5 };
  CHECK_OK(lacos_sts_rank(r, x, 10));
  for (int i = 0; i < 10; i++) CHECK(r[i] == want[i]);
  double bad[] = { 1, NAN };
  CHECK_FAIL(lacos_sts_rank(r, bad, 2), LACOS_ENUMERIC, "not finite");
}

static void test_correlations(void) {
  double x[] = { 1, 2, 3, 4, 5 }, y[] = { 2, 1, 4, 3, 5 }, v = 0;
  /* d = (-1, 1, -1, 1, 0): 1 - 6*4/(5*24) = 0.8 without ties */
  CHECK_OK(lacos_sts_spearman(&v, x, y, 5));
  CHECK_NEAR(v, 0.8, 1e-15);
  CHECK_OK(lacos_sts_pearson(&v, x, y, 5));
  CHECK_NEAR(v, 0.8, 1e-15);
  /* ties: ranks (1.5, 1.5, 3) vs (1, 2, 3): pearson of ranks = sqrt(3)/2 */
  double a[] = { 1, 1, 2 }, b[] = { 1, 2, 3 };
  CHECK_OK(lacos_sts_spearman(&v, a, b, 3));
  CHECK_NEAR(v, sqrt(3.0) / 2, 1e-15);
  /* n = 2 gives +-1 */
  double c[] = { 1, 2 }, d[] = { 5, -3 };
  CHECK_OK(lacos_sts_pearson(&v, c, d, 2));
  CHECK(v == -1);
  /* constant input and non-finite values: NaN, as scipy */
  double k[] = { 2, 2, 2 };
  CHECK_OK(lacos_sts_spearman(&v, k, b, 3));
  CHECK(isnan(v));
  CHECK_OK(lacos_sts_pearson(&v, b, k, 3));
  CHECK(isnan(v));
  double nanv[] = { 1, NAN, 3 };
  CHECK_OK(lacos_sts_spearman(&v, nanv, b, 3));
  CHECK(isnan(v));
  CHECK_FAIL(lacos_sts_spearman(&v, x, y, 1), LACOS_EINVAL, "at least 2 pairs");
  CHECK_FAIL(lacos_sts_pearson(&v, NULL, y, 3), LACOS_EINVAL, "NULL");
}

static void test_cosine(void) {
  int64_t shape[2] = { 3, 2 };
  float av[] = { 1, 0, 3, 4, 0, 0 }, bv[] = { 1, 1, -3, -4, 1, 2 };
  lacos_tensor *a = NULL, *b = NULL, *o = NULL, *h = NULL;
  CHECK_OK(lacos_tensor_from_buffer(&a, LACOS_F32, 2, shape, av, LACOS_F32));
  CHECK_OK(lacos_tensor_from_buffer(&b, LACOS_F32, 2, shape, bv, LACOS_F32));
  CHECK_OK(lacos_sts_cosine(&o, a, b));
  if (o) {
    double *d = (double *)o->data;
    CHECK(o->dtype == LACOS_F64 && o->ndim == 1 && o->shape[0] == 3);
    CHECK_NEAR(d[0], 1 / sqrt(2.0), 1e-15);
    CHECK_NEAR(d[1], -1, 1e-15);
    CHECK(d[2] == 0);   /* a zero row scores 0 */
  }
  lacos_tensor_free(o);
  o = NULL;
  /* f16 embeddings, and a transposed (strided) view */
  CHECK_OK(lacos_tensor_to_dtype(&h, a, LACOS_F16));
  CHECK_OK(lacos_sts_cosine(&o, h, b));
  if (o) CHECK_NEAR(((double *)o->data)[1], -1, 1e-3);
  lacos_tensor_free(o);
  o = NULL;
  int64_t s2[2] = { 2, 3 };
  lacos_tensor *c = NULL;
  CHECK_OK(lacos_tensor_new(&c, LACOS_F32, LACOS_CPU, 2, s2));
  CHECK_FAIL(lacos_sts_cosine(&o, a, c), LACOS_EINVAL, "shapes differ");
  lacos_tensor *i32 = NULL;
  CHECK_OK(lacos_tensor_new(&i32, LACOS_I32, LACOS_CPU, 2, shape));
  CHECK_FAIL(lacos_sts_cosine(&o, a, i32), LACOS_EINVAL, "float dtype");
  lacos_tensor_free(a); lacos_tensor_free(b); lacos_tensor_free(h); lacos_tensor_free(c); lacos_tensor_free(i32);
}

/* ---------------------------------------------------------------- garbage in */

/* Random files built from the pieces the readers care about (fields of
   words, numbers and labels, TABs, commas, quotes, CR, BOM, blank lines, JSON
   fragments, stray bytes): every reader returns OK or an error naming the
   file, never crashes (run under make SAN=1 to catch memory errors). */
static void test_garbage_never_crashes(void) {
  static const char *pieces[] = {
    "A man sleeps.", "Ein Hund", "\"quoted\"", "\"a, b\"", "\"\"", "x\"y", "3.5", "0", "5.000", "4,5", "-1", "2.400000",
    "entailment", "NEUTRAL", "contradiction", "-", "", " ", "\xc3\xa9t\xc3\xa9", "\xf0\x9f\x98\x80", "\xff", "\xc0\xaf",
    "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"gold_label\": \"neutral\"}", "{\"sentence1\": 1}", "[", "\\u00e9",
  };
  static const char *seps[] = { "\t", "\t", "\t", ",", "\t\t" };
  static const char *ends[] = { "\n", "\n", "\r\n", "\n\n", "\r" };
  enum { NP = sizeof pieces / sizeof *pieces };
  char buf[2048];
  uint64_t seed = 12345, c = 0;
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 400; iter++) {
    size_t n = 0;
    if (rng_u64(seed, c++) % 8 == 0) { memcpy(buf, "\xef\xbb\xbf", 3); n = 3; }
    int lines = (int)(rng_u64(seed, c++) % 8);
    int fields = 1 + (int)(rng_u64(seed, c++) % 5);
    for (int l = 0; l < lines; l++) {
      int nf = rng_u64(seed, c++) % 6 == 0 ? 1 + (int)(rng_u64(seed, c++) % 6) : fields;
      for (int f = 0; f < nf; f++) {
        const char *piece = pieces[rng_u64(seed, c++) % NP];
        const char *sep = f + 1 < nf ? seps[rng_u64(seed, c++) % 5] : ends[rng_u64(seed, c++) % 5];
        if (n + strlen(piece) + strlen(sep) + 1 >= sizeof buf) break;
        memcpy(buf + n, piece, strlen(piece)); n += strlen(piece);
        if (l + 1 < lines || f + 1 < nf || rng_u64(seed, c++) % 3) { memcpy(buf + n, sep, strlen(sep)); n += strlen(sep); }
      }
    }
    const char *p = scratch("garbage.txt", buf, (long)n);
    /* a second file: the same lines' tail, for gold pairing and aligned reads */
    const char *q = scratch("garbage2.txt", buf + n / 2, (long)(n - n / 2));
    lacos_pairset *s = fresh();
    lacos_read_spec sp;
    lacos_read_spec_init(&sp);
    sp.col_s1 = 1; sp.col_s2 = 2 + iter % 2; sp.col_score = iter % 4 == 0 ? 0 : 3 - iter % 2;
    sp.col_label = iter % 5 == 0 ? 4 : 0; sp.label_kind = iter % 5 == 0 ? LACOS_LABELS_NLI : 0;
    sp.header = iter % 7 == 0; sp.skip_blank = iter % 3 == 0; sp.allow_empty = iter % 2; sp.skip_unlabeled = iter % 2;
    sp.max_line_bytes = iter % 10 == 0 ? 40 : 0;
    sp.truncate_input = iter % 2;
    int st[5] = {
      lacos_pairset_read_tsv(s, p, &sp), lacos_pairset_read_csv(s, p, &sp), lacos_pairset_read_gold(s, p, q, &sp),
      lacos_pairset_read_lines(s, p, q, iter % 2 && sp.label_kind ? q : NULL, &sp), lacos_pairset_read_jsonl(s, p, &sp),
    };
    for (int k = 0; k < 5; k++) {
      if (st[k] == LACOS_OK) ok++;
      else {
        failed++;
        if (!strstr(lacos_last_error(), "garbage")) { printf("#   reader %d: message without the file: %s\n", k, lacos_last_error()); CHECK(0); }
      }
    }
    /* whatever was read is consistent */
    const lacos_pair *r = lacos_pairset_pairs(s);
    for (int i = 0; i < lacos_pairset_size(s); i++) CHECK(r[i].s1 && r[i].s2 && (int)strlen(r[i].s1) == r[i].len1);
    lacos_pairset *t = NULL;
    if (lacos_pairset_nli_triplets(&t, s, iter % 3, iter % 2 ? -1 : iter) == LACOS_OK) lacos_pairset_free(t);
    char hex[65];
    CHECK_OK(lacos_pairset_sha256(s, hex));
    lacos_pairset_free(s);
  }
  printf("# 400 random files x 5 readers: %d read, %d rejected\n", ok, failed);
  CHECK(ok > 100 && failed > 100);
}

int main(void) {
  RUN(test_tab_quotes_are_data);
  RUN(test_crlf_and_bom);
  RUN(test_last_line_without_newline);
  RUN(test_stsb_seven_or_nine_fields);
  RUN(test_score_styles_and_locale);
  RUN(test_sick_range);
  RUN(test_blank_lines_filter_and_columns);
  RUN(test_text_checks);
  RUN(test_line_and_file_limits);
  RUN(test_csv_rfc4180);
  RUN(test_gold_pairing);
  RUN(test_aligned_lines);
  RUN(test_jsonl);
  RUN(test_nli_triplets);
  RUN(test_digest);
  RUN(test_ranks);
  RUN(test_correlations);
  RUN(test_cosine);
  RUN(test_garbage_never_crashes);
  TEST_EXIT();
}
