//! Degenerate inputs: a clear error or a documented value, never a silent NaN.

mod common;

use common::{gaussian, matrix, related_pair};
use faer::Mat;
use insilico_population::*;

/// `x` with `dead` extra all-zero units (silent ReLUs) appended.
fn with_dead_units(x: &Mat<f64>, dead: usize) -> Mat<f64> {
    Mat::from_fn(x.nrows(), x.ncols() + dead, |i, j| {
        if j < x.ncols() {
            x[(i, j)]
        } else {
            0.0
        }
    })
}

#[test]
fn different_stimulus_counts_are_an_error_for_every_measure() {
    let x = matrix(&gaussian(50, 4, 1));
    let y = matrix(&gaussian(49, 4, 2));
    for measure in Measure::all() {
        let err = compare(measure, &x, &y).unwrap_err();
        assert!(
            matches!(err, Error::StimulusMismatch { x: 50, y: 49, .. }),
            "{}: {err}",
            measure.name()
        );
        assert!(err.to_string().contains("50 and 49"), "{err}");
    }
}

#[test]
fn too_few_stimuli_is_an_error_for_every_measure() {
    let x = matrix(&gaussian(2, 3, 3));
    for measure in Measure::all() {
        let err = compare(measure, &x, &x).unwrap_err();
        assert!(
            matches!(err, Error::TooFewStimuli { stimuli: 2, .. }),
            "{}: {err}",
            measure.name()
        );
    }
    assert!(matches!(
        spectrum(&matrix(&gaussian(1, 3, 4))),
        Err(Error::TooFewStimuli { .. })
    ));
}

#[test]
fn cca_needs_more_stimuli_than_the_summed_ranks() {
    // 10 stimuli, 5 + 5 units: the centred responses span 9 dimensions, so the two 5-D
    // subspaces must share a direction and a correlation of 1 is forced.
    let (x, y) = (matrix(&gaussian(10, 5, 5)), matrix(&gaussian(10, 5, 6)));
    let err = cca(&x, &y).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooFewStimuli {
                stimuli: 10,
                needed: 11,
                ..
            }
        ),
        "{err}"
    );
    assert!(cca(&matrix(&gaussian(11, 5, 5)), &matrix(&gaussian(11, 5, 6))).is_ok());
}

#[test]
fn dead_units_change_nothing_for_cka_and_cca() {
    let (x, y) = related_pair(120, 6, 8, 7);
    let dead = matrix(&with_dead_units(&x, 3));
    let (x, y) = (matrix(&x), matrix(&y));
    // Zero columns add nothing to X^T X or X^T Y, and CCA drops directions with no variance.
    let same = |what: &str, a: f64, b: f64| assert!((a - b).abs() < 1e-10, "{what}: {a} vs {b}");
    same(
        "linear CKA",
        cka_linear(&dead, &y).unwrap(),
        cka_linear(&x, &y).unwrap(),
    );
    same(
        "debiased CKA",
        cka_debiased(&dead, &y).unwrap(),
        cka_debiased(&x, &y).unwrap(),
    );
    same(
        "RBF CKA",
        cka_rbf(&dead, &y, 1.0).unwrap(),
        cka_rbf(&x, &y, 1.0).unwrap(),
    );
    same(
        "CCA",
        cca(&dead, &y).unwrap().mean,
        cca(&x, &y).unwrap().mean,
    );
    same(
        "SVCCA",
        svcca(&dead, &y, 0.99).unwrap().mean,
        svcca(&x, &y, 0.99).unwrap().mean,
    );
    assert_eq!(cca(&dead, &y).unwrap().kept_x, 6);
}

#[test]
fn rank_deficient_layers_are_reduced_to_their_rank() {
    // Duplicated units: rank 4 out of 8 columns; CCA sees the same 4-D subspace.
    let (x, y) = related_pair(100, 4, 5, 8);
    let doubled = Mat::from_fn(100, 8, |i, j| x[(i, j % 4)] * (1.0 + j as f64));
    let a = cca(&matrix(&doubled), &matrix(&y)).unwrap();
    let b = cca(&matrix(&x), &matrix(&y)).unwrap();
    assert_eq!(a.kept_x, 4);
    assert!((a.mean - b.mean).abs() < 1e-8);
    let s = spectrum(&matrix(&doubled)).unwrap();
    assert_eq!(s.eigenvalues.len(), 4);
}

