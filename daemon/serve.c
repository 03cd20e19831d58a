/* serve.c: placeholder until the subcommand lands. */
#include <stdio.h>

#include "cli.h"

int serve_main(int argc, char **argv) {
    fprintf(stderr, "lossd %s: not built yet\n", argv[0]);
    return 1;
}
