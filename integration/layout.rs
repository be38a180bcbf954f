//! The code's shape, checked: no file in `src/` (nor in `python/`) holds
//! more than 600 lines of code outside its tests, and the modules depend on each other in one
//! direction only, the data flow's (config → script → slurm → protocol →
//! tasks → journal → client → scheduler ↔ worker → cluster → doctor), so there is no cycle;
//! nor is there one between the files of a directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, lower layers first. A module may use
/// only modules before it.
const LAYERS: &[&str] = &[
    "exit",
    "net",
    "private_fs",
    "ssh",
    "tls",
    "config",
    "script",
    "slurm",
    "protocol",
    "tasks",
    "accounting",
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

/// Whether `text` (a file's code) uses its sibling file `sibling`: through
/// `super::sibling`, `super::{.., sibling, ..}` or `crate::DIR::sibling`
/// (`dir` is the directory's path in the crate, `cluster` or `scheduler::page`).
fn uses_sibling(text: &str, dir: &str, sibling: &str) -> bool {
    let word_at = |rest: &str| {
        rest.strip_prefix(sibling)
            .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
    };
    let through_super = text.match_indices("super::").any(|(i, _)| {
        // `super::super::x` is the parent's, not a sibling.
        if text[..i].ends_with("super::") {
            return false;
        }
        let rest = &text[i + "super::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            return group
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == sibling);
        }
        word_at(rest)
    });
    let path = format!("crate::{dir}::");
    through_super
        || text
            .match_indices(&path)
            .any(|(i, _)| word_at(&text[i + path.len()..]))
}

/// The groups of files that use each other, directly or around a loop.
fn cycles(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(f) = todo.pop() {
            for next in uses.get(&f).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = uses.keys().map(|f| (f, reach(f))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for (f, seen) in &reached {
        if !seen.contains(*f) || groups.iter().any(|g| g.contains(*f)) {
            continue;
        }
        let group = seen
            .iter()
            .filter(|g| reached.get(g).is_some_and(|back| back.contains(*f)))
            .cloned()
            .collect();
        groups.push(group);
    }
    groups
}

/// Code outside a file's test module.
fn without_tests(text: &str) -> &str {
    &text[..text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len())]
}

#[test]
fn no_two_files_of_a_directory_use_each_other() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let name = f.file_stem().unwrap().to_str().unwrap();
        // mod.rs declares its children, which use its items: not a cycle.
        if !["mod", "lib", "main"].contains(&name) {
            by_dir
                .entry(f.parent().unwrap().to_path_buf())
                .or_default()
                .push(f);
        }
    }
    let mut found = Vec::new();
    for (dir, files) in by_dir {
        let in_crate = dir
            .strip_prefix(src())
            .unwrap()
            .to_str()
            .unwrap()
            .replace('/', "::");
        let stem = |f: &PathBuf| f.file_stem().unwrap().to_str().unwrap().to_string();
        let names: Vec<String> = files.iter().map(stem).collect();
        let mut uses = BTreeMap::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let code = without_tests(&text);
            let used: BTreeSet<String> = names
                .iter()
                .filter(|s| **s != stem(f) && uses_sibling(code, &in_crate, s))
                .cloned()
                .collect();
            uses.insert(stem(f), used);
        }
        for group in cycles(&uses) {
            found.push(format!("{}: {group:?}", dir.display()));
        }
    }
    assert!(found.is_empty(), "files that use each other: {found:#?}");
}

#[test]
fn the_cycle_check_sees_cycles() {
    assert!(uses_sibling("use super::ready::Class;", "tasks", "ready"));
    assert!(uses_sibling("use super::{fit, ready};", "tasks", "ready"));
    assert!(uses_sibling(
        "crate::cluster::pool::Pool",
        "cluster",
        "pool"
    ));
    assert!(!uses_sibling("super::super::ready()", "tasks", "ready"));
    assert!(!uses_sibling("use super::ready_queue;", "tasks", "ready"));
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let loop3 = cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]));
    assert_eq!(loop3.len(), 1);
    assert_eq!(loop3[0].iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("d", "a")])).is_empty());
}
