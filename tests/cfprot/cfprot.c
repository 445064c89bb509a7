/* Control-flow protection and the context switch.  tests/CMakeLists.txt
 * builds this program and the switch (src/arch/<arch>/switch.S) with
 * -fcf-protection=full (x86-64) or -mbranch-protection=standard (aarch64);
 * tests/cfprot/run.sh runs it and then checks the GNU property notes.
 *
 * What it checks: the switch still works so built, in both forms (the
 * scheduler's may__ctx_jump and the generators' may__ctx_switch), and
 * every place an indirect branch reaches starts with a landing pad, which
 * the property note promises: on x86-64 the entry of may__ctx_start and
 * may__ctx_switch and each resume address (reached by `jmp *%rcx`) start
 * with endbr64; on aarch64 the two functions start with `bti c` (a resume
 * address is reached by `ret`, which BTI does not check).  A CPU here may
 * not enforce either, so the program looks at the instructions. */
#include "../test.h"
#include "../../src/internal.h"

#include <sys/mman.h>

/* may__ctx_jump on aarch64 reads the worker pointer after a switch. */
__thread may__worker *may__tls_w;

#if defined(__x86_64__)
static const unsigned char pad[4] = { 0xf3, 0x0f, 0x1e, 0xfa }; /* endbr64 */
#define RESUME_NEEDS_PAD 1
#elif defined(__aarch64__)
static const unsigned char pad[4] = { 0x5f, 0x24, 0x03, 0xd5 }; /* bti c */
#define RESUME_NEEDS_PAD 0
#endif

static void expect_pad(const char *what, const void *code)
{
    if (memcmp(code, pad, sizeof pad) != 0) {
        const unsigned char *c = code;
        fprintf(stderr, "cfprot: %s at %p starts with %02x %02x %02x %02x, not a landing pad\n",
                what, code, c[0], c[1], c[2], c[3]);
        abort();
    }
}

/* The resume address of a switched-out context (frame.h). */
static const void *resume_pc(const may__ctx *c)
{
    return *(void *const *)((const char *)c->sp + MAY__FRAME_PC);
}

static may__ctx main_ctx, jump_ctx, call_ctx;
static int jumps, calls;

static void jump_body(void *arg)
{
    (void)arg;
    for (;;) {
        jumps++;
        may__ctx_jump(&jump_ctx, &main_ctx, NULL);
    }
}

static void call_body(void *arg)
{
    (void)arg;
    for (;;) {
        calls++;
        may__ctx_switch(&call_ctx, &main_ctx);
    }
}

int main(void)
{
    size_t sz = 64 * 1024;
    char *a = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *b = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(a != MAP_FAILED && b != MAP_FAILED);
    expect_pad("may__ctx_start", (const void *)may__ctx_start);
    expect_pad("may__ctx_switch", (const void *)may__ctx_switch);

    may__ctx_make(&jump_ctx, a + sz, jump_body, NULL);
    may__ctx_make(&call_ctx, b + sz, call_body, NULL);
    for (int i = 1; i <= 3; i++) {
        may__ctx_jump(&main_ctx, &jump_ctx, NULL);
        ASSERT_EQ(jumps, i);
        may__ctx_switch(&main_ctx, &call_ctx);
        ASSERT_EQ(calls, i);
        if (RESUME_NEEDS_PAD) {
            expect_pad("may__ctx_jump's resume address", resume_pc(&jump_ctx));
            expect_pad("may__ctx_switch's resume address", resume_pc(&call_ctx));
        }
    }
    munmap(a, sz);
    munmap(b, sz);
    printf("cfprot: the switch works, landing pads in place\n");
    return 0;
}
