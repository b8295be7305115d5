//! Recorded work: a dispatch (pipeline, bind group, workgroup counts) and the passes that run
//! dispatches, so that code above `src/gpu` never names an encoder, a pass or a bind group.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Gpu;

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
        self.queue.write_buffer(buffer, 0, bytes);
    }

    /// Records `dispatches` into one compute pass and submits it once.
    pub fn run(&self, label: &str, dispatches: &[Dispatch]) -> wgpu::SubmissionIndex {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
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
        self.submit(encoder.finish())
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
