/* quicksort - a parallel quick sort: each partition step hands one half to
 * a new coroutine and goes on with the other; small ranges are sorted in
 * place.  A wait group counts the coroutines still sorting.  Sorts N random
 * ints (argv[1], default 1000000) and checks the result. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "may.h"
#include "usage.h"

#define CUTOFF 2048 /* below this, sort serially */

typedef struct {
    int *a;
    long n;
} range_t;

static may_wg_t *wg;

static void insertion_sort(int *a, long n)
{
    for (long i = 1; i < n; i++) {
        int v = a[i];
        long j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static long partition(int *a, long n)
{
    int pivot = a[n / 2];
    long i = -1, j = n;
    for (;;) {
        do
            i++;
        while (a[i] < pivot);
        do
            j--;
        while (a[j] > pivot);
        if (i >= j)
            return j + 1;
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void *sort(void *arg)
{
    range_t r = *(range_t *)arg;
    free(arg);
    while (r.n > CUTOFF) {
        long mid = partition(r.a, r.n);
        range_t *right = malloc(sizeof *right);
        *right = (range_t){ r.a + mid, r.n - mid };
        may_wg_add(wg, 1);
        if (may_go(sort, right) != 0)
            abort();
        r.n = mid; /* keep the left half */
    }
    insertion_sort(r.a, r.n);
    may_wg_done(wg);
    return NULL;
}

static const char usage[] =
    "usage: quicksort [n]\n"
    "Sorts n random ints (default 1000000) in parallel and checks the result.\n";

int main(int argc, char **argv)
{
    usage_check(argc, argv, 1, usage);
    long n = argc > 1 ? usage_long(argv[1], 1, 1L << 30, usage) : 1000000;
    int *a = malloc((size_t)n * sizeof *a);
    if (!a || may_wg_new(&wg) != 0)
        return 1;
    srand(42);
    for (long i = 0; i < n; i++)
        a[i] = rand();
    int64_t t0 = may_now();
    range_t *all = malloc(sizeof *all);
    *all = (range_t){ a, n };
    may_wg_add(wg, 1);
    may_go(sort, all);
    may_wg_wait(wg, MAY_FOREVER);
    int64_t el = may_now() - t0;
    for (long i = 1; i < n; i++)
        if (a[i - 1] > a[i]) {
            printf("NOT sorted at %ld\n", i);
            return 1;
        }
    printf("sorted %ld ints in %.1f ms on %d workers\n", n, el / 1e6, may_workers());
    may_wg_free(wg);
    free(a);
    return 0;
}
