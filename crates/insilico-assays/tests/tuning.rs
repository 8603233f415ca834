//! Orientation tuning of hand-built conv units whose answers follow from their filters.

mod common;

use common::{device, hand_built};
use insilico_assays::receptive::ImageSpace;
use insilico_assays::tuning::{tuning, Protocol, SiteTuning, TuningOptions};
use std::f64::consts::{PI, SQRT_2};

/// Three 11x11 filters on a 21x21 input, no padding: the centre position (5, 5) of the
/// 11x11 maps sees pixels 5..=15, centred on pixel 10, the image centre.
const NET: &str = r#"
[model]
name = "hand-built"
layers = [
  { type = "conv2d", out_channels = 3, kernel = 11 },
  { type = "relu" },
  { type = "flatten" },
  { type = "linear", out_features = 2 },
]
"#;
const K: usize = 11;
const R: f64 = 5.0;

/// `f(dx, dy)` on the filter, `dx` to the right and `dy` up from its centre (the stimulus
/// convention), minus its mean so that the uniform background drives nothing.
fn filter(f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut w: Vec<f64> = (0..K * K)
        .map(|i| f((i % K) as f64 - R, R - (i / K) as f64))
        .collect();
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    w.iter_mut().for_each(|v| *v -= mean);
    w
}

/// Even Gabor: stripes along `theta` degrees, `freq` cycles per pixel, envelope sigma 2.
fn gabor(theta: f64, freq: f64) -> Vec<f64> {
    let t = theta.to_radians();
    filter(|x, y| {
        let across = -t.sin() * x + t.cos() * y;
        (-(x * x + y * y) / 8.0).exp() * (2.0 * PI * freq * across).cos()
    })
}

/// Difference of Gaussians: circularly symmetric.
fn center_surround() -> Vec<f64> {
    filter(|x, y| {
        let r2 = x * x + y * y;
        (-r2 / (2.0 * 1.5 * 1.5)).exp() - 0.3 * (-r2 / (2.0 * 3.0 * 3.0)).exp()
    })
}

/// For an even filter `w` and zero bias, a grating `0.5 (1 + cos(2 pi f across + phi))`
/// drives the unit to `0.5 W cos(phi)` with `W = sum w cos(2 pi f across)` (the sine part
/// cancels by symmetry); after the relu, the mean over 8 phases `2 pi p / 8` is
/// `0.5 |W| (1 + sqrt 2) / 8`.
fn predicted(w: &[f64], theta: f64, freq: f64) -> f64 {
    let t = theta.to_radians();
    let big_w: f64 = (0..K * K)
        .map(|i| {
            let (x, y) = ((i % K) as f64 - R, R - (i / K) as f64);
            w[i] * (2.0 * PI * freq * (-t.sin() * x + t.cos() * y)).cos()
        })
        .sum();
    0.5 * big_w.abs() * (1.0 + SQRT_2) / 8.0
}

fn run(protocols: Vec<Protocol>) -> (Vec<Vec<f64>>, Vec<SiteTuning>, TuningOptions) {
    let opts = TuningOptions {
        protocols,
        ..TuningOptions::default()
    };
    let f0 = opts.grid().frequencies[5];
    let filters = vec![gabor(45.0, f0), gabor(90.0, f0), center_surround()];
    let weights: Vec<f32> = filters.iter().flatten().map(|&v| v as f32).collect();
    let net = hand_built(NET, [1, 21, 21], vec![weights]);
    let space = ImageSpace::standard([1, 21, 21]);
    let t = tuning(&net, &["conv1.relu".to_string()], &space, &opts, &device()).unwrap();
    (filters, t.sites, opts)
}

#[test]
fn responses_equal_the_filters_fourier_amplitudes() {
    let (filters, sites, opts) = run(vec![Protocol::Grating]);
    let grid = opts.grid();
    let site = &sites[0];
    assert_eq!((site.position, site.centre), ((5, 5), (10.0, 10.0)));
    for (w, unit) in filters.iter().zip(&site.units) {
        let nf = grid.frequencies.len();
        let want: Vec<f64> = (0..grid.orientations.len() * nf)
            .map(|k| predicted(w, grid.orientations[k / nf], grid.frequencies[k % nf]))
            .collect();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(*v));
        for (got, want) in unit.responses.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-4 * scale, "{got} vs {want}");
        }
    }
}

