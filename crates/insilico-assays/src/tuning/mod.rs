//! Orientation and spatial-frequency tuning, the Hubel and Wiesel experiment: oriented
//! stimuli (drifting sinusoidal gratings and bars, see [`stimulus`]) centred on each
//! site's theoretical receptive field, over orientation x spatial frequency x phase (and
//! optionally contrast), one batch through the network for all units of the sites that
//! share a centre.
//!
//! A unit of a feature map is the channel at the centre position of its map; its response
//! to an orientation and frequency is the mean over the phases of the drift (F0, the
//! time-averaged response to a drifting grating). At the largest contrast (the positive
//! one of two opposite contrasts), the peak over
//! orientation x frequency gives the preferred frequency; the orientation tuning curve at
//! that frequency gives the orientation selectivity index (1 - circular variance), the
//! preferred orientation, the bandwidth and a von Mises fit ([`analysis`]). The
//! modulation ratio F1/F0 at the peak (first harmonic over mean, across phases) separates
//! simple-cell-like units (> 1) from complex-cell-like ones (< 1), as in Skottun et al.
//! (1991).

pub mod analysis;
pub mod stimulus;

pub use analysis::{
    fit_von_mises, orientation_distance, orientation_selectivity, preferred_orientation,
    sampled_bandwidth, Bins, VonMises,
};
pub use stimulus::{bar, render, sinusoidal_grating, Pattern, Protocol, Stimulus, StimulusGrid};

use crate::receptive::ImageSpace;
use anyhow::{bail, Result};
use burn::tensor::{Device, Tensor, TensorData};
use insilico_engine::receptive_field::{centre_position, receptive_fields};
use insilico_engine::{Activation, Hooks, Network, ReceptiveField};
use serde::{Deserialize, Serialize};

/// Options of the tuning assay (also `[assays.tuning]` in a sweep file).
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TuningOptions {
    /// Stimulus protocols, comma-separated (grating, bar), each run on its own.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = TuningOptions::default().protocols)]
    pub protocols: Vec<Protocol>,
    /// Orientations evenly spaced over 180 degrees.
    #[arg(long, default_value_t = TuningOptions::default().orientations)]
    pub orientations: usize,
    /// Spatial frequencies, log-spaced from `min_frequency` to `max_frequency`.
    #[arg(long, default_value_t = TuningOptions::default().frequencies)]
    pub frequencies: usize,
    /// Lowest spatial frequency, cycles per pixel.
    #[arg(long, default_value_t = TuningOptions::default().min_frequency)]
    pub min_frequency: f64,
    /// Highest spatial frequency, cycles per pixel; at most 0.5 (Nyquist).
    #[arg(long, default_value_t = TuningOptions::default().max_frequency)]
    pub max_frequency: f64,
    /// Phases of the drift over one cycle.
    #[arg(long, default_value_t = TuningOptions::default().phases)]
    pub phases: usize,
    /// Michelson contrasts, comma-separated (negative: inverted polarity); the analysis
    /// uses the largest in magnitude (the positive one of two opposite), the others give a
    /// contrast response.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_values_t = TuningOptions::default().contrasts)]
    pub contrasts: Vec<f64>,
    /// Mean luminance of the stimuli in pixel units (images are in [0, 1]).
    #[arg(long, default_value_t = TuningOptions::default().luminance)]
    pub luminance: f64,
    /// Stimuli per forward pass.
    #[arg(long, default_value_t = TuningOptions::default().batch)]
    pub batch: usize,
}

impl Default for TuningOptions {
    fn default() -> Self {
        Self {
            protocols: Protocol::ALL.to_vec(),
            orientations: 16,
            frequencies: 8,
            // Periods from 25 pixels (about a 28-pixel image) down to 2.5 pixels.
            min_frequency: 0.04,
            max_frequency: 0.4,
            phases: 8,
            contrasts: vec![1.0],
            luminance: 0.5,
            batch: 1024,
        }
    }
}

/// `Ok` if `ok`, else an error naming the option.
fn check(ok: bool, field: &str, what: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("tuning.{field}: {what}")
    }
}

