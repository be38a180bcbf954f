//! Out-of-memory kills in the worker's own memory cgroup, so that a task
//! the kernel killed for memory is reported as such rather than as any
//! SIGKILL. Slurm's task/cgroup puts a job's processes in a memory cgroup
//! limited to what the job asked for; when they go over, the kernel kills
//! one (the largest, usually the task) and counts it in `oom_kill`: in
//! `memory.oom_control` of the cgroup whose limit was hit (cgroup v1), or
//! in `memory.events` (v2, counted up the tree). Reading the count of the
//! agent's cgroup and its ancestors before and after a run tells whether a
//! kill happened meanwhile. Without such a cgroup the count stays 0.

use std::path::{Path, PathBuf};

use crate::protocol::TaskOutput;

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The memory cgroups whose kill counts concern this process: its own
/// and every ancestor, as files to read.
#[derive(Debug, Clone, Default)]
pub(super) struct OomCounter {
    files: Vec<PathBuf>,
}

impl OomCounter {
    /// The counter of this process's cgroups (empty where there are none).
    pub fn of_this_process() -> OomCounter {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        OomCounter {
            files: counter_files(&own, Path::new(CGROUP_ROOT)),
        }
    }

    /// Kills counted so far.
    pub fn kills(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .map(|text| oom_kills(&text))
            .fold(0, u64::saturating_add)
    }
}

/// `output` as reported: a run ended by SIGKILL (or a shell's report of
/// its child's, exit code 137) while the cgroup's kill count rose from
/// `before` was killed for memory, and says so.
pub(super) fn judge(mut output: TaskOutput, before: u64, counter: &OomCounter) -> TaskOutput {
    let killed = output.signal == Some(SIGKILL) || output.exit_code == Some(128 + SIGKILL);
    if killed && counter.kills() > before {
        output.oom_killed = true;
        output.error =
            Some("killed for memory: its job's memory cgroup was full (out of memory)".into());
    }
    output
}

/// The signal the kernel's out-of-memory killer sends.
const SIGKILL: i32 = 9;

/// The files counting kills for the cgroups named in `proc_cgroup` (the
/// text of `/proc/self/cgroup`) under `root`: v1's memory controller
/// (each level's `memory.oom_control`), else v2's own `memory.events`.
fn counter_files(proc_cgroup: &str, root: &Path) -> Vec<PathBuf> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            let base = root.join("memory");
            return ancestry(path)
                .map(|p| base.join(p).join("memory.oom_control"))
                .filter(|f| f.is_file())
                .collect();
        }
    }
    // cgroup v2: memory.events counts kills below it too.
    let v2 = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"));
    let Some(path) = v2 else { return Vec::new() };
    [root.to_path_buf(), root.join("unified")]
        .iter()
        .map(|r| r.join(path.trim_start_matches('/')).join("memory.events"))
        .filter(|f| f.is_file())
        .take(1)
        .collect()
}

/// `/a/b/c` as `a/b/c`, `a/b`, `a`.
fn ancestry(path: &str) -> impl Iterator<Item = String> + '_ {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (1..=parts.len()).rev().map(move |n| parts[..n].join("/"))
}

/// The `oom_kill N` count of a `memory.oom_control` or `memory.events`.
fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_are_read_from_every_level_of_a_v1_memory_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("memory/slurm/uid_0/job_7");
        let step = job.join("step_batch");
        std::fs::create_dir_all(&step).unwrap();
        std::fs::write(
            job.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(
            step.join("memory.oom_control"),
            "oom_kill_disable 0\noom_kill 1\n",
        )
        .unwrap();
        let proc = "9:pids:/\n4:memory:/slurm/uid_0/job_7/step_batch\n0::/\n";
        let c = OomCounter {
            files: counter_files(proc, root.path()),
        };
        assert_eq!(c.files.len(), 2, "{:?}", c.files);
        assert_eq!(c.kills(), 3);
    }

    #[test]
    fn v2_reads_memory_events_and_no_cgroup_counts_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("unified/system.slice/job_7");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        let c = OomCounter {
            files: counter_files("0::/system.slice/job_7\n", root.path()),
        };
        assert_eq!(c.kills(), 1);
        assert_eq!(OomCounter::default().kills(), 0);
        assert!(counter_files("", root.path()).is_empty());
    }
}
