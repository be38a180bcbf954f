//! Graph files: tasks named the way the seed's dask graph names them, with
//! their commands and dependencies, in TOML or JSON; and their drawing as
//! Graphviz DOT.
//!
//! ```toml
//! [tasks.x]
//! command = "echo 1"                 # a string runs through `sh -c`
//! [tasks.y]
//! command = ["sh", "-c", "echo $(( {{x}} + 1 ))"]   # {{x}}: x's output
//! [tasks.z]
//! command = "echo $(( {{y}} + 10 ))"
//! cores = 1
//! retries = 2
//! time-limit = "5m"
//! after = ["x"]                      # extra dependencies, without using the output
//! ```
//!
//! A task depends on every task it names in `{{...}}` and in `after`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Dep, TaskSpec};
use crate::config::Timeout;
use crate::exit::{ExitStatus, USAGE};

/// A command: a string for `sh -c`, or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// Run through `sh -c`.
    Shell(String),
    /// Run as is.
    Argv(Vec<String>),
}

/// One task of a graph file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GraphTask {
    /// What to run.
    pub command: Command,
    /// Tasks that must succeed first, beyond those named in `{{...}}`.
    #[serde(default)]
    pub after: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Cores (default 1).
    pub cores: Option<u32>,
    /// Memory it needs (`2GiB`): it runs only where that much is free.
    pub memory: Option<crate::config::Memory>,
    /// GPUs it needs (default 0).
    #[serde(default)]
    pub gpus: u32,
    /// Named resources it needs (`resources = { licence = 1 }`).
    #[serde(default)]
    pub resources: BTreeMap<String, u64>,
    /// The pool group it must run in.
    pub group: Option<String>,
    /// Time limit.
    pub time_limit: Option<Timeout>,
    /// Retry budget.
    #[serde(default)]
    pub retries: u32,
}

/// A graph file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// The tasks, by name.
    pub tasks: BTreeMap<String, GraphTask>,
}

/// A graph that cannot be used, and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("graph{}: {message}", .path.as_ref().map(|p| format!(" file {p}")).unwrap_or_default())]
pub struct GraphError {
    path: Option<String>,
    message: String,
}

