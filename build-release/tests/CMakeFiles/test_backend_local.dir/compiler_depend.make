# Empty compiler generated dependencies file for test_backend_local.
# This may be replaced when dependencies are built.
