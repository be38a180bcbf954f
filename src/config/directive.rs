//! `Directive`: one `#SBATCH` line, parsed from what users write
//! (`--qos=debug`, `-C gpu`) and written in either header style; option
//! names compared in their long form, so `-t` and `--time` are the same.

use serde::Serialize;

use super::{check_line, HeaderStyle, ValueError};

/// One `#SBATCH` option: its long name (`--time`) and its value, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The option's long name, e.g. `--time`, or a short one sbatch has no long form for.
    pub option: String,
    /// The value after `=`, if the option takes one.
    pub value: Option<String>,
}

/// sbatch's options that ask for GPUs, or only make sense with them
/// (sbatch's manual, Slurm 22.05 to 26.05).
const GPU_OPTIONS: &[&str] = &[
    "--gpus",
    "-G",
    "--gpus-per-node",
    "--gpus-per-task",
    "--gpus-per-socket",
    "--gres",
    "--cpus-per-gpu",
    "--mem-per-gpu",
    "--ntasks-per-gpu",
    "--gpu-bind",
    "--gpu-freq",
];

impl Directive {
    /// Whether it asks for GPUs (or only makes sense with them):
    /// `--gpus-per-node=2`, `--gres=gpu:1`, `--tres-per-task=gres/gpu:1`...
    pub fn asks_gpus(&self) -> bool {
        GPU_OPTIONS.contains(&self.option.as_str())
            || (self.option == "--tres-per-task"
                && self.value.as_deref().is_some_and(|v| {
                    v.split(',')
                        .any(|t| t.starts_with("gres/gpu") || t.starts_with("gpu"))
                }))
    }

    pub(crate) fn new(option: &str, value: impl ToString) -> Self {
        Directive {
            option: option.to_string(),
            value: Some(value.to_string()),
        }
    }

    /// The directive as it follows `#SBATCH `.
    pub fn render(&self) -> String {
        match &self.value {
            Some(v) if self.option.starts_with("--") => format!("{}={v}", self.option),
            Some(v) => format!("{} {v}", self.option),
            None => self.option.clone(),
        }
    }

    /// The directive as it follows `#SBATCH ` in `style`.
    pub fn render_styled(&self, style: HeaderStyle) -> String {
        const SHORT: &[(&str, &str)] = &[
            ("--job-name", "-J"),
            ("--output", "-o"),
            ("--error", "-e"),
            ("--partition", "-p"),
            ("--account", "-A"),
            ("--nodes", "-N"),
            ("--ntasks", "-n"),
            ("--time", "-t"),
        ];
        let short = SHORT.iter().find(|(long, _)| *long == self.option);
        match (style, short, &self.value) {
            (HeaderStyle::DaskJobqueue, Some((_, s)), Some(v)) => format!("{s} {v}"),
            _ => self.render(),
        }
    }

    /// Parses an extra directive as users write it: `--qos=debug`,
    /// `--exclusive`, `-C gpu`, optionally behind `#SBATCH`.
    pub(crate) fn parse(raw: &str) -> Result<Directive, ValueError> {
        const FORMS: &str = "an sbatch option such as `--qos=debug`, `--exclusive` or `-C gpu`";
        check_line(raw, FORMS)?;
        let text = raw.trim();
        let text = text.strip_prefix("#SBATCH").map(str::trim).unwrap_or(text);
        if !text.starts_with('-') || text == "-" || text == "--" {
            return Err(ValueError::new(
                raw,
                "it is not an option starting with `-`",
                FORMS,
            ));
        }
        let (option, value) = if text.starts_with("--") {
            match text.split_once('=') {
                Some((o, v)) => (o, Some(v.to_string())),
                None => match text.split_once(char::is_whitespace) {
                    Some((o, v)) => (o, Some(v.trim().to_string())),
                    None => (text, None),
                },
            }
        } else {
            match text.split_once(char::is_whitespace) {
                Some((o, v)) => (o, Some(v.trim().to_string())),
                None if text.len() > 2 => (&text[..2], Some(text[2..].to_string())),
                None => (text, None),
            }
        };
        let option = normalize_option(option)
            .ok_or_else(|| ValueError::new(raw, "its option name is malformed", FORMS))?;
        Ok(Directive { option, value })
    }
}

/// The long name of an sbatch option given in either form, so that `-t` and
/// `--time` compare equal; `None` when it is not an option name at all.
pub(crate) fn normalize_option(name: &str) -> Option<String> {
    const SHORT: &[(char, &str)] = &[
        ('A', "--account"),
        ('C', "--constraint"),
        ('G', "--gpus"),
        ('J', "--job-name"),
        ('N', "--nodes"),
        ('c', "--cpus-per-task"),
        ('e', "--error"),
        ('n', "--ntasks"),
        ('o', "--output"),
        ('p', "--partition"),
        ('q', "--qos"),
        ('t', "--time"),
        ('w', "--nodelist"),
        ('x', "--exclude"),
    ];
    if let Some(long) = name.strip_prefix("--") {
        let ok = long.starts_with(|c: char| c.is_ascii_alphabetic())
            && long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        return ok.then(|| name.to_string());
    }
    let short = name.strip_prefix('-')?;
    let mut chars = short.chars();
    let c = chars.next().filter(|c| c.is_ascii_alphabetic())?;
    if chars.next().is_some() {
        return None;
    }
    Some(
        SHORT
            .iter()
            .find(|(s, _)| *s == c)
            .map(|(_, long)| long.to_string())
            .unwrap_or_else(|| name.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_options_are_named_not_guessed_from_text() {
        let asks = |raw: &str| Directive::parse(raw).unwrap().asks_gpus();
        assert!(asks("--gpus-per-node=2"));
        assert!(asks("--gres=gpu:1"));
        assert!(asks("-G 1"));
        assert!(asks("--tres-per-task=gres/gpu:1"));
        assert!(!asks("--tres-per-task=cpu:2"));
        assert!(
            !asks("--constraint=gpu"),
            "a feature named gpu asks for none"
        );
        assert!(!asks("--qos=gpu"));
    }
}