/// Every stimulus evoking the same response, whose mean floating point does not give back
/// exactly: 0.1 summed 40 times and divided by 40 is not 0.1.
fn same_response_everywhere(n: usize) -> Mat<f64> {
    let response = [0.1, 1.0 / 3.0, 0.7, -2.3e-5, 12345.6789];
    let constant = Mat::from_fn(n, response.len(), |_, j| response[j]);
    let naive_mean = |j: usize| (0..n).map(|_| response[j]).sum::<f64>() / n as f64;
    assert!(
        (0..response.len()).any(|j| naive_mean(j) != response[j]),
        "the test needs a mean that rounds"
    );
    constant
}

#[test]
fn all_constant_representation_is_an_error_not_nan() {
    let x = matrix(&gaussian(40, 5, 9));
    for constant in [Mat::zeros(40, 5), same_response_everywhere(40)] {
        let constant = matrix(&constant);
        for measure in Measure::all() {
            match compare(measure, &constant, &x) {
                Err(Error::Degenerate { .. }) => {}
                other => panic!(
                    "{}: expected a degenerate-input error, got {other:?}",
                    measure.name()
                ),
            }
        }
        assert!(matches!(spectrum(&constant), Err(Error::Degenerate { .. })));
        let r = ridge_predictivity(&x, &constant, &RidgeOptions::default());
        assert!(matches!(r, Err(Error::Degenerate { .. })), "{r:?}");
    }
}

#[test]
fn dead_units_give_finite_values_or_errors_for_every_measure() {
    let (x, y) = related_pair(100, 5, 6, 10);
    let (dx, dy) = (
        matrix(&with_dead_units(&x, 2)),
        matrix(&with_dead_units(&y, 2)),
    );
    for measure in Measure::all() {
        if let Ok(v) = compare(measure, &dx, &dy) {
            assert!(v.is_finite(), "{}: {v}", measure.name());
        }
    }
    // Dead target units are excluded from the ridge medians and listed, silent or stuck at
    // a value whose mean rounds.
    let r = ridge_predictivity(&matrix(&x), &dy, &RidgeOptions::default()).unwrap();
    assert_eq!(r.constant_targets, vec![6, 7]);
    assert!(r.median_r2.is_finite() && r.r2[6].is_nan());
    let stuck = same_response_everywhere(100);
    let y_stuck = Mat::from_fn(
        100,
        11,
        |i, j| if j < 6 { y[(i, j)] } else { stuck[(i, j - 6)] },
    );
    let r = ridge_predictivity(&matrix(&x), &matrix(&y_stuck), &RidgeOptions::default()).unwrap();
    assert_eq!(r.constant_targets, vec![6, 7, 8, 9, 10]);
}

#[test]
fn correlation_rdm_of_a_flat_stimulus_names_it() {
    let mut x = gaussian(10, 4, 11);
    for j in 0..4 {
        x[(3, j)] = 2.0;
    }
    let err = rdm(&matrix(&x), RdmMetric::Correlation)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stimulus 3"), "{err}");
    assert!(rdm(&matrix(&x), RdmMetric::Euclidean).is_ok());
}

#[test]
fn bad_arguments_are_errors() {
    let x = matrix(&gaussian(30, 4, 12));
    assert!(matches!(
        cka_rbf(&x, &x, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        svcca(&x, &x, 1.5),
        Err(Error::InvalidArgument { .. })
    ));
    let options = TsneOptions {
        perplexity: 10.0,
        ..TsneOptions::default()
    };
    assert!(matches!(
        tsne(&x, &options),
        Err(Error::InvalidArgument { .. })
    ));
    // No distribution has a perplexity (e^entropy) below e^0 = 1.
    let below_one = TsneOptions {
        perplexity: 0.5,
        ..TsneOptions::default()
    };
    let err = tsne(&x, &below_one).unwrap_err().to_string();
    assert!(err.contains("perplexity 0.5 must be at least 1"), "{err}");
    assert!(Matrix::from_row_major(2, 2, &[1.0, f64::NAN, 0.0, 1.0])
        .unwrap_err()
        .to_string()
        .contains("row 0, column 1"));
    assert!(Matrix::from_row_major(2, 2, &[1.0]).is_err());
    let no_units = Matrix::from_row_major(3, 0, &[]).unwrap_err().to_string();
    assert!(no_units.contains("at least one unit"), "{no_units}");
}

/// Magnitudes whose fourth powers leave f64 are refused, naming the largest value; inside the
/// range, the measures' scale invariance holds even at its ends.
#[test]
fn values_beyond_the_f64_range_of_the_measures_are_refused() {
    let (low, high) = Matrix::MAGNITUDES;
    for (big, shown) in [(high * 10.0, "1.000e61"), (low / 10.0, "1.000e-61")] {
        let err = Matrix::from_row_major(2, 2, &[0.0, 0.0, -big, 0.0])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(shown) && err.contains("row 1, column 0"),
            "{err}"
        );
    }
    let zeros = Matrix::from_row_major(2, 2, &[0.0; 4]);
    assert!(zeros.is_ok(), "all zeros is constant, not out of range");
    let x = matrix(&gaussian(40, 6, 1));
    let y = matrix(&gaussian(40, 5, 2));
    let scaled = |m: &Matrix, by: f64| {
        let values: Vec<f64> = m.to_row_major().iter().map(|v| v * by).collect();
        Matrix::from_row_major(m.stimuli(), m.units(), &values).unwrap()
    };
    for measure in Measure::all() {
        let expected = compare(measure, &x, &y).unwrap();
        for (bx, by) in [(high / 10.0, low * 10.0), (low * 10.0, high / 10.0)] {
            let value = compare(measure, &scaled(&x, bx), &scaled(&y, by)).unwrap();
            assert!(
                (value - expected).abs() < 1e-9,
                "{}, x {bx:e}, y {by:e}: {value} vs {expected}",
                measure.name()
            );
        }
    }
}

