# Cross-compile for Windows x64 with Debian's mingw-w64 and run the results
# under wine64 (issue 14; docs/WINDOWS.md):
#   cmake -B build/win -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake
# Needs gcc-mingw-w64-x86-64 and wine64 (in `bash scripts/deps.sh`'s set).
# Builds the library, its Windows tests and the examples; ctest runs them
# through wine (the emulator below), as the win stage of `make test` does.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(MAY_CROSS_TRIPLE x86_64-w64-mingw32)
set(MAY_CROSS_SYSROOT /usr/${MAY_CROSS_TRIPLE})

# Debian ships two flavours of each compiler: -win32 (Win32 threads, the
# default alternative) and -posix (winpthreads as the C++ thread model).  The
# library links winpthreads for its POSIX threads either way (statically:
# CMakeLists.txt), so the plain name serves.
set(CMAKE_C_COMPILER ${MAY_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${MAY_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${MAY_CROSS_TRIPLE}-g++)
set(CMAKE_RC_COMPILER ${MAY_CROSS_TRIPLE}-windres)

# ctest (add_test) runs target executables through wine.  Debian's wine64
# package installs /usr/bin/wine (through the wine package it depends on),
# which starts the 64-bit loader for a PE32+ binary.  One wineserver for a
# whole run saves a server start per test: scripts/win-test.sh shows how.
find_program(MAY_WINE NAMES wine64 wine)
if(NOT MAY_WINE)
  set(MAY_WINE wine)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${MAY_WINE})

set(CMAKE_FIND_ROOT_PATH ${MAY_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
