/* cmd.h -- the meridian subcommands.  Each cmd_* is the main() of one
 * subcommand: arguments, config, wiring, run loop; nothing else. */
#ifndef MR_CMD_H
#define MR_CMD_H

int cmd_node(int argc, char **argv);
int cmd_sql(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_region(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_wan(int argc, char **argv);
int cmd_edge(int argc, char **argv);
int cmd_shop(int argc, char **argv);
int cmd_gameday(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_token(int argc, char **argv);

#endif
