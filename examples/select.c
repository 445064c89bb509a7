/* select - one coroutine waits on several channels at once.  Three
 * producers tick at different rates on their own channels; the consumer
 * takes whichever is ready (at random among those ready at once), and
 * gives up when nothing arrives for 100 ms.  Producers stop once their
 * channel is closed. */
#include <errno.h>
#include <stdio.h>
#include "may.h"
#include "usage.h"

enum { NPROD = 3 };
static const char *names[NPROD] = { "fast", "medium", "slow" };
static const int64_t period_ms[NPROD] = { 10, 25, 60 };

typedef struct {
    may_chan_t *ch;
    int id;
    int count; /* ticks to send before going quiet */
} producer_t;

static void *producer(void *arg)
{
    producer_t *p = arg;
    for (int i = 1; i <= p->count; i++) {
        may_sleep(period_ms[p->id] * 1000000);
        if (may_chan_send(p->ch, &i, MAY_FOREVER) != 0)
            break; /* closed */
    }
    return NULL;
}

static const char usage[] =
    "usage: select\n"
    "One coroutine selects over three ticking channels until 100 ms pass in silence.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 0, usage);
    producer_t p[NPROD];
    may_co_t *co[NPROD];
    may_select_case_t cases[NPROD];
    int tick;
    for (int i = 0; i < NPROD; i++) {
        p[i] = (producer_t){ .id = i, .count = 4 };
        may_chan_make(&p[i].ch, int, 0);
        may_spawn(&co[i], producer, &p[i], NULL);
        cases[i] = (may_select_case_t){ MAY_SELECT_RECV, p[i].ch, &tick, 0 };
    }
    for (;;) {
        int i = may_select(cases, NPROD, may_deadline_in(100 * 1000000));
        if (i == -ETIMEDOUT) {
            printf("nothing for 100 ms: done\n");
            break;
        }
        printf("%-6s tick %d\n", names[i], tick);
    }
    for (int i = 0; i < NPROD; i++) {
        may_chan_close(p[i].ch);
        may_join(co[i], NULL, MAY_FOREVER);
        may_chan_free(p[i].ch);
    }
    return 0;
}
