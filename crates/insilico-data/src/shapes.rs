//! `shapes`: a synthetic dataset generated in code, for work without any
//! downloaded data (tests, demos, CI) and for experiments where the "right"
//! features are known by construction (orientation, periodicity, closure).
//!
//! Ten classes of 28x28 grey images: bars at 0/45/90/135 degrees, gratings at
//! 0 and 90 degrees, a ring, a filled square, a cross and a filled triangle.
//! Each image has random position, size, thickness, small orientation jitter,
//! background level, contrast and Gaussian pixel noise, so the task needs a
//! translation-tolerant, orientation-selective model but is easily learnable.
//!
//! Shapes are drawn from signed distance functions with a one-pixel
//! anti-aliasing ramp, so small size changes are visible and edges are not
//! aliased into spurious high frequencies.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::Split;

/// Image side in pixels.
pub const SIZE: usize = 28;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Class names, index = label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "bar-0",
    "bar-45",
    "bar-90",
    "bar-135",
    "grating-0",
    "grating-90",
    "ring",
    "square",
    "cross",
    "triangle",
];

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapesConfig {
    pub seed: u64,
    pub train: usize,
    pub test: usize,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            seed: 0,
            train: 12_000,
            test: 2_000,
        }
    }
}

/// Generates the train and test splits. Train and test use different
/// random streams of the same seed, so they never share an image.
pub fn generate(cfg: &ShapesConfig) -> (Split, Split) {
    (
        generate_split(cfg.seed, 0, cfg.train),
        generate_split(cfg.seed, 1, cfg.test),
    )
}

/// `n` images, classes balanced (counts differ by at most one), in a seeded
/// random order. Each image has its own random stream derived from
/// `(seed, stream, index)`, so images can be drawn in parallel and the
/// result does not depend on the number of threads.
pub fn generate_split(seed: u64, stream: u64, n: usize) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut labels: Vec<u8> = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
    rand::seq::SliceRandom::shuffle(labels.as_mut_slice(), &mut rng);
    let mut images = vec![0f32; n * PIXELS];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per_thread = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (t, (imgs, lbls)) in images
            .chunks_mut(per_thread * PIXELS)
            .zip(labels.chunks(per_thread))
            .enumerate()
        {
            scope.spawn(move || {
                for (j, (img, &label)) in imgs.chunks_exact_mut(PIXELS).zip(lbls).enumerate() {
                    let index = (t * per_thread + j) as u64;
                    draw(img, label, &mut image_rng(seed, stream, index));
                }
            });
        }
    });
    Split { images, labels }
}

const PIXELS: usize = SIZE * SIZE;

/// An independent generator per image: ChaCha streams are cheap to set up,
/// and `stream`/word position keep images of one seed apart.
fn image_rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5348_4150_4553_0000);
    rng.set_stream(stream);
    // Each image gets its own 2^20-word window of the stream (it uses far less).
    rng.set_word_pos(u128::from(index) << 20);
    rng
}

/// A shape as a signed distance (pixels; negative inside) or, for gratings,
/// directly as a coverage in [0, 1].
enum Shape {
    Sdf(Box<dyn Fn(f32, f32) -> f32>),
    Coverage(Box<dyn Fn(f32, f32) -> f32>),
}

fn draw(img: &mut [f32], label: u8, rng: &mut ChaCha8Rng) {
    let shape = shape_for(label, rng);
    let background = rng.random_range(0.0..0.25f32);
    let contrast = rng.random_range(0.45..(1.0 - background));
    let noise_sd = rng.random_range(0.02..0.10f32);
    // Box-Muller gives normal samples in pairs: one pair per two pixels.
    for (k, pair) in img.chunks_exact_mut(2).enumerate() {
        let (n0, n1) = gaussian_pair(rng);
        for (j, (px, noise)) in pair.iter_mut().zip([n0, n1]).enumerate() {
            let i = 2 * k + j;
            // Pixel centres.
            let x = (i % SIZE) as f32 + 0.5;
            let y = (i / SIZE) as f32 + 0.5;
            let cover = match &shape {
                Shape::Sdf(d) => (0.5 - d(x, y)).clamp(0.0, 1.0),
                Shape::Coverage(c) => c(x, y),
            };
            *px = (background + contrast * cover + noise_sd * noise).clamp(0.0, 1.0);
        }
    }
}

