/* replay_main.c - run a fuzz target's LLVMFuzzerTestOneInput on saved inputs.
 *
 *   fuzz_replay_<target> [FILE|DIR]...
 *
 * Every FILE, and every regular file of every DIR (in name order, not
 * recursive), is read and passed to LLVMFuzzerTestOneInput once.  Without
 * arguments it replays FUZZ_CORPUS, the target's corpus in the source tree
 * (fuzz/corpus/<target>/), so the program also runs bare (scripts/valgrind.sh
 * runs test executables without arguments).  This is how the corpus becomes
 * a regression test with any compiler, including gcc, the aarch64 cross
 * build and valgrind, where libFuzzer's own main is not available.
 *
 * A target may define LLVMFuzzerInitialize (called first, as libFuzzer does)
 * and fuzz_replay_done (called after the last input; it checks whatever
 * must hold at the end, e.g. that the runtime shuts down cleanly).
 *
 * Exit status: 0 after every input ran; 1 when an argument cannot be read
 * or no input was found.  A failing input aborts, as under libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void fuzz_replay_done(void) __attribute__((weak));

#ifndef FUZZ_CORPUS
#define FUZZ_CORPUS "corpus"
#endif

static long replayed;

/* Read path whole and run it.  0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "%s: out of memory\n", path);
            fclose(f);
            return -1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    /* a copy of exactly len bytes, so ASan sees an overread past the input */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        free(buf);
        return -1;
    }
    memcpy(copy, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    replayed++;
    return 0;
}

static int skip_entry(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static int replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, skip_entry, alphasort);
    if (n < 0) {
        perror(path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        if (rc == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = replay_file(full);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *dflt[] = { FUZZ_CORPUS };
    char **paths = argc > 1 ? argv + 1 : dflt;
    int npaths = argc > 1 ? argc - 1 : 1;
    for (int i = 0; i < npaths; i++)
        if (replay_path(paths[i]) < 0)
            return 1;
    if (fuzz_replay_done)
        fuzz_replay_done();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s: replayed %ld inputs in %.2f s\n", argv[0], replayed, s);
    if (replayed == 0) {
        fprintf(stderr, "%s: no inputs found\n", argv[0]);
        return 1;
    }
    return 0;
}
