/* The plugin tests/test_dump_dlopen.c loads: its constructor, which the
 * dynamic loader runs while it holds its own lock, calls back into the
 * test (which exports the function). */
void dump_dlopen_in_ctor(void);

__attribute__((constructor)) static void plugin_init(void)
{
    dump_dlopen_in_ctor();
}
