//! Stimulus protocols: oriented patterns drawn around a point of the image.
//!
//! A protocol is a *pattern*: a function giving the contrast, in `[-1, 1]`, of the point at
//! distance `across` from the stimulus centre line (measured perpendicular to the
//! stripes, in pixels) for one [`Stimulus`]. The renderer turns it into pixels
//! `luminance * (1 + contrast * pattern)`, averaged over a few sub-pixel samples so that
//! sharp edges are not aliased, and normalizes them as the network's training images were.
//! A new protocol is a new [`Pattern`] function and a [`Protocol`] variant naming it.
//!
//! Conventions: orientation `theta` (degrees in `[0, 180)`) is the direction of the
//! stripes, counter-clockwise from horizontal with the y axis pointing up (row indices
//! grow downwards): 0 gives horizontal stripes, 90 vertical ones. Spatial frequency is in
//! cycles per pixel (Nyquist: 0.5). Phase is in radians.

use crate::receptive::ImageSpace;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// One stimulus of a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stimulus {
    /// Direction of the stripes, degrees.
    pub orientation: f64,
    /// Cycles per pixel.
    pub frequency: f64,
    /// Radians: the drift of the pattern across its stripes over one cycle.
    pub phase: f64,
    /// Michelson contrast (negative: inverted polarity, e.g. a dark bar).
    pub contrast: f64,
}

/// The contrast pattern of a protocol at signed distance `across` (pixels) from the
/// stimulus centre line.
pub type Pattern = fn(&Stimulus, f64) -> f64;

/// A drifting sinusoidal grating: `cos(2 pi f across + phase)`. Phase 0 puts a bright
/// stripe on the centre.
pub fn sinusoidal_grating(s: &Stimulus, across: f64) -> f64 {
    (2.0 * PI * s.frequency * across + s.phase).cos()
}

/// A bright bar half a period wide (`1 / (2 f)` pixels, the width of a grating's bright
/// stripe), on the background. The phase moves it across the centre: at phase `phi` its
/// middle lies `(phi / 2 pi - 1/2)` periods from the centre line, so a full cycle of
/// phases sweeps it over one period centred on the receptive field.
pub fn bar(s: &Stimulus, across: f64) -> f64 {
    let period = 1.0 / s.frequency;
    let middle = (s.phase / (2.0 * PI) - 0.5) * period;
    if (across - middle).abs() <= period / 4.0 {
        1.0
    } else {
        0.0
    }
}

/// The named protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    // Plain words, no doc links: clap prints these comments in `--help`.
    /// A drifting sinusoidal grating: contrast cos(2 pi f x + phase) across the stripes
    Grating,
    /// A bright bar half a period wide on the background, swept across the field's centre
    /// over one period by the phase
    Bar,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Grating, Protocol::Bar];

    pub fn pattern(self) -> Pattern {
        match self {
            Protocol::Grating => sinusoidal_grating,
            Protocol::Bar => bar,
        }
    }

    /// Sub-pixel samples per axis: a smooth grating needs none, a bar's edges do.
    pub fn supersampling(self) -> usize {
        match self {
            Protocol::Grating => 1,
            Protocol::Bar => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grating => "grating",
            Protocol::Bar => "bar",
        }
    }
}

/// The stimulus set: every combination of contrast x orientation x frequency x phase,
/// in that nesting order (phase fastest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StimulusGrid {
    /// Degrees, evenly spaced over [0, 180).
    pub orientations: Vec<f64>,
    /// Cycles per pixel, increasing.
    pub frequencies: Vec<f64>,
    /// Radians, evenly spaced over [0, 2 pi).
    pub phases: Vec<f64>,
    pub contrasts: Vec<f64>,
}