#[test]
fn conv_maps_name_what_is_wrong_where_the_file_has_it() {
    // Four positions near f64's largest: their sum overflows, their mean (1.5e308) does
    // not. Refused for its magnitude, as in 2-D, not as an infinity the file lacks.
    let huge = vec![1.5e308; 4];
    let err = Matrix::from_conv_map([1, 1, 2, 2], &huge, Reduction::SpatialMean)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.500e308") && !err.contains("inf"), "{err}");
    // A NaN at stimulus 1, channel 0, row 1, column 0 of a [2, 2, 2, 3] map: flat index
    // 1 * 12 + 0 * 6 + 1 * 3 + 0 = 15.
    let mut values = vec![0.5; 24];
    values[15] = f64::NAN;
    for reduction in [Reduction::SpatialMean, Reduction::Flatten] {
        let err = Matrix::from_conv_map([2, 2, 2, 3], &values, reduction)
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN at [1, 0, 1, 0]"), "{err}");
    }
    let overflowing = [usize::MAX / 2, 3, 1, 1];
    let err = Matrix::from_conv_map(overflowing, &[0.0], Reduction::SpatialMean)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than memory holds"), "{err}");
}

/// An NPY version-1 header, padded to 64 bytes as numpy writes it.
fn header(descr: &str, fortran: &str, shape: &str) -> Vec<u8> {
    let text = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let mut padded = text.into_bytes();
    while (10 + padded.len() + 1) % 64 != 0 {
        padded.push(b' ');
    }
    padded.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((padded.len() as u16).to_le_bytes());
    out.extend(padded);
    out
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let cases = [
        ("magic.npy", b"not numpy at all".to_vec(), "bad magic"),
        (
            "complex.npy",
            [header("<c16", "False", "(1, 1)"), vec![0; 16]].concat(),
            "dtype <c16",
        ),
        (
            "order.npy",
            [header("<f8", "Maybe", "(1, 1)"), vec![0; 8]].concat(),
            "fortran_order",
        ),
        (
            "short.npy",
            [header("<f8", "False", "(2, 2)"), vec![0; 8]].concat(),
            "32 bytes",
        ),
        (
            "three.npy",
            [header("<f8", "False", "(1, 1, 1)"), vec![0; 8]].concat(),
            "2-D",
        ),
        (
            "nounits.npy",
            header("<f8", "False", "(5, 0)"),
            "at least one unit",
        ),
        (
            "nopositions.npy",
            header("<f4", "False", "(5, 3, 0, 2)"),
            "no positions",
        ),
    ];
    for (name, bytes, expected) in cases {
        let err = Matrix::load_npy(&write(name, &bytes), Some(Reduction::Flatten))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
    let ok = [
        header("<f8", "False", "(1, 2)"),
        1.5f64.to_le_bytes().to_vec(),
        2.5f64.to_le_bytes().to_vec(),
    ]
    .concat();
    assert_eq!(
        Matrix::load_npy(&write("ok.npy", &ok), None)
            .unwrap()
            .to_row_major(),
        vec![1.5, 2.5]
    );
    let err = Matrix::load_csv(&write("ragged.csv", b"a,b\n1,2\n3\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ragged.csv") && err.contains("line 3"),
        "{err}"
    );
    let err = Matrix::load_csv(&write("word.csv", b"1,2\n3,x\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("word.csv") && err.contains("line 2, field 2: \"x\""),
        "{err}"
    );
    let err = Matrix::load_csv(&dir.path().join("missing.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
    // Latin-1 where UTF-8 is expected: the line of the first bad byte.
    let err = Matrix::load_csv(&write("latin1.csv", b"1,2\n3,4\n5,\xe96\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("latin1.csv") && err.contains("line 3") && err.contains("UTF-8"),
        "{err}"
    );
    // The operating system's reason once (the error has no second `source` to repeat it).
    let err = Matrix::load_csv(dir.path()).unwrap_err();
    assert!(std::error::Error::source(&err).is_none());
}

/// What pandas writes: `to_csv(f)` has its index as an unnamed first column and the columns
/// named 0..d-1; `to_csv(f, index=False)` keeps the names. A byte-order mark is skipped.
#[test]
fn csv_files_as_pandas_writes_them_are_read_without_their_index_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        Matrix::load_csv(&path)
    };
    let expected = vec![1.5, 2.5, 3.5, 4.5];
    for (name, text) in [
        ("index.csv", ",0,1\n0,1.5,2.5\n1,3.5,4.5\n"),
        ("names.csv", "0,1\n1.5,2.5\n3.5,4.5\n"),
        ("bom.csv", "\u{feff}1.5,2.5\r\n3.5,4.5\r\n"),
        ("named.csv", "\u{feff}a,b\n\n1.5,2.5\n3.5,4.5\n"),
    ] {
        let m = load(name, text).unwrap();
        assert_eq!((m.stimuli(), m.units()), (2, 2), "{name}");
        assert_eq!(m.to_row_major(), expected, "{name}");
    }
    // Numbers that are not exactly 0..d-1 are data, the first row included.
    assert_eq!(load("data.csv", "0,1.0\n2,3\n").unwrap().stimuli(), 2);
    let err = load("shuffled.csv", ",a,b\n5,1,2\n7,3,4\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shuffled.csv")
            && err.contains("row 1 holds 5")
            && err.contains("index=False"),
        "{err}"
    );
}

/// Class means: one row per class present, ascending, whatever the classes' numbers;
/// classes come from 1-D NPY or one-column CSV files of non-negative integers, and
/// anything else is named with its row.
#[test]
fn class_means_take_the_classes_present_and_bad_classes_are_named() {
    // Stimuli of classes 7, 3, 7, 3, 9: rows 3 = mean of stimuli 1 and 3, 7 = mean of 0
    // and 2, 9 = stimulus 4.
    let x = Matrix::from_row_major(5, 2, &[1., 10., 2., 20., 3., 30., 4., 40., 5., 50.]).unwrap();
    let means = x.class_means(&[7, 3, 7, 3, 9]).unwrap();
    assert_eq!(means.to_row_major(), vec![3., 30., 2., 20., 5., 50.]);
    assert_eq!(classes_present(&[7, 3, 7, 3, 9]), vec![3, 7, 9]);

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let ints: Vec<u8> = [7i64, 3, 7, 3, 9]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for path in [
        write(
            "flat.npy",
            &[header("<i8", "False", "(5,)"), ints.clone()].concat(),
        ),
        write(
            "column.npy",
            &[header("<i8", "False", "(5, 1)"), ints].concat(),
        ),
        write("classes.csv", b"class\n7\n3\n7\n3\n9\n"),
    ] {
        assert_eq!(Matrix::load_classes(&path).unwrap(), vec![7, 3, 7, 3, 9]);
    }
    let halves: Vec<u8> = [0.0f64, 0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    for (path, needle) in [
        (write("two.csv", b"1,2\n3,4\n"), "2 columns: expected one"),
        (
            write("negative.csv", b"1\n-1\n"),
            "row 1: -1 is not a class",
        ),
        (
            write(
                "half.npy",
                &[header("<f8", "False", "(2,)"), halves.clone()].concat(),
            ),
            "row 1: 0.5 is not a class",
        ),
        (
            write(
                "square.npy",
                &[header("<f8", "False", "(1, 2)"), halves].concat(),
            ),
            "shape [1, 2]",
        ),
    ] {
        let err = Matrix::load_classes(&path).unwrap_err().to_string();
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(needle),
            "{err}"
        );
    }
}

/// A 1-D array is one unit's responses (`np.save(f, x[:, j])`): a `[stimuli, 1]` matrix.
#[test]
fn a_one_dimensional_npy_file_is_one_unit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unit.npy");
    let values: Vec<u8> = [0.5f64, -1.0, 2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&path, [header("<f8", "False", "(3,)"), values].concat()).unwrap();
    let m = Matrix::load_npy(&path, None).unwrap();
    assert_eq!((m.stimuli(), m.units()), (3, 1));
    assert_eq!(m.to_row_major(), vec![0.5, -1.0, 2.0]);
}