/// A random instance of class `label`.
fn shape_for(label: u8, rng: &mut ChaCha8Rng) -> Shape {
    let jitter = |rng: &mut ChaCha8Rng, deg: f32| rng.random_range(-deg..deg).to_radians();
    let (cx, cy) = (
        rng.random_range(10.0..18.0f32),
        rng.random_range(10.0..18.0f32),
    );
    match label {
        0..=3 => {
            let angle = (45.0 * label as f32).to_radians() + jitter(rng, 6.0);
            let half_len = rng.random_range(6.0..11.0f32);
            let half_thick = rng.random_range(0.8..1.8f32);
            Shape::Sdf(Box::new(move |x, y| {
                box_sdf(x - cx, y - cy, angle, half_len, half_thick)
            }))
        }
        4 | 5 => grating(
            cx,
            cy,
            (90.0 * (label - 4) as f32).to_radians() + jitter(rng, 6.0),
            rng,
        ),
        6 => {
            let r = rng.random_range(5.0..10.0f32);
            let half_thick = rng.random_range(0.7..1.6f32);
            Shape::Sdf(Box::new(move |x, y| {
                ((x - cx).hypot(y - cy) - r).abs() - half_thick
            }))
        }
        7 => {
            let half = rng.random_range(4.0..8.5f32);
            let angle = jitter(rng, 10.0);
            Shape::Sdf(Box::new(move |x, y| {
                box_sdf(x - cx, y - cy, angle, half, half)
            }))
        }
        8 => {
            let arm = rng.random_range(5.0..10.0f32);
            let half_thick = rng.random_range(0.8..1.8f32);
            let angle = jitter(rng, 8.0);
            Shape::Sdf(Box::new(move |x, y| {
                let h = box_sdf(x - cx, y - cy, angle, arm, half_thick);
                let v = box_sdf(x - cx, y - cy, angle, half_thick, arm);
                h.min(v)
            }))
        }
        _ => {
            let r = rng.random_range(6.0..11.0f32);
            let angle = jitter(rng, 12.0);
            Shape::Sdf(Box::new(move |x, y| triangle_sdf(x - cx, y - cy, angle, r)))
        }
    }
}

/// Stripes at `angle` (direction of the stripes) inside a soft circular
/// aperture: several parallel bars, unlike the single bar classes.
fn grating(cx: f32, cy: f32, angle: f32, rng: &mut ChaCha8Rng) -> Shape {
    let period = rng.random_range(4.0..6.5f32);
    let phase = rng.random_range(0.0..std::f32::consts::TAU);
    let radius = rng.random_range(8.0..12.0f32);
    let (s, c) = angle.sin_cos();
    Shape::Coverage(Box::new(move |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        // Distance across the stripes.
        let across = -dx * s + dy * c;
        let wave = 0.5 + 0.5 * (std::f32::consts::TAU * across / period + phase).sin();
        let aperture = (radius + 0.5 - dx.hypot(dy)).clamp(0.0, 1.0);
        wave * aperture
    }))
}

/// Signed distance to a rectangle centred at the origin, with half-extents
/// (`half_u` along `angle`, `half_v` across), rotated by `angle`.
fn box_sdf(dx: f32, dy: f32, angle: f32, half_u: f32, half_v: f32) -> f32 {
    let (s, c) = angle.sin_cos();
    // Image y points down; a positive angle turns counter-clockwise on screen.
    let u = dx * c - dy * s;
    let v = dx * s + dy * c;
    let (qu, qv) = (u.abs() - half_u, v.abs() - half_v);
    let outside = qu.max(0.0).hypot(qv.max(0.0));
    outside + qu.max(qv).min(0.0)
}

