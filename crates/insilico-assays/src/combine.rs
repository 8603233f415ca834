//! Combining per-unit contributions into the pre-activations of many masks, on plain
//! slices.
//!
//! For a binary mask `m`, the next linear layer's pre-activation is
//! `base + sum_u m_u (R_u - C_u)`, with `C_u` unit `u`'s contribution for the image, `R_u`
//! its replacement's and `base = bias + sum_u C_u` (see [`crate::masks`]). Masks come in
//! cumulative chains (each fraction silences the previous fraction's units and a few
//! more), so a mask's pre-activation is reached from the previous mask's by adding the
//! units it silences anew and taking back those it no longer silences: a [`Schedule`]
//! step. A chain of 11 fractions then costs about as many row additions as it has units,
//! not one full combination per mask. Each image is taken through every mask of a block
//! in turn, so its contributions are read from memory once per block, and the relu and
//! 2x2 max pool that follow are applied in the same pass, writing straight into the rows
//! the rest of the network runs on.

use insilico_engine::linearize::ResumeAt;
use rayon::prelude::*;

/// How one mask's pre-activation is reached from the previous mask's in a [`Schedule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Start again from the unablated `base` (cheaper than undoing the previous mask).
    pub fresh: bool,
    /// Units silenced by this mask that the starting point does not silence.
    pub add: Vec<usize>,
    /// Units the starting point silences that this mask does not.
    pub sub: Vec<usize>,
}

impl Step {
    /// Row additions this step costs.
    pub fn cost(&self) -> usize {
        self.add.len() + self.sub.len() + usize::from(self.fresh)
    }
}

/// One [`Step`] per mask, in the masks' order.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The schedule for binary masks (a value of 1 silences the unit): each mask starts
    /// from the previous one where their symmetric difference is smaller than the mask
    /// itself, and from `base` otherwise.
    pub fn new(masks: &[Vec<f32>]) -> Self {
        let silenced = |m: &[f32]| -> Vec<bool> { m.iter().map(|&v| v != 0.0).collect() };
        let mut prev: Option<Vec<bool>> = None;
        let steps = masks
            .iter()
            .map(|m| {
                let now = silenced(m);
                let fresh_add: Vec<usize> = (0..now.len()).filter(|&u| now[u]).collect();
                let step = match &prev {
                    Some(p) => {
                        let add: Vec<usize> = (0..now.len()).filter(|&u| now[u] && !p[u]).collect();
                        let sub: Vec<usize> = (0..now.len()).filter(|&u| !now[u] && p[u]).collect();
                        if add.len() + sub.len() < fresh_add.len() + 1 {
                            Some(Step {
                                fresh: false,
                                add,
                                sub,
                            })
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                prev = Some(now);
                step.unwrap_or(Step {
                    fresh: true,
                    add: fresh_add,
                    sub: Vec::new(),
                })
            })
            .collect();
        Self { steps }
    }

    /// Row additions per image for all masks.
    pub fn cost(&self) -> usize {
        self.steps.iter().map(Step::cost).sum()
    }
}

/// Each unit's contribution `C_u` to the linear layer's output, image by image.
#[derive(Clone, Copy)]
pub enum PerUnit<'a> {
    /// Computed beforehand: `[units, groups, images, out / groups]`, each unit's
    /// contribution to each image's `out` values in `groups` contiguous runs per unit and
    /// image (a conv layer's output channels; one group for a linear layer).
    Values { values: &'a [f32], groups: usize },
    /// A linear layer whose input units are single values (an MLP's hidden units): `C_u`
    /// is the weight row `W[u, :]` scaled by the unit's value, a rank-one term computed
    /// where it is added. Nothing per image and unit is written to memory (`U x out`
    /// floats an image, read back once), the weight rows stay in cache across images,
    /// and a unit whose value equals its replacement (a silent relu unit replaced by
    /// zero) changes nothing and is skipped.
    Factored {
        /// The layer's input `[images, units]`.
        inputs: &'a [f32],
        /// `W`: `[units, out]`.
        weight: &'a [f32],
        /// Each unit's replacement value at the layer's input, `[units]`.
        replacement: &'a [f32],
    },
}

/// What the combination reads for a chunk of images.
pub struct Contributions<'a> {
    pub per_unit: PerUnit<'a>,
    /// `R`: `[units, out]`, each unit's replacement's contribution (the same for every image).
    pub replacement: &'a [f32],
    /// The linear layer's bias per output value, `[out]`.
    pub bias: &'a [f32],
    pub units: usize,
    pub images: usize,
}

impl Contributions<'_> {
    fn out(&self) -> usize {
        self.bias.len()
    }

    fn groups(&self) -> usize {
        match self.per_unit {
            PerUnit::Values { groups, .. } => groups,
            PerUnit::Factored { .. } => 1,
        }
    }

    /// Checks that the slices' lengths agree with `units`, `images` and `out`.
    fn check(&self) {
        let (units, out) = (self.units, self.out());
        match self.per_unit {
            PerUnit::Values { values, groups } => {
                assert_eq!(values.len(), units * self.images * out);
                assert_eq!(out % groups.max(1), 0, "groups must divide the output");
            }
            PerUnit::Factored {
                inputs,
                weight,
                replacement,
            } => {
                assert_eq!(inputs.len(), self.images * units);
                assert_eq!(weight.len(), units * out);
                assert_eq!(replacement.len(), units);
            }
        }
        assert_eq!(self.replacement.len(), units * out);
    }
}

