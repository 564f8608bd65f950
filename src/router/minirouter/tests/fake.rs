//! A guest for [`System`]: files in memory, commands recorded, chosen
//! commands failing.

use super::super::run::System;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct Fake {
    pub ifaces: Vec<String>,
    pub files: BTreeMap<PathBuf, String>,
    /// What happened, in order: `run ARGV`, `write PATH`, `stop PATH`.
    pub calls: Vec<String>,
    /// Commands (joined argv prefixes) that fail, with their error output.
    pub failing: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Paths that cannot be written.
    pub read_only: Vec<PathBuf>,
    /// Pid files whose daemon runs.
    pub running: Vec<PathBuf>,
}

impl Fake {
    pub fn new(ifaces: &[&str]) -> Fake {
        Fake {
            ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
            ..Fake::default()
        }
    }

    pub fn fail(&mut self, prefix: &str, output: &str) {
        self.failing.push((prefix.into(), output.into()));
    }

    pub fn runs(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter_map(|c| c.strip_prefix("run "))
            .collect()
    }

    pub fn file(&self, p: impl AsRef<Path>) -> Option<&str> {
        self.files.get(p.as_ref()).map(String::as_str)
    }
}

impl System for Fake {
    fn interfaces(&mut self) -> Result<Vec<String>, String> {
        Ok(self.ifaces.clone())
    }
    fn run(&mut self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ");
        self.calls.push(format!("run {line}"));
        match self
            .failing
            .iter()
            .find(|(p, _)| line.starts_with(p.as_str()))
        {
            Some((_, out)) => Err(out.clone()),
            None => Ok(()),
        }
    }
    fn write(&mut self, path: &Path, contents: &str) -> Result<(), String> {
        if self.read_only.iter().any(|p| p == path) {
            return Err("Read-only file system".into());
        }
        self.calls.push(format!("write {}", path.display()));
        self.files.insert(path.to_path_buf(), contents.to_string());
        Ok(())
    }
    fn read(&mut self, path: &Path) -> Result<Option<String>, String> {
        Ok(self.files.get(path).cloned())
    }
    fn stop(&mut self, pidfile: &Path) -> Result<(), String> {
        self.calls.push(format!("stop {}", pidfile.display()));
        Ok(())
    }
    fn running(&mut self, pidfile: &Path) -> bool {
        self.running.iter().any(|p| p == pidfile)
    }
    fn tag(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.tags.push((key.into(), value.into()));
        Ok(())
    }
    fn timestamp(&mut self) -> String {
        "2024/01/02 03:04:05".into()
    }
}
