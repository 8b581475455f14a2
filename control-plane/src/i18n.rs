//! Translations of the dashboard and its emails, gettext style: the English text is the key,
//! and each other language has one flat JSON catalogue (`control-plane/locales/<lang>.json`,
//! English → translation). A text with no entry shows in English rather than failing.
//! Placeholders (`{name}`) are filled after translation, so a translation may move them.
//! Which language a page gets is decided in [`crate::web`]; it is held for the request here.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::LazyLock;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, State};

/// The dashboard's languages, English first: each one's code, its name in itself (as the
/// language pickers list it) and its catalogue, compiled in so that a deployment cannot ship
/// without it. English, the language every text is written in, has none.
const TABLE: [(&str, &str, Option<&str>); 10] = [
    ("en", "English", None),
    ("de", "Deutsch", Some(include_str!("../locales/de.json"))),
    ("fr", "Français", Some(include_str!("../locales/fr.json"))),
    ("es", "Español", Some(include_str!("../locales/es.json"))),
    ("it", "Italiano", Some(include_str!("../locales/it.json"))),
    ("nl", "Nederlands", Some(include_str!("../locales/nl.json"))),
    ("pl", "Polski", Some(include_str!("../locales/pl.json"))),
    ("cs", "Čeština", Some(include_str!("../locales/cs.json"))),
    ("pt", "Português", Some(include_str!("../locales/pt.json"))),
    ("sv", "Svenska", Some(include_str!("../locales/sv.json"))),
];

/// The dashboard languages' codes, English first. The widget ships the same ones
/// ([`crate::service::projects::WIDGET_LANGUAGES`] adds `auto`).
pub const LANGUAGES: [&str; TABLE.len()] = {
    let mut codes = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        codes[i] = TABLE[i].0;
        i += 1;
    }
    codes
};

/// The language every text is written in, and the fallback.
pub const DEFAULT: &str = "en";

/// The catalogues, parsed on first use.
static CATALOGUES: LazyLock<HashMap<&'static str, HashMap<String, String>>> = LazyLock::new(|| {
    TABLE
        .iter()
        .filter_map(|(lang, _, json)| {
            let catalogue = serde_json::from_str((*json)?).unwrap_or_else(|err| {
                panic!("locales/{lang}.json is not a flat JSON object: {err}")
            });
            Some((*lang, catalogue))
        })
        .collect()
});

/// The dashboard language named `code` (as stored in `users.language`), if it is one.
pub fn supported(code: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .copied()
        .find(|lang| lang.eq_ignore_ascii_case(code))
}

tokio::task_local! {
    /// The language of the dashboard request being answered: negotiated from
    /// `Accept-Language` when the request comes in, then the signed-in user's preference once
    /// they are known. A task-local rather than a request extension because error pages and
    /// the validation messages of [`crate::service`] have no request at hand, and passing the
    /// language down would change every signature on the way.
    static REQUEST_LANGUAGE: Cell<&'static str>;
}

/// Runs `answer` (a dashboard request's handling) with `lang` as its language.
pub async fn with_request_language<F: Future>(lang: &'static str, answer: F) -> F::Output {
    REQUEST_LANGUAGE.scope(Cell::new(lang), answer).await
}

/// Makes the signed-in user's preferred language, when it is a dashboard language, the
/// current request's. Nothing happens outside a dashboard request.
pub fn prefer_for_request(preference: &str) {
    if let Some(lang) = supported(preference) {
        let _ = REQUEST_LANGUAGE.try_with(|current| current.set(lang));
    }
}

/// The current dashboard request's language; English elsewhere (the JSON API, the CLI).
pub fn request_language() -> &'static str {
    REQUEST_LANGUAGE.try_with(Cell::get).unwrap_or(DEFAULT)
}

/// `english` in `lang`, or `english` itself when the language or the entry is missing.
pub fn translate<'a>(lang: &str, english: &'a str) -> &'a str {
    CATALOGUES
        .get(lang)
        .and_then(|catalogue| catalogue.get(english))
        .map_or(english, String::as_str)
}