/// Every mask's resumed activation for every image of `c`, image-major: row
/// `image * masks + mask` of `[images * masks, at.row_len()]`. Images run in parallel;
/// each thread keeps one image's unablated sum, changes and running sum in its cache.
pub fn combine(c: &Contributions, schedule: &Schedule, at: &ResumeAt) -> Vec<f32> {
    combine_on(c, schedule, at, avx2())
}

/// [`combine`] with the AVX2 build of [`image_rows`] where `avx2` is set (the tests run
/// both builds on one machine).
fn combine_on(c: &Contributions, schedule: &Schedule, at: &ResumeAt, avx2: bool) -> Vec<f32> {
    let out = c.out();
    let row = at.row_len();
    let masks = schedule.steps.len();
    c.check();
    if let ResumeAt::PoolRelu {
        dims: [_, h, w], ..
    } = at
    {
        assert_eq!(
            (out / c.groups()) % (h * w),
            0,
            "a group holds whole channels"
        );
    }
    let mut rows = vec![0.0f32; c.images * masks * row];
    rows.par_chunks_mut((masks * row).max(1))
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (image, dst)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the processor has AVX2 and FMA (`avx2` comes from [`avx2()`]).
                return unsafe { image_rows_avx2(c, schedule, at, image, dst, scratch) };
            }
            image_rows(c, schedule, at, image, dst, scratch)
        });
    rows
}

/// Whether the processor runs the AVX2 build of [`image_rows`].
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`image_rows`] compiled for AVX2 and FMA: the workspace builds for the baseline x86-64
/// (SSE2, four lanes), and the row additions and the pooling are most of the sweep's time
/// after its GEMMs. The same operations in the same order as the portable build (the
/// additions are of `+-1 * x`, exact products, so a fused multiply-add rounds the same).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn image_rows_avx2(
    c: &Contributions,
    schedule: &Schedule,
    at: &ResumeAt,
    image: usize,
    dst: &mut [f32],
    s: &mut Scratch,
) {
    image_rows(c, schedule, at, image, dst, s)
}

/// One thread's working rows, kept from image to image; one group of output values at
/// a time (a conv layer's channel), so that all of them stay in the L1 cache.
#[derive(Default)]
struct Scratch {
    /// `bias + sum_u C_u` for the group.
    base: Vec<f32>,
    /// Each unit's change `D_u = R_u - C_u` for the group, `[U, seg]` (each is read by
    /// several steps: a chain adds it, the next order's chain adds it again).
    change: Vec<f32>,
    /// The running pre-activation of the group.
    acc: Vec<f32>,
    /// One plane's vertical maxima for the pool, `[h / 2, w]`.
    pair: Vec<f32>,
}

/// Every mask's row for one image (`dst`, `[masks, row]`). Inlined into its callers so
/// that [`image_rows_avx2`] compiles all of it for AVX2.
#[inline(always)]
fn image_rows(
    c: &Contributions,
    schedule: &Schedule,
    at: &ResumeAt,
    image: usize,
    dst: &mut [f32],
    s: &mut Scratch,
) {
    match c.per_unit {
        PerUnit::Values { values, .. } => grouped_rows(c, values, schedule, at, image, dst, s),
        PerUnit::Factored {
            inputs,
            weight,
            replacement,
        } => {
            let x = &inputs[image * c.units..(image + 1) * c.units];
            factored_rows(c, (x, weight, replacement), schedule, at, dst, s)
        }
    }
}

