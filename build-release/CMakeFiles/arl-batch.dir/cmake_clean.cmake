file(REMOVE_RECURSE
  "CMakeFiles/arl-batch.dir/runner/main.c.o"
  "CMakeFiles/arl-batch.dir/runner/main.c.o.d"
  "arl-batch"
  "arl-batch.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/arl-batch.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
