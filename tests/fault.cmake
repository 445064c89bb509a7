# Fault injection (tests/test_fault.c): link test_fault with --wrap for every
# resource function libmay calls, so that its wrappers can make the Nth call
# fail.  The library itself is built as always.
if(TARGET test_fault)
  # Keep in step with FAULT_FUNCS in tests/test_fault.c.
  set(MAY_FAULT_WRAP malloc calloc realloc aligned_alloc mmap mprotect sigaltstack
    epoll_create1 epoll_ctl eventfd socket socketpair accept4 bind listen connect
    pthread_create pthread_key_create pthread_setspecific getaddrinfo open)
  foreach(fn ${MAY_FAULT_WRAP})
    target_link_options(test_fault PRIVATE "LINKER:--wrap=${fn}")
  endforeach()
  # The test counts only calls made by libmay's functions: the local symbols
  # of these source files, and the globals named may_*.
  get_target_property(_may_fault_srcs may_static SOURCES)
  set(_may_fault_names "")
  foreach(s ${_may_fault_srcs})
    get_filename_component(n ${s} NAME)
    list(APPEND _may_fault_names ${n})
  endforeach()
  string(REPLACE ";" ":" _may_fault_names "${_may_fault_names}")
  target_compile_definitions(test_fault PRIVATE MAY_FAULT_LIB_SOURCES="${_may_fault_names}")
  # The walk forks a child per point, two at a time (FAULT_JOBS); each is
  # killed after FAULT_TIMEOUT (30) s.
  set_tests_properties(test_fault PROPERTIES TIMEOUT 600 PROCESSORS 2)
endif()