/// [`image_rows`] on precomputed contributions, group by group: the relu and pool act
/// within a channel, so each group's part of a row is finished on its own.
#[inline(always)]
fn grouped_rows(
    c: &Contributions,
    values: &[f32],
    schedule: &Schedule,
    at: &ResumeAt,
    image: usize,
    dst: &mut [f32],
    s: &mut Scratch,
) {
    let out = c.out();
    let groups = c.groups();
    let seg = out / groups;
    let part = at.row_len() / groups;
    // `C_u` of this image in group `g`, `[seg]`.
    let run = |u: usize, g: usize| &values[((u * groups + g) * c.images + image) * seg..][..seg];
    for g in 0..groups {
        if g + 1 < groups {
            for u in 0..c.units {
                prefetch(run(u, g + 1));
            }
        }
        s.base.clear();
        s.base.extend_from_slice(&c.bias[g * seg..(g + 1) * seg]);
        s.change.resize(c.units * seg, 0.0);
        for (u, d) in s.change.chunks_exact_mut(seg).enumerate() {
            let r = &c.replacement[u * out + g * seg..][..seg];
            for (((b, d), cu), r) in s.base.iter_mut().zip(d).zip(run(u, g)).zip(r) {
                *b += cu;
                *d = r - cu;
            }
        }
        let change = &s.change;
        let rows = (&s.base[..], &mut s.acc, &mut s.pair);
        run_schedule(
            schedule,
            at,
            rows,
            dst,
            g * part..(g + 1) * part,
            |acc, u, sign| add_scaled(acc, &change[u * seg..(u + 1) * seg], sign),
        );
    }
}

/// [`image_rows`] for [`PerUnit::Factored`]: `x` is the image's input to the layer, `w`
/// its weight `[units, out]`, `r` the units' replacements. The same arithmetic as
/// [`grouped_rows`] on the products `x_u * W[u, j]` and `R_u = r_u * W[u, j]` (each
/// rounded as the GEMM that would have written them rounds it), so both give the same
/// bits; where `x_u == r_u` the change is exactly zero and is not added.
#[inline(always)]
fn factored_rows(
    c: &Contributions,
    (x, w, r): (&[f32], &[f32], &[f32]),
    schedule: &Schedule,
    at: &ResumeAt,
    dst: &mut [f32],
    s: &mut Scratch,
) {
    let out = c.out();
    s.base.clear();
    s.base.extend_from_slice(c.bias);
    for (&xu, wu) in x.iter().zip(w.chunks_exact(out)) {
        for (b, &wj) in s.base.iter_mut().zip(wu) {
            *b += xu * wj;
        }
    }
    let rows = (&s.base[..], &mut s.acc, &mut s.pair);
    run_schedule(schedule, at, rows, dst, 0..at.row_len(), |acc, u, sign| {
        if x[u] != r[u] {
            let (xu, rw) = (x[u], &c.replacement[u * out..(u + 1) * out]);
            for ((a, &wj), &rj) in acc.iter_mut().zip(&w[u * out..]).zip(rw) {
                *a += sign * (rj - xu * wj);
            }
        }
    });
}

/// Every mask's pre-activation reached from `base` by the schedule's steps, each
/// finished into `part` of its mask's row of `dst`; `add(acc, u, sign)` adds `sign`
/// times unit `u`'s change to the running pre-activation `acc`. `pair` is the pool's
/// scratch ([`finish`]).
#[inline(always)]
fn run_schedule(
    schedule: &Schedule,
    at: &ResumeAt,
    (base, acc, pair): (&[f32], &mut Vec<f32>, &mut Vec<f32>),
    dst: &mut [f32],
    part: std::ops::Range<usize>,
    mut add: impl FnMut(&mut [f32], usize, f32),
) {
    acc.resize(base.len(), 0.0);
    for (step, dst) in schedule.steps.iter().zip(dst.chunks_mut(at.row_len())) {
        if step.fresh {
            acc.copy_from_slice(base);
        }
        for (units, sign) in [(&step.add, 1.0), (&step.sub, -1.0)] {
            for &u in units {
                add(acc, u, sign);
            }
        }
        finish(acc, at, &mut dst[part.clone()], pair);
    }
}

/// Asks the processor to bring `x` into its caches. The next group's contributions are
/// one short run per unit, far apart (`[units, groups, images, ..]`), which the hardware
/// prefetchers do not foresee: without this, reading them was the combination's largest
/// stall (profiled).
#[inline(always)]
fn prefetch(x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in x.chunks(16) {
        // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
        unsafe {
            std::arch::x86_64::_mm_prefetch(line.as_ptr().cast(), std::arch::x86_64::_MM_HINT_T0)
        };
    }
}

