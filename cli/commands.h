/*
 * cli/commands.h: the koreoctl commands, one function per command, each in
 * its own cli/cmd_<name>.c.  Each takes the arguments after the command
 * name and returns the process exit status.
 */
#ifndef KOREOCTL_COMMANDS_H
#define KOREOCTL_COMMANDS_H

int cmd_eval(int argc, char **argv);
/* koreoctl validate [PATH...] [-o text|json] [-q] (cli/cmd_validate.c) */
int cmd_validate(int argc, char **argv);
/* koreoctl test [PATH...] [-o text|json|junit] [--run REGEX] [-v] (cli/cmd_test.c) */
int cmd_test(int argc, char **argv);
/* koreoctl run --workflow NAME --trigger FILE [--loops N] [-o text|json] [PATH...]
 * (cli/cmd_run.c) */
int cmd_run(int argc, char **argv);

#endif
