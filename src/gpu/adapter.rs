use std::fmt::Write as _;

/// What `sfhead info` prints about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl AdapterReport {
    pub(crate) fn of(adapter: &wgpu::Adapter) -> Self {
        Self {
            info: adapter.get_info(),
            limits: adapter.limits(),
        }
    }

    /// One line: name, backend, device type and driver.
    pub fn summary(&self) -> String {
        let i = &self.info;
        let driver = [i.driver.as_str(), i.driver_info.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{} [{:?}, {:?}, driver {}]",
            i.name,
            i.backend,
            i.device_type,
            if driver.is_empty() {
                "unknown"
            } else {
                &driver
            }
        )
    }

    /// The limits that decide how kernels are sized and how large a tensor may be.
    pub fn limit_lines(&self) -> String {
        let l = &self.limits;
        let mut s = String::new();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            s,
            "max storage binding      {:.0} MiB",
            mib(l.max_storage_buffer_binding_size)
        );
        let _ = writeln!(
            s,
            "max buffer size          {:.0} MiB",
            mib(l.max_buffer_size)
        );
        let _ = writeln!(
            s,
            "storage buffers / stage  {}",
            l.max_storage_buffers_per_shader_stage
        );
        let _ = writeln!(
            s,
            "workgroup storage        {} B",
            l.max_compute_workgroup_storage_size
        );
        let _ = writeln!(
            s,
            "invocations / workgroup  {} (x {}, y {}, z {})",
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z
        );
        let _ = writeln!(
            s,
            "workgroups / dimension   {}",
            l.max_compute_workgroups_per_dimension
        );
        let _ = write!(
            s,
            "subgroup size            {}..{}",
            self.info.subgroup_min_size, self.info.subgroup_max_size
        );
        s
    }
}

/// Lower is better: discrete GPU, then integrated, virtual, CPU, anything else.
fn preference(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Whether `selector` (case-insensitive) occurs in the adapter's name or backend name.
fn matches(info: &wgpu::AdapterInfo, selector: &str) -> bool {
    let needle = selector.to_lowercase();
    info.name.to_lowercase().contains(&needle)
        || format!("{:?}", info.backend)
            .to_lowercase()
            .contains(&needle)
}

pub(crate) fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Index of the adapter to use: the best kind among those that match `selector`; ties keep
/// the driver's enumeration order so the choice is stable.
pub(crate) fn choose(infos: &[wgpu::AdapterInfo], selector: Option<&str>) -> Option<usize> {
    infos
        .iter()
        .enumerate()
        .filter(|(_, info)| selector.is_none_or(|s| matches(info, s)))
        .min_by_key(|(i, info)| (preference(info.device_type), *i))
        .map(|(i, _)| i)
}

/// Every adapter found, and the index of the one that `selector` would pick.
pub fn describe_adapters(selector: Option<&str>) -> (Vec<AdapterReport>, Option<usize>) {
    let reports: Vec<_> = enumerate(&instance())
        .iter()
        .map(AdapterReport::of)
        .collect();
    let infos: Vec<_> = reports.iter().map(|r| r.info.clone()).collect();
    let chosen = choose(&infos, selector);
    (reports, chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, device_type: wgpu::DeviceType) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
        }
    }

    #[test]
    fn discrete_beats_integrated_beats_cpu() {
        use wgpu::DeviceType::*;
        let infos = [
            info("llvmpipe", Cpu),
            info("Intel UHD", IntegratedGpu),
            info("NVIDIA H100", DiscreteGpu),
        ];
        assert_eq!(choose(&infos, None), Some(2));
        assert_eq!(choose(&infos[..2], None), Some(1));
    }

    #[test]
    fn selector_filters_case_insensitively() {
        use wgpu::DeviceType::*;
        let infos = [info("llvmpipe", Cpu), info("NVIDIA H100", DiscreteGpu)];
        assert_eq!(choose(&infos, Some("LLVM")), Some(0));
        assert_eq!(choose(&infos, Some("vulkan")), Some(1));
        assert_eq!(choose(&infos, Some("radeon")), None);
    }
}
