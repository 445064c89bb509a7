/* usage.h - the command-line conventions every example follows (included by
 * the examples only; not part of libmay).
 *
 * `-h` or `--help`, anywhere on the line, prints the usage on stdout and
 * exits 0.  An argument that is not what the usage says (an unknown option,
 * one argument too many, a number that is not one or is out of range)
 * prints the usage on stderr and exits 2, as getopt-based tools do; a bad
 * host name or port that only the system can judge is the program's own
 * error (exit 1).  The usage text starts with "usage: NAME".  The examples
 * check their arguments before the runtime starts, so -h does nothing else.
 * tests/CMakeLists.txt runs every example with -h, --help and a bad option. */
#ifndef MAY_EXAMPLE_USAGE_H
#define MAY_EXAMPLE_USAGE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bad argument: what was wrong, then the usage, on stderr; exit 2. */
static inline _Noreturn void usage_fail(const char *usage, const char *why, const char *arg)
{
    fprintf(stderr, "%s '%s'\n%s", why, arg, usage);
    exit(2);
}

/* Answer -h/--help, refuse any other option and more than max arguments. */
static inline void usage_check(int argc, char **argv, int max, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != 0)
            usage_fail(usage, "unknown option", argv[i]);
    }
    if (argc - 1 > max)
        usage_fail(usage, "one argument too many:", argv[max + 1]);
}

/* A whole decimal number in [lo, hi], or usage_fail.  hi < LONG_MAX, so an
 * overflow (strtol gives LONG_MAX or LONG_MIN) is out of range. */
static inline long usage_long(const char *s, long lo, long hi, const char *usage)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        usage_fail(usage, "not a number in range:", s);
    return v;
}

/* A number in (0, hi] (decimals allowed), or usage_fail. */
static inline double usage_positive(const char *s, double hi, const char *usage)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0 && v <= hi))
        usage_fail(usage, "not a number in range:", s);
    return v;
}

#endif
