//! Polaris's per-check fixtures, vendored in `tests/conformance/polaris/` (see its README).

use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/polaris")
}
