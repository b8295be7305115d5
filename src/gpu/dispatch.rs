//! Recorded work: a dispatch (pipeline, bind group, workgroup counts) and the passes that run
//! dispatches, so that code above `src/gpu` never names an encoder, a pass or a bind group.

use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Gpu, GpuError};

/// A kernel launch with everything bound, built once and run every step.
pub struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// One storage binding of a dispatch: a buffer and how many of its bytes the kernel sees.
pub struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub bytes: u64,
}

impl Gpu {
    /// Binds `params` (as the uniform at binding 0) and `storage` (bindings 1, 2, …) for
    /// `pipeline`.
    pub fn dispatch(
        &self,
        label: &str,
        pipeline: Arc<wgpu::ComputePipeline>,
        params: &[u8],
        storage: &[Binding],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let uniform = self.uniform_buffer(label, params);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (k, b) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: k as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: 0,
                    size: wgpu::BufferSize::new(b.bytes),
                }),
            });
        }
        // The bind group keeps the uniform buffer alive.
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            pipeline,
            bind_group,
            workgroups,
        }
    }

    /// Writes `bytes` at the start of `buffer`, ordered before the next submission.
    pub fn write_buffer(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        self.write_buffer_at(buffer, 0, bytes);
    }

    /// Writes `bytes` `offset` bytes into `buffer` (both multiples of 4).
    pub fn write_buffer_at(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        self.queue.write_buffer(buffer, offset, bytes);
    }

    /// Records `dispatches` into one compute pass and submits it once.
    pub fn run(&self, label: &str, dispatches: &[Dispatch]) -> wgpu::SubmissionIndex {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        encode_pass(&mut encoder, label, dispatches);
        self.submit(encoder.finish())
    }

    /// As [`Gpu::run`], with `sources` (buffer, bytes from its start) copied one after another
    /// into a staging buffer from `pool` at the end of the same submission, and its mapping
    /// requested: nothing waits here, and [`Gpu::collect`] picks the values up later (for
    /// example after the next step has been submitted).
    pub fn run_and_copy(
        &self,
        label: &str,
        dispatches: &[Dispatch],
        sources: &[(&wgpu::Buffer, u64)],
        pool: &StagingPool,
    ) -> Readback {
        let total: u64 = sources.iter().map(|(_, b)| b.next_multiple_of(4)).sum();
        let staging = pool.take(self, total.max(4));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        encode_pass(&mut encoder, label, dispatches);
        let mut offset = 0;
        for (buffer, bytes) in sources {
            let bytes = bytes.next_multiple_of(4);
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, bytes);
            offset += bytes;
        }
        let index = self.submit(encoder.finish());
        let (tx, rx) = channel();
        staging.map_async(wgpu::MapMode::Read, ..total.max(4), move |r| {
            let _ = tx.send(r);
        });
        Readback {
            staging,
            mapped: rx,
            bytes: total,
            index,
        }
    }

    /// Waits for a [`Readback`]'s submission and returns its bytes; the staging buffer goes
    /// back to `pool`.
    pub fn collect(&self, readback: Readback, pool: &StagingPool) -> Result<Vec<u8>, GpuError> {
        let Readback {
            staging,
            mapped,
            bytes,
            index,
        } = readback;
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        mapped
            .recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = staging
            .get_mapped_range(..bytes.max(4))
            .map_err(|e| GpuError::Readback(e.to_string()))?[..bytes as usize]
            .to_vec();
        staging.unmap();
        pool.put(staging);
        Ok(data)
    }

    /// Runs one dispatch in its own submission after the queue is idle, and waits for it:
    /// its wall-clock time, for profiles.
    pub fn time_dispatch(&self, label: &str, dispatch: &Dispatch) -> Duration {
        self.wait_idle();
        let start = Instant::now();
        self.run(label, std::slice::from_ref(dispatch));
        self.wait_idle();
        start.elapsed()
    }
}

/// Records `dispatches` into one compute pass of `encoder`.
fn encode_pass(encoder: &mut wgpu::CommandEncoder, label: &str, dispatches: &[Dispatch]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for d in dispatches {
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind_group, &[]);
        let [x, y, z] = d.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Values on their way to the host: the copy is in a submitted step, the mapping requested.
pub struct Readback {
    staging: wgpu::Buffer,
    mapped: Receiver<Result<(), wgpu::BufferAsyncError>>,
    bytes: u64,
    index: wgpu::SubmissionIndex,
}

/// Mappable staging buffers, reused from step to step so that a running loop allocates none:
/// one per readback in flight.
#[derive(Default)]
pub struct StagingPool(Mutex<Vec<wgpu::Buffer>>);

impl StagingPool {
    fn take(&self, gpu: &Gpu, bytes: u64) -> wgpu::Buffer {
        let mut free = self.0.lock().unwrap();
        match free.iter().position(|b| b.size() >= bytes) {
            Some(i) => free.swap_remove(i),
            None => gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step readback"),
                size: bytes.next_multiple_of(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    fn put(&self, buffer: wgpu::Buffer) {
        self.0.lock().unwrap().push(buffer);
    }

    /// Buffers waiting for reuse (those in flight are not counted).
    pub fn free(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
