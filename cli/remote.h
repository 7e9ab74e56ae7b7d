/*
 * cli/remote.h: koreoctl's remote commands against koreo-controlplane's
 * HTTP API (issue 6 item 7, docs/koreoctl-remote.md).  cmd_remote.c parses
 * and runs the commands, remote_http.c holds the connection settings and
 * the libcurl requests, remote_out.c prints tables, JSON and YAML.
 */
#ifndef KOREOCTL_REMOTE_H
#define KOREOCTL_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "koreo/value.h"

/* koreoctl apply|get|delete|executions|tokens ...: `cmd` is the command
 * name, argv the arguments after it.  Exit status: 0, 1 (the server or the
 * connection failed; the message on stderr), 2 (usage). */
int cmd_remote(const char *cmd, int argc, char **argv);

/* ---- remote_http.c --------------------------------------------------------- */

/* Where and how to reach the server: flags > KOREO_SERVER / KOREO_TOKEN /
 * KOREO_CA_FILE > the config file (KOREO_CONFIG, else
 * $XDG_CONFIG_HOME/koreo/config.yaml, else ~/.config/koreo/config.yaml,
 * keys server, token, caFile).  Strings owned (remote_cfg_free). */
typedef struct remote_cfg {
  char *server, *token, *ca_file;
} remote_cfg;

/* Fill the settings not given as flags from the environment and the config
 * file.  -1 with a message on stderr when the file is unreadable or no
 * server is known. */
int remote_cfg_resolve(remote_cfg *c);
void remote_cfg_free(remote_cfg *c);

/* One answer: HTTP status, body (malloc'ed, NUL-terminated) and the body
 * parsed as JSON (NULL when it is not JSON). */
typedef struct remote_resp {
  long status;
  char *body;
  size_t len;
  kv *json;
} remote_resp;
void remote_resp_free(remote_resp *r);

/* Send METHOD path (starting "/api/v1/...", query included) with an
 * optional body.  0 when an answer came (any status), -1 with a message
 * on stderr when the connection or TLS failed. */
int remote_request(const remote_cfg *c, const char *method, const char *path, const char *body,
                   size_t len, const char *ctype, remote_resp *out);

/* Print the server's error ("koreoctl: <message>") for a status >= 400. */
void remote_print_error(const remote_resp *r);

/* Percent-encode for a path segment or query value (malloc'ed). */
char *remote_escape(const char *s);

/* ---- remote_out.c ---------------------------------------------------------- */

/* YAML (block style; strings quoted JSON-style where plain would be
 * ambiguous) and pretty JSON of a value. */
void remote_print_yaml(FILE *f, const kv *v);
void remote_print_json(FILE *f, const kv *v);

/* A table like kubectl's: upper-case headers, columns padded to the widest
 * cell plus three spaces.  `rows` is a list of lists of strings. */
void remote_print_table(FILE *f, const char *const *headers, size_t ncols, const kv *rows);

/* A cell's text for a value: strings as they are, null as "<none>",
 * others as compact JSON (malloc'ed). */
char *remote_cell(const kv *v);

#endif
