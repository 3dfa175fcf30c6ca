/* error.c: status codes and the per-thread last-error message.

   The engine reports failures by returning a status and leaving a message
   here; it never aborts or unwinds across the FFI. Messages are per thread
   so that worker threads cannot overwrite the caller's. */
#include "engine.h"
#include <errno.h>
#include <stdarg.h>

enum { ERR_CAP = 2048 };
static _Thread_local char err_message[ERR_CAP];
static _Thread_local int err_status;

static const char *const status_names[] = {
  "ok", "invalid argument", "out of memory", "I/O error", "bad format", "not found",
  "unsupported", "device error", "interrupted", "database error", "limit exceeded",
  "non-finite value", "invalid state", "communication error",
};

const char *lacos_status_name(int status) {
  if (status < 0 || status >= (int)(sizeof status_names / sizeof *status_names)) return "unknown status";
  return status_names[status];
}

const char *lacos_last_error(void) { return err_status ? err_message : ""; }
int lacos_last_status(void) { return err_status; }
void lacos_error_clear(void) { err_status = 0; err_message[0] = 0; }

int lacos_error_set(int status, const char *message) {
  err_status = status;
  snprintf(err_message, ERR_CAP, "%s", message ? message : lacos_status_name(status));
  return status;
}

int fail(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_message, ERR_CAP, fmt, ap);
  va_end(ap);
  err_status = status;
  return status;
}

int fail_context(const char *fmt, ...) {
  char prefix[ERR_CAP], old[ERR_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err_message, ERR_CAP);
  /* a context chain longer than the buffer ends in "..." rather than silently */
  if (snprintf(err_message, ERR_CAP, "%s: %s", prefix, old) >= ERR_CAP) memcpy(err_message + ERR_CAP - 4, "...", 4);
  if (!err_status) err_status = LACOS_EINVAL;
  return err_status;
}

int fail_errno(const char *fmt, ...) {
  int e = errno;
  char what[ERR_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return fail(e == ENOENT ? LACOS_ENOTFOUND : e == ENOMEM ? LACOS_ENOMEM : LACOS_EIO,
              "%s: %s", what, strerror(e));
}
