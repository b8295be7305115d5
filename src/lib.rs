//! sfhead: a training engine for skeleton-based action recognition on any GPU through wgpu.

pub mod data;
pub mod gpu;
pub mod model;
