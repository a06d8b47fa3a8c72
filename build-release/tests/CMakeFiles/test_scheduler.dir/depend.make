# Empty dependencies file for test_scheduler.
# This may be replaced when dependencies are built.
