# Sanitizer proofs (tests/san/): deliberate bugs inside coroutines that the
# sanitizer of this build must report, and the same programs without the bug,
# which must stay silent.  They mean something only under their sanitizer, so
# they are built and registered only in the matching MAY_SANITIZE build (the
# valgrind stage reuses the plain debug build, where they do not exist).
#
# A test that expects a report passes on PASS_REGULAR_EXPRESSION alone: ctest
# then ignores the exit status, which is non-zero once the sanitizer has
# reported (halt_on_error, or TSan's exitcode 66).  The silent versions must
# exit 0 and print nothing from any sanitizer (FAIL_REGULAR_EXPRESSION, which
# leaves the exit status in force).
#
# The stack traces are checked for the coroutine's own functions only when
# llvm-symbolizer is on the PATH, since the sanitizer runtimes find it there;
# without it a report shows bare addresses.
if(NOT MAY_SANITIZE STREQUAL "address" AND NOT MAY_SANITIZE STREQUAL "thread")
  return()
endif()
find_program(MAY_LLVM_SYMBOLIZER llvm-symbolizer)
if(NOT MAY_LLVM_SYMBOLIZER)
  message(STATUS "llvm-symbolizer not on the PATH: the sanitizer proofs do not check "
    "function names in the reports")
endif()
# ctest's regular expressions: "." also matches a newline.
macro(may_san_expect test regex_with_names regex_without)
  if(MAY_LLVM_SYMBOLIZER)
    set_tests_properties(${test} PROPERTIES PASS_REGULAR_EXPRESSION "${regex_with_names}")
  else()
    set_tests_properties(${test} PROPERTIES PASS_REGULAR_EXPRESSION "${regex_without}")
  endif()
  set_tests_properties(${test} PROPERTIES TIMEOUT 120)
endmacro()

if(MAY_SANITIZE STREQUAL "address")
  add_executable(san_uaf san/uaf.c)
  target_link_libraries(san_uaf PRIVATE may_static)
  target_compile_definitions(san_uaf PRIVATE _GNU_SOURCE)

  add_test(NAME san_asan_uaf COMMAND san_uaf uaf)
  may_san_expect(san_asan_uaf
    "ERROR: AddressSanitizer: heap-use-after-free.*READ of size 1.* in uaf_in_coroutine .*uaf.c.* in victim .*uaf.c.*freed by thread"
    "ERROR: AddressSanitizer: heap-use-after-free.*READ of size 1")

  add_test(NAME san_asan_stack COMMAND san_uaf stack)
  may_san_expect(san_asan_stack
    "ERROR: AddressSanitizer: stack-buffer-overflow.*READ of size 1.* in overrun_in_coroutine .*uaf.c.*is located in stack of thread T[0-9]+ at offset [0-9]+ in frame.* in overrun_in_coroutine .*'buf'.* overflows this variable"
    "ERROR: AddressSanitizer: stack-buffer-overflow.*READ of size 1.*is located in stack of thread.*overflows this variable")

  # Use-after-return needs ASan's fake stacks, off by default in clang 14.
  add_test(NAME san_asan_uar COMMAND san_uaf uar)
  may_san_expect(san_asan_uar
    "ERROR: AddressSanitizer: stack-use-after-return.*READ of size 1.* in use_after_return_in_coroutine .*uaf.c.*is located in stack of thread T[0-9]+ at offset [0-9]+ in frame.* in escape_local "
    "ERROR: AddressSanitizer: stack-use-after-return.*READ of size 1.*is located in stack of thread")
  set_tests_properties(san_asan_uar PROPERTIES
    ENVIRONMENT "ASAN_OPTIONS=detect_stack_use_after_return=1")

  add_test(NAME san_asan_clean COMMAND san_uaf none)
  add_test(NAME san_asan_clean_uar COMMAND san_uaf none)
  set_tests_properties(san_asan_clean_uar PROPERTIES
    ENVIRONMENT "ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1")
  set_tests_properties(san_asan_clean san_asan_clean_uar PROPERTIES
    FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error"
    TIMEOUT 120)
endif()

if(MAY_SANITIZE STREQUAL "thread")
  add_executable(san_race san/race.c)
  target_link_libraries(san_race PRIVATE may_static)
  target_compile_definitions(san_race PRIVATE _GNU_SOURCE)

  add_test(NAME san_tsan_race COMMAND san_race race)
  may_san_expect(san_tsan_race
    "WARNING: ThreadSanitizer: data race.*#0 racy_add .*race.c.*#1 adder .*race.c.*Previous write .*#0 racy_add .*race.c"
    "WARNING: ThreadSanitizer: data race")

  foreach(m mutex chan)
    add_test(NAME san_tsan_${m} COMMAND san_race ${m})
    set_tests_properties(san_tsan_${m} PROPERTIES
      FAIL_REGULAR_EXPRESSION "Sanitizer"
      TIMEOUT 120)
  endforeach()
endif()
