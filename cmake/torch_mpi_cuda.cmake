# The dependencies of the full build that the checks build (LONGREC_TORCH_FREE)
# leaves out: MPI, cpp-httplib, the CUDA toolkit and NCCL (optional), LibTorch
# from the torch wheel, and fmt's headers ahead of the copy LibTorch bundles.
find_package(MPI REQUIRED COMPONENTS C)
# longrec uses the MPI C API only; skip the deprecated C++ bindings.
add_compile_definitions(OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
# cpp-httplib as Debian builds it (a shared library; its Cflags select the ABI).
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# LibTorch comes from the torch wheel in .venv (scripts/setup.sh pins it).
set(LONGREC_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH "Python whose torch wheel provides LibTorch")
if(NOT Torch_DIR AND EXISTS "${LONGREC_PYTHON}")
  execute_process(
    COMMAND "${LONGREC_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE LONGREC_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
  if(_torch_rc EQUAL 0)
    list(APPEND CMAKE_PREFIX_PATH "${LONGREC_TORCH_PREFIX}")
  endif()
endif()

# CUDA toolkit and NCCL (optional).
set(LONGREC_WITH_CUDA OFF)
if(NOT LONGREC_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/include /usr/include)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/lib /usr/lib/x86_64-linux-gnu)
  endif()
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(LONGREC_WITH_CUDA ON)
    add_library(longrec_nccl INTERFACE)
    target_include_directories(longrec_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(longrec_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    message(STATUS "longrec: CUDA ${CUDAToolkit_VERSION} and NCCL (${NCCL_LIBRARY}) found: building the CUDA/NCCL parts")
  elseif(LONGREC_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LONGREC_CUDA=ON but the CUDA toolkit or NCCL was not found (CUDAToolkit_FOUND=${CUDAToolkit_FOUND}, NCCL_INCLUDE_DIR=${NCCL_INCLUDE_DIR}, NCCL_LIBRARY=${NCCL_LIBRARY})")
  else()
    message(STATUS "longrec: no CUDA toolkit/NCCL found: building CPU only")
  endif()
endif()

# longrec_torch: the one target through which code links LibTorch.
add_library(longrec_torch INTERFACE)
if(LONGREC_WITH_CUDA)
  # The CUDA wheel's CMake config otherwise compiles and runs a probe on the
  # local GPU, which fails where there is none; longrec targets H100/H200 (sm_90).
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures for LibTorch's CMake config")
  find_package(Torch REQUIRED)
  target_link_libraries(longrec_torch INTERFACE ${TORCH_LIBRARIES})
  message(STATUS "longrec: LibTorch ${Torch_VERSION} (CUDA) from ${Torch_DIR}")
else()
  # LibTorch's CMake config refuses to load without a CUDA toolkit when the
  # wheel was built with CUDA (PyPI's is). CPU code needs only these three
  # libraries; the CUDA ones they load at run time come with the wheel.
  if(NOT LONGREC_TORCH_PREFIX)
    message(FATAL_ERROR "LibTorch not found: run scripts/setup.sh (it installs the torch wheel into .venv) "
                        "or set LONGREC_PYTHON to a Python with torch installed")
  endif()
  get_filename_component(_torch_root "${LONGREC_TORCH_PREFIX}/../.." ABSOLUTE)
  foreach(_lib torch torch_cpu c10)
    find_library(LONGREC_LIB_${_lib} ${_lib} PATHS "${_torch_root}/lib" NO_DEFAULT_PATH REQUIRED)
    target_link_libraries(longrec_torch INTERFACE "${LONGREC_LIB_${_lib}}")
  endforeach()
  target_include_directories(longrec_torch SYSTEM INTERFACE "${_torch_root}/include"
                             "${_torch_root}/include/torch/csrc/api/include")
  execute_process(COMMAND "${LONGREC_PYTHON}" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
                  OUTPUT_VARIABLE _torch_abi OUTPUT_STRIP_TRAILING_WHITESPACE)
  target_compile_definitions(longrec_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_torch_abi})
  set_property(TARGET longrec_torch APPEND PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_torch_root}/lib")
  message(STATUS "longrec: LibTorch (CPU libraries) from ${_torch_root}")
endif()
# libtorch.so exports its own copies of some libstdc++ symbols (std::filesystem
# among them) that crash when they win symbol lookup. Listing libstdc++ first
# among the needed libraries makes the dynamic linker resolve to it.
target_link_options(longrec_torch INTERFACE "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")

# LibTorch's include directory bundles a newer fmt whose library it does not
# export. Put the headers of the fmt we link (Debian's) ahead of it with -I
# (torch's directories are -isystem), so every translation unit compiles
# against the headers of the library it links.
get_target_property(_fmt_include_dirs fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
find_path(LONGREC_FMT_INCLUDE_DIR fmt/format.h PATHS ${_fmt_include_dirs} NO_DEFAULT_PATH)
set(_fmt_first "${CMAKE_BINARY_DIR}/fmt-first")
file(MAKE_DIRECTORY "${_fmt_first}")
file(CREATE_LINK "${LONGREC_FMT_INCLUDE_DIR}/fmt" "${_fmt_first}/fmt" SYMBOLIC)
add_library(longrec_fmt INTERFACE)
target_include_directories(longrec_fmt BEFORE INTERFACE "${_fmt_first}")
target_link_libraries(longrec_fmt INTERFACE fmt::fmt)

