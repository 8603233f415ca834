//! Effective receptive fields (Luo, Li, Urtasun and Zemel 2016): how strongly each input
//! pixel moves a unit, as opposed to which pixels it can see at all (the theoretical
//! receptive field of [`insilico_engine::receptive_field`]).
//!
//! For each image `x` and each unit `u` of a site, the gradient of the unit's value at the
//! centre position of its map with respect to the input, `d y_u / d x`, is taken; its
//! magnitude (summed over colour channels) is averaged over images and units. Taking the
//! magnitude per unit keeps units of opposite sign from cancelling. The size of the field
//! is the radius around the centre holding a fraction (95 %) of the map's mass, and the
//! side of the smallest centred square doing so, to compare with the theoretical size.
//! Pass the trained network and an untrained one (same config, fresh initialization) to
//! see what training does to it.

use anyhow::{bail, Result};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use insilico_engine::eval::to_vec;
use insilico_engine::receptive_field::{centre_position, receptive_fields};
use insilico_engine::{Activation, Hooks, Network, ReceptiveField};
use serde::{Deserialize, Serialize};

/// Options of the effective-receptive-field assay.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ErfOptions {
    /// Images the gradients are averaged over (the first of the study's).
    #[arg(long, default_value_t = ErfOptions::default().gradient_images)]
    pub gradient_images: usize,
    /// Fraction of the gradient mass the reported radius and size hold.
    #[arg(long, default_value_t = ErfOptions::default().mass)]
    pub mass: f64,
    /// Rows (image x unit pairs) per backward pass.
    #[arg(long, default_value_t = ErfOptions::default().batch)]
    pub batch: usize,
}

impl Default for ErfOptions {
    fn default() -> Self {
        Self {
            gradient_images: 16,
            mass: 0.95,
            batch: 1024,
        }
    }
}

impl ErfOptions {
    /// Rejects values the assay cannot use, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.gradient_images == 0 {
            bail!("erf.gradient_images = 0: must be at least 1");
        }
        if !(self.mass > 0.0 && self.mass <= 1.0) {
            bail!("erf.mass: {} is not a fraction in (0, 1]", self.mass);
        }
        if self.batch == 0 {
            bail!("erf.batch: must be at least 1");
        }
        Ok(())
    }
}

/// The effective receptive field of one site.
#[derive(Clone, Debug, Serialize)]
pub struct Erf {
    pub site: String,
    pub field: ReceptiveField,
    /// The map position whose units were differentiated.
    pub position: (usize, usize),
    /// The centre of that position's theoretical field, in input pixels (row, column).
    pub centre: (f64, f64),
    /// `[h, w]` of the input.
    pub shape: [usize; 2],
    /// Mean gradient magnitude per input pixel, `[h, w]` row-major.
    pub map: Vec<f32>,
    pub images: usize,
    pub units: usize,
    /// Distance from the centre within which `mass` of the map lies (pixels); NaN for a
    /// [silent](Erf::silent) site.
    pub radius: f64,
    /// Side of the smallest square around the centre holding `mass` of the map; NaN for a
    /// [silent](Erf::silent) site.
    pub size: f64,
    /// Side of the theoretical receptive field (the input's larger side for a vector).
    pub theoretical_size: usize,
    pub mass: f64,
}

impl Erf {
    /// No gradient reached the input on any image: the site's units were inactive (a ReLU
    /// at 0) at the centre position, or a layer below passed none, so the map is zero and
    /// has no size.
    pub fn silent(&self) -> bool {
        self.map.iter().all(|&v| v == 0.0)
    }
}

/// The effective receptive field of each site, from `images` (`[n, c, h, w]`, normalized as
/// for training; the first `opts.gradient_images` are used).
pub fn effective_receptive_fields(
    net: &Network,
    sites: &[String],
    images: &Tensor<4>,
    opts: &ErfOptions,
) -> Result<Vec<Erf>> {
    opts.validate()?;
    // Batch norm and dropout in evaluation mode, although the input carries gradients.
    let net = net.valid();
    let fields = receptive_fields(net.plan());
    let [n, _, h, w] = images.dims();
    let images = images.clone().narrow(0, 0, n.min(opts.gradient_images));
    sites
        .iter()
        .map(|site| {
            let i = net.plan().site_index(site)?;
            let output = net.plan().stages[i].output;
            let position = centre_position(output);
            let field = fields[i].1;
            let centre = field.centre(position, [h, w]);
            let (map, units) = mean_gradient_magnitude(&net, site, position, &images, opts.batch);
            let mass = opts.mass;
            Ok(Erf {
                site: site.clone(),
                field,
                position,
                centre,
                shape: [h, w],
                radius: mass_radius(&map, [h, w], centre, mass),
                size: mass_size(&map, [h, w], centre, mass),
                map,
                images: images.dims()[0],
                units,
                theoretical_size: field.size([h, w]),
                mass,
            })
        })
        .collect()
}

