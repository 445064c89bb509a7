/* A tiny program built against an installed libmay: spawn one coroutine,
 * join it and check its result. */
#include <may.h>
#include <stdint.h>
#include <stdio.h>

static void *twice(void *arg)
{
    return (void *)(2 * (intptr_t)arg);
}

int main(void)
{
    may_co_t *co = NULL;
    void *result = NULL;
    int rc = may_spawn(&co, twice, (void *)(intptr_t)21, NULL);
    if (rc != 0) {
        fprintf(stderr, "may_spawn: %d\n", rc);
        return 1;
    }
    rc = may_join(co, &result, MAY_FOREVER);
    if (rc != MAY_DONE || (intptr_t)result != 42) {
        fprintf(stderr, "may_join: rc %d, result %ld\n", rc, (long)(intptr_t)result);
        return 1;
    }
    printf("may consumer: ok (libmay %d.%d.%d)\n", MAY_VERSION_MAJOR,
           MAY_VERSION_MINOR, MAY_VERSION_PATCH);
    return 0;
}
