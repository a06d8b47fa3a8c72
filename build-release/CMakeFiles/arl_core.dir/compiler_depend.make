# Empty compiler generated dependencies file for arl_core.
# This may be replaced when dependencies are built.
