//! Outbound TLS: the one way the control plane builds HTTP clients, and the crypto provider
//! they and the SMTP mailer share.

/// A client for outbound calls (Cloudflare's API, the demo site's siteverify). TLS goes
/// through rustls with the ring provider, installed here on first use so no caller can
/// forget it; certificates are checked against the system's roots.
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("a TLS provider is installed and the system roots load")
}

/// A client builder with TLS ready, for callers that need other settings.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(20))
}

/// Makes ring rustls' process-wide crypto provider, which reqwest and lettre both need
/// (neither is built with one of its own, to keep aws-lc out of the build).
pub fn install_tls_provider() {
    // Fails only when a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
