use std::collections::HashSet;
use std::sync::Arc;

use super::graph::{DType, Graph, Role, TensorId, TensorInfo};
use super::planner::{Plan, plan_activations};
use super::recorder::{Arg, DispatchSpec, Recorder};
use super::store::Store;
use crate::gpu::{
    Binding, Buffer, Dispatch, Gpu, GpuError, Readback, StagingPool, SubmissionIndex, Tuning,
};

/// Portable ceiling for one binding: browsers and some drivers stop at 2 GiB.
const PORTABLE_BINDING_LIMIT: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(
        "`{name}` needs a {bytes}-byte binding, over this adapter's limit of {limit} bytes; use a smaller batch"
    )]
    BindingTooLarge {
        name: String,
        bytes: u64,
        limit: u64,
    },
    #[error("stored tensor `{name}` has shape {stored:?}, but the graph wants {wanted:?}")]
    StoreShape {
        name: String,
        stored: Vec<usize>,
        wanted: Vec<usize>,
    },
    #[error(
        "stored tensor `{name}` has a buffer of its own, but the graph keeps it in pack `{pack}`"
    )]
    StorePacking { name: String, pack: String },
    #[error("`{name}` is not {what}")]
    Access { name: String, what: &'static str },
    #[error("`{name}` holds {expected} values, got {got}")]
    Size {
        name: String,
        expected: usize,
        got: usize,
    },
    #[error(
        "out of GPU memory allocating {mib:.0} MiB ({activation_mib:.0} MiB of it activations, which grow with the batch): {message}"
    )]
    OutOfMemory {
        mib: f64,
        activation_mib: f64,
        message: String,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Memory of a compiled step, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryReport {
    pub activation_slots: usize,
    /// Bytes of the activation slots (the planner's peak).
    pub activation_bytes: u64,
    /// What the activations would take without sharing.
    pub unshared_activation_bytes: u64,
    /// Parameters, states, inputs and constants.
    pub persistent_bytes: u64,
    pub scratch_bytes: u64,
}

impl MemoryReport {
    pub fn total_bytes(&self) -> u64 {
        self.activation_bytes + self.persistent_bytes + self.scratch_bytes
    }
}

/// Values of a submitted step on their way back (see [`Executor::run_reading`]).
pub struct PendingValues {
    readback: Readback,
    lengths: Vec<usize>,
}

/// A compiled graph: every buffer allocated, every pipeline and bind group built, so that a step
/// is one compute pass in one submission with no allocation.
pub struct Executor {
    gpu: Arc<Gpu>,
    tensors: Vec<TensorInfo>,
    buffers: Vec<Option<Arc<Buffer>>>,
    offsets: Vec<u64>,
    readable: HashSet<TensorId>,
    dispatches: Vec<Dispatch>,
    labels: Vec<String>,
    memory: MemoryReport,
    staging: StagingPool,
}

impl Executor {
    /// Plans, allocates and builds everything needed to run `graph`. Parameters and states come
    /// from `store` (created there on first sight); `keep` lists the activations the host will
    /// read after a step.
    pub fn compile(
        gpu: &Arc<Gpu>,
        graph: &Graph,
        store: &mut Store,
        keep: &[TensorId],
    ) -> Result<Self, CompileError> {
        Self::compile_tuned(gpu, graph, store, keep, gpu.tuning())
    }

    /// As [`Executor::compile`] with the kernel variants given instead of the adapter's own.
    pub fn compile_tuned(
        gpu: &Arc<Gpu>,
        graph: &Graph,
        store: &mut Store,
        keep: &[TensorId],
        tuning: Tuning,
    ) -> Result<Self, CompileError> {
        let plan = plan_activations(graph, keep);
        let specs = record(graph, &plan, tuning);
        let tensors: Vec<TensorInfo> = graph.tensors().map(|(_, t)| t.clone()).collect();

        let allocation = gpu.allocation_scope();
        let mut buffers: Vec<Option<Arc<Buffer>>> = vec![None; tensors.len()];
        // Bytes into the buffer where a tensor starts: nonzero for packed parameters only, which
        // no op binds (`Graph::push` keeps them out of nodes).
        let mut offsets = vec![0u64; tensors.len()];
        let slots: Vec<Arc<Buffer>> = plan
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| Arc::new(gpu.storage_buffer(&format!("slot {i}"), b)))
            .collect();
        let mut persistent_bytes = 0;
        for (i, info) in tensors.iter().enumerate() {
            let root = plan.root_of[i].index();
            if root != i {
                buffers[i] = buffers[root].clone();
                continue;
            }
            if let Some(packed) = info.packed {
                let pack = &tensors[packed.pack.index()];
                buffers[i] = Some(store.member_of(gpu, info, pack, packed.offset)?);
                offsets[i] = 4 * packed.offset as u64;
                continue;
            }
            buffers[i] = match info.role {
                Role::Activation => plan.slot_of[i].map(|s| slots[s].clone()),
                Role::Parameter | Role::State | Role::Pack => {
                    persistent_bytes += info.bytes();
                    Some(store.buffer_for(gpu, info)?)
                }
                Role::Input | Role::Constant => {
                    persistent_bytes += info.bytes();
                    let buffer = gpu.storage_buffer(&info.name, info.bytes());
                    if let Some(init) = &info.init {
                        gpu.write_buffer(&buffer, init.bytes());
                    }
                    Some(Arc::new(buffer))
                }
            };
        }

        let mut scratch_bytes: Vec<u64> = Vec::new();
        for spec in &specs {
            for arg in &spec.args {
                if let &Arg::Scratch { slot, bytes } = arg {
                    if scratch_bytes.len() <= slot {
                        scratch_bytes.resize(slot + 1, 0);
                    }
                    scratch_bytes[slot] = scratch_bytes[slot].max(bytes);
                }
            }
        }
        let scratch: Vec<Buffer> = scratch_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| gpu.storage_buffer(&format!("scratch {i}"), b))
            .collect();

        let limit = gpu
            .limits()
            .max_storage_buffer_binding_size
            .min(PORTABLE_BINDING_LIMIT);
        let mut dispatches = Vec::with_capacity(specs.len());
        for spec in &specs {
            let pipeline = gpu.pipeline(&spec.kernel);
            gpu.check_params(&spec.kernel, &spec.params)?;
            let mut storage = Vec::with_capacity(spec.args.len());
            for arg in &spec.args {
                let (buffer, bytes, name) = match arg {
                    Arg::Tensor(t) => {
                        let info = &tensors[t.index()];
                        let buffer = buffers[t.index()]
                            .as_deref()
                            .expect("a live node reads a planned tensor");
                        (buffer, info.bytes(), info.name.as_str())
                    }
                    &Arg::Scratch { slot, bytes } => (&scratch[slot], bytes.max(4), "scratch"),
                };
                if bytes > limit {
                    return Err(CompileError::BindingTooLarge {
                        name: name.into(),
                        bytes,
                        limit,
                    });
                }
                storage.push(Binding { buffer, bytes });
            }
            dispatches.push(gpu.dispatch(
                &spec.label,
                pipeline,
                &spec.params,
                &storage,
                spec.workgroups,
            ));
        }

        let memory = MemoryReport {
            activation_slots: plan.slot_bytes.len(),
            activation_bytes: plan.peak_bytes(),
            unshared_activation_bytes: plan.unshared_bytes,
            persistent_bytes,
            scratch_bytes: scratch_bytes.iter().sum(),
        };
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        if let Err(GpuError::OutOfMemory(message)) = allocation.finish() {
            return Err(CompileError::OutOfMemory {
                mib: mib(memory.total_bytes()),
                activation_mib: mib(memory.activation_bytes),
                message,
            });
        }
        let readable = keep
            .iter()
            .copied()
            .chain(
                tensors
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.role != Role::Activation)
                    .map(|(i, _)| TensorId(i)),
            )
            .collect();
        Ok(Self {
            gpu: gpu.clone(),
            tensors,
            buffers,
            offsets,
            readable,
            dispatches,
            labels: specs.into_iter().map(|s| s.label).collect(),
            memory,
            staging: StagingPool::default(),
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn memory(&self) -> &MemoryReport {
        &self.memory
    }

    /// The labels of the dispatches of one step, in order.
    pub fn dispatch_labels(&self) -> &[String] {
        &self.labels
    }

    fn check_input(&self, t: TensorId, dtype: DType, len: usize) -> Result<(), CompileError> {
        let info = &self.tensors[t.index()];
        if info.role != Role::Input || info.dtype != dtype {
            return Err(CompileError::Access {
                name: info.name.clone(),
                what: if dtype == DType::F32 {
                    "an f32 input"
                } else {
                    "a u32 input"
                },
            });
        }
        if len != info.numel() {
            return Err(CompileError::Size {
                name: info.name.clone(),
                expected: info.numel(),
                got: len,
            });
        }
        Ok(())
    }

    /// Sets an f32 input for the next step.
    pub fn write(&self, t: TensorId, data: &[f32]) -> Result<(), CompileError> {
        self.check_input(t, DType::F32, data.len())?;
        self.write_bytes(t, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Sets a u32 input (labels) for the next step.
    pub fn write_u32(&self, t: TensorId, data: &[u32]) -> Result<(), CompileError> {
        self.check_input(t, DType::U32, data.len())?;
        self.write_bytes(t, bytemuck::cast_slice(data));
        Ok(())
    }

    fn write_bytes(&self, t: TensorId, bytes: &[u8]) {
        let buffer = self.buffers[t.index()]
            .as_ref()
            .expect("inputs are allocated");
        self.gpu.write_buffer(buffer, bytes);
    }

    /// Records the whole step into one compute pass and submits it once.
    pub fn run(&self) -> SubmissionIndex {
        self.gpu.run("step", &self.dispatches)
    }

    /// Runs the step one dispatch at a time, each in its own submission and waited for, and
    /// returns every dispatch's label with its wall-clock time. Slower than [`Executor::run`],
    /// and meant for finding where a step's time goes.
    pub fn profile(&self) -> Vec<(String, std::time::Duration)> {
        self.dispatches
            .iter()
            .zip(&self.labels)
            .map(|(d, label)| (label.clone(), self.gpu.time_dispatch(label, d)))
            .collect()
    }

    /// Submits the step as [`Executor::run`] does, with the values of the kept f32 scalars or
    /// tensors `read` copied out in the same submission; [`Executor::collect`] returns them
    /// later without a second submission, so the next step can be encoded and submitted first.
    pub fn run_reading(&self, read: &[TensorId]) -> Result<PendingValues, CompileError> {
        let mut sources = Vec::with_capacity(read.len());
        for &t in read {
            let (buffer, info) = self.readable_f32(t)?;
            if self.offsets[t.index()] != 0 {
                return Err(CompileError::Access {
                    name: info.name.clone(),
                    what: "a tensor with a buffer of its own",
                });
            }
            sources.push((buffer, info.bytes()));
        }
        let lengths = read
            .iter()
            .map(|t| self.tensors[t.index()].numel())
            .collect();
        Ok(PendingValues {
            readback: self
                .gpu
                .run_and_copy("step", &self.dispatches, &sources, &self.staging),
            lengths,
        })
    }

    /// The values of a [`Executor::run_reading`], in its order; waits for that step only.
    pub fn collect(&self, pending: PendingValues) -> Result<Vec<Vec<f32>>, CompileError> {
        let bytes = self.gpu.collect(pending.readback, &self.staging)?;
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut at = 0;
        Ok(pending
            .lengths
            .iter()
            .map(|&n| {
                let v = values[at..at + n].to_vec();
                at += n;
                v
            })
            .collect())
    }

    fn readable_f32(&self, t: TensorId) -> Result<(&Buffer, &TensorInfo), CompileError> {
        let info = &self.tensors[t.index()];
        let buffer = self.buffers[t.index()]
            .as_deref()
            .filter(|_| self.readable.contains(&t) && info.dtype == DType::F32)
            .ok_or_else(|| CompileError::Access {
                name: info.name.clone(),
                what: "a kept f32 tensor",
            })?;
        Ok((buffer, info))
    }

    /// Waits for the queue and reads an f32 tensor: a kept activation or any non-activation.
    pub fn read(&self, t: TensorId) -> Result<Vec<f32>, CompileError> {
        let (buffer, info) = self.readable_f32(t)?;
        let bytes = self
            .gpu
            .read_bytes_at(buffer, self.offsets[t.index()], info.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

fn record(graph: &Graph, plan: &Plan, tuning: Tuning) -> Vec<DispatchSpec> {
    let mut rec = Recorder::new(graph, tuning);
    for &i in &plan.live_nodes {
        let node = &graph.nodes()[i];
        if node.op.view_of().is_some() {
            continue;
        }
        rec.set_node(format!("{}#{i}", node.op.name()));
        node.op.record(&mut rec, &node.inputs, &node.outputs);
    }
    rec.finish()
}
