//! One definition per option. Every assay's options are one struct that derives clap's
//! `Args` (the command line), serde (a sweep file's table, an `--options` file, the JSON
//! of its results) and has one `validate`, so that the CLI, a sweep and a Rust caller
//! accept and refuse exactly the same values, with the same message naming the field.

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::path::Path;

/// The options of one assay (or of the study every assay shares).
pub trait Options: Serialize + DeserializeOwned + Default + Clone {
    /// The table name in a sweep file (`[assays.<SECTION>]`), and the prefix of errors.
    const SECTION: &'static str;

    /// Refuses every value the assay cannot run with; the error names the field.
    fn validate(&self) -> Result<()>;

    /// Parses a TOML table of these options (unknown keys refused) and validates it.
    fn from_table(table: toml::Table) -> Result<Self> {
        let options: Self = table
            .try_into()
            .with_context(|| format!("in the `{}` options", Self::SECTION))?;
        options.validate()?;
        Ok(options)
    }
}

/// A field that must be at least `min`.
pub fn at_least<T: PartialOrd + Display>(
    section: &str,
    field: &str,
    value: T,
    min: T,
) -> Result<()> {
    if value < min {
        bail!("{section}.{field} = {value}: must be at least {min}");
    }
    Ok(())
}

/// A field that must be a finite number (not NaN or infinite).
pub fn finite(section: &str, field: &str, value: f64) -> Result<()> {
    if !value.is_finite() {
        bail!("{section}.{field} = {value}: must be a finite number");
    }
    Ok(())
}

/// A field that must be finite and greater than zero.
pub fn positive(section: &str, field: &str, value: f64) -> Result<()> {
    finite(section, field, value)?;
    if value <= 0.0 {
        bail!("{section}.{field} = {value}: must be greater than 0");
    }
    Ok(())
}

/// A field that must be finite and not negative.
pub fn non_negative(section: &str, field: &str, value: f64) -> Result<()> {
    finite(section, field, value)?;
    if value < 0.0 {
        bail!("{section}.{field} = {value}: must not be negative");
    }
    Ok(())
}

/// A list field whose items must differ: an item given twice would be computed twice,
/// listed twice, and the outputs named after it written over each other. Items are the
/// same when their `key`s are (two spellings can name one measure: `cka-rbf-1` and
/// `cka-rbf-1.0`); the error names the item as given both times.
pub fn distinct<T: Display, K: PartialEq>(
    field: &str,
    items: &[T],
    key: impl Fn(&T) -> K,
) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let Some(first) = items[..i].iter().find(|f| key(f) == key(item)) else {
            continue;
        };
        let (first, again) = (first.to_string(), item.to_string());
        if first == again {
            bail!("{field}: `{again}` is given twice; give each once");
        }
        bail!("{field}: `{again}` is the same as `{first}`, given before it; give each once");
    }
    Ok(())
}

