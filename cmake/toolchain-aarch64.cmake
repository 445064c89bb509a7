# Cross-compile for aarch64 Linux with Debian's gcc-aarch64-linux-gnu and run
# the tests under qemu-user:
#   cmake -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#   ctest --test-dir build/aarch64
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(MAY_CROSS_TRIPLE aarch64-linux-gnu)
set(MAY_CROSS_SYSROOT /usr/${MAY_CROSS_TRIPLE})

set(CMAKE_C_COMPILER ${MAY_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${MAY_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${MAY_CROSS_TRIPLE}-g++)

# ctest (add_test) runs target executables through the emulator.
find_program(MAY_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(NOT MAY_QEMU_AARCH64)
  set(MAY_QEMU_AARCH64 qemu-aarch64)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${MAY_QEMU_AARCH64} -L ${MAY_CROSS_SYSROOT})

set(CMAKE_FIND_ROOT_PATH ${MAY_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
