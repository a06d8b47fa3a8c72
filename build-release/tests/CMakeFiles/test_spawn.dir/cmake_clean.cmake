file(REMOVE_RECURSE
  "CMakeFiles/test_spawn.dir/unit/test_spawn.c.o"
  "CMakeFiles/test_spawn.dir/unit/test_spawn.c.o.d"
  "test_spawn"
  "test_spawn.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_spawn.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