/// Replaces each `{name}` in `text` with its value. Placeholders without a value stay as
/// they are, so a template can split a translated sentence at one to wrap it in markup.
/// One pass, so a value that itself contains `{name}` is not expanded again.
pub fn fill(text: &str, values: &[(&str, impl AsRef<str>)]) -> String {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            values
                .iter()
                .find(|(name, _)| *name == &after[..close])
                .map(|(_, value)| (close, value))
        });
        match value {
            Some((close, value)) => {
                filled.push_str(value.as_ref());
                rest = &after[close + 1..];
            }
            None => {
                filled.push('{');
                rest = after;
            }
        }
    }
    filled.push_str(rest);
    filled
}

/// The best dashboard language for an `Accept-Language` header: the highest `q` among the
/// languages offered (`de-CH` counts as `de`), the first of equals, English when none fits.
pub fn negotiate(accept_language: Option<&str>) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for range in accept_language.unwrap_or_default().split(',') {
        let mut parts = range.split(';').map(str::trim);
        let tag = parts.next().unwrap_or_default();
        let quality = match parts.find_map(|param| {
            param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
        }) {
            Some(q) => q.parse::<f32>().unwrap_or(0.0),
            None => 1.0,
        };
        let Some(lang) = supported(tag.split('-').next().unwrap_or_default()) else {
            continue;
        };
        if quality > 0.0 && best.is_none_or(|(_, best_quality)| quality > best_quality) {
            best = Some((lang, quality));
        }
    }
    best.map_or(DEFAULT, |(lang, _)| lang)
}

/// Gives the templates `t("English text", name=value…)`, translated into the page's `lang`
/// and then filled in, and `language_names` (code → the language's own name).
pub fn register(env: &mut Environment<'_>) {
    env.add_function("t", template_translate);
    let names = TABLE.iter().map(|(code, name, _)| (*code, *name));
    env.add_global("language_names", Value::from_iter(names));
}

