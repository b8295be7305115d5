//! sfhead: a training engine for skeleton-based action recognition on any GPU through wgpu.

pub mod atomic;
pub mod bench;
pub mod data;
pub mod engine;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod testing;
pub mod train;
