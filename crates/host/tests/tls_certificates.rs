//! A device certificate made the usual way, with the `openssl` command line
//! at run time (not rcgen): `openssl req -x509 -newkey rsa:2048 -nodes
//! -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1`, which OpenSSL
//! marks CA:TRUE. Given as `CA Certificate`, the very same certificate is
//! accepted as the server's (as Python's ssl and Node accept it); the dates
//! and the host name are still checked, and any other CA:TRUE certificate
//! presented as a server's is still refused, fatally, in words.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_rustls::pki_types::CertificateDer;
use futures_rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use support::{Credential, EchoServer, QUIET, Recorder, connect_instance, status};
use wsio::Trigger;

/// A directory of this test's certificates, removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    /// The test's folder, or None (the test says SKIPPED) where the
    /// `openssl` command line is missing, unless WSIO_OPENSSL_REQUIRED=1
    /// (as `.ci/run` sets) makes that a failure: `cargo test` must pass on
    /// a machine with only the Rust toolchain.
    fn new_or_skip(name: &str) -> Option<Workdir> {
        let found = Command::new("openssl").arg("version").output().is_ok();
        if !found {
            assert!(
                std::env::var_os("WSIO_OPENSSL_REQUIRED").is_none(),
                "WSIO_OPENSSL_REQUIRED is set but there is no openssl command line (apt-get install openssl)"
            );
            println!("SKIPPED {name}: no openssl command line (apt-get install openssl)");
            return None;
        }
        Some(Workdir::new(name))
    }

    fn new(name: &str) -> Workdir {
        let dir = std::env::temp_dir().join(format!(
            "wsio-tls-certificates-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workdir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `openssl ARGS` in `dir`, failing the test with its output if it
/// fails (the `openssl` command line is part of the test setup).
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

fn credential(dir: &Path, name: &str) -> Credential {
    let cert_pem = std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap();
    let key_pem = std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap();
    let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    Credential {
        cert_pem,
        key_pem,
        cert_der,
    }
}

/// A device certificate exactly as the integrator makes it, checked to be
/// CA:TRUE (what made webpki refuse it).
fn openssl_device_certificate(work: &Workdir, name: &str) -> Credential {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        &work.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
    let constraints = openssl(
        &work.0,
        &["x509", "-in", &crt, "-noout", "-ext", "basicConstraints"],
    );
    assert!(constraints.contains("CA:TRUE"), "{constraints}");
    credential(&work.0, name)
}

/// The same kind of certificate, valid only during 2020 (`openssl req
/// -x509` takes no past dates; `openssl ca -selfsign` does).
fn openssl_expired_device_certificate(work: &Workdir) -> Credential {
    std::fs::write(work.path("index.txt"), "").unwrap();
    std::fs::write(work.path("serial"), "01\n").unwrap();
    std::fs::write(
        work.path("ca.cnf"),
        "[ca]\ndefault_ca = device\n\
         [device]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = any\nunique_subject = no\n\
         [any]\ncommonName = supplied\n\
         [extensions]\nbasicConstraints = critical,CA:TRUE\n\
         subjectKeyIdentifier = hash\nsubjectAltName = IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &work.0,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "expired.key",
            "-out",
            "expired.csr",
        ],
    );
    openssl(
        &work.0,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "expired.key",
            "-in",
            "expired.csr",
            "-out",
            "expired.crt",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extensions",
            "extensions",
            "-notext",
            "-batch",
        ],
    );
    credential(&work.0, "expired")
}

/// WSS to `hostname`:`port` trusting `ca_pem`, retrying within 1 s if it
/// were to retry at all.
fn wss(hostname: &str, port: u16, ca_pem: &str) -> Value {
    json!({
        "Hostname": hostname,
        "Port": port,
        "Path": "/echo",
        "Protocol": "WSS",
        "CA Certificate": ca_pem,
        "Auto-Reconnect": true,
        "Reconnect Min Delay": 1,
        "Reconnect Max Delay": 1,
    })
}

/// Connects with `properties` to `server` and expects the certificate to
/// be refused: fatally (Gave Up, no second connection), at the TLS stage.
/// Returns the reason.
fn refused(server: &EchoServer, properties: Value) -> String {
    let rec = Recorder::new();
    let _instance = connect_instance(&rec, properties);
    rec.expect("Gave Up", |r| r.count(Trigger::GaveUp) == 1);
    let r = rec.snapshot();
    let last_error = status(&r, "LastError");
    let reason = last_error
        .strip_suffix(" (stage: TLS)")
        .unwrap_or_else(|| panic!("not a TLS failure: {last_error}"))
        .to_owned();
    assert!(
        server.wait_for(|o| !o.tls_failures.is_empty(), support::TIMEOUT),
        "the server saw the client refuse its certificate"
    );
    assert!(
        !server.wait_for(|o| o.connections() >= 2, QUIET),
        "retried after a certificate failure: {reason}"
    );
    assert_eq!(r.count(Trigger::Established), 0);
    for debug in [
        "Other(",
        "OtherError",
        "CaUsedAsEndEntity",
        "DnsName(",
        "(UNIX)",
    ] {
        assert!(!reason.contains(debug), "{debug} in {reason}");
    }
    reason
}

/// The test's folder, the device's certificate made by openssl, and an
/// echo server presenting it; None where the test is skipped.
fn device_and_its_server(name: &str) -> Option<(Workdir, Credential, EchoServer)> {
    let work = Workdir::new_or_skip(name)?;
    let device = openssl_device_certificate(&work, "device");
    let server = EchoServer::start_tls_with(device.server_config());
    Some((work, device, server))
}

#[test]
fn an_openssl_self_signed_certificate_given_as_ca_certificate_is_the_servers() {
    let Some((_work, device, server)) = device_and_its_server("accepted") else {
        return;
    };
    for only_given in [false, true] {
        let rec = Recorder::new();
        let mut properties = wss("127.0.0.1", server.port(), &device.cert_pem);
        properties["Trust Only Given CA"] = json!(only_given);
        let instance = connect_instance(&rec, properties);
        rec.expect("Established", |r| r.count(Trigger::Established) == 1);
        instance.send_message("to the device").unwrap();
        rec.expect("the echo", |r| {
            r.data_of(Trigger::MessagesReceived) == ["to the device"]
        });
    }
    assert_eq!(server.snapshot().tls_sessions.len(), 2);
}

#[test]
fn another_ca_true_certificate_presented_by_the_server_is_refused() {
    let Some(work) = Workdir::new_or_skip("other") else {
        return;
    };
    let device = openssl_device_certificate(&work, "device");
    let impostor = openssl_device_certificate(&work, "impostor");
    let server = EchoServer::start_tls_with(impostor.server_config());
    let reason = refused(&server, wss("127.0.0.1", server.port(), &device.cert_pem));
    assert_eq!(
        reason,
        "TLS handshake with 127.0.0.1 failed: invalid peer certificate: the server's certificate is a CA certificate (CA:TRUE, as `openssl req -x509` makes by default); it is accepted only when CA Certificate holds exactly this certificate, or with Pin SHA-256"
    );
}

#[test]
fn the_given_certificate_must_still_name_the_host() {
    let Some((_work, device, server)) = device_and_its_server("name") else {
        return;
    };
    // The certificate names only IP:127.0.0.1 (the CN is not a name).
    let reason = refused(&server, wss("localhost", server.port(), &device.cert_pem));
    assert!(
        reason.starts_with(
            "TLS handshake with localhost failed: invalid peer certificate: certificate not valid for name localhost: it is valid for 127.0.0.1; "
        ),
        "{reason}"
    );
}

#[test]
fn the_given_certificate_must_still_be_within_its_dates() {
    let Some(work) = Workdir::new_or_skip("expired") else {
        return;
    };
    let expired = openssl_expired_device_certificate(&work);
    let server = EchoServer::start_tls_with(expired.server_config());
    let reason = refused(&server, wss("127.0.0.1", server.port(), &expired.cert_pem));
    let today = chrono::Utc::now().format("%Y-%m-%dT").to_string();
    assert!(
        reason.starts_with(&format!(
            "TLS handshake with 127.0.0.1 failed: invalid peer certificate: certificate expired: it was valid until 2021-01-01T00:00:00Z, and it is now {today}"
        )),
        "{reason}"
    );
}