/// Returns a plain string, so auto-escaping still applies to the text and its values alike.
fn template_translate(
    state: &State<'_, '_>,
    english: &str,
    values: Kwargs,
) -> Result<String, minijinja::Error> {
    let lang = state.lookup("lang");
    let lang = lang.as_ref().and_then(Value::as_str).unwrap_or(DEFAULT);
    let values: Vec<(&str, String)> = values
        .args()
        .map(|name| Ok((name, values.get::<Value>(name)?.to_string())))
        .collect::<Result<_, minijinja::Error>>()?;
    Ok(fill(translate(lang, english), &values))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn negotiation_picks_the_best_supported_language() {
        assert_eq!(negotiate(None), "en");
        assert_eq!(negotiate(Some("")), "en");
        assert_eq!(negotiate(Some("de-CH")), "de");
        assert_eq!(negotiate(Some("fr-CA,fr;q=0.9,en;q=0.8")), "fr");
        assert_eq!(
            negotiate(Some("ja,sv;q=0.5,de;q=0.7")),
            "de",
            "unsupported languages are skipped"
        );
        assert_eq!(
            negotiate(Some("en;q=0.2, PT-br;q=0.9")),
            "pt",
            "tags are case-insensitive"
        );
        assert_eq!(negotiate(Some("it, nl")), "it", "the first of equals wins");
        assert_eq!(
            negotiate(Some("cs;q=0, pl;q=0.1")),
            "pl",
            "q=0 means not acceptable"
        );
        assert_eq!(negotiate(Some("*")), "en");
        assert_eq!(
            negotiate(Some("es;q=oops, zz")),
            "en",
            "a malformed q counts as not acceptable"
        );
    }

    #[test]
    fn translation_falls_back_to_english() {
        assert_eq!(translate("de", "Projects"), "Projekte");
        assert_eq!(
            translate("de", "A text no catalogue has"),
            "A text no catalogue has"
        );
        assert_eq!(translate("en", "Projects"), "Projects");
        assert_eq!(translate("xx", "Projects"), "Projects");
    }

    #[test]
    fn placeholders_are_filled_once_after_translation() {
        assert_eq!(fill("Delete {name}", &[("name", "Shop")]), "Delete Shop");
        assert_eq!(
            fill("{a} and {b}", &[("b", "{a}"), ("a", "x")]),
            "x and {a}",
            "values are not expanded again"
        );
        assert_eq!(
            fill("{count} of {starts}", &[("starts", "3")]),
            "{count} of 3",
            "unfilled placeholders stay"
        );
        assert_eq!(fill("{ unbalanced", &[("unbalanced", "x")]), "{ unbalanced");
        assert_eq!(
            fill(translate("fr", "Delete {name}"), &[("name", "Boutique")]),
            "Supprimer Boutique"
        );
    }

    #[test]
    fn templates_translate_and_still_escape() {
        let mut env = Environment::new();
        register(&mut env);
        env.add_template("page.html", r#"{{ t("Delete {name}", name=name) }} · {{ t("Projects") }} · {{ language_names[lang] }}"#).unwrap();
        let page = env.get_template("page.html").unwrap();
        let render = |lang: &str| {
            page.render(minijinja::context! { lang => lang, name => "<b>Shop</b>" })
                .unwrap()
        };
        assert_eq!(
            render("de"),
            "&lt;b&gt;Shop&lt;&#x2f;b&gt; löschen · Projekte · Deutsch"
        );
        assert_eq!(
            render("en"),
            "Delete &lt;b&gt;Shop&lt;&#x2f;b&gt; · Projects · English"
        );
    }

    #[test]
    fn every_dashboard_language_but_english_has_a_catalogue() {
        assert_eq!((LANGUAGES[0], TABLE[0].2), (DEFAULT, None));
        for (lang, _, catalogue) in &TABLE[1..] {
            assert!(catalogue.is_some(), "{lang} has no catalogue");
        }
    }

    #[test]
    fn the_widget_speaks_every_dashboard_language() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let widget = std::fs::read_to_string(root.join("../widget/src/i18n.js")).unwrap();
        // `  de: { label: …`, one line per language in the widget's MESSAGES.
        let spoken: Vec<&str> = widget
            .lines()
            .filter_map(|line| line.strip_prefix("  ")?.split_once(": {"))
            .map(|(code, _)| code)
            .collect();
        assert_eq!(spoken, LANGUAGES);
    }

    /// The texts of `t("…")` calls with a literal argument in the templates.
    fn template_keys(root: &Path) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(root.join("templates")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for (start, _) in text.match_indices("t(") {
                // `t(` ends other names too (`split(`), and `t(variable)` has no literal.
                let part_of_a_name = text[..start]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                let rest = &text[start + 2..];
                let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                    continue;
                };
                if part_of_a_name {
                    continue;
                }
                let literal = &rest[1..];
                let end = literal.find(quote).expect("a t() literal is closed");
                assert!(
                    !literal[..end].contains('\\'),
                    "keep t() literals free of escapes: {}",
                    &literal[..end]
                );
                keys.insert(literal[..end].to_owned());
            }
        }
        keys
    }

    /// All Rust source under `dir`, where the messages that templates translate with
    /// `t(variable)` (notices, errors, reason explanations, role names…) are written.
    fn rust_sources(dir: &Path, sources: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_sources(&path, sources);
            } else if path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("i18n.rs")
            {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }

    /// `text` as a Rust string literal writes it.
    fn rust_literal(text: &str) -> String {
        format!(
            "\"{}\"",
            text.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    }

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|part| part.split_once('}'))
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn catalogues_are_complete_and_hold_nothing_stale() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let template_keys = template_keys(root);
        let mut sources = String::new();
        rust_sources(&root.join("src"), &mut sources);
        rust_sources(&root.join("../protocol/src"), &mut sources);

        let all_keys: BTreeSet<&String> = CATALOGUES.values().flat_map(HashMap::keys).collect();
        for key in &all_keys {
            assert!(
                template_keys.contains(*key) || sources.contains(&rust_literal(key)),
                "stale: {key:?} is neither a t() literal in a template nor a Rust string literal"
            );
        }
        for (lang, catalogue) in CATALOGUES.iter() {
            for key in &template_keys {
                assert!(
                    catalogue.contains_key(key),
                    "locales/{lang}.json lacks the template text {key:?}"
                );
            }
            // Rust messages are found only through the catalogues, so each must be in all nine.
            for key in &all_keys {
                assert!(
                    catalogue.contains_key(*key),
                    "locales/{lang}.json lacks {key:?}, which another catalogue has"
                );
            }
            for (english, translated) in catalogue {
                assert!(
                    !translated.trim().is_empty(),
                    "locales/{lang}.json: {english:?} is empty"
                );
                assert_eq!(
                    placeholders(english),
                    placeholders(translated),
                    "locales/{lang}.json: placeholders of {english:?}"
                );
            }
        }
    }
}
