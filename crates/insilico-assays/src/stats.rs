//! Small statistics the assays need, written out so that each can be checked by hand:
//! ranks, Pearson and Spearman correlation, mean and spread, trapezoid areas, binned
//! mutual information.

/// Mean of the finite values (NaN if none).
pub fn mean(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NAN;
    }
    f.iter().sum::<f64>() / f.len() as f64
}

/// Sample standard deviation (n - 1) of the finite values (0 for one value).
pub fn std(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.len() < 2 {
        return 0.0;
    }
    let m = mean(&f);
    (f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (f.len() - 1) as f64).sqrt()
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Ranks starting at 1, ties sharing their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation: Pearson on ranks (ties averaged).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Area under a piecewise-linear curve (trapezoid rule).
pub fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum()
}

/// Mutual information (bits) between a continuous response and a class label, with the
/// response binned into `bins` equal-count (quantile) bins. Equal-count bins make the
/// estimate insensitive to a unit's scale and to outliers.
pub fn mutual_information(response: &[f32], labels: &[u8], num_classes: usize, bins: usize) -> f64 {
    let n = response.len();
    if n == 0 || bins < 2 {
        return 0.0;
    }
    let r: Vec<f64> = response.iter().map(|&v| v as f64).collect();
    let rk = ranks(&r);
    let mut joint = vec![0usize; bins * num_classes];
    for (i, &label) in labels.iter().enumerate() {
        // Tied responses share a rank and so a bin: a silent unit carries no information.
        let bin = (((rk[i] - 1.0) / n as f64) * bins as f64).floor() as usize;
        joint[bin.min(bins - 1) * num_classes + label as usize] += 1;
    }
    let total = n as f64;
    let mut pb = vec![0.0; bins];
    let mut pc = vec![0.0; num_classes];
    for b in 0..bins {
        for c in 0..num_classes {
            let p = joint[b * num_classes + c] as f64 / total;
            pb[b] += p;
            pc[c] += p;
        }
    }
    let mut mi = 0.0;
    for b in 0..bins {
        for c in 0..num_classes {
            let p = joint[b * num_classes + c] as f64 / total;
            if p > 0.0 {
                mi += p * (p / (pb[b] * pc[c])).log2();
            }
        }
    }
    mi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_known_rankings() {
        // Identical order: 1; reversed: -1.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[10.0, 20.0, 30.0, 40.0, 50.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Monotone but non-linear: Spearman 1, Pearson below 1.
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(4)).collect();
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y) < 0.99);
        // One swap of adjacent ranks among n = 5: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1))
        // = 1 - 6 * 2 / 120 = 0.9.
        let z = [1.0, 2.0, 4.0, 3.0, 5.0];
        assert!((spearman(&x, &z) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn ties_share_average_ranks() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn pearson_of_a_line_is_one_and_of_constants_nan() {
        let x = [0.0, 1.0, 2.0];
        assert!((pearson(&x, &[1.0, 3.0, 5.0]) - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &[2.0, 2.0, 2.0]).is_nan());
    }

    #[test]
    fn trapezoid_of_a_line_and_a_step() {
        // y = x on [0, 1]: area 1/2.
        assert!((trapezoid(&[0.0, 0.5, 1.0], &[0.0, 0.5, 1.0]) - 0.5).abs() < 1e-12);
        assert_eq!(trapezoid(&[0.0, 1.0], &[2.0, 2.0]), 2.0);
    }

    #[test]
    fn mutual_information_bounds() {
        // A response that identifies the class exactly carries log2(K) bits with K
        // equally likely classes and K bins.
        let labels: Vec<u8> = (0..400).map(|i| (i % 4) as u8).collect();
        let response: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let mi = mutual_information(&response, &labels, 4, 4);
        assert!((mi - 2.0).abs() < 1e-9, "{mi}");
        // A constant response carries none.
        assert_eq!(mutual_information(&[1.0; 400], &labels, 4, 4), 0.0);
    }

    #[test]
    fn mean_and_std_skip_nan() {
        assert_eq!(mean(&[1.0, f64::NAN, 3.0]), 2.0);
        assert!((std(&[1.0, 3.0]) - 2f64.sqrt()).abs() < 1e-12);
    }
}

/// Reads back numbers that serde_json wrote as `null` because they were NaN (an
/// undefined correlation, a selectivity of negative responses): for
/// `#[serde(deserialize_with = "nullable")]` on `f64`, `Vec<f64>` and `Vec<Vec<f64>>`
/// fields of result types, so that every result file reads back into its own type.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Nullable,
{
    use serde::Deserialize;
    T::Raw::deserialize(d).map(T::fill)
}

/// A number, or nested lists of numbers, whose `null`s read as NaN.
pub trait Nullable: Sized {
    type Raw: serde::de::DeserializeOwned;
    fn fill(raw: Self::Raw) -> Self;
}

impl Nullable for f64 {
    type Raw = Option<f64>;
    fn fill(raw: Option<f64>) -> f64 {
        raw.unwrap_or(f64::NAN)
    }
}

impl<T: Nullable> Nullable for Vec<T> {
    type Raw = Vec<T::Raw>;
    fn fill(raw: Vec<T::Raw>) -> Self {
        raw.into_iter().map(T::fill).collect()
    }
}

#[cfg(test)]
mod nullable_tests {
    use super::nullable;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Row {
        #[serde(deserialize_with = "nullable")]
        rho: f64,
        #[serde(deserialize_with = "nullable")]
        curve: Vec<Vec<f64>>,
    }

    #[test]
    fn nan_written_as_null_reads_back_as_nan() {
        let row = Row {
            rho: f64::NAN,
            curve: vec![vec![0.5, f64::NAN]],
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"rho":null,"curve":[[0.5,null]]}"#);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.rho.is_nan() && back.curve[0][1].is_nan());
        assert_eq!(back.curve[0][0], 0.5);
    }
}
