/* ctl_mcp.h: `lossctl mcp`, a Model Context Protocol server on stdin/stdout that gives an
 * assistant lossd's jobs, leaderboards, candidates and exports as tools (docs/mcp.md).
 * lossctl.c lists it in its command table. */
#ifndef CTL_MCP_H
#define CTL_MCP_H

#include "../api/client.h"

#define CTL_MCP_USAGE "[--allow-write]"
extern const CtlOpt ctl_mcp_opts[]; /* its options, for ctl_parse and lossctl help */

/* argv[0] is "mcp". Serves MCP requests read from stdin (one JSON-RPC message per line) until
 * end of input, calling the daemon at ctl->socket_path for each tool; logs nothing on stdout
 * but replies. Returns the exit status (0 at end of input, 1 when stdout fails, 2 bad usage). */
int ctl_mcp_main(Ctl *ctl, int argc, char **argv);

#endif
