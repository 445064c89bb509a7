# Cross-compile for Windows x64 with clang (target x86_64-w64-windows-gnu)
# against Debian's mingw-w64 headers and libraries, the way a Windows user
# of llvm-mingw or MSYS2's clang64 builds natively (docs/WINDOWS.md):
#   cmake -B build/win-clang -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64-clang.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(MAY_CROSS_TRIPLE x86_64-w64-mingw32)
set(MAY_CROSS_SYSROOT /usr/${MAY_CROSS_TRIPLE})
set(CMAKE_SYSROOT ${MAY_CROSS_SYSROOT}) # not the build machine's /usr/include
set(CMAKE_C_COMPILER clang)
set(CMAKE_C_COMPILER_TARGET x86_64-w64-windows-gnu)
set(CMAKE_ASM_COMPILER clang)
set(CMAKE_ASM_COMPILER_TARGET x86_64-w64-windows-gnu)
set(CMAKE_C_FLAGS_INIT "-isystem ${MAY_CROSS_SYSROOT}/include")
set(CMAKE_ASM_FLAGS_INIT "-isystem ${MAY_CROSS_SYSROOT}/include")
# clang links through MinGW-w64's binutils and libgcc (llvm-mingw would use
# lld and compiler-rt); the gcc version directory is found at configure time.
file(GLOB MAY_MINGW_GCC_DIRS /usr/lib/gcc/${MAY_CROSS_TRIPLE}/*-win32)
list(GET MAY_MINGW_GCC_DIRS 0 MAY_MINGW_GCC_DIR)
set(CMAKE_EXE_LINKER_FLAGS_INIT
  "-fuse-ld=/usr/bin/${MAY_CROSS_TRIPLE}-ld -L${MAY_MINGW_GCC_DIR} -L${MAY_CROSS_SYSROOT}/lib")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")
set(CMAKE_AR ${MAY_CROSS_TRIPLE}-ar)
set(CMAKE_RANLIB ${MAY_CROSS_TRIPLE}-ranlib)
set(CMAKE_RC_COMPILER ${MAY_CROSS_TRIPLE}-windres)
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
