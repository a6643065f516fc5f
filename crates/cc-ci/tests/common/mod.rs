//! Test support shared by the Docker test files (each `tests/*.rs` is its own
//! crate and includes this with `mod common;`): the engine or a loud skip,
//! and the tiny `ccci/busybox:test` image imported from Debian's
//! busybox-static, since no registry can be reached.
#![allow(dead_code)]

use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures_util::TryStreamExt;

/// The test image: busybox and its applets, nothing else.
pub const IMAGE: &str = "ccci/busybox:test";

/// Connects, makes sure the node is a swarm manager and the test image
/// exists; None = skip.
pub async fn docker_or_skip() -> Option<Docker> {
    let d = match cc_ci::host::swarm::connect().await {
        Ok(d) => d,
        Err(e) => return skip(e.to_string()),
    };
    if let Err(e) = d.ping().await {
        return skip(e.to_string());
    }
    cc_ci::host::swarm::ensure_swarm(
        &d,
        cc_ci::host::swarm::PROXY_NETWORK,
        cc_ci::host::swarm::DEFAULT_ADVERTISE_ADDR,
    )
    .await
    .expect("swarm manager");
    ensure_image(&d).await;
    Some(d)
}

pub fn skip(e: String) -> Option<Docker> {
    if std::env::var("CCCI_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("no Docker engine and CCCI_REQUIRE_DOCKER=1: {e}; run scripts/dockerd");
    }
    eprintln!("\n!!! SKIPPING a Docker test: no engine ({e}); run scripts/dockerd !!!\n");
    None
}

/// Imports `ccci/busybox:test` from Debian's busybox-static unless present.
pub async fn ensure_image(d: &Docker) {
    if d.inspect_image(IMAGE).await.is_ok() {
        return;
    }
    let busybox = std::fs::read("/bin/busybox").expect(
        "/bin/busybox (Debian package busybox-static, listed in scripts/apt-packages.txt; scripts/ensure-packages installs it)",
    );
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir(&mut b, "bin/", 0o755);
    dir(&mut b, "tmp/", 0o1777);
    dir(&mut b, "data/", 0o755);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    for applet in [
        "sh", "sleep", "httpd", "true", "false", "wget", "rm", "cat", "echo", "test", "touch", "ls",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    let tar = b.into_inner().unwrap();
    d.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some("ccci/busybox".into()),
            tag: Some("test".into()),
            ..Default::default()
        }),
        Some(bollard::body_full(tar.into())),
        None,
    )
    .try_collect::<Vec<_>>()
    .await
    .expect("docker import of the busybox image");
    d.inspect_image(IMAGE).await.expect("imported image is there");
}
