# Empty compiler generated dependencies file for test_spawn.
# This may be replaced when dependencies are built.
