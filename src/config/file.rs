//! Config files: a user config and a project (cluster) config, both TOML,
//! layered under the command-line flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{JobOptions, PoolOptions, SpecError};

/// The name of a project config file looked for in the working directory.
pub const PROJECT_CONFIG: &str = "drover.toml";

/// One config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Settings of the worker jobs.
    #[serde(default)]
    pub job: JobOptions,
    /// Settings of the pool.
    #[serde(default)]
    pub pool: PoolOptions,
    /// Where the cluster is reached from here (`[site]`).
    #[serde(default)]
    pub site: SiteOptions,
    /// The pool's groups (`[group.NAME]`), in the order declared; read
    /// with `groups`.
    #[serde(default)]
    pub group: toml::Table,
    /// Where it was read from, for errors.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Where the cluster is reached from this machine (`[site]`): set on a
/// laptop or notebook server whose pools run on the cluster's login node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteOptions {
    /// The login node pools run on, over ssh (`--ssh`, `DROVER_SSH`).
    pub ssh: Option<String>,
    /// drover's path there (`--remote-drover`, `DROVER_REMOTE_DROVER`).
    pub remote_drover: Option<String>,
}

/// Job and pool settings as a config file holds them.
#[derive(serde::Serialize)]
struct Settings<'a> {
    job: &'a JobOptions,
    pool: &'a PoolOptions,
}

impl ConfigFile {
    /// The text of a config file holding `job` and `pool` (what is unset
    /// left out), which `parse` reads back to the same settings: how a
    /// pool's settings, every layer applied on one machine, reach another
    /// (a login node, for `--ssh`).
    pub fn text_of(job: &JobOptions, pool: &PoolOptions) -> Result<String, SpecError> {
        toml::to_string(&Settings { job, pool }).map_err(|e| SpecError::File {
            path: PathBuf::from("(settings sent)"),
            message: e.to_string(),
        })
    }

    /// Reads and parses the file at `path`. It must be yours (or root's)
    /// and writable by no one else: a `drover.toml` another user left in a
    /// shared directory would otherwise put their prologue in your jobs.
    pub fn load(path: &Path) -> Result<ConfigFile, SpecError> {
        use crate::private_fs::{read_trusted, FsError, MAX_TRUSTED_BYTES};
        // `DROVER_USER_CONFIG=/dev/null`: no config, as with other tools.
        if path == Path::new("/dev/null") {
            return Self::parse("", path);
        }
        let text = read_trusted(path, "config file", MAX_TRUSTED_BYTES).map_err(|e| match e {
            FsError::Io { cause, .. } => SpecError::File {
                path: path.to_path_buf(),
                message: format!("cannot read it: {cause}"),
            },
            e => SpecError::Untrusted(e.to_string()),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, SpecError> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|e| SpecError::File {
            path: path.to_path_buf(),
            message: describe(text, &e),
        })?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    /// Its `[group.NAME]` tables, in the order declared.
    pub fn groups(&self) -> Result<Vec<super::GroupOptions>, SpecError> {
        super::group::parse_groups(&self.group, &self.path)
    }
}

/// A TOML error as one line: where it is, which key, and what is wrong.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('[') => {
            format!("line {line_no}, field `{}`: {message}", key.trim())
        }
        _ => format!("line {line_no}: {message}"),
    }
}

/// Where the config files are. Lower layers first: the user config, then the
/// project config; flags go on top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The user's config file (`$DROVER_USER_CONFIG`, else
    /// `~/.config/drover/config.toml` when it exists).
    pub user: Option<PathBuf>,
    /// The project's config file (`--config`/`$DROVER_CONFIG`, else
    /// `./drover.toml` when it exists).
    pub project: Option<PathBuf>,
}

impl ConfigSources {
    /// The usual places; `explicit` (from `--config`) must exist, the others
    /// are used only when present.
    pub fn discover(explicit: Option<PathBuf>) -> ConfigSources {
        let user = match std::env::var_os("DROVER_USER_CONFIG") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => dirs::config_dir()
                .map(|d| d.join("drover").join("config.toml"))
                .filter(|p| p.is_file()),
        };
        let project = explicit.or_else(|| {
            let p = PathBuf::from(PROJECT_CONFIG);
            p.is_file().then_some(p)
        });
        ConfigSources { user, project }
    }

    /// Every file, lower layers first.
    fn files(&self) -> Result<Vec<ConfigFile>, SpecError> {
        [&self.user, &self.project]
            .into_iter()
            .flatten()
            .map(|p| ConfigFile::load(p))
            .collect()
    }

    /// The job options of every file layered in order, with `flags` on top.
    pub fn job_options(&self, flags: JobOptions) -> Result<JobOptions, SpecError> {
        let mut options = JobOptions::new();
        for file in self.files()? {
            options = options.overlay(file.job);
        }
        Ok(options.overlay(flags))
    }

    /// The groups of every file, in order; a later file's group of the
    /// same name changes the earlier one's keys.
    pub fn groups(&self) -> Result<Vec<super::GroupOptions>, SpecError> {
        let mut groups: Vec<super::GroupOptions> = Vec::new();
        for file in self.files()? {
            for g in file.groups()? {
                match groups.iter_mut().find(|old| old.name == g.name) {
                    Some(old) => {
                        old.job = old.job.clone().overlay(g.job);
                        if g.workers.is_some() || g.adapt.is_some() {
                            (old.workers, old.adapt) = (g.workers, g.adapt);
                        }
                    }
                    None => groups.push(g),
                }
            }
        }
        Ok(groups)
    }

    /// The `[site]` of every file layered in order (a later file's key
    /// replaces an earlier one's).
    pub fn site(&self) -> Result<SiteOptions, SpecError> {
        let mut site = SiteOptions::default();
        for file in self.files()? {
            site.ssh = file.site.ssh.or(site.ssh);
            site.remote_drover = file.site.remote_drover.or(site.remote_drover);
        }
        Ok(site)
    }

    /// The pool options of every file layered in order, then the `DROVER_*`
    /// environment, with `flags` on top.
    pub fn pool_options(&self, flags: PoolOptions) -> Result<PoolOptions, SpecError> {
        let mut options = PoolOptions::default();
        for file in self.files()? {
            options = options.overlay(file.pool);
        }
        Ok(options.overlay(super::pool_from_env()?).overlay(flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Issue 29 B: a `drover.toml` another user left in a shared directory,
    /// or one others may change, is refused before its prologue can reach
    /// a job script; the error names the file and the fix.
    #[test]
    fn a_config_file_others_made_or_may_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROJECT_CONFIG);
        std::fs::write(&path, "[job]\njob-script-prologue = [\"curl x | sh\"]\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ConfigFile::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("drover.toml") && e.contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Owned by someone else (as root, the test can give it away).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let e = ConfigFile::load(&path).unwrap_err().to_string();
            assert!(e.contains("uid 4242") && e.contains("not to you"), "{e}");
        }
        let missing = ConfigFile::load(&dir.path().join("none.toml")).unwrap_err();
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
    }
}
