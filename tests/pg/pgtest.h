/*
 * tests/pg/pgtest.h: a private PostgreSQL server for tests (issue 6,
 * cp-design.md "Tests").
 *
 * pgtest_start makes a temporary directory, runs `initdb` (binaries found
 * via `pg_config --bindir`, else /usr/lib/postgresql/<newest>/bin) and starts
 * the server with `pg_ctl` on 127.0.0.1 and a free port, with its Unix
 * socket inside the directory.  PostgreSQL refuses to run as root: when the
 * test runs as root every command runs as `postgres` through
 * `runuser -u postgres` (the directory is chowned to it).  Authentication is
 * `trust`, superuser `postgres`, database `postgres`.
 *
 * Cleanup is robust: besides pgtest_stop (and an atexit hook for servers
 * the test forgot), a small guardian process watches a pipe from the test
 * and stops the server and removes the directory when the test dies in any
 * way (failed assertion, abort, SIGKILL).
 */
#ifndef KOREO_TESTS_PGTEST_H
#define KOREO_TESTS_PGTEST_H

#include <stddef.h>

typedef struct pgtest pgtest;

/* Start a server.  NULL + a message in err[n] (with the server's log tail)
 * when initdb or the start fails.  Takes a few seconds. */
pgtest *pgtest_start(char *err, size_t n);

/* "postgresql://postgres@127.0.0.1:<port>/postgres" (borrowed). */
const char *pgtest_url(const pgtest *p);
int pgtest_port(const pgtest *p);
const char *pgtest_dir(const pgtest *p); /* the temporary directory */

/* pgtest_createdb: CREATE DATABASE `name` (dropped first if it exists) and
 * write its URL to url[n].  0, or -1 + err[errn] (createdb's output). */
int pgtest_createdb(pgtest *p, const char *name, char *url, size_t n, char *err, size_t errn);

/* Stop the server (fast shutdown: clients are disconnected) but keep the
 * data, and start it again on the same port: for reconnect tests.  0, or -1
 * when pg_ctl failed. */
int pgtest_server_stop(pgtest *p);
int pgtest_server_start(pgtest *p);

/* Stop the server and remove the directory; frees p.  NULL is a no-op. */
void pgtest_stop(pgtest *p);

#endif
