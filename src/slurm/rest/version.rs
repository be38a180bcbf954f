//! Which version of slurmrestd's API to speak. A slurmrestd serves
//! several (Slurm 22.05: v0.0.36 to v0.0.38; 23.02: v0.0.37 to v0.0.39;
//! 23.11: v0.0.38 to v0.0.40; 24.11: v0.0.40 to v0.0.42; 26.05: v0.0.42 to
//! v0.0.45, as served here). drover speaks the openapi/v0.0.36 to v0.0.38
//! plugins, whose job submissions take sbatch's option strings, and the
//! data_parser's v0.0.42, which takes typed values (`job_typed`), and
//! picks the newest of those the server offers.

use std::fmt;

/// A version of the API drover speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// openapi/v0.0.36 (Slurm 20.11 to 22.05).
    V0036,
    /// openapi/v0.0.37 (Slurm 21.08 to 23.02).
    V0037,
    /// openapi/v0.0.38 (Slurm 22.05 to 23.11).
    V0038,
    /// data_parser/v0.0.42 (Slurm 24.11 to 26.05).
    V0042,
}

impl ApiVersion {
    /// Every version drover speaks, newest first: the order of preference.
    pub const PREFERRED: [ApiVersion; 4] = [
        ApiVersion::V0042,
        ApiVersion::V0038,
        ApiVersion::V0037,
        ApiVersion::V0036,
    ];

    /// The version as slurmrestd writes it in paths, `v0.0.38`.
    pub fn tag(self) -> &'static str {
        match self {
            ApiVersion::V0036 => "v0.0.36",
            ApiVersion::V0037 => "v0.0.37",
            ApiVersion::V0038 => "v0.0.38",
            ApiVersion::V0042 => "v0.0.42",
        }
    }

    /// The prefix of this version's paths about the controller.
    pub fn slurm(self) -> String {
        format!("/slurm/{}", self.tag())
    }

    /// The version named `tag` (`v0.0.37`), if drover speaks it.
    pub fn from_tag(tag: &str) -> Option<ApiVersion> {
        ApiVersion::PREFERRED.into_iter().find(|v| v.tag() == tag)
    }

    /// Whether `--signal` may say `B:` (signal the batch shell alone). The
    /// option parser of the openapi versions refuses it ("Invalid SIGNAL
    /// specification", checked against Slurm 22.05's v0.0.38); the
    /// data_parser takes it as a flag.
    pub fn signals_batch_shell(self) -> bool {
        self.data_parser()
    }

    /// Whether it is a data_parser version: typed job descriptions, and
    /// numbers and states in their newer JSON shapes.
    pub fn data_parser(self) -> bool {
        self >= ApiVersion::V0042
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// The versions of the controller API an OpenAPI document (`GET
/// /openapi/v3`) has paths for, sorted, for a message that says what the
/// server offers when none is one drover speaks.
pub fn offered(openapi: &serde_json::Value) -> Vec<String> {
    let mut tags: Vec<String> = openapi
        .get("paths")
        .and_then(|p| p.as_object())
        .map(|paths| {
            paths
                .keys()
                .filter_map(|p| p.strip_prefix("/slurm/"))
                .filter_map(|rest| rest.split('/').next())
                .filter(|t| t.starts_with('v') && t.len() <= 16)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.dedup();
    tags
}

/// The error for a server that offers nothing drover speaks.
pub fn none_in_common(url: &str, offered: &[String]) -> String {
    let ours: Vec<&str> = ApiVersion::PREFERRED
        .iter()
        .rev()
        .map(|v| v.tag())
        .collect();
    let theirs = match offered.is_empty() {
        true => "no version drover could read".to_string(),
        false => offered.join(", "),
    };
    format!(
        "slurmrestd at {url} offers {theirs}; drover speaks {} (Slurm 20.11 to 23.11, and 24.11 to 26.05): use slurm-api = \"cli\" on this cluster",
        ours.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_preferred_newest_first() {
        assert_eq!(ApiVersion::PREFERRED[0], ApiVersion::V0042);
        assert!(ApiVersion::V0042.data_parser() && !ApiVersion::V0038.data_parser());
        assert_eq!(ApiVersion::V0037.slurm(), "/slurm/v0.0.37");
        assert_eq!(ApiVersion::from_tag("v0.0.36"), Some(ApiVersion::V0036));
        assert_eq!(ApiVersion::from_tag("v0.0.41"), None);
    }

    #[test]
    fn what_a_server_offers_is_read_from_its_paths() {
        let doc = serde_json::json!({"paths": {
            "/slurm/v0.0.41/ping/": {}, "/slurm/v0.0.40/jobs/": {}, "/slurm/v0.0.41/jobs/": {},
            "/slurmdb/v0.0.41/qos/": {}, "/openapi/v3": {}
        }});
        let got = offered(&doc);
        assert_eq!(got, ["v0.0.40", "v0.0.41"]);
        let m = none_in_common("https://rest", &got);
        assert!(
            m.contains("offers v0.0.40, v0.0.41")
                && m.contains("v0.0.36, v0.0.37, v0.0.38, v0.0.42"),
            "{m}"
        );
    }
}
