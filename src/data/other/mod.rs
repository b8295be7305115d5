//! Readers for single-sample formats of other skeleton datasets, kept as format examples:
//! MSR Daily Activity 3D text and UTD-MHAD (its `.mat` skeletons as CSV).

mod msr;
mod utd;

pub use msr::{MsrClip, parse_msr};
pub use utd::{UTD_JOINTS, UtdClip, parse_utd_csv};
