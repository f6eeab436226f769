//! Scratch directories for tests that write files (profile files, token files).

#![allow(dead_code)] // each test binary uses a different part of this module

/// A directory of its own for one test's files (profiles, tokens), removed on drop.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A new directory named after the test.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "poolwatch-test-{}-{name}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        Self(dir)
    }

    /// Writes `contents` to `name` (creating directories) and returns its path as text.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&path, contents) {
            panic!("cannot write {}: {e}", path.display());
        }
        path.to_string_lossy().into_owned()
    }

    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
