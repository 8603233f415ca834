//! Weights in safetensors, in PyTorch's layout and names (`conv1.weight`, `fc1.weight`
//! `[out, in]`), so that `safetensors.torch.load_file` or numpy read them directly and a
//! `cnn-small` state dict loads into the reference PyTorch model.

use crate::network::Network;
use anyhow::Result;
use insilico_data::fsx::write_atomic;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Serializes the network's parameters to safetensors bytes.
pub fn safetensors_bytes(net: &Network) -> Result<Vec<u8>> {
    let tensors = net.named_tensors();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?))
        })
        .collect::<Result<Vec<_>>>()?;
    // One metadata entry only: safetensors writes the map in hash order, and identical
    // weights must give identical files.
    let info = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(safetensors::serialize(views, Some(info))?)
}

pub fn write_safetensors(net: &Network, path: &Path) -> Result<()> {
    write_atomic(path, &safetensors_bytes(net)?)
}
