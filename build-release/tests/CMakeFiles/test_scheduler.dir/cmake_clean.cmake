file(REMOVE_RECURSE
  "CMakeFiles/test_scheduler.dir/unit/test_scheduler.c.o"
  "CMakeFiles/test_scheduler.dir/unit/test_scheduler.c.o.d"
  "test_scheduler"
  "test_scheduler.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_scheduler.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
