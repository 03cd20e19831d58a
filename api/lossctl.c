/* lossctl.c: placeholder until the client lands. */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "lossctl: not built yet\n");
    return 1;
}