/// Signed distance (exact inside, a slight underestimate near corners
/// outside) to an equilateral triangle of circumradius `r`, apex up, rotated.
fn triangle_sdf(dx: f32, dy: f32, angle: f32, r: f32) -> f32 {
    (0..3)
        .map(|k| {
            // Outward normal of edge k; the apex points up (negative y).
            let a = angle + std::f32::consts::FRAC_PI_2 + (k as f32) * std::f32::consts::TAU / 3.0;
            let (s, c) = a.sin_cos();
            dx * c + dy * s - r / 2.0
        })
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Two independent standard normal samples (Box-Muller) from one 64-bit
/// draw; avoids a dependency, and halves the cost of per-pixel noise.
fn gaussian_pair(rng: &mut ChaCha8Rng) -> (f32, f32) {
    let bits: u64 = rng.random();
    // Two 24-bit uniforms; u1 in (0, 1] so that ln(u1) is finite.
    let scale = 1.0 / (1u32 << 24) as f32;
    let u1 = ((bits >> 40) as u32 + 1) as f32 * scale;
    let u2 = ((bits >> 8) as u32 & 0x00ff_ffff) as f32 * scale;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_means(split: &Split) -> Vec<Vec<f32>> {
        let mut sums = vec![vec![0f32; SIZE * SIZE]; NUM_CLASSES];
        for i in 0..split.len() {
            for (s, &v) in sums[split.labels[i] as usize]
                .iter_mut()
                .zip(split.image(i))
            {
                *s += v;
            }
        }
        let counts = split.class_counts(NUM_CLASSES);
        for (s, &n) in sums.iter_mut().zip(&counts) {
            s.iter_mut().for_each(|v| *v /= n as f32);
        }
        sums
    }

    #[test]
    fn deterministic_per_seed() {
        let a = generate_split(5, 0, 200);
        assert_eq!(a, generate_split(5, 0, 200));
        assert_ne!(a, generate_split(6, 0, 200));
        assert_ne!(
            a,
            generate_split(5, 1, 200),
            "test stream differs from train"
        );
    }

    #[test]
    fn balanced_and_in_range() {
        let s = generate_split(1, 0, 1003);
        assert_eq!(s.images.len(), 1003 * SIZE * SIZE);
        let counts = s.class_counts(NUM_CLASSES);
        assert_eq!(counts, [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]);
        assert!(s.images.iter().all(|v| (0.0..=1.0).contains(v)));
        // Not all black, not saturated.
        let mean = s.images.iter().sum::<f32>() / s.images.len() as f32;
        assert!((0.1..0.6).contains(&mean), "mean {mean}");
    }

    #[test]
    fn classes_differ() {
        let s = generate_split(2, 0, 2000);
        let means = class_means(&s);
        for a in 0..NUM_CLASSES {
            for b in (a + 1)..NUM_CLASSES {
                let d: f32 = means[a]
                    .iter()
                    .zip(&means[b])
                    .map(|(x, y)| (x - y).powi(2))
                    .sum();
                assert!(
                    d.sqrt() > 0.3,
                    "classes {a} and {b} have nearly equal mean images ({d})"
                );
            }
        }
    }

    #[test]
    fn bars_are_oriented() {
        // The mean image of a bar class has its mass along its orientation:
        // check the second moments of horizontal vs vertical bars.
        let s = generate_split(3, 0, 1000);
        let means = class_means(&s);
        let spread = |img: &[f32]| {
            let (mut sx, mut sy) = (0f32, 0f32);
            for (i, &v) in img.iter().enumerate() {
                let (x, y) = ((i % SIZE) as f32 - 13.5, (i / SIZE) as f32 - 13.5);
                sx += v * x * x;
                sy += v * y * y;
            }
            sx / sy
        };
        let (h, v) = (spread(&means[0]), spread(&means[2]));
        assert!(
            h > 1.1 && v < 1.0 / 1.1,
            "bar-0 spread {h} should be horizontal, bar-90 {v} vertical"
        );
    }

    #[test]
    fn generation_is_fast() {
        let t = std::time::Instant::now();
        let _ = generate(&ShapesConfig::default());
        let dt = t.elapsed();
        // Generous: the budget is 0.5 s in an optimized build; unoptimized
        // or loaded CI machines get slack.
        assert!(dt.as_secs_f32() < 3.0, "took {dt:?}");
        eprintln!("shapes default generation: {dt:?}");
    }

    #[test]
    fn manifest_normalization_matches_data() {
        let entry = crate::Manifest::embedded().get("shapes").unwrap();
        assert_eq!(entry.classes, CLASS_NAMES);
        let (train, _) = generate(&ShapesConfig::default());
        let n = train.images.len() as f64;
        let mean = train.images.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = train
            .images
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        eprintln!("shapes mean {mean:.4} std {:.4}", var.sqrt());
        assert!(
            (entry.mean[0] as f64 - mean).abs() < 0.005,
            "manifest mean {} vs {mean}",
            entry.mean[0]
        );
        assert!(
            (entry.std[0] as f64 - var.sqrt()).abs() < 0.005,
            "manifest std {} vs {}",
            entry.std[0],
            var.sqrt()
        );
    }
}
