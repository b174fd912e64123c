# ewe::compiled (option EWE_BUILD_COMPILED, on by default): ewe's optional compiled part,
# as fmt's and spdlog's compiled modes. A static library, libewe_cpu.a, holds the CPU
# backend for float and double (Eigen is compiled there only: include/ewe/compiled/cpu_backend.cpp) and the
# float code of the layers, models, loss, optimizers, callbacks and Trainer
# (include/ewe/compiled/instantiations.cpp). Linking ewe::compiled instead of ewe::ewe defines
# EWE_COMPILED_LIBRARY for the program: <ewe/ewe.hpp> then leaves out the CPU backend's
# Eigen code and the headers' `extern template` declarations keep the program from
# compiling that code again. Header-only (ewe::ewe) stays the default.
# Position-independent (for linking into a shared library) when CMAKE_POSITION_INDEPENDENT_CODE
# is on. Included by the top-level CMakeLists.txt after ewe and ewe_project_flags exist.
option(EWE_BUILD_COMPILED "Build ewe::compiled, the optional compiled part (libewe_cpu.a)" ON)
if(NOT EWE_BUILD_COMPILED AND (EWE_BUILD_EXAMPLES OR EWE_BUILD_TESTS))
  message(FATAL_ERROR "EWE_BUILD_COMPILED=OFF, but the example programs and the tests link ewe::compiled: "
    "configure with -DEWE_BUILD_EXAMPLES=OFF -DEWE_BUILD_TESTS=OFF too, or leave EWE_BUILD_COMPILED on")
endif()
if(EWE_BUILD_COMPILED)
  add_library(ewe_compiled STATIC ${PROJECT_SOURCE_DIR}/include/ewe/compiled/cpu_backend.cpp
    ${PROJECT_SOURCE_DIR}/include/ewe/compiled/instantiations.cpp)
  add_library(ewe::compiled ALIAS ewe_compiled)
  set_target_properties(ewe_compiled PROPERTIES EXPORT_NAME compiled OUTPUT_NAME ewe_cpu)
  # Inside another project (add_subdirectory(ewe)) it is built only when a target links it.
  if(NOT PROJECT_IS_TOP_LEVEL)
    set_target_properties(ewe_compiled PROPERTIES EXCLUDE_FROM_ALL ON)
  endif()
  target_link_libraries(ewe_compiled PUBLIC ewe)
  target_compile_definitions(ewe_compiled PUBLIC EWE_COMPILED_LIBRARY)
  # The project's own compile options (warnings; -march=<EWE_ARCH> comes with ewe): the
  # library's code is then the code a header-only program of this build gets.
  target_compile_options(ewe_compiled PRIVATE $<TARGET_PROPERTY:ewe_project_flags,INTERFACE_COMPILE_OPTIONS>)
  # OPTIONAL: `cmake --install` right after configure installs the header-only library
  # and says how to build this one (the package then has no ewe::compiled).
  install(TARGETS ewe_compiled EXPORT eweCompiledTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} OPTIONAL)
  install(CODE "
    if(NOT EXISTS \"$<TARGET_FILE:ewe_compiled>\")
      message(STATUS \"ewe: $<TARGET_FILE_NAME:ewe_compiled> (ewe::compiled) is not built, so not installed. \"
        \"For ewe::compiled: cmake --build ${PROJECT_BINARY_DIR} --target ewe_compiled, then install again\")
    endif()")
  install(EXPORT eweCompiledTargets NAMESPACE ewe:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ewe)
endif()
