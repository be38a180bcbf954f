//! The page's templates (tera, built into the binary; HTML is escaped)
//! and what fills them.

use std::sync::OnceLock;

use serde::Serialize;

use super::view::{JobView, View};

/// The templates, parsed once.
fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.add_raw_templates(vec![
            (
                "live.html",
                include_str!("../../../templates/page/live.html"),
            ),
            (
                "index.html",
                include_str!("../../../templates/page/index.html"),
            ),
            (
                "worker.html",
                include_str!("../../../templates/page/worker.html"),
            ),
        ])
        .expect("the page's templates parse (checked by the unit tests)");
        t
    })
}

/// The page's script and style sheet.
pub(crate) const SCRIPT: &str = include_str!("../../../templates/page/page.js");
pub(crate) const STYLE: &str = include_str!("../../../templates/page/page.css");

fn fill(name: &str, context: &impl Serialize) -> String {
    let context = match tera::Context::from_serialize(context) {
        Ok(c) => c,
        Err(e) => return format!("cannot show the page: {e}"),
    };
    tera()
        .render(name, &context)
        .unwrap_or_else(|e| format!("cannot show the page: {e}"))
}

/// JSON safe inside a `<script type="application/json">` element: no
/// `<` that could end it.
fn inline_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c")
}

/// The whole page, with the timeline so far.
/// `actions`: the session's action token (none: the page cannot act).
pub(crate) fn index(
    view: &View,
    timeline: &[crate::protocol::Sample],
    refresh: std::time::Duration,
    actions: Option<&str>,
) -> String {
    #[derive(Serialize)]
    struct Context<'a> {
        view: &'a View,
        timeline: String,
        refresh_ms: u128,
        actions: Option<&'a str>,
    }
    fill(
        "index.html",
        &Context {
            view,
            timeline: inline_json(&timeline),
            refresh_ms: refresh.as_millis(),
            actions,
        },
    )
}

/// The live part of the page, as an update replaces it.
pub(crate) fn live(view: &View) -> String {
    #[derive(Serialize)]
    struct Context<'a> {
        view: &'a View,
    }
    fill("live.html", &Context { view })
}

/// A worker's (or job's) page, with the end of its log.
pub(crate) fn worker(
    name: &str,
    job: Option<&JobView>,
    path: &str,
    log: &crate::protocol::LogChunk,
) -> String {
    #[derive(Serialize)]
    struct Context<'a> {
        name: &'a str,
        job: Option<&'a JobView>,
        path: &'a str,
        log: &'a str,
        offset: u64,
    }
    fill(
        "worker.html",
        &Context {
            name,
            job,
            path,
            log: &log.text,
            offset: log.to,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_parse_and_json_cannot_end_its_script_element() {
        let _ = tera();
        assert_eq!(inline_json(&"</script>"), "\"\\u003c/script>\"");
    }
}
