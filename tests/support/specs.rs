//! The spec fixtures in `tests/fixtures/specs/{good,bad}/*.yaml`: manifests the CRD's schema must
//! accept or reject; a bad one names, in a `# expect: ` line, what its rejection must say.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;

use serde_json::Value;

use super::control_plane::repo_path;

/// One fixture manifest and, for a bad one, the text its rejection must mention.
pub struct SpecFixture {
    pub path: PathBuf,
    /// The file name without `.yaml`.
    pub name: String,
    pub expect: Option<String>,
    pub manifest: Value,
}

/// The fixtures of `kind` (`good` or `bad`), sorted by file name; panics when there are none.
pub fn spec_fixtures(kind: &str) -> Vec<SpecFixture> {
    let dir = repo_path("tests/fixtures/specs").join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture is readable");
            let expect = text
                .lines()
                .find_map(|line| line.strip_prefix("# expect: "))
                .map(|s| s.trim().to_owned());
            let manifest = serde_norway::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            SpecFixture {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                path,
                expect,
                manifest,
            }
        })
        .collect()
}