/// `acc += sign * x`.
#[inline(always)]
fn add_scaled(acc: &mut [f32], x: &[f32], sign: f32) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += sign * v;
    }
}

/// The larger of two values as a select, which vectorizes (`f32::max` does not).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The pre-activation `pre` as the resumed row: pooled 2x2 then rectified, or as it is.
/// `pair` holds one plane's vertical maxima (a scratch kept by the caller).
#[inline(always)]
fn finish(pre: &[f32], at: &ResumeAt, dst: &mut [f32], pair: &mut Vec<f32>) {
    match at {
        ResumeAt::PoolRelu {
            dims: [_, h, w], ..
        } => {
            let (h2, w2) = (h / 2, w / 2);
            pair.resize(h2 * w, 0.0);
            for (plane, out) in pre.chunks_exact(h * w).zip(dst.chunks_exact_mut(h2 * w2)) {
                for (rows, pair) in plane.chunks_exact(2 * w).zip(pair.chunks_exact_mut(*w)) {
                    let (top, bottom) = rows.split_at(*w);
                    for ((p, t), b) in pair.iter_mut().zip(top).zip(bottom) {
                        *p = larger(*t, *b);
                    }
                }
                // The sides are even, so no pair straddles two rows: one pass over the
                // whole plane's vertical maxima (one long loop, not h/2 short ones).
                for (o, p) in out.iter_mut().zip(pair.chunks_exact(2)) {
                    *o = larger(larger(p[0], p[1]), 0.0);
                }
            }
        }
        ResumeAt::Output { .. } => dst.copy_from_slice(pre),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masks(rows: &[&[usize]], units: usize) -> Vec<Vec<f32>> {
        rows.iter()
            .map(|r| {
                (0..units)
                    .map(|u| f32::from(u8::from(r.contains(&u))))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn schedule_follows_cumulative_chains_and_restarts_between_them() {
        // A chain {}, {2}, {2, 0}, {2, 0, 1, 3}, then a new order's {1}: undoing four
        // units costs more than starting again from base with one.
        let m = masks(&[&[], &[2], &[2, 0], &[2, 0, 1, 3], &[1]], 4);
        let s = Schedule::new(&m);
        let st = |fresh, add: &[usize], sub: &[usize]| Step {
            fresh,
            add: add.to_vec(),
            sub: sub.to_vec(),
        };
        assert_eq!(
            s.steps,
            vec![
                st(true, &[], &[]),
                st(false, &[2], &[]),
                st(false, &[0], &[]),
                st(false, &[1, 3], &[]),
                st(true, &[1], &[]),
            ]
        );
        assert_eq!(s.cost(), 1 + 1 + 1 + 2 + 2);
        // Dropping one unit and adding another is cheaper than starting again.
        let s = Schedule::new(&masks(&[&[0, 1, 2], &[0, 1, 3]], 4));
        assert_eq!(s.steps[1], st(false, &[3], &[2]));
    }

    /// Each mask's row against the definition `base + sum_u m_u (R_u - C_u)`, summed
    /// directly per mask, then pooled and rectified by hand; the contributions come in
    /// one run per output channel (`groups = o`), as a convolution's GEMM writes them.
    #[test]
    fn combine_matches_the_direct_sum_with_pool_and_relu() {
        let (units, images, [o, h, w]) = (3, 2, [2, 2, 4]);
        let (out, seg) = (o * h * w, h * w);
        let val = |i: usize| ((i * 37 % 23) as f32 - 11.0) / 7.0;
        let per_unit: Vec<f32> = (0..units * images * out).map(val).collect();
        let replacement: Vec<f32> = (0..units * out).map(|i| val(i + 5) * 0.5).collect();
        let bias: Vec<f32> = (0..out).map(|i| val(i + 9) * 0.1).collect();
        let c = Contributions {
            per_unit: PerUnit::Values {
                values: &per_unit,
                groups: o,
            },
            replacement: &replacement,
            bias: &bias,
            units,
            images,
        };
        // C_u of `image` at output value j = (channel g, position p): [u, g, image, p].
        let cu = |u: usize, image: usize, j: usize| {
            per_unit[((u * o + j / seg) * images + image) * seg + j % seg]
        };
        let m = masks(&[&[], &[1], &[1, 2], &[0, 1, 2], &[0], &[0, 2]], units);
        let at = ResumeAt::PoolRelu {
            site: "pool".into(),
            dims: [o, h, w],
        };
        let rows = combine(&c, &Schedule::new(&m), &at);
        // The portable build gives the same values, bit for bit.
        assert_eq!(rows, combine_on(&c, &Schedule::new(&m), &at, false));
        let row = at.row_len();
        assert_eq!(row, o * (h / 2) * (w / 2));
        for image in 0..images {
            for (k, mask) in m.iter().enumerate() {
                let pre: Vec<f32> = (0..out)
                    .map(|j| {
                        let mut v = bias[j];
                        for u in 0..units {
                            v += if mask[u] == 1.0 {
                                replacement[u * out + j]
                            } else {
                                cu(u, image, j)
                            };
                        }
                        v
                    })
                    .collect();
                let got = &rows[(image * m.len() + k) * row..][..row];
                for ch in 0..o {
                    for x in 0..w / 2 {
                        let at = |yy: usize, xx: usize| pre[ch * h * w + yy * w + xx];
                        let want = [
                            at(0, 2 * x),
                            at(0, 2 * x + 1),
                            at(1, 2 * x),
                            at(1, 2 * x + 1),
                        ]
                        .into_iter()
                        .fold(0.0f32, f32::max);
                        let g = got[ch * (w / 2) + x];
                        assert!(
                            (g - want).abs() < 1e-5,
                            "image {image} mask {k}: {g} vs {want}"
                        );
                    }
                }
            }
        }
        // Without the pool, the rows are the pre-activations themselves.
        let at = ResumeAt::Output {
            site: "fc".into(),
            dims: vec![out],
        };
        let plain = combine(&c, &Schedule::new(&m), &at);
        let mask = &m[3]; // every unit silenced: bias plus the replacements
        for j in 0..out {
            let want: f32 = bias[j] + (0..units).map(|u| replacement[u * out + j]).sum::<f32>();
            assert!(mask.iter().all(|&v| v == 1.0));
            assert!((plain[3 * out + j] - want).abs() < 1e-5);
            assert!((plain[(m.len() + 3) * out + j] - want).abs() < 1e-5);
        }
    }

    /// A linear layer's rank-one contributions computed in place give the bits of the
    /// same contributions written out first (as the GEMM of `x_u * W[u, :]` writes
    /// them), with zero and non-zero replacements (units equal to theirs are skipped).
    #[test]
    fn factored_contributions_match_the_written_ones_bit_for_bit() {
        let (units, images, out) = (5, 3, 7);
        let val = |i: usize| ((i * 29 % 17) as f32 - 8.0) / 3.0;
        // Some inputs equal to the replacement (silent relu units replaced by zero).
        let inputs: Vec<f32> = (0..images * units)
            .map(|i| if i % 3 == 0 { 0.0 } else { val(i) })
            .collect();
        let weight: Vec<f32> = (0..units * out).map(|i| val(i + 3) * 0.37).collect();
        let bias: Vec<f32> = (0..out).map(|i| val(i + 1) * 0.1).collect();
        let m = masks(&[&[], &[1], &[1, 3], &[0, 1, 3, 4], &[2], &[0, 2]], units);
        let at = ResumeAt::Output {
            site: "fc".into(),
            dims: vec![out],
        };
        for r_value in [0.0f32, 0.75] {
            let r = vec![r_value; units];
            let rows_of = |v: f32, u: usize| -> Vec<f32> {
                weight[u * out..(u + 1) * out]
                    .iter()
                    .map(|w| v * w)
                    .collect()
            };
            let replacement: Vec<f32> = (0..units).flat_map(|u| rows_of(r[u], u)).collect();
            // [units, 1 group, images, out]
            let mut written = Vec::new();
            for u in 0..units {
                for i in 0..images {
                    written.extend(rows_of(inputs[i * units + u], u));
                }
            }
            let schedule = Schedule::new(&m);
            let values = PerUnit::Values {
                values: &written,
                groups: 1,
            };
            let factored = PerUnit::Factored {
                inputs: &inputs,
                weight: &weight,
                replacement: &r,
            };
            let rows = |per_unit| {
                let c = Contributions {
                    per_unit,
                    replacement: &replacement,
                    bias: &bias,
                    units,
                    images,
                };
                (
                    combine(&c, &schedule, &at),
                    combine_on(&c, &schedule, &at, false),
                )
            };
            let (a, b) = (rows(values), rows(factored));
            assert_eq!(a.0, b.0);
            assert_eq!(a.1, b.1);
            assert_eq!(a.0, a.1);
        }
    }
}
