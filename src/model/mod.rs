//! Models: each builds its forward graph from a config and owns its parameter names and
//! initialisation.

pub mod init;
pub mod tiny;
