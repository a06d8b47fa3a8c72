# Empty compiler generated dependencies file for arl-batch.
# This may be replaced when dependencies are built.