#[test]
fn gabor_units_prefer_their_orientation_and_frequency_and_are_selective() {
    let (_, sites, opts) = run(vec![Protocol::Grating]);
    let f0 = opts.grid().frequencies[5];
    for (unit, theta) in sites[0].units.iter().zip([45.0, 90.0]) {
        // The filter is mirror-symmetric about its stripes, and so is the pixel grid (about
        // the diagonal for 45, the vertical for 90): the curve is symmetric about theta.
        assert_eq!(unit.peak_orientation, theta);
        assert!(
            (unit.preferred_orientation - theta).abs() < 1e-3,
            "{unit:?}"
        );
        assert!(
            (unit.von_mises.mu - theta).abs() < 0.5,
            "{:?}",
            unit.von_mises
        );
        // Its spectrum is a Gaussian of sd 1 / (2 pi 2) = 0.08 around f0; the grid
        // neighbours of f0 (ratio 10^(1/7)) lie 0.06 and 0.08 away.
        assert_eq!(unit.preferred_frequency, f0);
        // Along the circle |k| = f0 the spectrum falls as exp(-4 pi^2 sigma^2 f0^2 (1 - cos d))
        // = exp(-6.8 (1 - cos d)): 1/sqrt 2 at d = 18 degrees, and the OSI, the mean of
        // cos 2d under that bump, is about exp(-2 / 6.8) = 0.74.
        assert!(unit.osi > 0.6, "OSI {}", unit.osi);
        assert!(
            unit.bandwidth > 12.0 && unit.bandwidth < 25.0,
            "bandwidth {}",
            unit.bandwidth
        );
        assert!(
            !unit.silent && unit.modulation_ratio > 1.0,
            "a linear-rectified unit is simple"
        );
    }
}

#[test]
fn a_circularly_symmetric_unit_is_untuned() {
    let (_, sites, _) = run(vec![Protocol::Grating]);
    let unit = &sites[0].units[2];
    // Its spectrum depends on |k| only, up to the anisotropy of the pixel grid.
    assert!(unit.osi < 0.05, "OSI {}", unit.osi);
    let summary = &sites[0].summary;
    assert_eq!(summary.responsive_units, 3);
    assert_eq!(summary.osi_histogram.counts.iter().sum::<usize>(), 3);
}

#[test]
fn bars_find_the_gabor_orientation_too() {
    let (_, sites, _) = run(vec![Protocol::Grating, Protocol::Bar]);
    assert_eq!(sites.len(), 2);
    let bars = sites.iter().find(|s| s.protocol == Protocol::Bar).unwrap();
    for (unit, theta) in bars.units.iter().zip([45.0, 90.0]) {
        let d = insilico_assays::tuning::orientation_distance(unit.preferred_orientation, theta);
        assert!(
            d <= 11.25,
            "bar preference {} for a {theta} Gabor",
            unit.preferred_orientation
        );
    }
}

#[test]
fn bad_options_are_rejected_naming_the_field() {
    let cases: Vec<(TuningOptions, &str)> = vec![
        (
            TuningOptions {
                orientations: 8,
                ..Default::default()
            },
            "tuning.orientations",
        ),
        (
            TuningOptions {
                max_frequency: 0.7,
                ..Default::default()
            },
            "tuning.max_frequency",
        ),
        (
            TuningOptions {
                min_frequency: 0.0,
                ..Default::default()
            },
            "tuning.min_frequency",
        ),
        (
            TuningOptions {
                phases: 2,
                ..Default::default()
            },
            "tuning.phases",
        ),
        (
            TuningOptions {
                contrasts: vec![0.5, 1.5],
                ..Default::default()
            },
            "tuning.contrasts",
        ),
        (
            TuningOptions {
                protocols: vec![],
                ..Default::default()
            },
            "tuning.protocols",
        ),
        (
            TuningOptions {
                luminance: 0.0,
                ..Default::default()
            },
            "tuning.luminance",
        ),
        (
            TuningOptions {
                batch: 0,
                ..Default::default()
            },
            "tuning.batch",
        ),
    ];
    for (opts, field) in cases {
        let err = opts.validate().unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
    TuningOptions::default().validate().unwrap();
    // Unknown keys in a sweep file's table are errors too.
    let err = serde_json::from_str::<TuningOptions>(r#"{"orientation": 16}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("orientation"), "{err}");
}
