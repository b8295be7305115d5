use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::adapter::{self, AdapterReport};
use super::shader::{Kernel, ParamsLayout, Shader, expand_includes, params_layouts};
use super::tuning::Tuning;

/// Submissions allowed in flight before `submit` waits for the oldest (back-pressure: without
/// it a fast host queues work until the driver runs out of memory).
const MAX_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found. Install a Vulkan, Metal or DX12 driver; on Debian or Ubuntu without a GPU, \
         `apt-get install mesa-vulkan-drivers` provides the lavapipe software driver"
    )]
    NoAdapter,
    #[error("no adapter matches `{selector}`; adapters found: {found}")]
    NoMatch { selector: String, found: String },
    #[error("could not open a device on {adapter}: {source}")]
    RequestDevice {
        adapter: String,
        source: wgpu::RequestDeviceError,
    },
    #[error("reading back a buffer failed: {0}")]
    Readback(String),
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    #[error(
        "kernel `{shader}::{entry}` is given {given} bytes of parameters, but its WGSL struct {wgsl}"
    )]
    Params {
        shader: &'static str,
        entry: &'static str,
        given: usize,
        wgsl: String,
    },
}

/// Allocations whose out-of-memory errors are caught rather than left to wgpu's default
/// handler (which aborts); see [`Gpu::allocation_scope`].
pub struct AllocationScope(wgpu::ErrorScopeGuard);

impl AllocationScope {
    /// Ends the scope: the first out-of-memory error of the allocations made in it, if any.
    pub fn finish(self) -> Result<(), GpuError> {
        match pollster::block_on(self.0.pop()) {
            Some(error) => Err(GpuError::OutOfMemory(error.to_string())),
            None => Ok(()),
        }
    }
}

type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// A device and queue on the chosen adapter, opened with the adapter's own limits, plus the
/// caches every op shares.
pub struct Gpu {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    report: AdapterReport,
    tuning: Tuning,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    params: Mutex<HashMap<&'static str, Vec<(String, ParamsLayout)>>>,
    in_flight: Mutex<VecDeque<wgpu::SubmissionIndex>>,
    submissions: AtomicU64,
}

