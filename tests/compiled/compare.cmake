# ctest compiled_mode_same_bits: runs tests/compiled/training_steps.cpp built header-only
# (HEADER_ONLY) and against ewe::compiled (COMPILED) in WORK and fails unless both print
# the same losses to the bit and write byte-identical checkpoints, the header-only one
# compiled Eigen into its file and the compiled one did not.
#   cmake -DHEADER_ONLY=<program> -DCOMPILED=<program> -DWORK=<folder> -P compare.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
foreach(mode HEADER_ONLY COMPILED)
  execute_process(COMMAND "${${mode}}" "${WORK}/${mode}.safetensors" OUTPUT_VARIABLE out_${mode}
    ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${mode} program ${${mode}} failed (exit ${rc}):\n${out_${mode}}${err}")
  endif()
  message("${mode}:\n${out_${mode}}")
  if(out_${mode} MATCHES "nan|inf")
    message(FATAL_ERROR "${mode}: a loss is not finite")
  endif()
endforeach()
string(FIND "${out_HEADER_ONLY}" "Eigen compiled into this file: yes" eigen_header_only)
string(FIND "${out_COMPILED}" "Eigen compiled into this file: no" eigen_compiled)
if(eigen_header_only EQUAL -1 OR eigen_compiled EQUAL -1)
  message(FATAL_ERROR "expected Eigen in the header-only program's file and not in the compiled one's")
endif()
string(REGEX REPLACE "Eigen compiled into this file: [a-z]+" "" losses_header_only "${out_HEADER_ONLY}")
string(REGEX REPLACE "Eigen compiled into this file: [a-z]+" "" losses_compiled "${out_COMPILED}")
if(NOT losses_header_only STREQUAL losses_compiled)
  message(FATAL_ERROR "the losses differ between header-only and ewe::compiled (above)")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/HEADER_ONLY.safetensors"
  "${WORK}/COMPILED.safetensors" RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
  message(FATAL_ERROR "the checkpoints differ between header-only and ewe::compiled")
endif()
message("same losses to the bit and the same checkpoint, header-only and ewe::compiled")