impl TuningOptions {
    /// Rejects values the protocol cannot use, naming the field.
    pub fn validate(&self) -> Result<()> {
        self.validate_grid()?;
        check(
            !self.protocols.is_empty(),
            "protocols",
            "name at least one protocol (grating, bar)".into(),
        )?;
        let unique = self
            .protocols
            .iter()
            .enumerate()
            .all(|(i, p)| !self.protocols[..i].contains(p));
        check(
            unique,
            "protocols",
            format!("{:?} names a protocol twice", self.protocols),
        )?;
        check(
            !self.contrasts.is_empty(),
            "contrasts",
            "give at least one contrast".into(),
        )?;
        for &c in &self.contrasts {
            check(
                c.is_finite() && c != 0.0 && c.abs() <= 1.0,
                "contrasts",
                format!("{c} is not a contrast in [-1, 1] other than 0"),
            )?;
        }
        let l = self.luminance;
        check(
            l > 0.0 && l <= 1.0,
            "luminance",
            format!("{l} is not in (0, 1]"),
        )?;
        check(self.batch >= 1, "batch", "must be at least 1".into())
    }

    /// The orientation x frequency x phase sampling.
    fn validate_grid(&self) -> Result<()> {
        check(
            self.orientations >= 16,
            "orientations",
            format!(
                "{} is fewer than 16 angles over 180 degrees",
                self.orientations
            ),
        )?;
        check(
            self.frequencies >= 1,
            "frequencies",
            "must be at least 1".into(),
        )?;
        let (lo, hi) = (self.min_frequency, self.max_frequency);
        check(
            lo > 0.0 && lo.is_finite(),
            "min_frequency",
            format!("{lo} is not a positive number of cycles per pixel"),
        )?;
        check(
            hi.is_finite() && hi >= lo && hi <= 0.5,
            "max_frequency",
            format!("{hi} must lie in [min_frequency = {lo}, 0.5 (Nyquist)]"),
        )?;
        check(
            self.frequencies == 1 || hi > lo,
            "max_frequency",
            format!(
                "{} frequencies need max_frequency > min_frequency",
                self.frequencies
            ),
        )?;
        check(
            self.phases >= 4,
            "phases",
            format!(
                "{} phases cannot sample a drift cycle; use at least 4",
                self.phases
            ),
        )?;
        Ok(())
    }

    pub fn grid(&self) -> StimulusGrid {
        StimulusGrid::new(
            self.orientations,
            (self.min_frequency, self.max_frequency, self.frequencies),
            self.phases,
            &self.contrasts,
        )
    }
}

/// The tuning of one unit to one protocol.
#[derive(Clone, Debug, Serialize)]
pub struct UnitTuning {
    pub unit: usize,
    /// No response to any stimulus: every statistic below is NaN.
    pub silent: bool,
    /// Mean response over phases, `[contrast][orientation][frequency]` flattened.
    pub responses: Vec<f32>,
    /// Response to each orientation at the preferred frequency (largest contrast).
    pub orientation_curve: Vec<f64>,
    /// Response to each frequency at the peak orientation (largest contrast).
    pub frequency_curve: Vec<f64>,
    /// Degrees in [0, 180), from the doubled-angle vector sum.
    pub preferred_orientation: f64,
    /// The sampled orientation of the largest response.
    pub peak_orientation: f64,
    /// Cycles per pixel.
    pub preferred_frequency: f64,
    /// 1 - circular variance of the orientation curve.
    pub osi: f64,
    /// Half width (degrees) at which the fitted von Mises curve falls to 1/sqrt 2 of its
    /// peak (Ringach et al. 2002); 90 where it never does; NaN where a response of the
    /// curve is negative (a site before its ReLU), as for the sampled one.
    pub bandwidth: f64,
    /// The same, read off the sampled curve.
    pub sampled_bandwidth: f64,
    pub von_mises: VonMises,
    /// F1 / F0 across phases at the peak (> 1: simple-cell-like).
    pub modulation_ratio: f64,
    /// Response at the peak orientation and frequency, per contrast.
    pub contrast_response: Vec<f64>,
}

/// Population summaries of one site, for histograms and the preferred-orientation figure.
#[derive(Clone, Debug, Serialize)]
pub struct SiteSummary {
    pub responsive_units: usize,
    /// 10 bins over [0, 1].
    pub osi_histogram: Bins,
    /// 9 bins of 10 degrees over [0, 90].
    pub bandwidth_histogram: Bins,
    /// Responsive units whose preferred orientation lies nearest each sampled one.
    pub preferred_orientation_counts: Vec<usize>,
    /// Fraction of responsive units preferring within 22.5 degrees of horizontal or
    /// vertical (0.5 without an oblique effect).
    pub cardinal_fraction: f64,
    pub median_osi: f64,
    pub median_bandwidth: f64,
}

