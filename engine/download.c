/* download.c: resumable, verified HTTP(S) downloads through libcurl, for
   `lacos data pull` and `lacos pull`.

   The bytes go to dest.part. When dest.part exists the request carries
   "Range: bytes=<size>-": a 206 reply whose Content-Range starts at <size> is
   appended, a 200 reply (a server that ignores Range) restarts the file, a
   416 reply (nothing left to send, or the file changed) restarts once from
   zero. Only when the size and SHA-256 match is dest.part renamed over dest
   (then the directory is fsynced), so dest is never a partial file. */
#include "engine.h"
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void lacos_download_options_init(lacos_download_options *o) {
  memset(o, 0, sizeof *o);
  o->connect_timeout_s = 30;
  o->stall_timeout_s = 60;
  o->progress = 1;
  o->resume = 1;
  o->max_redirects = 10;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_status;
static void curl_init(void) { curl_init_status = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct transfer {
  FILE *f;
  const char *url, *part;
  double offset;          /* bytes already in dest.part when the request went out */
  double written;         /* bytes written by this request */
  long status;            /* status of the last response header block */
  double range_start;     /* Content-Range start of that response, -1 if none */
  bool decided;           /* the body's first bytes have chosen append vs restart */
  bool restarted;         /* a 200 reply replaced the partial file */
  int fail_status;        /* a write-side failure to report instead of curl's */
  char fail_msg[512];
  /* progress */
  int progress;
  double total_hint, last_print, start_time;
  bool printed_done;
} transfer;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  transfer *t = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    /* a new response (redirects and 100-continue produce several) */
    const char *sp = memchr(buf, ' ', len);
    t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    t->range_start = -1;
  } else if (len > 14 && strncasecmp(buf, "content-range:", 14) == 0) {
    const char *p = buf + 14;
    while (p < buf + len && (*p == ' ' || *p == '\t')) p++;
    if (buf + len - p > 6 && strncasecmp(p, "bytes ", 6) == 0) t->range_start = strtod(p + 6, NULL);
  }
  return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  transfer *t = ud;
  size_t len = size * n;
  if (!t->decided) {
    t->decided = true;
    if (t->status == 206) {
      if (t->range_start != t->offset) {
        t->fail_status = LACOS_EIO;
        snprintf(t->fail_msg, sizeof t->fail_msg, "%s: the server answered a request for bytes %.0f- with bytes %.0f-",
                 t->url, t->offset, t->range_start);
        return 0;
      }
    } else if (t->offset > 0) {
      /* the server ignored Range and sends the whole file: start over */
      if (fflush(t->f) != 0 || ftruncate(fileno(t->f), 0) != 0 || fseek(t->f, 0, SEEK_SET) != 0) {
        t->fail_status = LACOS_EIO;
        snprintf(t->fail_msg, sizeof t->fail_msg, "%s: cannot truncate: %s", t->part, strerror(errno));
        return 0;
      }
      t->offset = 0;
      t->restarted = true;
    }
  }
  if (fwrite(data, 1, len, t->f) != len) {
    t->fail_status = LACOS_EIO;
    snprintf(t->fail_msg, sizeof t->fail_msg, "%s: write failed: %s", t->part, strerror(errno));
    return 0;
  }
  t->written += (double)len;
  return len;
}

static void fmt_bytes(double b, char *buf, size_t n) {
  if (b >= 1073741824.0) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
  else if (b >= 1048576.0) snprintf(buf, n, "%.1f MiB", b / 1048576.0);
  else if (b >= 1024.0) snprintf(buf, n, "%.1f KiB", b / 1024.0);
  else snprintf(buf, n, "%.0f B", b);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)ultotal; (void)ulnow;
  transfer *t = ud;
  if (lacos_interrupt_pending()) return 1;   /* aborts the transfer; dest.part stays for a resume */
  if (!t->progress) return 0;
  double now = now_s();
  bool done = dltotal > 0 && dlnow == dltotal;
  if (done ? t->printed_done : (now - t->last_print < 0.25 || dlnow == 0)) return 0;
  if (done) t->printed_done = true;
  t->last_print = now;
  double have = t->offset + (double)dlnow;
  double total = dltotal > 0 ? t->offset + (double)dltotal : t->total_hint;
  char a[32], b[32], r[32];
  fmt_bytes(have, a, sizeof a);
  double rate = (double)dlnow / (now - t->start_time > 1e-3 ? now - t->start_time : 1e-3);
  fmt_bytes(rate, r, sizeof r);
  if (total > 0) {
    fmt_bytes(total, b, sizeof b);
    fprintf(stderr, "\r  %s / %s (%3.0f%%)  %s/s   ", a, b, 100.0 * have / total, r);
  } else {
    fprintf(stderr, "\r  %s  %s/s   ", a, r);
  }
  fflush(stderr);
  return 0;
}

static double file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (double)st.st_size;
}

