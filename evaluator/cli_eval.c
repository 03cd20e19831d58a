/* cli_eval.c: placeholder until the subcommand lands. */
#include <stdio.h>

#include "../daemon/cli.h"

int eval_main(int argc, char **argv) {
    fprintf(stderr, "lossd %s: not built yet\n", argv[0]);
    return 1;
}