impl GraphError {
    fn new(message: String) -> Self {
        GraphError {
            path: None,
            message,
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.path = Some(path.display().to_string());
        self
    }
}

impl ExitStatus for GraphError {
    fn exit_code(&self) -> u8 {
        USAGE
    }
}

/// The task names `text` refers to as `{{name}}`.
pub fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                if !name.is_empty() {
                    out.push(name.to_string());
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// The largest graph file read.
const MAX_GRAPH_BYTES: u64 = 256 << 20;

impl Graph {
    /// Reads a graph from a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Graph, GraphError> {
        let err = |message: String| GraphError::new(message).in_file(path);
        // Its tasks run as you: another user's graph, or one others may
        // change, is refused.
        let text =
            crate::private_fs::read_trusted(path, "graph file", MAX_GRAPH_BYTES).map_err(|e| {
                match e {
                    crate::private_fs::FsError::Io { cause, .. } => {
                        err(format!("cannot read it: {cause}"))
                    }
                    e => err(e.to_string()),
                }
            })?;
        let graph: Graph = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))?
        };
        graph.check().map_err(|e| e.in_file(path))?;
        Ok(graph)
    }

    /// Reads a graph from a JSON value of the file's shape (`{"tasks": {...}}`),
    /// as the Python API passes a dict.
    pub fn from_json(value: serde_json::Value) -> Result<Graph, GraphError> {
        let graph: Graph =
            serde_json::from_value(value).map_err(|e| GraphError::new(e.to_string()))?;
        graph.check()?;
        Ok(graph)
    }

    /// Checks the graph as the scheduler will (names, references, cycles),
    /// before anything is sent.
    fn check(&self) -> Result<(), GraphError> {
        let specs = self.specs()?;
        super::Engine::default()
            .submit(specs)
            .map_err(|e| GraphError::new(e.to_string()))?;
        Ok(())
    }

    /// The tasks as one submission, dependencies by name.
    pub fn specs(&self) -> Result<Vec<TaskSpec>, GraphError> {
        let mut specs = Vec::new();
        for (name, t) in &self.tasks {
            if !valid_name(name) {
                return Err(GraphError::new(format!(
                    "task name `{name}` may hold only letters, digits, `_`, `-` and `.`"
                )));
            }
            let argv = match &t.command {
                Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
                Command::Argv(v) if v.is_empty() => {
                    return Err(GraphError::new(format!(
                        "task `{name}` has an empty command"
                    )))
                }
                Command::Argv(v) => v.clone(),
            };
            let mut deps: Vec<String> = Vec::new();
            for text in argv.iter().chain(t.env.values()) {
                deps.extend(references(text));
            }
            deps.extend(t.after.iter().cloned());
            deps.dedup();
            let mut unique = Vec::new();
            for d in deps {
                if !self.tasks.contains_key(&d) {
                    return Err(GraphError::new(format!(
                        "task `{name}` refers to `{d}`, which the graph does not define"
                    )));
                }
                if !unique.contains(&d) {
                    unique.push(d);
                }
            }
            specs.push(TaskSpec {
                name: Some(name.clone()),
                argv,
                env: t.env.clone(),
                cwd: t.cwd.clone(),
                cores: t.cores.unwrap_or(1),
                memory_bytes: t.memory.map(|m| m.bytes()),
                gpus: t.gpus,
                resources: t.resources.clone(),
                group: t.group.clone(),
                time_limit_ms: t
                    .time_limit
                    .map(|d| u64::try_from(d.duration().as_millis()).unwrap_or(u64::MAX)),
                retries: t.retries,
                deps: unique.into_iter().map(Dep::Name).collect(),
            });
        }
        Ok(specs)
    }

    /// The graph in Graphviz DOT: one node per task (name and command), an
    /// edge from each dependency to its dependent.
    pub fn dot(&self) -> Result<String, GraphError> {
        let quote = |s: &str| {
            let escaped = s
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("\"{escaped}\"")
        };
        let mut out = String::from(
            "digraph drover {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for spec in self.specs()? {
            let name = spec.name.clone().unwrap_or_default();
            let command = match spec.argv.as_slice() {
                [sh, c, cmd] if sh == "sh" && c == "-c" => cmd.clone(),
                argv => argv.join(" "),
            };
            out.push_str(&format!(
                "  {} [label={}];\n",
                quote(&name),
                quote(&format!("{name}\n{command}"))
            ));
            for d in &spec.deps {
                if let Dep::Name(d) = d {
                    out.push_str(&format!("  {} -> {};\n", quote(d), quote(&name)));
                }
            }
        }
        out.push_str("}\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
[tasks.x]
command = "echo 1"
[tasks.y]
command = "echo $(( {{x}} + 1 ))"
[tasks.z]
command = ["sh", "-c", "echo $(( {{y}} + 10 ))"]
after = ["x"]
"#;

    #[test]
    fn references_become_dependencies() {
        let g: Graph = toml::from_str(SEED).unwrap();
        let specs = g.specs().unwrap();
        let z = specs
            .iter()
            .find(|s| s.name.as_deref() == Some("z"))
            .unwrap();
        assert_eq!(z.deps, vec![Dep::Name("y".into()), Dep::Name("x".into())]);
        assert_eq!(specs[0].argv, ["sh", "-c", "echo 1"]);
    }

    #[test]
    fn dot_draws_edges_from_dependency_to_dependent() {
        let g: Graph = toml::from_str(SEED).unwrap();
        let dot = g.dot().unwrap();
        assert!(dot.starts_with("digraph drover {"), "{dot}");
        assert!(dot.contains("\"x\" -> \"y\";"), "{dot}");
        assert!(dot.contains("\"y\" -> \"z\";"), "{dot}");
    }

    #[test]
    fn unknown_references_and_bad_names_are_refused() {
        let g: Graph = toml::from_str("[tasks.a]\ncommand = \"echo {{b}}\"\n").unwrap();
        assert!(g.specs().unwrap_err().to_string().contains("refers to `b`"));
        let g: Graph = toml::from_str("[tasks.\"a b\"]\ncommand = \"true\"\n").unwrap();
        assert!(g
            .specs()
            .unwrap_err()
            .to_string()
            .contains("task name `a b`"));
    }
}
