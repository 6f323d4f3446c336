/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging, after relayd's log.h: one line per event to stderr (or a file), with a level.
 * log_warn appends the text of errno; the x variants do not. fatal() is for start-up only:
 * once the daemon serves, it logs and degrades instead. Never pass a secret to these
 * functions: log key and token ids only.
 */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Sets the program name shown in each line and the threshold. Safe to call again. */
void log_init(const char *progname, enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns the level or -EINVAL. */
int log_level_parse(const char *name);
enum log_level log_get_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* TG_LOG_H */
