//! Progress bars for the study's longer loops, drawn on a terminal only (a sweep's log
//! file gets none).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar over `len` items of `what` (e.g. "pairs of runs").
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!(
            "{{msg}} {{bar:30}} {{pos}}/{{len}} {what} (eta {{eta}})"
        ))
        .expect("static template"),
    )
}
