//! Arguments users pass on to Dask (`worker_extra_args`, the Dask
//! scheduler's extra arguments), read as options: drover asks whether an
//! option is given by its name, never by a substring of the text.

/// The option names among `args`: `--name` and `--name=value` give
/// `--name`; values and positional arguments give nothing.
pub fn option_names(args: &[String]) -> impl Iterator<Item = &str> {
    args.iter()
        .filter(|a| a.starts_with('-') && a.len() > 1 && a.parse::<f64>().is_err())
        .map(|a| a.split_once('=').map_or(a.as_str(), |(name, _)| name))
}

/// Whether `args` give any of the options `names`.
pub fn gives_any(args: &[String], names: &[&str]) -> bool {
    option_names(args).any(|n| names.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_matched_by_name() {
        let args: Vec<String> = [
            "--resources=GPU=1",
            "--nthreads",
            "4",
            "-1",
            "--tls-key",
            "k",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let names: Vec<&str> = option_names(&args).collect();
        assert_eq!(names, ["--resources", "--nthreads", "--tls-key"]);
        assert!(gives_any(&args, &["--resources"]));
        let other = vec!["--resources-file".to_string()];
        assert!(
            !gives_any(&other, &["--resources"]),
            "a longer name is another option"
        );
    }
}
