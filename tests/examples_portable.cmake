# The examples that run as tests on Linux and Windows alike (included by
# tests/CMakeLists.txt and tests/win/tests.cmake; the Linux-only example
# tests follow in tests/CMakeLists.txt).
add_test(NAME example_primes COMMAND primes 200)
set_tests_properties(example_primes PROPERTIES PASS_REGULAR_EXPRESSION "1223")
add_test(NAME example_quicksort COMMAND quicksort 100000)
set_tests_properties(example_quicksort PROPERTIES PASS_REGULAR_EXPRESSION "sorted")
add_test(NAME example_select COMMAND select)
set_tests_properties(example_select PROPERTIES PASS_REGULAR_EXPRESSION "done")
add_test(NAME example_ticker COMMAND ticker 2000000 120)
set_tests_properties(example_ticker PROPERTIES PASS_REGULAR_EXPRESSION "148933 primes below 2000000")
set_tests_properties(example_primes example_quicksort example_select example_ticker
  PROPERTIES TIMEOUT 300)
add_test(NAME example_udp_echo COMMAND udp_echo 127.0.0.1:0 1)
set_tests_properties(example_udp_echo PROPERTIES PASS_REGULAR_EXPRESSION "udp_echo: done"
  TIMEOUT 60)
