"""Native kernels that gen_jax calls through XLA's FFI."""
