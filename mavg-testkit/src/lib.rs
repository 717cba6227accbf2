//! Test support for the `mavg` workspace, written without any of the crate's code so that it
//! can judge it (and so that `mavg`'s own unit tests can use it as a dev-dependency):
//!
//! * [`rng`]: the one pseudo-random generator, xorshift64*;
//! * [`float`]: float helpers built from bits (`2^e`, neighbours, ulps, comparisons);
//! * [`oracle`]: exact sums and correctly rounded sums and means with `num-bigint`.

pub mod float;
pub mod oracle;
pub mod rng;

pub use rng::XorShift;
