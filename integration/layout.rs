//! The code's shape, checked: no file in `src/` (nor in `python/`) holds
//! more than 600 lines of code outside its tests, and the modules depend on each other in one
//! direction only, the data flow's (config → script → slurm → protocol →
//! tasks → journal → client → scheduler ↔ worker → cluster → doctor), so there is no cycle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The library's top-level modules, lower layers first. A module may use
/// only modules before it.
const LAYERS: &[&str] = &[
    "exit",
    "net",
    "private_fs",
    "tls",
    "config",
    "script",
    "slurm",
    "protocol",
    "tasks",
    "journal",
    "client",
    "dask",
    "scheduler",
    "worker",
    "cluster",
    "doctor",
];

const MAX_CODE_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Lines of code before the file's test module: not blank, not comments.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("# "))
        .count()
}

#[test]
fn no_source_file_is_over_600_lines_of_code_outside_its_tests() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "found the sources: {files:?}");
    // The Python binding's Rust, and the Python package itself.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    rust_files(&python.join("src"), &mut files);
    for entry in std::fs::read_dir(python.join("drover")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            files.push(path);
        }
    }
    let big: Vec<(PathBuf, usize)> = files
        .into_iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .map(|f| {
            let n = code_lines(&std::fs::read_to_string(&f).unwrap());
            (f, n)
        })
        .filter(|(_, n)| *n > MAX_CODE_LINES)
        .collect();
    assert!(
        big.is_empty(),
        "over {MAX_CODE_LINES} lines of code: {big:?}"
    );
}

/// The top-level module a source file belongs to (`cli` and `main` are
/// the binary's, above every layer).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let Some(rank) = LAYERS.iter().position(|m| *m == module) else {
            assert!(
                ["lib", "main", "cli"].contains(&module.as_str()),
                "{module} is in no layer: add it to LAYERS"
            );
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for used in text.split("crate::").skip(1) {
            let name: String = used
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(used_rank) = LAYERS.iter().position(|m| *m == name) else {
                continue;
            };
            if used_rank > rank {
                wrong
                    .entry(format!("{module} ({})", file.display()))
                    .or_default()
                    .push(name);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "modules that use a higher layer: {wrong:#?}"
    );
}

#[test]
fn the_checks_see_what_they_check() {
    assert_eq!(
        code_lines("// c\n\nfn a() {}\n#[cfg(test)]\nmod tests {}\n"),
        1
    );
    assert_eq!(
        module_of(&src().join("cluster/pool.rs")).as_deref(),
        Some("cluster")
    );
    assert_eq!(module_of(&src().join("exit.rs")).as_deref(), Some("exit"));
}
