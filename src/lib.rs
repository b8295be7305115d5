//! sfhead: a training engine for skeleton-based action recognition on any GPU through wgpu.

pub mod atomic;
pub mod bench;
pub mod data;
pub mod engine;
pub mod ensemble;
pub mod error;
pub mod eval;
pub mod gpu;
pub mod interop;
pub mod model;
pub mod ops;
pub mod report;
pub mod scores;
pub mod testing;
pub mod train;
