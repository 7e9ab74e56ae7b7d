/*
 * tests/pg/pgtest.c: the private PostgreSQL server of the tests
 * (tests/pg/pgtest.h): initdb + pg_ctl in a temporary directory, run as
 * `postgres` via runuser when root, and a guardian process that cleans up
 * if the test dies.
 */
#include "pgtest.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct pgtest {
  char dir[256];    /* the temporary directory (owned by the server's user) */
  char data[300];   /* dir/data */
  char bindir[256]; /* PostgreSQL's binaries */
  char url[128];
  int port;
  bool root; /* run the server's commands through runuser */
  uid_t uid; /* postgres' uid/gid when root */
  gid_t gid;
  pid_t guardian; /* cleans up when the test dies */
  int guard_fd;   /* write end of the guardian's pipe */
};

static void fmt_err(char *err, size_t n, const char *fmt, ...) {
  if (!err || !n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}

/* Where initdb and pg_ctl live. */
static bool find_bindir(char *out, size_t n) {
  FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
  if (f) {
    char line[256] = "";
    if (fgets(line, sizeof line, f)) {
      line[strcspn(line, "\r\n")] = 0;
      char probe[300];
      snprintf(probe, sizeof probe, "%s/initdb", line);
      if (access(probe, X_OK) == 0) {
        pclose(f);
        snprintf(out, n, "%s", line);
        return true;
      }
    }
    pclose(f);
  }
  glob_t g;
  bool ok = false;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
    /* the newest version: glob sorts, so the last one (10+ sort after 9) */
    const char *best = g.gl_pathv[g.gl_pathc - 1];
    size_t len = strlen(best) - strlen("/initdb");
    snprintf(out, n, "%.*s", (int)len, best);
    ok = true;
  }
  globfree(&g);
  return ok;
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(s, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(s);
  return port;
}

/* Run argv (argv[0] a path) as the server's user, output appended to
 * dir/cmd.log.  Returns the exit status, or -1 when it could not run. */
static int run(const pgtest *p, char *const argv[]) {
  char log[300];
  snprintf(log, sizeof log, "%s/cmd.log", p->dir);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    setenv("LC_ALL", "C", 1);
    unsetenv("PGDATA");
    if (p->root) {
      char *args[32];
      size_t k = 0;
      args[k++] = "runuser";
      args[k++] = "-u";
      args[k++] = "postgres";
      args[k++] = "--";
      for (size_t i = 0; argv[i] && k < 31; i++)
        args[k++] = argv[i];
      args[k] = NULL;
      execvp("runuser", args);
    } else {
      execv(argv[0], argv);
    }
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The last `max` bytes of a file, for error messages. */
static void tail(const char *path, char *out, size_t max) {
  out[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  long from = len > (long)max - 1 ? len - ((long)max - 1) : 0;
  fseek(f, from, SEEK_SET);
  size_t got = fread(out, 1, max - 1, f);
  out[got] = 0;
  fclose(f);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int ctl(const pgtest *p, const char *action) {
  char pgctl[300], logf[300], opts[400];
  snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", p->bindir);
  snprintf(logf, sizeof logf, "%s/server.log", p->dir);
  if (strcmp(action, "start") == 0) {
    snprintf(opts, sizeof opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
             p->port, p->dir);
    char *argv[] = {pgctl, "-D", (char *)p->data, "-l", logf, "-o", opts, "-w",
                    "-t",  "60", "start",         NULL};
    return run(p, argv);
  }
  char *argv[] = {pgctl, "-D", (char *)p->data, "-m", (char *)action, "-w",
                  "-t",  "60", "stop",          NULL};
  return run(p, argv);
}

/* The guardian: waits for EOF (the test died) or 'q' (pgtest_stop already
 * cleaned up) on its pipe. */
static void guardian_main(pgtest *p, int rfd) {
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int null = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 1024; fd++)
    if (fd != rfd && fd != null) close(fd);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  char c = 0;
  ssize_t r;
  while ((r = read(rfd, &c, 1)) < 0 && errno == EINTR) {
  }
  if (r == 1 && c == 'q') _exit(0);
  ctl(p, "immediate");
  rm_rf(p->dir);
  _exit(0);
}

const char *pgtest_url(const pgtest *p) { return p->url; }
int pgtest_port(const pgtest *p) { return p->port; }
const char *pgtest_dir(const pgtest *p) { return p->dir; }

int pgtest_server_stop(pgtest *p) { return ctl(p, "fast") == 0 ? 0 : -1; }
int pgtest_server_start(pgtest *p) { return ctl(p, "start") == 0 ? 0 : -1; }

int pgtest_createdb(pgtest *p, const char *name, char *url, size_t n, char *err, size_t errn) {
  char port[16], bin[300], logp[300], msg[1024];
  snprintf(port, sizeof port, "%d", p->port);
  snprintf(logp, sizeof logp, "%s/cmd.log", p->dir);
  snprintf(bin, sizeof bin, "%s/dropdb", p->bindir);
  char *dargv[] = {bin,  "-h",       "127.0.0.1",   "-p",         port,
                   "-U", "postgres", "--if-exists", (char *)name, NULL};
  if (run(p, dargv) != 0) {
    tail(logp, msg, sizeof msg);
    fmt_err(err, errn, "pgtest: dropdb %s failed: %s", name, msg);
    return -1;
  }
  snprintf(bin, sizeof bin, "%s/createdb", p->bindir);
  char *cargv[] = {bin, "-h", "127.0.0.1", "-p", port, "-U", "postgres", (char *)name, NULL};
  if (run(p, cargv) != 0) {
    tail(logp, msg, sizeof msg);
    fmt_err(err, errn, "pgtest: createdb %s failed: %s", name, msg);
    return -1;
  }
  snprintf(url, n, "postgresql://postgres@127.0.0.1:%d/%s", p->port, name);
  return 0;
}

pgtest *pgtest_start(char *err, size_t n) {
  pgtest *p = calloc(1, sizeof *p);
  if (!p) {
    fmt_err(err, n, "pgtest: out of memory");
    return NULL;
  }
  p->guard_fd = -1;
  if (!find_bindir(p->bindir, sizeof p->bindir)) {
    fmt_err(err, n,
            "pgtest: no PostgreSQL server binaries (pg_config --bindir, "
            "/usr/lib/postgresql/*/bin/initdb); install postgresql");
    free(p);
    return NULL;
  }
  p->root = geteuid() == 0;
  if (p->root) {
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
      fmt_err(err, n, "pgtest: running as root but there is no user 'postgres' to run the server");
      free(p);
      return NULL;
    }
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(p->dir, sizeof p->dir, "%s/koreo-pg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(p->dir)) {
    fmt_err(err, n, "pgtest: mkdtemp %s: %s", p->dir, strerror(errno));
    free(p);
    return NULL;
  }
  chmod(p->dir, 0755);
  if (p->root && chown(p->dir, p->uid, p->gid) != 0) {
    fmt_err(err, n, "pgtest: chown %s to postgres: %s", p->dir, strerror(errno));
    rm_rf(p->dir);
    free(p);
    return NULL;
  }
  snprintf(p->data, sizeof p->data, "%s/data", p->dir);

  /* the guardian first, so a crash during initdb/start still cleans up */
  int fds[2];
  if (pipe(fds) != 0) {
    fmt_err(err, n, "pgtest: pipe: %s", strerror(errno));
    rm_rf(p->dir);
    free(p);
    return NULL;
  }
  pid_t g = fork();
  if (g == 0) {
    close(fds[1]);
    guardian_main(p, fds[0]);
  }
  close(fds[0]);
  if (g < 0) {
    fmt_err(err, n, "pgtest: fork: %s", strerror(errno));
    close(fds[1]);
    rm_rf(p->dir);
    free(p);
    return NULL;
  }
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  p->guardian = g;
  p->guard_fd = fds[1];

  char initdb[300], logp[300], msg[1024];
  snprintf(initdb, sizeof initdb, "%s/initdb", p->bindir);
  snprintf(logp, sizeof logp, "%s/cmd.log", p->dir);
  char *iargv[] = {initdb,  "-D", p->data, "-U",         "postgres",  "-A",
                   "trust", "-E", "UTF8",  "--locale=C", "--no-sync", NULL};
  if (run(p, iargv) != 0) {
    tail(logp, msg, sizeof msg);
    fmt_err(err, n, "pgtest: initdb -D %s failed: %s", p->data, msg);
    pgtest_stop(p);
    return NULL;
  }
  int rc = -1;
  for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
    p->port = free_port();
    if (p->port <= 0) continue;
    rc = ctl(p, "start");
  }
  if (rc != 0) {
    char slog[300];
    snprintf(slog, sizeof slog, "%s/server.log", p->dir);
    tail(slog, msg, sizeof msg);
    fmt_err(err, n, "pgtest: pg_ctl start (port %d) failed: %s", p->port, msg);
    pgtest_stop(p);
    return NULL;
  }
  snprintf(p->url, sizeof p->url, "postgresql://postgres@127.0.0.1:%d/postgres", p->port);
  return p;
}

void pgtest_stop(pgtest *p) {
  if (!p) return;
  if (p->port > 0) ctl(p, "immediate");
  rm_rf(p->dir);
  if (p->guard_fd >= 0) {
    ssize_t w = write(p->guard_fd, "q", 1);
    (void)w;
    close(p->guard_fd);
  }
  if (p->guardian > 0) waitpid(p->guardian, NULL, 0);
  free(p);
}
