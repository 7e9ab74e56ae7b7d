/*
 * tests/agent/agent_test_util.h: helpers shared by the agent tests.
 */
#ifndef KOREO_AGENT_TEST_UTIL_H
#define KOREO_AGENT_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Remove the directory tree `d` (a test's mkdtemp folder); best effort. */
static inline void rm_rf(const char *d) {
  DIR *dp = opendir(d);
  if (!dp) return;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rm_rf(p);
    else
      unlink(p);
  }
  closedir(dp);
  rmdir(d);
}

#endif
