//! Loom models of `mavg`'s shared moving averages live in `tests/`; this crate has no code.