/// Options from the command line merged over an `--options FILE` table: a flag the user
/// typed (its name in `given`) wins over the file, the file wins over the defaults.
/// Without a file the command line's options are returned as they are. Validated.
pub fn merge_with_file<O: Options>(flags: &O, given: &[String], file: Option<&Path>) -> Result<O> {
    let Some(path) = file else {
        flags.validate()?;
        return Ok(flags.clone());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read options file {}", path.display()))?;
    let mut table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("options file {} is not TOML", path.display()))?;
    let typed = toml::Table::try_from(flags).context("options as TOML")?;
    for name in given {
        if let Some(value) = typed.get(name) {
            table.insert(name.clone(), value.clone());
        }
    }
    O::from_table(table).with_context(|| format!("options file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ablation::AblationOptions;
    use crate::noise::NoiseOptions;
    use crate::selectivity::SelectivityOptions;
    use crate::study::StudyOptions;

    fn refused<O: Options>(o: O) -> String {
        format!("{:#}", o.validate().unwrap_err())
    }

    #[test]
    fn every_degenerate_value_is_refused_naming_its_field() {
        let a = AblationOptions::default();
        assert!(refused(AblationOptions {
            repeats: 0,
            ..a.clone()
        })
        .contains("ablation.repeats = 0"));
        assert!(refused(AblationOptions {
            steps: 0,
            ..a.clone()
        })
        .contains("ablation.steps = 0"));
        assert!(refused(AblationOptions {
            orders: vec![],
            ..a
        })
        .contains("ablation.orders"));
        let n = NoiseOptions::default();
        let inf = refused(NoiseOptions {
            max_level: f64::INFINITY,
            ..n.clone()
        });
        assert!(inf.contains("noise.max_level = inf"), "{inf}");
        assert!(refused(NoiseOptions {
            repeats: 0,
            ..n.clone()
        })
        .contains("noise.repeats"));
        assert!(refused(NoiseOptions {
            min_level: 0.0,
            ..n.clone()
        })
        .contains("noise.min_level"));
        assert!(refused(NoiseOptions {
            min_level: 20.0,
            ..n
        })
        .contains("noise.max_level"));
        assert!(refused(SelectivityOptions {
            bins: 1,
            ..Default::default()
        })
        .contains("selectivity.bins"));
        assert!(refused(StudyOptions {
            images: 0,
            ..Default::default()
        })
        .contains("assays.images = 0"));
    }

    #[test]
    fn an_item_given_twice_is_refused_naming_it_as_given() {
        let sites = |names: &[&str]| StudyOptions {
            sites: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let twice = refused(sites(&["fc1.relu", "fc2.relu", "fc1.relu"]));
        assert!(
            twice.contains("assays.sites: `fc1.relu` is given twice"),
            "{twice}"
        );
        sites(&["fc2.relu", "fc1.relu"]).validate().unwrap();
        // Items are the same by their key: here, the number they spell.
        let numbers = ["1", "2", "1.0"];
        let parse = |n: &&str| n.parse::<f64>().unwrap();
        let spelled = format!("{:#}", distinct("f", &numbers, parse).unwrap_err());
        assert!(
            spelled.contains("f: `1.0` is the same as `1`, given before it"),
            "{spelled}"
        );
        distinct("f", &numbers[..2], parse).unwrap();
    }

    #[test]
    fn defaults_are_valid() {
        AblationOptions::default().validate().unwrap();
        NoiseOptions::default().validate().unwrap();
        SelectivityOptions::default().validate().unwrap();
        StudyOptions::default().validate().unwrap();
    }

    #[test]
    fn a_table_with_a_bad_value_or_unknown_key_is_refused() {
        let table: toml::Table = toml::from_str("repeats = 0").unwrap();
        let msg = format!("{:#}", AblationOptions::from_table(table).unwrap_err());
        assert!(msg.contains("ablation.repeats"), "{msg}");
        let table: toml::Table = toml::from_str("repeets = 2").unwrap();
        let msg = format!("{:#}", AblationOptions::from_table(table).unwrap_err());
        assert!(msg.contains("repeets"), "{msg}");
    }

    #[test]
    fn flags_typed_on_the_command_line_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ablation.toml");
        std::fs::write(&file, "repeats = 3\nsteps = 7\n").unwrap();
        // As parsed from `--steps 9`: repeats holds its default, steps what was typed.
        let flags = AblationOptions {
            steps: 9,
            ..Default::default()
        };
        let merged = merge_with_file(&flags, &["steps".to_string()], Some(&file)).unwrap();
        assert_eq!((merged.repeats, merged.steps), (3, 9));
        let none = merge_with_file(&flags, &[], Some(&file)).unwrap();
        assert_eq!((none.repeats, none.steps), (3, 7));
        let alone = merge_with_file(&flags, &[], None).unwrap();
        assert_eq!(alone, flags);
        std::fs::write(&file, "repeats = 0\n").unwrap();
        let msg = format!(
            "{:#}",
            merge_with_file(&flags, &[], Some(&file)).unwrap_err()
        );
        assert!(
            msg.contains("ablation.toml") && msg.contains("ablation.repeats"),
            "{msg}"
        );
    }
}
