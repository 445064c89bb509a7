# Synchronisation and channel benchmarks (bench/sync_*.c), each paired with
# bench/go/sync_*/main.go; run them with bench/run_sync.sh.  Included from
# bench/CMakeLists.txt.
foreach(name pingpong chan mutex sieve select timer)
  add_executable(bench_sync_${name} ${CMAKE_CURRENT_LIST_DIR}/sync_${name}.c)
  target_link_libraries(bench_sync_${name} PRIVATE may_static)
  target_compile_definitions(bench_sync_${name} PRIVATE _GNU_SOURCE)
endforeach()
