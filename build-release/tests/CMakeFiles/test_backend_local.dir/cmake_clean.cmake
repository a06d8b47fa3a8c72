file(REMOVE_RECURSE
  "CMakeFiles/test_backend_local.dir/unit/test_backend_local.c.o"
  "CMakeFiles/test_backend_local.dir/unit/test_backend_local.c.o.d"
  "test_backend_local"
  "test_backend_local.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_backend_local.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
