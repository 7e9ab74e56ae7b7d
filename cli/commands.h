/*
 * cli/commands.h: the koreoctl commands, one function per command, each in
 * its own cli/cmd_<name>.c.  Each takes the arguments after the command
 * name and returns the process exit status.
 */
#ifndef KOREOCTL_COMMANDS_H
#define KOREOCTL_COMMANDS_H

int cmd_eval(int argc, char **argv);

#endif
