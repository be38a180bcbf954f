//! `[group.NAME]` tables: a pool with groups, each group's jobs being the
//! `[job]` settings with the group's own on top, and each group sized on
//! its own (`workers = N` or `adapt = "MIN:MAX"`). Groups keep the order
//! the file declares them in: adaptive groups are tried in that order
//! (declare the cheapest first).

use std::path::Path;

use serde::Deserialize;

use super::{AdaptRange, JobOptions, SpecError};

/// The most workers a group may be sized to (a pool's job limit).
pub const MAX_GROUP_WORKERS: usize = 100_000;

/// One `[group.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOptions {
    /// The group's name.
    pub name: String,
    /// The `[job]` settings it changes for its jobs.
    pub job: JobOptions,
    /// Its fixed size, in workers.
    pub workers: Option<usize>,
    /// Its adaptive range, in workers.
    pub adapt: Option<AdaptRange>,
}

/// The keys of a group table that size it; the others are `[job]` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Size {
    workers: Option<usize>,
    adapt: Option<AdaptRange>,
}

/// Reads the `[group.*]` tables of the file at `path`, in order.
pub(super) fn parse_groups(
    table: &toml::Table,
    path: &Path,
) -> Result<Vec<GroupOptions>, SpecError> {
    let error = |name: &str, message: String| SpecError::File {
        path: path.to_path_buf(),
        message: format!("[group.{name}]: {message}"),
    };
    let mut groups = Vec::new();
    for (name, value) in table {
        let toml::Value::Table(keys) = value else {
            return Err(error(
                name,
                "expected a table of [job] keys and workers or adapt".into(),
            ));
        };
        let (mut size, mut job) = (toml::Table::new(), toml::Table::new());
        for (k, v) in keys {
            match k.as_str() {
                "workers" | "adapt" => size.insert(k.clone(), v.clone()),
                _ => job.insert(k.clone(), v.clone()),
            };
        }
        let size: Size = toml::Value::Table(size)
            .try_into()
            .map_err(|e: toml::de::Error| error(name, e.message().trim().to_string()))?;
        let job: JobOptions = toml::Value::Table(job)
            .try_into()
            .map_err(|e: toml::de::Error| error(name, e.message().trim().to_string()))?;
        if size.workers.is_some() && size.adapt.is_some() {
            return Err(error(name, "both workers and adapt: give one".into()));
        }
        if size.workers.is_some_and(|n| n > MAX_GROUP_WORKERS) {
            let accepted = format!("workers: accepted: 0 to {MAX_GROUP_WORKERS}");
            return Err(error(name, accepted));
        }
        groups.push(GroupOptions {
            name: name.clone(),
            job,
            workers: size.workers,
            adapt: size.adapt,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn parse(text: &str) -> Result<ConfigFile, SpecError> {
        ConfigFile::parse(text, Path::new("drover.toml"))
    }

    #[test]
    fn groups_keep_their_order_their_job_keys_and_their_size() {
        let file = parse(
            r#"
            [job]
            cores = 2
            [group.small]
            adapt = "0:8"
            [group.big]
            queue = "big"
            memory = "64GiB"
            workers = 1
            [group.gpu]
            gres = "gpu:2"
            "#,
        )
        .unwrap();
        let groups = file.groups().unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["small", "big", "gpu"], "declared order, not sorted");
        assert_eq!(groups[0].adapt, Some("0:8".parse().unwrap()));
        assert_eq!(
            (groups[1].workers, groups[1].job.queue.as_deref()),
            (Some(1), Some("big"))
        );
        assert_eq!(groups[2].job.gres.as_deref(), Some("gpu:2"));
    }

    /// The error reading the groups of `text`.
    fn group_error(text: &str) -> String {
        parse(text).unwrap().groups().unwrap_err().to_string()
    }

    #[test]
    fn a_bad_group_table_names_the_group_and_the_field() {
        let e = group_error("[group.big]\nmemroy = \"1GiB\"\n");
        assert!(e.contains("[group.big]") && e.contains("memroy"), "{e}");
        let e = group_error("[group.big]\nworkers = 1\nadapt = \"0:2\"\n");
        assert!(e.contains("both workers and adapt"), "{e}");
        let e = group_error("[group.big]\nadapt = \"9:2\"\n");
        assert!(e.contains("MIN is above MAX"), "{e}");
        let e = group_error("[group]\nbig = 3\n");
        assert!(e.contains("expected a table"), "{e}");
    }
}
