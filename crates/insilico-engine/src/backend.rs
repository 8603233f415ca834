//! Choosing the compute backend at run time. One code path serves all: only the `Device`
//! differs. `auto` takes a real GPU through wgpu where the build has it and an adapter
//! backed by a physical card exists, else Flex, the fastest CPU backend of Burn 0.22 on
//! the machines we measured (see the README's performance section).

use anyhow::{bail, Result};
use burn::tensor::Device;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Auto,
    /// Burn's pure-Rust CPU backend (SIMD + rayon).
    Flex,
    /// wgpu (Vulkan/Metal/DX12); built with the `wgpu` feature.
    Wgpu,
    /// Burn's deprecated ndarray backend; built with the `ndarray` feature, for
    /// comparing CPU backends only.
    NdArray,
}

impl FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Backend::Auto,
            "cpu" | "flex" => Backend::Flex,
            "wgpu" | "gpu" => Backend::Wgpu,
            "ndarray" => Backend::NdArray,
            other => bail!("unknown device `{other}`; use auto, cpu (flex) or wgpu"),
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::NdArray => "ndarray",
        })
    }
}

/// A device chosen for a run and the backend it resolved to.
#[derive(Clone, Debug)]
pub struct Compute {
    pub device: Device,
    pub backend: Backend,
    pub description: String,
}

impl Compute {
    pub fn select(choice: Backend) -> Result<Self> {
        match choice {
            Backend::Flex => Ok(Self::flex()),
            Backend::Wgpu => {
                wgpu_device(true)?.ok_or_else(|| anyhow::anyhow!("no wgpu adapter found"))
            }
            Backend::Auto => Ok(wgpu_device(false)?.unwrap_or_else(Self::flex)),
            Backend::NdArray => ndarray_device(),
        }
    }

    pub fn flex() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            device: Device::flex(),
            backend: Backend::Flex,
            description: format!("flex (CPU, {threads} threads)"),
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn ndarray_device() -> Result<Compute> {
    Ok(Compute {
        device: Device::ndarray(),
        backend: Backend::NdArray,
        description: "ndarray (CPU)".into(),
    })
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Compute> {
    bail!("this insilico was built without the `ndarray` feature (it exists only to compare CPU backends)")
}

#[cfg(feature = "wgpu")]
fn wgpu_device(explicit: bool) -> Result<Option<Compute>> {
    use burn::tensor::DeviceType;
    let devices = Device::enumerate(DeviceType::Wgpu);
    let mut software = None;
    for device in devices.into_iter() {
        let identity = device.identity();
        let name = identity
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "unknown adapter".into());
        let physical = identity.map(|i| i.physical.is_some()).unwrap_or(false);
        let compute = Compute {
            device,
            backend: Backend::Wgpu,
            description: format!("wgpu ({name})"),
        };
        if physical {
            return Ok(Some(compute));
        }
        software.get_or_insert(compute);
    }
    // A software rasterizer (Mesa's lavapipe) is far slower than Flex: only on request.
    Ok(if explicit { software } else { None })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(explicit: bool) -> Result<Option<Compute>> {
    if explicit {
        bail!("this insilico was built without the `wgpu` feature; rebuild with `--features wgpu` or use --device cpu");
    }
    Ok(None)
}
