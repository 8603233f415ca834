//! Property tests: random and mutated bytes fed to the IDX and CIFAR parsers, the gzip
//! reader, the loader and `verify` must give an error, never a panic; and a set of files
//! loads exactly when every file of it verifies (the two share their checks).

use crate::cifar::{encode_cifar, parse_cifar, IMAGE_BYTES, RECORD_BYTES, TEST_FILE, TRAIN_FILES};
use crate::idx::{decompress_if_gzip, encode_idx, parse_idx};
use crate::load_entry;
use crate::manifest::{DatasetEntry, Manifest};
use crate::resolve::FileReport;
use crate::testutil::{gzip, only, tiny_entry, tiny_idx_files};
use proptest::prelude::*;

/// One way of damaging a file, as a downloader, a disk or a person might.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR the byte at (position mod length) with a non-zero mask.
    Flip(usize, u8),
    /// Keep only the first (position mod (length + 1)) bytes.
    Truncate(usize),
    /// Append these bytes.
    Extend(Vec<u8>),
    /// Overwrite the byte at (position mod length), e.g. a header size or a label.
    Set(usize, u8),
    /// Drop everything.
    Empty,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(p, m)| Mutation::Flip(p, m)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        Just(Mutation::Empty),
    ]
}

/// Mutations biased to the header, where sizes live: positions below 16 half the time.
fn header_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        mutation(),
        (0..16usize, any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip(p, mask) if !bytes.is_empty() => {
            let i = p % bytes.len();
            bytes[i] ^= mask;
        }
        Mutation::Set(p, v) if !bytes.is_empty() => {
            let i = p % bytes.len();
            bytes[i] = *v;
        }
        Mutation::Truncate(p) => bytes.truncate(p % (bytes.len() + 1)),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Empty => bytes.clear(),
        Mutation::Flip(..) | Mutation::Set(..) => {}
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Writes the files, loads and verifies them: both must return (no panic), and agree.
fn load_agrees_with_verify(entry: &DatasetEntry, files: &[(String, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let loaded = load_entry(entry, &only(dir.path()));
    let reports = only(dir.path()).verify_entry(entry).unwrap();
    let verified = reports.iter().all(FileReport::is_ok);
    assert_eq!(
        loaded.is_ok(),
        verified,
        "load: {:?}\nverify: {reports:?}",
        loaded.err()
    );
}

fn cifar_entry() -> DatasetEntry {
    let mut e = Manifest::embedded().get("cifar10").unwrap().clone();
    // Two records per batch in these fixtures; the manifest's 10,000 is checked elsewhere.
    e.train_size = Some(2 * TRAIN_FILES.len());
    e.test_size = Some(2);
    e
}

fn cifar_files(salt: u8) -> Vec<(String, Vec<u8>)> {
    TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .enumerate()
        .map(|(i, name)| {
            let pixels: Vec<u8> = (0..2 * IMAGE_BYTES)
                .map(|p| (p as u8).wrapping_add(salt))
                .collect();
            let labels = [i as u8, (i as u8 + salt) % 10];
            (name.to_string(), encode_cifar(&labels, &pixels))
        })
        .collect()
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn idx_parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = parse_idx(&bytes, "random");
    }

    #[test]
    fn idx_parser_accepts_only_consistent_headers(
        dims in proptest::collection::vec(1..5usize, 1..4),
        mutations in proptest::collection::vec(header_mutation(), 0..4),
    ) {
        let n: usize = dims.iter().product();
        let mut bytes = encode_idx(&dims, &vec![7; n]);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok((got, data)) = parse_idx(&bytes, "mutated") {
            // Whatever passes must describe exactly the bytes that follow its header.
            prop_assert_eq!(got.iter().product::<usize>(), data.len());
            prop_assert_eq!(bytes.len(), 4 + 4 * got.len() + data.len());
        }
    }

    #[test]
    fn cifar_parser_never_panics(
        records in 0..4usize,
        classes in 1..12usize,
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let labels: Vec<u8> = (0..records as u8).collect();
        let mut bytes = encode_cifar(&labels, &vec![1; records * IMAGE_BYTES]);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok((labels, pixels)) = parse_cifar(&bytes, classes, "mutated") {
            prop_assert_eq!(labels.len() * RECORD_BYTES, bytes.len());
            prop_assert_eq!(pixels.len(), labels.len() * IMAGE_BYTES);
            prop_assert!(labels.iter().all(|&l| (l as usize) < classes));
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn gzip_reader_never_panics(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let mut bytes = gzip(&encode_idx(&[4, 3], &[5; 12]));
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = decompress_if_gzip(bytes, "mutated.gz");
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn damaged_idx_set_loads_exactly_when_it_verifies(
        which in 0..4usize,
        gzipped in any::<bool>(),
        mutations in proptest::collection::vec(header_mutation(), 1..3),
    ) {
        let mut files = tiny_idx_files(3);
        for m in &mutations {
            apply(&mut files[which].1, m);
        }
        if gzipped {
            for f in &mut files {
                f.1 = gzip(&f.1);
            }
        }
        load_agrees_with_verify(&tiny_entry(None), &files);
    }

    #[test]
    fn damaged_cifar_set_loads_exactly_when_it_verifies(
        which in 0..6usize,
        mutations in proptest::collection::vec(mutation(), 1..3),
    ) {
        let mut files = cifar_files(1);
        for m in &mutations {
            apply(&mut files[which].1, m);
        }
        load_agrees_with_verify(&cifar_entry(), &files);
    }
}

#[test]
fn undamaged_fixtures_load_and_verify() {
    // Guards the properties above against fixtures that never load at all.
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in cifar_files(1).iter().chain(&tiny_idx_files(3)) {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    assert!(load_entry(&cifar_entry(), &only(dir.path())).is_ok());
    assert!(load_entry(&tiny_entry(None), &only(dir.path())).is_ok());
}
