//! `GET /docs`: the README, the one document operators, contributors and customers share,
//! as a dashboard page with an anchor on every heading (GitHub's), so that dashboard pages
//! link to the section that explains them and the README stays the only copy.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use minijinja::{Value, context};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::extract::SignedIn;
use super::render::{Page, outside_organisations, render};
use super::security::CsrfToken;
use crate::privacy;
use crate::state::AppState;

/// The README as HTML, rendered once.
static DOCS: LazyLock<Docs> = LazyLock::new(|| Docs::from_markdown(privacy::README));

/// A Markdown document as a page: its HTML and its sections, for a table of contents.
pub struct Docs {
    /// The body, headings carrying their anchors.
    pub html: String,
    /// The second-level headings: `(anchor, text)`.
    pub sections: Vec<(String, String)>,
}

impl Docs {
    /// Renders `markdown`. Raw HTML in it is shown as text, so the page keeps the dashboard's
    /// escaping and CSP whatever the README says; wide tables scroll on their own.
    pub fn from_markdown(markdown: &str) -> Self {
        let events = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            event => event,
        });
        let mut taken = HashMap::new();
        let mut tables = HashMap::new();
        let mut sections = Vec::new();
        // The heading being read: where it starts in `page`, its level, its text so far.
        let mut heading: Option<(usize, HeadingLevel, String)> = None;
        let mut section = String::new();
        let mut page = Vec::new();
        for event in events {
            match &event {
                Event::Start(Tag::Heading { level, .. }) => {
                    heading = Some((page.len(), *level, String::new()));
                }
                Event::Text(text) | Event::Code(text) => {
                    if let Some((_, _, heading_text)) = &mut heading {
                        heading_text.push_str(text);
                    }
                }
                Event::End(TagEnd::Heading(_)) => {
                    if let Some((start, level, text)) = heading.take() {
                        let anchor = unique(slug(&text), &mut taken);
                        if level == HeadingLevel::H2 {
                            sections.push((anchor.clone(), text.clone()));
                        }
                        if let Event::Start(Tag::Heading { id, .. }) = &mut page[start] {
                            *id = Some(CowStr::from(anchor));
                        }
                        section = text;
                    }
                }
                Event::Start(Tag::Table(_)) => {
                    // Each scrolling region needs its own name: the section's, numbered
                    // from the second table in it.
                    let label = unique(section.clone(), &mut tables);
                    let label = minijinja::HtmlEscape(&label).to_string();
                    page.push(Event::Html(CowStr::from(format!(
                        "<div class=\"table-scroll\" tabindex=\"0\" role=\"region\" aria-label=\"{label}\">"
                    ))));
                }
                _ => {}
            }
            let ends_table = matches!(event, Event::End(TagEnd::Table));
            page.push(event);
            if ends_table {
                page.push(Event::Html(CowStr::Borrowed("</div>")));
            }
        }
        let mut html = String::with_capacity(markdown.len() * 3 / 2);
        pulldown_cmark::html::push_html(&mut html, page.into_iter());
        Self { html, sections }
    }

    /// Whether a heading has this anchor.
    pub fn has_anchor(&self, anchor: &str) -> bool {
        self.html.contains(&format!(" id=\"{anchor}\""))
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `anchor`, or `anchor-1`, `anchor-2`… when an earlier one is the same, as GitHub numbers
/// headings.
fn unique(anchor: String, taken: &mut HashMap<String, u32>) -> String {
    let seen = taken.entry(anchor.clone()).or_insert(0);
    let unique = match *seen {
        0 => anchor,
        n => format!("{anchor}-{n}"),
    };
    *seen += 1;
    unique
}

/// The README as the dashboard shows it.
pub fn readme() -> &'static Docs {
    &DOCS
}

/// `GET /docs`.
pub async fn docs_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    signed_in: Option<SignedIn>,
) -> Page {
    let user = signed_in.map(|signed_in| signed_in.user);
    let frame = outside_organisations(&csrf, user.as_ref());
    let docs = readme();
    let sections: Vec<Value> = docs
        .sections
        .iter()
        .map(|(anchor, text)| context! { anchor => anchor, text => text })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "docs.html",
        &frame,
        context! { html => Value::from_safe_string(docs.html.clone()), sections => sections },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_githubs_anchors_and_raw_html_stays_text() {
        let docs = Docs::from_markdown(
            "# Title\n\n## Siteverify (your backend)\n\n## Telemetry, usage and privacy\n\n### Notes\n\n### Notes\n\n<script>alert(1)</script>\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n| c |\n| - |\n| 3 |\n",
        );
        for anchor in [
            "title",
            "siteverify-your-backend",
            "telemetry-usage-and-privacy",
            "notes",
            "notes-1",
        ] {
            assert!(docs.has_anchor(anchor), "{anchor}: {}", docs.html);
        }
        assert_eq!(docs.sections.len(), 2);
        assert!(!docs.html.contains("<script>"));
        assert!(docs.html.contains("&lt;script&gt;"));
        for label in ["Notes", "Notes-1"] {
            assert!(docs.html.contains(&format!(
                "<div class=\"table-scroll\" tabindex=\"0\" role=\"region\" aria-label=\"{label}\"><table>"
            )));
        }
    }

    /// Every `/docs#…` link in a template leads to a heading of the README: renaming a
    /// section without its links fails here.
    #[test]
    fn every_docs_link_in_the_dashboard_has_its_heading() {
        let templates = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
            .expect("templates folder");
        let mut links = 0;
        for template in templates {
            let path = template.expect("template").path();
            let text = std::fs::read_to_string(&path).expect("template text");
            for link in text.split("href=\"/docs#").skip(1) {
                let anchor = link.split('"').next().expect("closing quote");
                assert!(
                    readme().has_anchor(anchor),
                    "{}: /docs#{anchor} has no heading in the README",
                    path.display()
                );
                links += 1;
            }
        }
        assert!(links >= 5, "the dashboard links its sections ({links})");
    }
}
