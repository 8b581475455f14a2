//! The privacy policy's promises about how long data is kept, read from the README's
//! retention table: one table, in the README where operators and contributors read it, and
//! on the public privacy page, where every promise names the code that keeps it and the
//! test that proves it, so a reader can check it in the source.

/// The README: this reads its retention table, and `/docs` shows it whole.
pub const README: &str = include_str!("../../README.md");

/// The retention table's header row.
const HEADER: &str = "| data | stored in | kept | enforced by | proved by |";

/// One promise: what, where, how long, the job that enforces it, the test that proves it (as
/// the README writes them, Markdown code spans and all).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Promise {
    /// The kind of data.
    pub data: String,
    /// Where it is stored.
    pub stored_in: String,
    /// How long it is kept.
    pub kept: String,
    /// The code that enforces it.
    pub enforced_by: String,
    /// The test that proves it.
    pub proved_by: String,
}

/// The retention table's rows.
pub fn promises() -> Vec<Promise> {
    README
        .lines()
        .skip_while(|line| line.trim() != HEADER)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<String> = line
                .trim()
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect();
            let [data, stored_in, kept, enforced_by, proved_by] =
                <[String; 5]>::try_from(cells).ok()?;
            Some(Promise {
                data,
                stored_in,
                kept,
                enforced_by,
                proved_by,
            })
        })
        .collect()
}

/// A table cell as HTML: escaped, with Markdown's `code` and **strong** spans kept.
pub fn cell_html(markdown: &str) -> String {
    let escaped = minijinja::HtmlEscape(markdown).to_string();
    let mut html = String::new();
    for (index, part) in escaped.split('`').enumerate() {
        if index % 2 == 1 {
            html.push_str("<code>");
            html.push_str(part);
            html.push_str("</code>");
        } else {
            for (index, part) in part.split("**").enumerate() {
                if index % 2 == 1 {
                    html.push_str("<strong>");
                    html.push_str(part);
                    html.push_str("</strong>");
                } else {
                    html.push_str(part);
                }
            }
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_whole_and_rendered_safely() {
        let promises = promises();
        assert!(promises.len() >= 15, "{promises:?}");
        assert!(
            promises
                .iter()
                .any(|promise| promise.data == "telemetry events")
        );
        assert_eq!(
            cell_html("`a<b>` and **c**"),
            "<code>a&lt;b&gt;</code> and <strong>c</strong>"
        );
    }

    /// Every test a promise names exists: `module::name` is a test in `tests/tests/module.rs`
    /// (or a unit test in the control plane), a name ending in `…` standing for its prefix.
    #[test]
    fn every_test_a_promise_names_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for promise in promises() {
            for reference in promise.proved_by.split('`').skip(1).step_by(2) {
                let (module, name) = reference.split_once("::").expect("module::name");
                let name = name
                    .rsplit("::")
                    .next()
                    .unwrap_or(name)
                    .trim_end_matches('…');
                let sources = [
                    root.join(format!("../tests/tests/{module}.rs")),
                    root.join(format!("src/{module}.rs")),
                ];
                let found = sources.iter().any(|path| {
                    std::fs::read_to_string(path)
                        .is_ok_and(|text| text.contains(&format!("fn {name}")))
                });
                assert!(found, "{reference} (for {:?}) names no test", promise.data);
            }
        }
    }
}
