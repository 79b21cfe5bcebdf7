//! End-to-end scenarios live in `tests/tests/`: each starts real `kith daemon` processes in
//! temporary homes and drives them through the real `kith` binary, as a user would.
#![forbid(unsafe_code)]