/// The tuning of every unit of a site to one protocol.
#[derive(Clone, Debug, Serialize)]
pub struct SiteTuning {
    pub site: String,
    pub protocol: Protocol,
    pub field: ReceptiveField,
    /// The map position whose units were measured.
    pub position: (usize, usize),
    /// Where the stimuli were centred, in input pixels (row, column).
    pub centre: (f64, f64),
    pub units: Vec<UnitTuning>,
    pub summary: SiteSummary,
}

/// The result of the tuning assay.
#[derive(Clone, Debug, Serialize)]
pub struct Tuning {
    pub grid: StimulusGrid,
    pub luminance: f64,
    pub sites: Vec<SiteTuning>,
}

/// Measures every unit of `sites` with every protocol of `opts`. `net` may live on any
/// device; no gradients are taken.
pub fn tuning(
    net: &Network,
    sites: &[String],
    space: &ImageSpace,
    opts: &TuningOptions,
    device: &Device,
) -> Result<Tuning> {
    opts.validate()?;
    let plan = net.plan();
    let fields = receptive_fields(plan);
    let input = [space.shape[1], space.shape[2]];
    let mut targets = Vec::with_capacity(sites.len());
    for site in sites {
        let i = plan.site_index(site)?;
        let position = centre_position(plan.stages[i].output);
        let field = fields[i].1;
        targets.push((
            i,
            site.clone(),
            field,
            position,
            field.centre(position, input),
        ));
    }
    let grid = opts.grid();
    let mut out = Vec::new();
    for &protocol in &opts.protocols {
        for (site, field, position, centre, values) in
            record_centres(net, &targets, protocol, &grid, opts, space, device)?
        {
            let units = unit_tunings(&values, &grid);
            let summary = summarize(&units, &grid.orientations);
            out.push(SiteTuning {
                site,
                protocol,
                field,
                position,
                centre,
                units,
                summary,
            });
        }
    }
    Ok(Tuning {
        grid,
        luminance: opts.luminance,
        sites: out,
    })
}

type Target = (usize, String, ReceptiveField, (usize, usize), (f64, f64));

/// Every target's centre-position responses to every stimulus, `[stimulus][unit]`, in the
/// order of `targets`. Sites sharing a stimulus centre share the forward passes.
#[allow(clippy::type_complexity)]
fn record_centres(
    net: &Network,
    targets: &[Target],
    protocol: Protocol,
    grid: &StimulusGrid,
    opts: &TuningOptions,
    space: &ImageSpace,
    device: &Device,
) -> Result<
    Vec<(
        String,
        ReceptiveField,
        (usize, usize),
        (f64, f64),
        Vec<Vec<f32>>,
    )>,
> {
    let [c, h, w] = space.shape;
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); targets.len()];
    let mut done = vec![false; targets.len()];
    for first in 0..targets.len() {
        if done[first] {
            continue;
        }
        let centre = targets[first].4;
        let group: Vec<usize> = (first..targets.len())
            .filter(|&t| targets[t].4 == centre)
            .collect();
        let names: Vec<&str> = group.iter().map(|&t| targets[t].1.as_str()).collect();
        let last = group.iter().map(|&t| targets[t].0).max().expect("a target");
        let hooks = Hooks::new()
            .record(&names)
            .stop_after(&net.plan().stages[last].site);
        for start in (0..grid.len()).step_by(opts.batch) {
            let end = (start + opts.batch).min(grid.len());
            let pixels = render(protocol, grid, start..end, centre, opts.luminance, space);
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [end - start, c, h, w]), device);
            let rec = net.run(x, &hooks);
            for &t in &group {
                values[t].extend(at_position(rec.get(&targets[t].1), targets[t].3));
            }
        }
        group.iter().for_each(|&t| done[t] = true);
    }
    Ok(targets
        .iter()
        .zip(values)
        .map(|(t, v)| {
            let units = v.len() / grid.len();
            let rows = v.chunks_exact(units.max(1)).map(<[f32]>::to_vec).collect();
            (t.1.clone(), t.2, t.3, t.4, rows)
        })
        .collect())
}

/// The `[batch, units]` values at one position of a map (a vector as it is), row-major.
fn at_position(act: &Activation, (y, x): (usize, usize)) -> Vec<f32> {
    match act {
        Activation::Map(t) => {
            let [b, u, _, _] = t.dims();
            Activation::Flat(t.clone().narrow(2, y, 1).narrow(3, x, 1).reshape([b, u])).to_vec()
        }
        Activation::Flat(_) => act.to_vec(),
    }
}

