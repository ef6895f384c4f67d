//! No password of a PostgreSQL connection URL or string is ever printed:
//! `denorm check`, `denorm run` and `denorm source uninstall` against an
//! unreachable server (the errors name the source) and against a refused
//! configuration, for every way of writing the password.

use std::net::TcpListener;
use std::process::Command;

const PASSWORD: &str = "Sup3rS3cretPw";

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn forms(port: u16) -> Vec<String> {
    vec![
        format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/app"),
        format!("postgresql://app@127.0.0.1:{port}/app?password={PASSWORD}&connect_timeout=2"),
        format!("host=127.0.0.1 port={port} dbname=app user=app password={PASSWORD}"),
        format!("host=127.0.0.1 port={port} dbname=app user=app password='{PASSWORD} x'"),
        // Refused by the configuration itself (an invalid port).
        format!("postgres://app:{PASSWORD}@127.0.0.1:notaport/app"),
        format!("host=127.0.0.1 port=notaport password={PASSWORD}"),
    ]
}

#[test]
fn passwords_are_never_printed() {
    let port = closed_port();
    for url in forms(port) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("views.sql"), "CREATE MATERIALIZED VIEW v AS SELECT 1 AS one;\n").unwrap();
        let config = dir.path().join("denorm.toml");
        let url_toml = url.replace('\\', "\\\\").replace('"', "\\\"");
        std::fs::write(
            &config,
            format!("views = [\"views.sql\"]\n[source]\nurl = \"{url_toml}\"\n[server]\nlisten = \"127.0.0.1:0\"\n"),
        )
        .unwrap();
        for args in [&["check"][..], &["run"], &["source", "uninstall"]] {
            let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "debug")
                .output()
                .unwrap();
            let printed =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            assert_eq!(output.status.code(), Some(1), "{args:?} with {url}: {printed}");
            assert!(!printed.contains(PASSWORD), "{args:?} with {url} printed the password:\n{printed}");
            assert!(printed.contains("***"), "{args:?} with {url}: the source is named, redacted:\n{printed}");
        }
    }
}
