//! The dashboard's templates (`control-plane/templates/`), compiled into the binary and
//! parsed once at startup, with the `t("…")` translation function registered. The `.html`
//! ones are pages (HTML-escaped); the `.txt` ones are code samples, rendered to plain text
//! and escaped where a page shows them.

use minijinja::Environment;

use crate::i18n;

/// The parsed templates.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    macro_rules! add {
        ($($name:literal),*) => {$(
            env.add_template($name, include_str!(concat!("../templates/", $name)))
                .expect("templates parse");
        )*};
    }
    add!(
        "base.html",
        "sign_up.html",
        "sign_in.html",
        "message.html",
        "forgot_password.html",
        "reset_password.html",
        "projects.html",
        "project_form.html",
        "integration.html",
        "usage.html",
        "privacy.html",
        "how_it_works.html",
        "dpa.html",
        "contact.html",
        "confirm.html",
        "refused.html",
        "api_reference.html",
        "members.html",
        "api_keys.html",
        "audit.html",
        "outbox.html",
        "second_factor.html",
        "project_tabs.html",
        "invitation.html",
        "new_organisation.html",
        "docs.html",
        "clients.html",
        "risk.html",
        "account.html",
        "billing.html",
        "snippet.txt",
        "siteverify_curl.txt",
        "siteverify_node.txt",
        "siteverify_python.txt",
        "siteverify_php.txt",
        "siteverify_rust.txt"
    );
    i18n::register(&mut env);
    env
}