impl StimulusGrid {
    /// `orientations` angles over 180 degrees, `frequencies` log-spaced in
    /// `[min_frequency, max_frequency]`, `phases` over a cycle.
    pub fn new(
        orientations: usize,
        (min_frequency, max_frequency, frequencies): (f64, f64, usize),
        phases: usize,
        contrasts: &[f64],
    ) -> Self {
        let log_spaced = |i: usize| {
            if frequencies == 1 {
                return min_frequency;
            }
            let t = i as f64 / (frequencies - 1) as f64;
            (min_frequency.ln() + t * (max_frequency.ln() - min_frequency.ln())).exp()
        };
        Self {
            orientations: (0..orientations)
                .map(|i| 180.0 * i as f64 / orientations as f64)
                .collect(),
            frequencies: (0..frequencies).map(log_spaced).collect(),
            phases: (0..phases)
                .map(|i| 2.0 * PI * i as f64 / phases as f64)
                .collect(),
            contrasts: contrasts.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.contrasts.len() * self.orientations.len() * self.frequencies.len() * self.phases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stimulus at flat index `i` of the nesting order.
    pub fn stimulus(&self, i: usize) -> Stimulus {
        let (p, f, o) = (
            self.phases.len(),
            self.frequencies.len(),
            self.orientations.len(),
        );
        Stimulus {
            phase: self.phases[i % p],
            frequency: self.frequencies[(i / p) % f],
            orientation: self.orientations[(i / (p * f)) % o],
            contrast: self.contrasts[i / (p * f * o)],
        }
    }
}

/// Draws stimuli `range` of `grid` centred on `centre` (row, column, in pixels), as
/// normalized network inputs `[n, c, h, w]` in row-major order: every channel gets the
/// same luminance, `luminance * (1 + contrast * pattern)`, clamped to `[0, 1]`.
pub fn render(
    protocol: Protocol,
    grid: &StimulusGrid,
    range: std::ops::Range<usize>,
    centre: (f64, f64),
    luminance: f64,
    space: &ImageSpace,
) -> Vec<f32> {
    let [c, h, w] = space.shape;
    let pattern = protocol.pattern();
    let ss = protocol.supersampling();
    let offsets: Vec<f64> = (0..ss)
        .map(|k| (k as f64 + 0.5) / ss as f64 - 0.5)
        .collect();
    let mut out = Vec::with_capacity(range.len() * c * h * w);
    let mut plane = vec![0f32; h * w];
    for i in range {
        let s = grid.stimulus(i);
        let theta = s.orientation.to_radians();
        // Unit normal to the stripes in (x right, y up) coordinates.
        let (nx, ny) = (-theta.sin(), theta.cos());
        for (r, row) in plane.chunks_exact_mut(w).enumerate() {
            for (col, v) in row.iter_mut().enumerate() {
                let mut acc = 0.0;
                for dy in &offsets {
                    for dx in &offsets {
                        let x = col as f64 + dx - centre.1;
                        let y = centre.0 - (r as f64 + dy);
                        acc += pattern(&s, nx * x + ny * y);
                    }
                }
                let contrast = acc / (ss * ss) as f64;
                *v = (luminance * (1.0 + s.contrast * contrast)).clamp(0.0, 1.0) as f32;
            }
        }
        for ch in 0..c {
            let (m, sd) = (space.mean[ch], space.std[ch]);
            out.extend(plane.iter().map(|v| (v - m) / sd));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stim(orientation: f64, frequency: f64, phase: f64) -> Stimulus {
        Stimulus {
            orientation,
            frequency,
            phase,
            contrast: 1.0,
        }
    }

    fn draw(protocol: Protocol, s: Stimulus, size: usize) -> Vec<f32> {
        let grid = StimulusGrid {
            orientations: vec![s.orientation],
            frequencies: vec![s.frequency],
            phases: vec![s.phase],
            contrasts: vec![s.contrast],
        };
        let c = (size as f64 - 1.0) / 2.0;
        let space = ImageSpace::standard([1, size, size]);
        render(protocol, &grid, 0..1, (c, c), 0.5, &space)
    }

    #[test]
    fn orientation_zero_gives_horizontal_stripes_and_ninety_vertical_ones() {
        // Horizontal stripes: constant along each row; vertical: along each column.
        let img = draw(Protocol::Grating, stim(0.0, 0.125, 0.3), 9);
        for r in 0..9 {
            assert!(img[r * 9..r * 9 + 9]
                .iter()
                .all(|v| (v - img[r * 9]).abs() < 1e-6));
        }
        let img = draw(Protocol::Grating, stim(90.0, 0.125, 0.3), 9);
        for c in 0..9 {
            assert!((0..9).all(|r| (img[r * 9 + c] - img[c]).abs() < 1e-6));
        }
    }

    #[test]
    fn grating_phase_zero_is_bright_at_the_centre_and_spans_the_contrast() {
        // 0.5 * (1 + cos 0) = 1 at the centre; a quarter period away cos = 0: 0.5.
        let img = draw(Protocol::Grating, stim(90.0, 0.25, 0.0), 9);
        assert!((img[4 * 9 + 4] - 1.0).abs() < 1e-6);
        assert!((img[4 * 9 + 5] - 0.5).abs() < 1e-6);
        assert!((img[4 * 9 + 6] - 0.0).abs() < 1e-6);
    }

    #[test]
    fn a_bar_at_phase_pi_is_centred_and_half_a_period_wide() {
        // f = 1/8: the bar is 4 px wide, centred on column 8 of 17 at phase pi:
        // columns 6..=10 touch it, 7..=9 lie fully inside, 6 and 10 half (edges at 6 and 10).
        let img = draw(Protocol::Bar, stim(90.0, 0.125, PI), 17);
        let row: Vec<f32> = img[8 * 17..9 * 17].to_vec();
        for c in 7..=9 {
            assert!((row[c] - 1.0).abs() < 1e-6, "{row:?}");
        }
        assert!(
            (row[6] - 0.75).abs() < 1e-6 && (row[10] - 0.75).abs() < 1e-6,
            "{row:?}"
        );
        assert!(row[..6]
            .iter()
            .chain(&row[11..])
            .all(|v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn grid_order_is_contrast_orientation_frequency_phase() {
        let g = StimulusGrid::new(16, (0.05, 0.4, 8), 8, &[0.5, 1.0]);
        assert_eq!(g.len(), 2 * 16 * 8 * 8);
        assert_eq!(g.orientations[4], 45.0);
        assert!((g.frequencies[7] - 0.4).abs() < 1e-12);
        // Log spacing: equal ratios, 8^(1/7) here.
        assert!((g.frequencies[1] / g.frequencies[0] - 8f64.powf(1.0 / 7.0)).abs() < 1e-9);
        // Contrast 1, orientation 3, frequency 2, phase 5.
        let s = g.stimulus(((16 + 3) * 8 + 2) * 8 + 5);
        assert_eq!((s.contrast, s.orientation), (1.0, 33.75));
        assert_eq!((s.frequency, s.phase), (g.frequencies[2], g.phases[5]));
    }
}