/// Analyses every unit's responses `[stimulus][unit]`.
fn unit_tunings(values: &[Vec<f32>], grid: &StimulusGrid) -> Vec<UnitTuning> {
    let units = values.first().map_or(0, Vec::len);
    (0..units)
        .map(|u| {
            let r: Vec<f64> = values.iter().map(|row| row[u] as f64).collect();
            unit_tuning(u, &r, grid)
        })
        .collect()
}

/// The statistics of one unit from its responses to every stimulus of `grid`, in grid order.
pub fn unit_tuning(unit: usize, r: &[f64], grid: &StimulusGrid) -> UnitTuning {
    let (nc, no, nf, np) = (
        grid.contrasts.len(),
        grid.orientations.len(),
        grid.frequencies.len(),
        grid.phases.len(),
    );
    let f0: Vec<f64> = r
        .chunks_exact(np)
        .map(|p| p.iter().sum::<f64>() / np as f64)
        .collect();
    // The largest contrast in magnitude; of two opposite ones, the positive (a bright
    // bar, not a dark one), whatever their order.
    let reference = (0..nc)
        .max_by(|&a, &b| {
            let (x, y) = (grid.contrasts[a], grid.contrasts[b]);
            x.abs().total_cmp(&y.abs()).then(x.total_cmp(&y))
        })
        .expect("a contrast");
    let at = |c: usize, o: usize, f: usize| f0[(c * no + o) * nf + f];
    let (o_peak, f_peak) = (0..no * nf)
        .map(|k| (k / nf, k % nf))
        .fold((0, 0), |best, (o, f)| {
            if at(reference, o, f) > at(reference, best.0, best.1) {
                (o, f)
            } else {
                best
            }
        });
    let orientation_curve: Vec<f64> = (0..no).map(|o| at(reference, o, f_peak)).collect();
    let frequency_curve: Vec<f64> = (0..nf).map(|f| at(reference, o_peak, f)).collect();
    let silent = r.iter().all(|&v| v == 0.0);
    let t = &grid.orientations;
    let phases = &r[((reference * no + o_peak) * nf + f_peak) * np..][..np];
    let nan = |v: f64| if silent { f64::NAN } else { v };
    let von_mises = fit_von_mises(t, &orientation_curve);
    UnitTuning {
        unit,
        silent,
        responses: f0.iter().map(|&v| v as f32).collect(),
        preferred_orientation: nan(preferred_orientation(t, &orientation_curve)),
        peak_orientation: nan(t[o_peak]),
        preferred_frequency: nan(grid.frequencies[f_peak]),
        osi: nan(orientation_selectivity(t, &orientation_curve)),
        // Like the sampled one, a width at 1/sqrt 2 of the peak is one of rates.
        bandwidth: match orientation_curve.iter().any(|&v| v < 0.0) {
            true => f64::NAN,
            false => nan(von_mises.bandwidth()),
        },
        sampled_bandwidth: nan(sampled_bandwidth(&orientation_curve)),
        von_mises,
        modulation_ratio: nan(modulation_ratio(phases, &grid.phases)),
        contrast_response: (0..nc).map(|c| at(c, o_peak, f_peak)).collect(),
        orientation_curve,
        frequency_curve,
    }
}

/// F1 / F0: the amplitude of the first harmonic of the response across one cycle of
/// phases, `2 |sum_p r_p exp(-i phi_p)| / P`, over its mean. A ratio of rates: NaN when
/// the mean is 0 or a response is negative (a site before its ReLU).
pub fn modulation_ratio(responses: &[f64], phases: &[f64]) -> f64 {
    let n = responses.len() as f64;
    let f0 = responses.iter().sum::<f64>() / n;
    let (c, s) = responses
        .iter()
        .zip(phases)
        .fold((0.0, 0.0), |(c, s), (r, p)| {
            (c + r * p.cos(), s - r * p.sin())
        });
    if f0 == 0.0 || responses.iter().any(|&r| r < 0.0) {
        f64::NAN
    } else {
        2.0 * c.hypot(s) / n / f0
    }
}

