use super::{ClipSet, Sequence};

/// Clips held in memory, in a fixed order: the form the small datasets (NW-UCLA, the format
/// examples) take once read, and the simplest `ClipSet` for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemoryClips {
    names: Vec<String>,
    labels: Vec<u32>,
    clips: Vec<Sequence>,
}

impl InMemoryClips {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: impl Into<String>, label: u32, clip: Sequence) {
        self.names.push(name.into());
        self.labels.push(label);
        self.clips.push(clip);
    }

    /// The clip without copying it (`ClipSet::clip` hands out an owned copy).
    pub fn get(&self, index: usize) -> &Sequence {
        &self.clips[index]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
}

impl ClipSet for InMemoryClips {
    fn len(&self) -> usize {
        self.clips.len()
    }

    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    fn clip(&self, index: usize) -> Sequence {
        self.clips[index].clone()
    }
}