impl Gpu {
    /// Opens the best adapter, or the best one whose name or backend contains `selector`
    /// (falling back to the `SFHEAD_ADAPTER` environment variable).
    pub fn new(selector: Option<&str>) -> Result<Self, GpuError> {
        let env_selector = std::env::var(super::ADAPTER_ENV).ok();
        let selector = selector
            .or(env_selector.as_deref())
            .filter(|s| !s.is_empty());
        let instance = adapter::instance();
        let adapters = adapter::enumerate(&instance);
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
        let index = adapter::choose(&infos, selector).ok_or_else(|| GpuError::NoMatch {
            selector: selector.unwrap_or_default().to_string(),
            found: infos
                .iter()
                .map(|i| format!("{} ({:?})", i.name, i.backend))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let chosen = &adapters[index];
        let report = AdapterReport::of(chosen);
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("sfhead"),
            // Only what the kernels use: none of the optional features so far.
            required_features: wgpu::Features::empty(),
            // The adapter's own limits, not WebGPU's defaults (128 MiB bindings, 16 KiB of
            // workgroup memory, 8 storage buffers per stage are too small for training).
            required_limits: report.limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(chosen.request_device(&descriptor)).map_err(|source| {
                GpuError::RequestDevice {
                    adapter: report.summary(),
                    source,
                }
            })?;
        let tuning = Tuning::for_adapter(
            report.info.device_type,
            report.limits.max_storage_buffers_per_shader_stage,
        );
        let adapter_name = report.info.name.clone();
        device.set_device_lost_callback(move |reason, message| {
            // Dropping the device reports `Destroyed`; anything else is the driver's doing.
            if reason != wgpu::DeviceLostReason::Destroyed {
                eprintln!(
                    "the GPU device on {adapter_name} was lost ({message}): the driver reset or the \
                     GPU went away. Checkpoints already written are intact; continue with \
                     `sfhead train --resume WORK_DIR` once the device is back."
                );
            }
        });
        Ok(Self {
            device,
            queue,
            report,
            tuning,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            params: Mutex::default(),
            in_flight: Mutex::default(),
            submissions: AtomicU64::new(0),
        })
    }

    pub fn report(&self) -> &AdapterReport {
        &self.report
    }

    /// Whether the adapter is a CPU driver such as lavapipe.
    pub fn is_software(&self) -> bool {
        self.report.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The kernel variants used on this adapter.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.report.limits
    }

    /// The compute pipeline of `kernel`, compiled on first use and cached for the device's life.
    pub fn pipeline(&self, kernel: &Kernel) -> Arc<wgpu::ComputePipeline> {
        let key = kernel.cache_key();
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let module = self.module(kernel.shader);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .lock()
            .unwrap()
            .entry(key)
            .or_insert(pipeline)
            .clone()
    }

    /// Checks `params` against the WGSL parameter struct of `kernel` (naga's reflection): the
    /// same size, and no implicit padding, so that the Rust struct that wrote `params` and the
    /// shader's cannot disagree by padding.
    pub fn check_params(&self, kernel: &Kernel, params: &[u8]) -> Result<(), GpuError> {
        let mut cache = self.params.lock().unwrap();
        let layouts = cache.entry(kernel.shader.name).or_insert_with(|| {
            params_layouts(kernel.shader.source)
                .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {e}", kernel.shader.name))
        });
        let error = |wgsl: String| GpuError::Params {
            shader: kernel.shader.name,
            entry: kernel.entry,
            given: params.len(),
            wgsl,
        };
        match layouts.iter().find(|(entry, _)| entry == kernel.entry) {
            None => Err(error(
                "is missing (no uniform at group 0, binding 0)".into(),
            )),
            Some((_, l)) if !l.dense => Err(error(format!(
                "has implicit padding or non-4-byte members ({} bytes)",
                l.size
            ))),
            Some((_, l)) if l.size as usize != params.len() => {
                Err(error(format!("is {} bytes", l.size)))
            }
            Some(_) => Ok(()),
        }
    }

    /// Number of distinct pipelines compiled so far.
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }

    fn module(&self, shader: Shader) -> wgpu::ShaderModule {
        self.modules
            .lock()
            .unwrap()
            .entry(shader.name)
            .or_insert_with(|| {
                // Every include is known: tests/shaders_validate.rs expands each shader.
                let source = expand_includes(shader.source)
                    .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {e}", shader.name));
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
            })
            .clone()
    }

    /// Starts catching out-of-memory errors of the allocations that follow on this thread.
    pub fn allocation_scope(&self) -> AllocationScope {
        AllocationScope(self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory))
    }

    /// A storage buffer of `bytes` (at least 4) that can also be copied to and from.
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `bytes`, padded to 16 bytes as WGSL uniform structs require.
    pub fn uniform_buffer(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().max(16).next_multiple_of(16), 0);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: padded.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, &padded);
        buffer
    }

    /// Submits one command buffer; if too many are in flight, first waits for the oldest.
    pub fn submit(&self, commands: wgpu::CommandBuffer) -> wgpu::SubmissionIndex {
        let index = self.queue.submit([commands]);
        self.submissions.fetch_add(1, Ordering::Relaxed);
        let mut in_flight = self.in_flight.lock().unwrap();
        in_flight.push_back(index.clone());
        while in_flight.len() > MAX_IN_FLIGHT {
            let oldest = in_flight.pop_front().expect("non-empty");
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: None,
                })
                .expect("device lost while waiting for a submission");
        }
        index
    }

    /// Command buffers submitted so far (readbacks included).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Blocks until every submitted command has finished.
    pub fn wait_idle(&self) {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("device lost while waiting for the queue");
        self.in_flight.lock().unwrap().clear();
    }

    /// Copies `bytes` bytes from the start of `buffer` to the host through a staging buffer.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        self.read_bytes_at(buffer, 0, bytes)
    }

    /// Copies `bytes` bytes from `offset` bytes into `buffer` (a multiple of 4) to the host.
    pub fn read_bytes_at(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let size = bytes.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        self.submit(encoder.finish());
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait_idle();
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?[..bytes as usize]
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}
