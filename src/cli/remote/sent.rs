//! The pool's settings as the host gets them: every layer applied here
//! (flags, this side's config files, the `DROVER_*` environment), written
//! as one config file that `drover cluster up --config` on the host reads.
//! So what the user set on the laptop is what runs, and it is checked here
//! first.

use crate::cli::error::CliError;
use crate::cli::pool::PoolSettings;

/// The config file's text for `settings`.
pub fn config_text(settings: &PoolSettings) -> Result<String, CliError> {
    if !settings.groups.is_empty() {
        return Err(CliError::usage(
            "a pool with groups ([group.NAME]) cannot run over --ssh yet: run it on the login node, or without groups",
        ));
    }
    Ok(drover::config::ConfigFile::text_of(
        &settings.job,
        &settings.pool,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover::config::ConfigFile;

    #[test]
    fn the_host_reads_back_exactly_the_settings_sent() {
        let text = r#"
            [job]
            cores = 2
            memory = "3GB"
            walltime = "01:30:00"
            queue = "batch"
            interface = "ib0"
            job-extra-directives = ["--qos=low"]
            job-script-prologue = ["module load x"]
            [pool]
            workers = 4
            poll-interval = "0.5s"
            scheduler-interface = "ib0"
            remote-grace = "2m"
        "#;
        let given = ConfigFile::parse(text, "t.toml".as_ref()).unwrap();
        let settings = PoolSettings {
            job: given.job.clone(),
            pool: given.pool.clone(),
            groups: Vec::new(),
        };
        let sent = config_text(&settings).unwrap();
        let back = ConfigFile::parse(&sent, "sent.toml".as_ref()).unwrap();
        assert_eq!(back.job, given.job, "{sent}");
        assert_eq!(back.pool, given.pool, "{sent}");
    }
}
