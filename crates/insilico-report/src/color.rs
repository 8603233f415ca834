//! Colour-blind-safe categorical palette and a viridis-like sequential map.

use plotters::style::RGBColor;

/// Okabe–Ito colours (Wong 2011, Nature Methods), reordered so the first
/// few are the most distinct on white; yellow is replaced by grey because it
/// is unreadable as a thin line on a white background.
const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(120, 120, 120), // grey
];

/// Number of distinct colours in [`palette`]; indices wrap around after it
/// (line plots then switch to dashed, then dotted lines).
pub const PALETTE_LEN: usize = OKABE_ITO.len();

/// Categorical, colour-blind-safe colour `i` (Okabe–Ito; wraps every
/// [`PALETTE_LEN`] colours).
pub fn palette(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// matplotlib's `tab10`, for up to ten categories (the classes of MNIST or CIFAR-10)
/// where the Okabe–Ito palette's eight would repeat.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour `i` of `n` categories, all distinct: Okabe–Ito up to eight, `tab10` up to ten,
/// evenly spaced viridis beyond.
pub fn categorical(i: usize, n: usize) -> RGBColor {
    match n {
        0..=8 => palette(i),
        9..=10 => TAB10[i % 10],
        _ => sequential(i as f64 / (n - 1) as f64),
    }
}

/// Viridis anchors at t = 0, 0.1, ..., 1 (matplotlib's viridis).
const VIRIDIS: [(u8, u8, u8); 11] = [
    (68, 1, 84),
    (72, 36, 117),
    (65, 68, 135),
    (53, 95, 141),
    (42, 120, 142),
    (33, 145, 140),
    (34, 168, 132),
    (68, 191, 112),
    (122, 209, 81),
    (189, 223, 38),
    (253, 231, 37),
];

/// Perceptually uniform sequential colour (viridis) for `t` in [0, 1]
/// (clamped; NaN maps to 0). Use it for series ordered by a value such as
/// label noise.
pub fn sequential(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let f = t * (VIRIDIS.len() - 1) as f64;
    let i = (f.floor() as usize).min(VIRIDIS.len() - 2);
    let u = f - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let lerp = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * u).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_wraps_and_sequential_endpoints() {
        assert_eq!(palette(0), palette(PALETTE_LEN));
        assert_ne!(palette(0), palette(1));
        assert_eq!(sequential(0.0), RGBColor(68, 1, 84));
        assert_eq!(sequential(1.0), RGBColor(253, 231, 37));
        assert_eq!(sequential(7.0), sequential(1.0));
        assert_eq!(sequential(f64::NAN), sequential(0.0));
        let ten: Vec<RGBColor> = (0..10).map(|i| categorical(i, 10)).collect();
        assert!(
            (0..10).all(|i| (0..i).all(|j| ten[i] != ten[j])),
            "ten distinct colours"
        );
        assert_eq!(categorical(3, 5), palette(3));
    }
}
