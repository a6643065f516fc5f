//! The HTTP client both API clients are built from: rustls with the ring
//! provider (the one cc-ci already uses; reqwest's default would add
//! aws-lc), the system's trust roots.

use std::sync::Once;

static PROVIDER: Once = Once::new();

/// A reqwest client builder with the TLS provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    PROVIDER.call_once(|| {
        // Err only when another provider was installed first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().user_agent(concat!("cc-ci-bridge/", env!("CARGO_PKG_VERSION")))
}

/// An error with its causes, on one line ("error sending request: tcp
/// connect error: Connection refused").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