fn summarize(units: &[UnitTuning], orientations: &[f64]) -> SiteSummary {
    let live: Vec<&UnitTuning> = units.iter().filter(|u| !u.silent).collect();
    let mut counts = vec![0; orientations.len()];
    let mut cardinal = 0;
    let mut preferring = 0;
    for u in &live {
        let p = u.preferred_orientation;
        if !p.is_finite() {
            continue;
        }
        preferring += 1;
        let nearest = (0..orientations.len())
            .min_by(|&a, &b| {
                orientation_distance(p, orientations[a])
                    .total_cmp(&orientation_distance(p, orientations[b]))
            })
            .expect("orientations");
        counts[nearest] += 1;
        if orientation_distance(p, 0.0) <= 22.5 || orientation_distance(p, 90.0) <= 22.5 {
            cardinal += 1;
        }
    }
    let osi: Vec<f64> = live.iter().map(|u| u.osi).collect();
    let bandwidth: Vec<f64> = live.iter().map(|u| u.bandwidth).collect();
    SiteSummary {
        responsive_units: live.len(),
        osi_histogram: Bins::new(osi.iter().copied(), 0.0, 1.0, 10),
        bandwidth_histogram: Bins::new(bandwidth.iter().copied(), 0.0, 90.0, 9),
        preferred_orientation_counts: counts,
        cardinal_fraction: if preferring > 0 {
            cardinal as f64 / preferring as f64
        } else {
            f64::NAN
        },
        median_osi: median(&osi),
        median_bandwidth: median(&bandwidth),
    }
}

/// Median of the finite values (NaN if none).
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Responses in grid order (contrast, orientation, frequency, phase), one frequency:
    /// `value(contrast index, orientation index, phase)`.
    fn responses(grid: &StimulusGrid, value: impl Fn(usize, usize, f64) -> f64) -> Vec<f64> {
        let mut r = Vec::new();
        for c in 0..grid.contrasts.len() {
            for o in 0..grid.orientations.len() {
                for &p in &grid.phases {
                    r.push(value(c, o, p));
                }
            }
        }
        r
    }

    #[test]
    fn of_two_opposite_contrasts_the_positive_is_analysed_in_either_order() {
        // The unit answers orientation 3 at contrast +1 and orientation 10 at -1.
        for contrasts in [[1.0, -1.0], [-1.0, 1.0]] {
            let grid = StimulusGrid::new(16, (0.1, 0.1, 1), 4, &contrasts);
            let preferred = |c: usize| if grid.contrasts[c] > 0.0 { 3 } else { 10 };
            let r = responses(&grid, |c, o, _| f64::from(u8::from(o == preferred(c))));
            let u = unit_tuning(0, &r, &grid);
            assert!((u.preferred_orientation - grid.orientations[3]).abs() < 1e-9);
            assert_eq!(u.contrast_response.len(), 2);
        }
    }

    #[test]
    fn a_flat_curve_has_no_preference_and_a_negative_one_no_widths() {
        // Two float32 values a few units of the last place apart, over orientation.
        let a = 0.342_027_3_f32;
        let b = f32::from_bits(a.to_bits() - 3);
        let grid = StimulusGrid::new(16, (0.1, 0.1, 1), 4, &[1.0]);
        let r = responses(&grid, |_, o, _| f64::from(if o % 3 == 0 { a } else { b }));
        let u = unit_tuning(0, &r, &grid);
        assert!(
            u.preferred_orientation.is_nan(),
            "{}",
            u.preferred_orientation
        );
        // It never falls to 1/sqrt 2 of its peak: untuned.
        assert_eq!(u.sampled_bandwidth, 90.0);
        assert!(u.osi < 1e-5);
        // A tuned curve that dips below 0 (a site before its ReLU): no rates, no widths,
        // although it has a positive peak that a fit would measure from.
        let t = &grid.orientations;
        let r = responses(&grid, |_, o, _| 0.2 + (2.0 * t[o].to_radians()).cos());
        let u = unit_tuning(0, &r, &grid);
        assert!(u.von_mises.bandwidth() > 0.0);
        assert!(u.bandwidth.is_nan() && u.sampled_bandwidth.is_nan() && u.osi.is_nan());
    }

    #[test]
    fn modulation_ratio_of_a_half_wave_cosine_and_of_negative_responses() {
        // r = 1 + cos(phi): F1 = 2 |sum (1 + cos phi) e^{-i phi}| / P = 1, F0 = 1.
        let phases: Vec<f64> = (0..8)
            .map(|k| k as f64 * std::f64::consts::PI / 4.0)
            .collect();
        let r: Vec<f64> = phases.iter().map(|p| 1.0 + p.cos()).collect();
        assert!((modulation_ratio(&r, &phases) - 1.0).abs() < 1e-12);
        // A site before its ReLU: no ratio of rates.
        let r: Vec<f64> = phases.iter().map(|p| 0.5 + p.cos()).collect();
        assert!(modulation_ratio(&r, &phases).is_nan());
        assert!(modulation_ratio(&[0.0; 8], &phases).is_nan());
    }
}
