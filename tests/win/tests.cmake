# The test suite on Windows (issue 14, docs/WINDOWS.md): included by
# tests/CMakeLists.txt instead of the Linux list.  Each test below builds
# from the same tests/test_*.c as on Linux and runs under wine in the CI
# stage (scripts/stage.sh win, through the toolchain file's emulator).
# The tests left out use what Windows does not have: fork, signals, pipes
# and socketpairs, /proc, ELF and the dynamic loader, dense stacks, gdb,
# the interposition library; docs/WINDOWS.md has the table.
set(MAY_WIN_TESTS
  test_avx512 test_chan_basic test_chan_stress test_cls test_ctx test_fpenv test_idle
  test_million test_monitor test_panic test_park test_scope test_select test_spawn
  test_stack_usage test_sync_barrier test_sync_cond test_sync_event test_sync_rwlock
  test_sync_sem test_sync_wg test_timer_obj test_timers test_yield1
  test_io_bulk test_io_echo test_io_hostport test_io_tcp test_io_udp test_resolve
  test_cancel test_offload test_sched test_select_any test_stuck test_sync_mutex
  test_gen test_io_cat test_io_fdwait test_io_poller test_lock_thread test_udp_echo test_waitq
  test_idle_spin test_io_many
  test_dump test_handoff test_lockrank test_caveats)
foreach(name ${MAY_WIN_TESTS})
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE may_static)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  add_test(NAME ${name} COMMAND ${name})
  # wine is slow and its timing varies several-fold: generous limits
  set_tests_properties(${name} PROPERTIES TIMEOUT 300)
endforeach()
# The DLL: test_spawn again, linked against libmay.dll (which exports only
# the MAY_API functions and needs no MinGW DLL); wine finds it on WINEPATH.
add_executable(test_spawn_dll ${CMAKE_CURRENT_SOURCE_DIR}/test_spawn.c)
target_link_libraries(test_spawn_dll PRIVATE may_shared)
add_test(NAME test_spawn_dll COMMAND test_spawn_dll)
set_tests_properties(test_spawn_dll PROPERTIES TIMEOUT 300
  ENVIRONMENT "WINEPATH=$<TARGET_FILE_DIR:may_shared>")
# A coroutine's stack overflow: reported by name (the process ends with
# STATUS_STACK_OVERFLOW; the report is what is checked).
add_executable(test_overflow_win ${CMAKE_CURRENT_SOURCE_DIR}/win/test_overflow_win.c)
target_link_libraries(test_overflow_win PRIVATE may_static)
add_test(NAME test_overflow_win COMMAND test_overflow_win co)
add_test(NAME test_overflow_win_track COMMAND test_overflow_win track)
set_tests_properties(test_overflow_win test_overflow_win_track PROPERTIES TIMEOUT 120
  PASS_REGULAR_EXPRESSION "may: stack overflow in coroutine \"deep-win\" \\(stack size [0-9]+ bytes")
# Child processes on Windows (src/win/process_win.c): the test runs itself as the child.
add_executable(test_process_win ${CMAKE_CURRENT_SOURCE_DIR}/win/test_process_win.c)
target_link_libraries(test_process_win PRIVATE may_static)
add_test(NAME test_process_win COMMAND test_process_win)
set_tests_properties(test_process_win PROPERTIES TIMEOUT 300)
# Stack walks end at a coroutine's top; an exception nothing handles on a
# coroutine reaches the program's top-level filter.
add_executable(test_seh_win ${CMAKE_CURRENT_SOURCE_DIR}/win/test_seh_win.c)
target_link_libraries(test_seh_win PRIVATE may_static)
add_test(NAME test_seh_win COMMAND test_seh_win)
add_test(NAME test_seh_win_crash COMMAND test_seh_win crash)
set_tests_properties(test_seh_win test_seh_win_crash PROPERTIES TIMEOUT 120)
set_tests_properties(test_seh_win_crash PROPERTIES
  PASS_REGULAR_EXPRESSION "top-level filter: exception c0000005 in a coroutine")
# 10 000 coroutines at most under wine: wine maps each VirtualAlloc'd stack
# as three or four Linux mappings (reserved, guard, committed), so Linux's
# vm.max_map_count (65 530) ends it near 20 000 stacks; a Windows machine
# has no such limit (docs/WINDOWS.md, "Seen only under wine").
set_tests_properties(test_million test_timers PROPERTIES ENVIRONMENT MAY_TEST_SCALE=0.01)
# test_io_many: two coroutines and two sockets per connection; at most 1 000
# connections under wine (the same limit).
set_tests_properties(test_io_many PROPERTIES ENVIRONMENT MAY_TEST_SCALE=0.1)
# The Windows-only programs of tests/win/ that exercise the platform layer
# directly (the switch, SEH, stack probes, the overflow report, IOCP) are
# run by scripts/win-test.sh.
foreach(t test_sched test_idle test_million test_timers test_idle_spin test_handoff)
  if(TEST ${t})
    set_tests_properties(${t} PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()
# The examples that run as tests on Linux and apply on Windows.
if(MAY_BUILD_EXAMPLES)
  include(${CMAKE_CURRENT_SOURCE_DIR}/examples_portable.cmake)
endif()
