//! Normalized examples ready for the network, and the data a run trains and tests on.

use crate::config::DataConfig;
use anyhow::{Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use insilico_data::labels::{corrupt_labels, stratified_subset};
use insilico_data::{Dataset, Locator, Split};

/// Images normalized with the dataset's per-channel mean and std, and their labels.
#[derive(Clone, Debug)]
pub struct Examples {
    /// `[c, h, w]` of one image.
    pub shape: [usize; 3],
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Examples {
    pub fn new(split: &Split, dataset: &Dataset) -> Self {
        let shape = dataset.shape;
        let plane = shape[1] * shape[2];
        let mut images = split.images.clone();
        for (i, v) in images.iter_mut().enumerate() {
            let c = (i / plane) % shape[0];
            *v = (*v - dataset.mean[c]) / dataset.std[c];
        }
        Self {
            shape,
            images,
            labels: split.labels.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The examples at `idx`, as a batch tensor and their labels.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Vec<u8>) {
        let n = self.image_len();
        let mut buf = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            buf.extend_from_slice(&self.images[i * n..(i + 1) * n]);
        }
        let labels = idx.iter().map(|&i| self.labels[i]).collect();
        (self.tensor(buf, idx.len(), device), labels)
    }

    /// Examples `start..start + len` in order.
    pub fn range(&self, start: usize, len: usize, device: &Device) -> Tensor<4> {
        let n = self.image_len();
        self.tensor(
            self.images[start * n..(start + len) * n].to_vec(),
            len,
            device,
        )
    }

    fn tensor(&self, buf: Vec<f32>, b: usize, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(buf, [b, c, h, w]), device)
    }

    /// The first `limit` examples (all if `None`).
    pub fn head(&self, limit: Option<usize>) -> Examples {
        let n = limit.unwrap_or(self.len()).min(self.len());
        Examples {
            shape: self.shape,
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// Labels as an int tensor for the loss.
pub fn label_tensor(labels: &[u8], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}

/// The data of one run: the dataset as loaded, the (possibly subset and corrupted)
/// training examples, and the untouched test examples.
pub struct RunData {
    pub dataset: Dataset,
    pub train: Examples,
    /// The true labels of `train`, before corruption.
    pub train_clean_labels: Vec<u8>,
    pub test: Examples,
}

impl RunData {
    /// Loads the dataset named in `config`, takes the training subset and corrupts its
    /// labels; the test labels are never corrupted.
    pub fn prepare(config: &DataConfig, seed: u64, locator: &Locator) -> Result<Self> {
        let dataset = insilico_data::load(&config.dataset, locator)
            .with_context(|| format!("loading dataset `{}`", config.dataset))?;
        Ok(Self::from_dataset(dataset, config, seed))
    }

    pub fn from_dataset(dataset: Dataset, config: &DataConfig, seed: u64) -> Self {
        let data_seed = config.data_seed.unwrap_or(seed);
        let train_split = match config.train_limit {
            Some(limit) if limit < dataset.train.len() => {
                let idx =
                    stratified_subset(&dataset.train.labels, dataset.num_classes, limit, data_seed);
                dataset.train.subset(&idx)
            }
            _ => dataset.train.clone(),
        };
        let mut train = Examples::new(&train_split, &dataset);
        let train_clean_labels = train.labels.clone();
        train.labels = corrupt_labels(
            &train.labels,
            dataset.num_classes,
            config.corruption(),
            data_seed,
        );
        let test = Examples::new(&dataset.test, &dataset);
        Self {
            dataset,
            train,
            train_clean_labels,
            test,
        }
    }
}