/// Mean over images and units of `|d y_u(position) / d x|`, summed over channels: `[h, w]`.
fn mean_gradient_magnitude(
    net: &Network,
    site: &str,
    position: (usize, usize),
    images: &Tensor<4>,
    batch: usize,
) -> (Vec<f32>, usize) {
    let [n, c, h, w] = images.dims();
    let units = net.plan().stages[net.plan().site_index(site).expect("checked")]
        .output
        .units();
    let device = images.device();
    let hooks = Hooks::new().record(&[site]).stop_after(site);
    let per_pass = (batch / units).max(1);
    let mut total = vec![0f32; h * w];
    for start in (0..n).step_by(per_pass) {
        let k = per_pass.min(n - start);
        // Row b * units + u: image b, differentiated through unit u.
        let x = images
            .clone()
            .narrow(0, start, k)
            .reshape([k, 1, c, h, w])
            .repeat_dim(1, units)
            .reshape([k * units, c, h, w]);
        let x = x.autodiff().require_grad();
        let picks: Vec<f32> = (0..k * units * units)
            .map(|i| ((i / units) % units == i % units) as u8 as f32)
            .collect();
        let picks = Tensor::<2>::from_data(TensorData::new(picks, [k * units, units]), &device);
        let rec = net.run(x.clone(), &hooks);
        let y = centre_values(rec.get(site), position);
        let grads = (y * picks.autodiff()).sum().backward();
        let g = x.grad(&grads).expect("the input has a gradient");
        let g = to_vec(g.abs().sum_dim(1).sum_dim(0).reshape([h * w]));
        total.iter_mut().zip(g).for_each(|(t, v)| *t += v);
    }
    let rows = (n * units).max(1) as f32;
    (total.into_iter().map(|v| v / rows).collect(), units)
}

/// `[batch, units]`: each unit's value at one position of a map (a vector as it is).
fn centre_values(act: &Activation, (y, x): (usize, usize)) -> Tensor<2> {
    match act {
        Activation::Map(t) => {
            let [b, u, _, _] = t.dims();
            t.clone().narrow(2, y, 1).narrow(3, x, 1).reshape([b, u])
        }
        Activation::Flat(t) => t.clone(),
    }
}

/// Pixels of an `[h, w]` map with their distance from `centre` under `metric`, nearest
/// first, and the distance at which their cumulative share of the map's mass reaches
/// `mass` (NaN for an all-zero map).
fn mass_distance(
    map: &[f32],
    [h, w]: [usize; 2],
    centre: (f64, f64),
    mass: f64,
    metric: fn(f64, f64) -> f64,
) -> f64 {
    let total: f64 = map.iter().map(|&v| v.abs() as f64).sum();
    if total <= 0.0 {
        return f64::NAN;
    }
    let mut by_distance: Vec<(f64, f64)> = (0..h * w)
        .map(|i| {
            let (dy, dx) = ((i / w) as f64 - centre.0, (i % w) as f64 - centre.1);
            (metric(dy, dx), map[i].abs() as f64 / total)
        })
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut acc = 0.0;
    for (d, m) in by_distance {
        acc += m;
        // A hair under `mass`: summing in f64 must not miss an exact share such as 1.
        if acc >= mass - 1e-9 {
            return d;
        }
    }
    f64::NAN
}

/// Radius of the smallest disc around `centre` holding `mass` of the map (pixel centres
/// count as inside at their distance).
pub fn mass_radius(map: &[f32], shape: [usize; 2], centre: (f64, f64), mass: f64) -> f64 {
    mass_distance(map, shape, centre, mass, |dy, dx| dy.hypot(dx))
}

/// Side of the smallest square around `centre` holding `mass` of the map: `2 d + 1` for the
/// largest Chebyshev distance `d` it needs, as a theoretical field of that side centred
/// there would span.
pub fn mass_size(map: &[f32], shape: [usize; 2], centre: (f64, f64), mass: f64) -> f64 {
    2.0 * mass_distance(map, shape, centre, mass, |dy, dx| dy.abs().max(dx.abs())) + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_of_a_point_and_of_a_square() {
        let mut map = vec![0.0f32; 25];
        map[12] = 3.0;
        assert_eq!(mass_radius(&map, [5, 5], (2.0, 2.0), 0.95), 0.0);
        assert_eq!(mass_size(&map, [5, 5], (2.0, 2.0), 0.95), 1.0);
        // Uniform 3x3 block: 8/9 < 0.95 of the mass lies within the ring of distance 1,
        // so the disc needs the corners at sqrt 2 and the square has side 3.
        let mut map = vec![0.0f32; 25];
        for r in 1..4 {
            for c in 1..4 {
                map[r * 5 + c] = 1.0;
            }
        }
        assert!((mass_radius(&map, [5, 5], (2.0, 2.0), 0.95) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mass_size(&map, [5, 5], (2.0, 2.0), 0.95), 3.0);
        // A 2x2 block around a centre between pixels: side 2, radius sqrt(0.5).
        let mut map = vec![0.0f32; 16];
        for i in [5, 6, 9, 10] {
            map[i] = 1.0;
        }
        assert_eq!(mass_size(&map, [4, 4], (1.5, 1.5), 1.0), 2.0);
        assert!((mass_radius(&map, [4, 4], (1.5, 1.5), 1.0) - 0.5f64.sqrt()).abs() < 1e-12);
        assert!(mass_radius(&[0.0; 4], [2, 2], (0.5, 0.5), 0.95).is_nan());
    }

    #[test]
    fn bad_options_are_rejected_naming_the_field() {
        for (opts, field) in [
            (
                ErfOptions {
                    gradient_images: 0,
                    ..Default::default()
                },
                "erf.gradient_images",
            ),
            (
                ErfOptions {
                    mass: 1.5,
                    ..Default::default()
                },
                "erf.mass",
            ),
            (
                ErfOptions {
                    batch: 0,
                    ..Default::default()
                },
                "erf.batch",
            ),
        ] {
            let err = opts.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        ErfOptions::default().validate().unwrap();
    }
}
