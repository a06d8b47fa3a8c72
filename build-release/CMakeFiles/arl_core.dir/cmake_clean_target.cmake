file(REMOVE_RECURSE
  "libarl_core.a"
)
