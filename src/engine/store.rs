use std::collections::HashMap;
use std::sync::Arc;

use super::executor::CompileError;
use super::graph::TensorInfo;
use crate::gpu::{Buffer, Gpu, GpuError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no stored tensor `{0}`")]
    Unknown(String),
    #[error("`{name}` holds {expected} values, got {got}")]
    Size {
        name: String,
        expected: usize,
        got: usize,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

struct Stored {
    name: String,
    shape: Vec<usize>,
    buffer: Arc<Buffer>,
    /// Bytes into the buffer: nonzero for a parameter kept in a pack.
    offset: u64,
    /// Whether the entry is a tensor of its own (a checkpoint key), not a pack.
    listed: bool,
}

/// Persistent tensors (parameters, running statistics, optimiser state) kept on the GPU by name,
/// so that a training graph and an evaluation graph work on the same weights. Names keep the
/// order in which they were first seen: for models, the state-dict order. A pack
/// ([`super::Graph::pack`]) is kept under its own name but not listed; its members are listed,
/// read and written where they lie in it.
#[derive(Default)]
pub struct Store {
    entries: Vec<Stored>,
    index: HashMap<String, usize>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `info` if it is known, after checking its shape.
    fn known(&self, info: &TensorInfo) -> Result<Option<&Stored>, CompileError> {
        let Some(&i) = self.index.get(&info.name) else {
            return Ok(None);
        };
        let stored = &self.entries[i];
        if stored.shape != info.shape {
            return Err(CompileError::StoreShape {
                name: info.name.clone(),
                stored: stored.shape.clone(),
                wanted: info.shape.clone(),
            });
        }
        Ok(Some(stored))
    }

    fn insert(&mut self, info: &TensorInfo, buffer: Arc<Buffer>, offset: u64, listed: bool) {
        self.index.insert(info.name.clone(), self.entries.len());
        self.entries.push(Stored {
            name: info.name.clone(),
            shape: info.shape.clone(),
            buffer,
            offset,
            listed,
        });
    }

    /// The buffer of `info` (a parameter, state or pack), created and initialised on first
    /// sight.
    pub(crate) fn buffer_for(
        &mut self,
        gpu: &Gpu,
        info: &TensorInfo,
    ) -> Result<Arc<Buffer>, CompileError> {
        if let Some(stored) = self.known(info)? {
            return Ok(stored.buffer.clone());
        }
        let buffer = Arc::new(gpu.storage_buffer(&info.name, info.bytes()));
        if let Some(init) = &info.init {
            gpu.write_buffer(&buffer, init.bytes());
        }
        self.insert(info, buffer.clone(), 0, info.role.is_stored());
        Ok(buffer)
    }

    /// Lists `info`, a parameter kept `offset` elements into `pack`, whose buffer is created on
    /// first sight; returns that buffer.
    pub(crate) fn member_of(
        &mut self,
        gpu: &Gpu,
        info: &TensorInfo,
        pack: &TensorInfo,
        offset: usize,
    ) -> Result<Arc<Buffer>, CompileError> {
        let buffer = self.buffer_for(gpu, pack)?;
        match self.known(info)? {
            None => self.insert(info, buffer.clone(), 4 * offset as u64, true),
            Some(stored) if !Arc::ptr_eq(&stored.buffer, &buffer) => {
                return Err(CompileError::StorePacking {
                    name: info.name.clone(),
                    pack: pack.name.clone(),
                });
            }
            Some(_) => {}
        }
        Ok(buffer)
    }

    /// Names in first-seen order, packs left out.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| e.listed)
            .map(|e| e.name.as_str())
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index
            .get(name)
            .map(|&i| self.entries[i].shape.as_slice())
    }

    fn entry(&self, name: &str) -> Result<&Stored, StoreError> {
        self.index
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| StoreError::Unknown(name.into()))
    }

    /// Waits for the queue and reads a tensor back.
    pub fn read(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>, StoreError> {
        let e = self.entry(name)?;
        let len = 4 * e.shape.iter().product::<usize>() as u64;
        let bytes = gpu.read_bytes_at(&e.buffer, e.offset, len)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Where the parameter `name` lies if it is packed: its pack's name and its offset in
    /// elements.
    pub fn packed_in(&self, name: &str) -> Option<(&str, usize)> {
        let member = self.entry(name).ok()?;
        self.entries
            .iter()
            .find(|e| !e.listed && Arc::ptr_eq(&e.buffer, &member.buffer))
            .map(|pack| (pack.name.as_str(), (member.offset / 4) as usize))
    }

    /// Overwrites `data.len()` values of a tensor from element `offset` on; they must lie
    /// inside it.
    pub fn write_part(
        &self,
        gpu: &Gpu,
        name: &str,
        offset: usize,
        data: &[f32],
    ) -> Result<(), StoreError> {
        let e = self.entry(name)?;
        let len: usize = e.shape.iter().product();
        if offset + data.len() > len {
            return Err(StoreError::Size {
                name: name.into(),
                expected: len - offset.min(len),
                got: data.len(),
            });
        }
        let at = e.offset + 4 * offset as u64;
        gpu.write_buffer_at(&e.buffer, at, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Overwrites a tensor (loading a checkpoint); the data must match its shape.
    pub fn write(&self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<(), StoreError> {
        let e = self.entry(name)?;
        let expected: usize = e.shape.iter().product();
        if data.len() != expected {
            return Err(StoreError::Size {
                name: name.into(),
                expected,
                got: data.len(),
            });
        }
        gpu.write_buffer_at(&e.buffer, e.offset, bytemuck::cast_slice(data));
        Ok(())
    }
}