/* One request. Returns a status; *again asks the caller to retry from zero. */
static int fetch_once(const char *url, const char *part, const lacos_download_options *opt, double total_hint,
                      bool *again) {
  *again = false;
  double offset = opt->resume ? file_size(part) : -1;
  if (offset < 0) offset = 0;
  FILE *f = fopen(part, offset > 0 ? "r+b" : "wb");
  if (!f) return fail_errno("%s: cannot write the download", part);
  if (offset > 0 && fseek(f, 0, SEEK_END) != 0) { fclose(f); return fail_errno("%s", part); }

  CURL *c = curl_easy_init();
  if (!c) { fclose(f); return fail(LACOS_ENOMEM, "%s: cannot start libcurl", url); }
  transfer t;
  memset(&t, 0, sizeof t);
  t.f = f;
  t.url = url;
  t.part = part;
  t.offset = offset;
  t.range_start = -1;
  t.progress = opt->progress == 2 || (opt->progress == 1 && isatty(2));
  t.total_hint = total_hint;
  t.start_time = now_s();
  char errbuf[CURL_ERROR_SIZE] = "";
  char range[64];
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)(opt->max_redirects > 0 ? opt->max_redirects : 10));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "lacos/" LACOS_VERSION);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)((opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 30) * 1000));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)ceil(opt->stall_timeout_s > 0 ? opt->stall_timeout_s : 60));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "identity");
  if (offset > 0) {
    snprintf(range, sizeof range, "%.0f-", offset);
    curl_easy_setopt(c, CURLOPT_RANGE, range);
  }
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (t.progress) fprintf(stderr, "\n");
  int st = LACOS_OK;
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
    if (errno != EINVAL) st = fail_errno("%s: write failed", part);
  }
  fclose(f);
  if (st) return st;

  if (t.fail_status) return fail(t.fail_status, "%s", t.fail_msg);
  if (rc == CURLE_ABORTED_BY_CALLBACK && lacos_interrupt_pending())
    return fail(LACOS_EINTERRUPTED, "%s: interrupted; run again to resume from %s", url, part);
  if (code == 416 && offset > 0) {
    /* nothing past our offset: our partial file is complete or stale; redo */
    unlink(part);
    *again = true;
    return fail(LACOS_EIO, "%s: HTTP 416 for a resumed request", url);
  }
  if (code >= 400) return fail(code == 404 ? LACOS_ENOTFOUND : LACOS_EIO, "%s: HTTP error %ld", url, code);
  if (rc != CURLE_OK) {
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return fail(LACOS_EIO, "%s: timed out (%s); run again to resume from %s", url, why, part);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY)
      return fail(LACOS_EIO, "%s: cannot connect: %s", url, why);
    if (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)
      return fail(LACOS_EIO, "%s: the connection ended early after %.0f bytes (%s); run again to resume from %s", url,
                  t.offset + t.written, why, part);
    if (rc == CURLE_TOO_MANY_REDIRECTS) return fail(LACOS_EIO, "%s: too many redirects (%s)", url, why);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) return fail(LACOS_EINVAL, "%s: unsupported protocol (http and https only): %s", url, why);
    return fail(LACOS_EIO, "%s: download failed: %s", url, why);
  }
  if (code != 200 && code != 206) return fail(LACOS_EIO, "%s: unexpected HTTP status %ld", url, code);
  return LACOS_OK;
}

int lacos_download(const char *url, const char *dest, double expected_bytes, const char *expected_sha256,
                   const lacos_download_options *opt, char *sha256_out, double *bytes_out) {
  if (sha256_out) sha256_out[0] = 0;
  if (bytes_out) *bytes_out = 0;
  if (!url || !*url || !dest || !*dest) return fail(LACOS_EINVAL, "download: url and destination are required");
  if (expected_sha256) {
    size_t n = strlen(expected_sha256);
    bool hex = n == 64;
    for (size_t i = 0; hex && i < n; i++) hex = strchr("0123456789abcdef", expected_sha256[i]) != NULL;
    if (!hex) return fail(LACOS_EINVAL, "download: expected sha256 must be 64 lowercase hex digits, got '%s'", expected_sha256);
  }
  lacos_download_options def;
  if (!opt) { lacos_download_options_init(&def); opt = &def; }
  pthread_once(&curl_once, curl_init);
  if (curl_init_status != CURLE_OK) return fail(LACOS_EIO, "download: libcurl failed to initialise: %s", curl_easy_strerror(curl_init_status));

  size_t pn = strlen(dest) + 6;
  char *part;
  if (meta_alloc(&part, pn, "download path")) return fail_context("download");
  snprintf(part, pn, "%s.part", dest);

  int st = LACOS_OK;
  double have = file_size(part);
  bool complete = expected_bytes >= 0 && have == expected_bytes && opt->resume;
  if (have >= 0 && (!opt->resume || (expected_bytes >= 0 && have > expected_bytes))) { unlink(part); have = -1; }
  if (!complete) {
    bool again = false;
    st = fetch_once(url, part, opt, expected_bytes, &again);
    if (st && again) { lacos_error_clear(); st = fetch_once(url, part, opt, expected_bytes, &again); }
  }
  if (st) {
    if (file_size(part) == 0) unlink(part);   /* nothing worth resuming */
    mem_free(part);
    return st;
  }

  double got = file_size(part);
  char hex[65] = "";
  st = lacos_sha256_file(part, hex);
  if (st) { mem_free(part); return st; }
  if (sha256_out) memcpy(sha256_out, hex, 65);
  if (bytes_out) *bytes_out = got;
  if (expected_bytes >= 0 && got != expected_bytes) {
    if (got > expected_bytes) {
      unlink(part);
      st = fail(LACOS_EFORMAT, "%s: got %.0f bytes, expected %.0f; the download was removed", url, got, expected_bytes);
    } else {
      st = fail(LACOS_EIO, "%s: got %.0f of %.0f bytes; run again to resume from %s", url, got, expected_bytes, part);
    }
    mem_free(part);
    return st;
  }
  if (expected_sha256 && strcmp(hex, expected_sha256) != 0) {
    unlink(part);
    st = fail(LACOS_EFORMAT, "%s: sha256 mismatch: expected %s, got %s; the download was removed", url, expected_sha256, hex);
    mem_free(part);
    return st;
  }
  if (rename(part, dest) != 0) st = fail_errno("%s: cannot move the finished download into place", dest);
  else fsync_dir_of(dest);
  mem_free(part);
  return st;
}
