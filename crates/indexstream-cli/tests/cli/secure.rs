//! Connecting to clusters that need more than plain HTTP: HTTPS with a private CA, mutual TLS,
//! a pinned CA fingerprint, `--insecure`, AWS SigV4 with every credential source, Serverless;
//! and no secret in any output. The certificates are generated here at run time (rcgen): no
//! key is committed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::support::{unique, DevServer, TempDir, BIN};

/// A CA, a server certificate it signed (for 127.0.0.1 and localhost), a client CA and a
/// client certificate it signed, a CA that signed nothing here, and a server certificate for
/// another host name.
struct Pki {
    dir: TempDir,
    ca_fingerprint: String,
    other_ca_fingerprint: String,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

fn leaf(
    names: &[&str],
    purpose: rcgen::ExtendedKeyUsagePurpose,
    issuer: &(rcgen::Certificate, rcgen::KeyPair),
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0].to_string());
    p.extended_key_usages = vec![purpose];
    let key = rcgen::KeyPair::generate().unwrap();
    (p.signed_by(&key, &issuer.0, &issuer.1).unwrap(), key)
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new(&unique("pki"));
        let server_ca = ca("indexstream test CA");
        let client_ca = ca("indexstream test client CA");
        let other_ca = ca("a CA nobody here trusts");
        let server = leaf(
            &["localhost", "127.0.0.1"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            &server_ca,
        );
        let elsewhere = leaf(
            &["elsewhere.example"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            &server_ca,
        );
        let client = leaf(
            &["indexstream-consumer"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            &client_ca,
        );
        let put = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        put("ca.pem", server_ca.0.pem());
        put("other-ca.pem", other_ca.0.pem());
        put("client-ca.pem", client_ca.0.pem());
        // The server sends its CA in the chain, as Elasticsearch 8 does: what a pinned
        // fingerprint is checked against.
        put(
            "server.pem",
            format!("{}{}", server.0.pem(), server_ca.0.pem()),
        );
        put("server-key.pem", server.1.serialize_pem());
        put(
            "elsewhere.pem",
            format!("{}{}", elsewhere.0.pem(), server_ca.0.pem()),
        );
        put("elsewhere-key.pem", elsewhere.1.serialize_pem());
        put("client.pem", client.0.pem());
        put("client-key.pem", client.1.serialize_pem());
        Pki {
            ca_fingerprint: indexstream::Fingerprint::of(server_ca.0.der()).to_string(),
            other_ca_fingerprint: indexstream::Fingerprint::of(other_ca.0.der()).to_string(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A dev-server serving HTTPS with `cert` (a file of this PKI), and `extra` flags.
    fn server(&self, cert: &str, extra: &[&str]) -> DevServer {
        let (c, k) = (
            self.path(&format!("{cert}.pem")),
            self.path(&format!("{cert}-key.pem")),
        );
        let mut args = vec![
            "--refresh-interval",
            "100ms",
            "--tls-cert",
            &c,
            "--tls-key",
            &k,
        ];
        args.extend_from_slice(extra);
        let s = DevServer::start(&args);
        assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
        s
    }
}

/// `indexstream` with `args`, no `AWS_*` or `INDEXSTREAM_*` variable of the test's own
/// environment, a HOME without `~/.aws`, and `envs`.
fn indexstream(args: &[&str], envs: &[(&str, String)], home: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("INDEXSTREAM_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("INDEXSTREAM_LOG", "warn")
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `n` events with `produce` through the same connection flags.
fn produce(url: &str, index: &str, n: usize, conn: &[&str], envs: &[(&str, String)], home: &Path) {
    let count = n.to_string();
    let mut args = vec![
        "produce", "--url", url, "--index", index, "--count", &count, "--rate", "0",
    ];
    args.extend_from_slice(conn);
    let o = indexstream(&args, envs, home);
    assert_eq!(o.status.code(), Some(0), "produce: {}", text(&o));
}

/// Consumes `index` to the end with a fresh group; the exit code, the output, and the distinct
/// ids delivered (asserting none came twice).
fn consume(
    url: &str,
    index: &str,
    conn: &[&str],
    envs: &[(&str, String)],
    home: &Path,
) -> (i32, String, usize) {
    let out = home.join(format!("{}.jsonl", unique("out")));
    let sink = format!("file:{}", out.display());
    let group = unique("g");
    let mut args = vec![
        "consume",
        index,
        &group,
        "--url",
        url,
        "--sink",
        &sink,
        "--poll-interval",
        "100ms",
    ];
    if !conn.contains(&"--until-idle") {
        args.extend_from_slice(&["--until-idle", "1500ms"]);
    }
    args.extend_from_slice(conn);
    let o = indexstream(&args, envs, home);
    let lines = std::fs::read_to_string(&out).unwrap_or_default();
    let mut ids: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].to_string())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "a document was delivered twice");
    (o.status.code().unwrap_or(-1), text(&o), ids.len())
}

#[test]
fn https_with_a_private_ca_works_with_ca_cert_fails_without_and_works_insecure_with_a_warning() {
    let pki = Pki::new();
    let server = pki.server("server", &[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("tls");
    let ca = pki.path("ca.pem");
    produce(
        &server.url,
        &index,
        30,
        &["--ca-cert", &ca],
        &[],
        home.path(),
    );

    let (code, out, n) = consume(&server.url, &index, &["--ca-cert", &ca], &[], home.path());
    assert_eq!((code, n), (0, 30), "{out}");
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--ca-cert", &ca, "--ca-cert-only"],
        &[],
        home.path(),
    );
    assert_eq!((code, n), (0, 30), "only the given CA: {out}");

    let host = server.url.trim_start_matches("https://");
    for conn in [
        vec![],
        vec!["--ca-cert".to_string(), pki.path("other-ca.pem")],
    ] {
        let conn: Vec<&str> = conn.iter().map(String::as_str).collect();
        let (code, out, n) = consume(&server.url, &index, &conn, &[], home.path());
        assert_eq!((code, n), (2, 0), "an untrusted CA is a usage error: {out}");
        assert!(
            out.contains("unknown issuer") && out.contains(host),
            "the message names the certificate problem and the host: {out}"
        );
    }

    let (code, out, n) = consume(&server.url, &index, &["--insecure"], &[], home.path());
    assert_eq!((code, n), (0, 30), "{out}");
    assert!(out.contains("TLS certificate verification is off"), "{out}");

    // A file that is not there, and contradicting settings, are named before anything is sent.
    let (code, out, _) = consume(
        &server.url,
        &index,
        &["--ca-cert", "/nonexistent/ca.pem"],
        &[],
        home.path(),
    );
    assert!(code == 2 && out.contains("/nonexistent/ca.pem"), "{out}");
    let (code, out, _) = consume(
        &server.url,
        &index,
        &["--insecure", "--ca-cert", &ca],
        &[],
        home.path(),
    );
    assert!(code == 2 && out.contains("insecure"), "{out}");
}

#[test]
fn insecure_is_a_standing_reason_in_health_without_changing_the_status() {
    let pki = Pki::new();
    let server = pki.server("server", &[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("tls-health");
    produce(&server.url, &index, 5, &["--insecure"], &[], home.path());
    let group = unique("g");
    let (mut child, base, _rx) = super::observe::start(&[
        "consume",
        &index,
        &group,
        "--url",
        &server.url,
        "--insecure",
        "--sink",
        "null",
        "--poll-interval",
        "100ms",
    ]);
    let health: Value = super::support::http()
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health["status"], "HEALTHY", "{health}");
    assert!(
        health["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("verification is off")),
        "{health}"
    );
}

#[test]
fn a_host_name_mismatch_is_named() {
    let pki = Pki::new();
    let server = pki.server("elsewhere", &[]);
    let home = TempDir::new(&unique("home"));
    let (code, out, _) = consume(
        &server.url,
        "any",
        &["--ca-cert", &pki.path("ca.pem")],
        &[],
        home.path(),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("host name mismatch") && out.contains("elsewhere.example"),
        "{out}"
    );
}

#[test]
fn mutual_tls_fails_without_a_client_certificate_and_works_with_one() {
    let pki = Pki::new();
    let client_ca = pki.path("client-ca.pem");
    let server = pki.server("server", &["--tls-client-ca", &client_ca]);
    let home = TempDir::new(&unique("home"));
    let index = unique("mtls");
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client-key.pem"));
    let with = [
        "--ca-cert",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];
    produce(&server.url, &index, 20, &with, &[], home.path());
    let (code, out, n) = consume(&server.url, &index, &with, &[], home.path());
    assert_eq!((code, n), (0, 20), "{out}");
    let (code, out, n) = consume(&server.url, &index, &["--ca-cert", &ca], &[], home.path());
    assert_eq!((code, n), (2, 0), "{out}");
    assert!(out.contains("requires a client certificate"), "{out}");
    // A certificate without its key is refused before anything is sent.
    let (code, out, _) = consume(
        &server.url,
        &index,
        &["--ca-cert", &ca, "--client-cert", &cert],
        &[],
        home.path(),
    );
    assert!(code == 2 && out.contains("client-key"), "{out}");
}

#[test]
fn a_pinned_ca_fingerprint_works_when_it_matches_and_fails_when_it_does_not() {
    let pki = Pki::new();
    let server = pki.server("server", &[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("pin");
    produce(
        &server.url,
        &index,
        10,
        &["--ca-fingerprint", &pki.ca_fingerprint],
        &[],
        home.path(),
    );
    // Elasticsearch prints it with colons; without them, lower case, works the same.
    let bare = pki.ca_fingerprint.replace(':', "").to_lowercase();
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--ca-fingerprint", &bare],
        &[],
        home.path(),
    );
    assert_eq!((code, n), (0, 10), "{out}");
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--ca-fingerprint", &pki.other_ca_fingerprint],
        &[],
        home.path(),
    );
    assert_eq!((code, n), (2, 0), "{out}");
    assert!(out.contains("pinned ca-fingerprint"), "{out}");
    let (code, out, _) = consume(
        &server.url,
        &index,
        &["--ca-fingerprint", "AB:CD"],
        &[],
        home.path(),
    );
    assert!(code == 2 && out.contains("64 hex digits"), "{out}");
}

const REGION: &str = "eu-central-1";
const KEY_ID: &str = "AKIDINDEXSTREAMTEST";
const SECRET: &str = "sEcReT/Indexstream+Test0123456789abcdefgh";

fn sigv4_server(extra: &[&str]) -> DevServer {
    let mut args = vec![
        "--refresh-interval",
        "100ms",
        "--sigv4-region",
        REGION,
        "--sigv4-access-key-id",
        KEY_ID,
        "--sigv4-secret-access-key",
        SECRET,
    ];
    args.extend_from_slice(extra);
    DevServer::start(&args)
}

fn keys_in_env(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
        ("AWS_REGION", REGION.to_string()),
    ]
}

fn issued(url: &str) -> u64 {
    let v: Value = reqwest::blocking::get(format!("{url}/_fake/aws/issued"))
        .unwrap()
        .json()
        .unwrap();
    v["issued"].as_u64().unwrap()
}

#[test]
fn sigv4_with_keys_from_the_environment_or_a_profile_and_a_wrong_secret_is_a_403() {
    let server = sigv4_server(&[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("sigv4");
    let es = ["--aws-sigv4", "es"];
    produce(
        &server.url,
        &index,
        25,
        &es,
        &keys_in_env(SECRET),
        home.path(),
    );
    let (code, out, n) = consume(&server.url, &index, &es, &keys_in_env(SECRET), home.path());
    assert_eq!((code, n), (0, 25), "keys from the environment: {out}");

    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!("[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!("[profile ci]\nregion = {REGION}\n"),
    )
    .unwrap();
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--aws-sigv4", "es", "--aws-profile", "ci"],
        &[],
        home.path(),
    );
    assert_eq!(
        (code, n),
        (0, 25),
        "keys and region from the profile files: {out}"
    );

    let (code, out, n) = consume(
        &server.url,
        &index,
        &es,
        &keys_in_env("not-the-secret"),
        home.path(),
    );
    assert_eq!((code, n), (2, 0), "{out}");
    assert!(
        out.contains("403") && out.contains("signature we calculated does not match"),
        "the 403's reason is shown: {out}"
    );
    let (code, out, _) = consume(&server.url, &index, &[], &[], home.path());
    assert!(
        code == 2 && out.contains("Missing Authentication Token"),
        "unsigned: {out}"
    );
    let (code, out, _) = consume(
        &server.url,
        &index,
        &["--aws-sigv4", "es", "--aws-profile", "nope"],
        &[],
        home.path(),
    );
    assert!(code == 2 && out.contains("no profile \"nope\""), "{out}");
}

#[test]
fn sigv4_temporary_credentials_from_container_instance_and_web_identity_sources_are_refreshed() {
    // Tokens live 2 s: a run of several seconds needs new ones, fetched before expiry.
    let server = sigv4_server(&["--sigv4-credential-lifetime", "2s"]);
    let home = TempDir::new(&unique("home"));
    let index = unique("sigv4-temp");
    let region = ("AWS_REGION", REGION.to_string());
    let container = vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/_fake/aws/credentials", server.url),
        ),
        region.clone(),
    ];
    let es = ["--aws-sigv4", "es"];
    produce(&server.url, &index, 40, &es, &container, home.path());
    let before = issued(&server.url);
    let long = ["--aws-sigv4", "es", "--until-idle", "6s"];
    let (code, out, n) = consume(&server.url, &index, &long, &container, home.path());
    assert_eq!((code, n), (0, 40), "container credentials: {out}");
    let fetched = issued(&server.url) - before;
    assert!(
        fetched >= 3,
        "a 7 s run with 2 s tokens fetched {fetched} sets of credentials"
    );

    let token = home.path().join("token");
    std::fs::write(&token, "eyJ.web-identity.token").unwrap();
    let web = vec![
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/consumer".to_string(),
        ),
        (
            "AWS_ENDPOINT_URL_STS",
            format!("{}/_fake/aws/sts", server.url),
        ),
        region.clone(),
    ];
    let (code, out, n) = consume(&server.url, &index, &es, &web, home.path());
    assert_eq!((code, n), (0, 40), "web identity: {out}");

    let imds = vec![
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("{}/_fake/aws/imds", server.url),
        ),
        region.clone(),
    ];
    let (code, out, n) = consume(&server.url, &index, &es, &imds, home.path());
    assert_eq!((code, n), (0, 40), "instance metadata: {out}");
}

#[test]
fn an_expired_session_token_is_replaced_from_the_chain_when_the_cluster_refuses_it() {
    // The endpoint says an hour, the token lasts 1 s: the consumer learns it from the 403.
    let server = sigv4_server(&[
        "--sigv4-credential-lifetime",
        "1s",
        "--sigv4-claimed-lifetime",
        "1h",
    ]);
    let home = TempDir::new(&unique("home"));
    let index = unique("sigv4-expired");
    let container = vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/_fake/aws/credentials", server.url),
        ),
        ("AWS_REGION", REGION.to_string()),
    ];
    produce(
        &server.url,
        &index,
        15,
        &["--aws-sigv4", "es"],
        &container,
        home.path(),
    );
    let before = issued(&server.url);
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--aws-sigv4", "es", "--until-idle", "4s"],
        &container,
        home.path(),
    );
    assert_eq!((code, n), (0, 15), "{out}");
    assert!(
        issued(&server.url) - before >= 2,
        "the expired token was replaced"
    );
}

#[test]
fn serverless_refuses_exact_mode_naming_timestamp_mode_and_reads_in_timestamp_mode() {
    let server = sigv4_server(&[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("aoss");
    let aoss = ["--aws-sigv4", "aoss"];
    produce(
        &server.url,
        &index,
        12,
        &aoss,
        &keys_in_env(SECRET),
        home.path(),
    );
    let (code, out, n) = consume(
        &server.url,
        &index,
        &aoss,
        &keys_in_env(SECRET),
        home.path(),
    );
    assert_eq!((code, n), (2, 0), "{out}");
    assert!(
        out.contains("Serverless") && out.contains("--mode timestamp"),
        "{out}"
    );
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--aws-sigv4", "aoss", "--mode", "timestamp"],
        &keys_in_env(SECRET),
        home.path(),
    );
    assert_eq!((code, n), (0, 12), "{out}");
}

/// A server that records each request's Authorization header (empty when none) and answers
/// 401, so that a run stops at once.
fn authorization_recorder() -> (String, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.strip_prefix("authorization: ") {
                    auth = v.trim().to_string();
                }
            }
            let _ = tx.send(auth);
            let body = r#"{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

#[test]
fn api_keys_in_every_form_and_bearer_tokens_are_sent_as_the_cluster_expects() {
    let (url, rx) = authorization_recorder();
    let home = TempDir::new(&unique("home"));
    let sent = |flag: &str, value: &str| -> String {
        while rx.try_recv().is_ok() {}
        let o = indexstream(
            &[
                "consume", "i", "g", "--url", &url, flag, value, "--sink", "null",
            ],
            &[],
            home.path(),
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()
    };
    // id:key goes base64-encoded, as Elasticsearch's create-API-key answer is meant to be used.
    assert_eq!(
        sent("--api-key", "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"),
        "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    );
    // The encoded form, Elastic Cloud keys and OpenSearch 3 keys go as they are.
    assert_eq!(
        sent(
            "--api-key",
            "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        ),
        "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    );
    assert_eq!(
        sent("--api-key", "essu_VVdKa1pYSTZZbUZ6WlRZMA=="),
        "ApiKey essu_VVdKa1pYSTZZbUZ6WlRZMA=="
    );
    assert_eq!(
        sent("--api-key", "os_Zm9vYmFyYmF6"),
        "ApiKey os_Zm9vYmFyYmF6"
    );
    assert_eq!(
        sent("--bearer-token", "eyJhbGciOi.payload.sig"),
        "Bearer eyJhbGciOi.payload.sig"
    );
    // A key with a line break in it (copied with it) is refused before anything is sent.
    let o = indexstream(
        &[
            "consume",
            "i",
            "g",
            "--url",
            &url,
            "--api-key",
            "abc def",
            "--sink",
            "null",
        ],
        &[],
        home.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("api-key"), "{}", text(&o));
    assert!(
        !text(&o).contains("abc def"),
        "the bad key is not printed: {}",
        text(&o)
    );
    let o = indexstream(
        &[
            "consume",
            "i",
            "g",
            "--url",
            &url,
            "--api-key",
            "k",
            "--bearer-token",
            "t",
        ],
        &[],
        home.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("give one of them"), "{}", text(&o));
}

/// Every secret used in a run, and every place the run writes: logs at debug level, errors,
/// the report, metrics, health, `groups describe`, `--help`.
#[test]
fn no_secret_appears_in_any_output_channel() {
    let pki = Pki::new();
    let password = "pw-9QmZt3LxKq";
    let api_key = "apikey-7RvT2nWs";
    let bearer = "bearer-4YhN8cUd";
    let session_token = "sessiontoken-6PaK1eJb";
    let private_key_line = std::fs::read_to_string(pki.path("client-key.pem"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let secrets = [
        password,
        api_key,
        bearer,
        SECRET,
        session_token,
        private_key_line.as_str(),
    ];
    let clean = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a secret ({s}):\n{text}");
        }
    };
    let home = TempDir::new(&unique("home"));
    let client_ca = pki.path("client-ca.pem");
    let tls_server = pki.server("server", &["--tls-client-ca", &client_ca]);
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    let tls = [
        "--ca-cert",
        ca.as_str(),
        "--client-cert",
        cert.as_str(),
        "--client-key",
        key.as_str(),
    ];
    let index = unique("secrets");
    produce(&tls_server.url, &index, 10, &tls, &[], home.path());

    // One run per kind of credential, through TLS with a client key, with debug logs, the
    // report, and metrics and health read while it runs.
    let group = unique("g");
    for (flag, value) in [
        ("--password", password),
        ("--api-key", api_key),
        ("--bearer-token", bearer),
    ] {
        let mut args = vec![
            "--log",
            "debug",
            "consume",
            &index,
            &group,
            "--url",
            &tls_server.url,
        ];
        args.extend_from_slice(&tls);
        if flag == "--password" {
            args.extend_from_slice(&["--username", "indexer"]);
        }
        args.extend_from_slice(&[
            flag,
            value,
            "--sink",
            "null",
            "--until-idle",
            "1500ms",
            "--report-interval",
            "300ms",
        ]);
        let (mut child, base, rx) = super::observe::start(&args);
        let http = super::support::http();
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let health = http
            .get(format!("{base}/health"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let status = child.wait().unwrap();
        let logs: Vec<String> = rx.iter().collect();
        assert!(status.success(), "{flag}: {}", logs.join("\n"));
        clean("metrics", &metrics);
        clean("health", &health);
        clean(
            &format!("the logs and report of a run with {flag}"),
            &logs.join("\n"),
        );
        // Errors: a missing index with the same credentials.
        let mut args = vec![
            "--log",
            "debug",
            "consume",
            "no-such-index",
            "g2",
            "--url",
            &tls_server.url,
        ];
        args.extend_from_slice(&tls);
        if flag == "--password" {
            args.extend_from_slice(&["--username", "indexer"]);
        }
        args.extend_from_slice(&[flag, value]);
        let o = indexstream(&args, &[], home.path());
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        clean("an error", &text(&o));
        let mut args = vec![
            "--log",
            "debug",
            "groups",
            "describe",
            &group,
            "--url",
            &tls_server.url,
        ];
        args.extend_from_slice(&tls);
        args.extend_from_slice(&[flag, value]);
        if flag == "--password" {
            args.extend_from_slice(&["--username", "indexer"]);
        }
        let o = indexstream(&args, &[], home.path());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        clean("groups describe", &text(&o));
    }

    // SigV4: the secret key and a session token the cluster refuses, at debug level.
    let aws = sigv4_server(&[]);
    let mut env = keys_in_env(SECRET);
    env.push(("AWS_SESSION_TOKEN", session_token.to_string()));
    let o = indexstream(
        &[
            "--log",
            "debug",
            "consume",
            &index,
            "g",
            "--url",
            &aws.url,
            "--aws-sigv4",
            "es",
            "--sink",
            "null",
        ],
        &env,
        home.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("security token included in the request is invalid"),
        "{}",
        text(&o)
    );
    clean("a SigV4 run", &text(&o));

    // --help with every secret in the environment shows none as a default.
    let env = vec![
        ("INDEXSTREAM_PASSWORD", password.to_string()),
        ("INDEXSTREAM_API_KEY", api_key.to_string()),
        ("INDEXSTREAM_BEARER_TOKEN", bearer.to_string()),
    ];
    for cmd in ["consume", "groups", "produce"] {
        let o = indexstream(&[cmd, "--help"], &env, home.path());
        clean(&format!("{cmd} --help"), &text(&o));
    }
}

#[test]
fn a_config_file_with_secrets_that_others_can_read_and_a_public_metrics_address_draw_warnings() {
    let home = TempDir::new(&unique("home"));
    let server = DevServer::start(&["--refresh-interval", "100ms"]);
    let index = unique("warn");
    produce(&server.url, &index, 3, &[], &[], home.path());
    let cfg: PathBuf = home.path().join("indexstream.toml");
    std::fs::write(
        &cfg,
        "username = \"u\"\npassword = \"p-secret-1\"\nsink = \"null\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let run = || {
        indexstream(
            &[
                "consume",
                &index,
                "g",
                "--url",
                &server.url,
                "--config",
                cfg.to_str().unwrap(),
                "--until-idle",
                "500ms",
                "--metrics-addr",
                "0.0.0.0:0",
            ],
            &[],
            home.path(),
        )
    };
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("other users can read it"), "{}", text(&o));
    assert!(
        text(&o).contains("listens beyond this machine"),
        "{}",
        text(&o)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        let o = run();
        assert!(
            !text(&o).contains("other users can read it"),
            "{}",
            text(&o)
        );
    }
}

/// The real node behind nginx terminating TLS with a private CA (`scripts/tls-proxy`, started by
/// `.ci/run`): `OPENSEARCH_URL` is the node, `INDEXSTREAM_TLS_PROXY_URL` and
/// `INDEXSTREAM_TLS_PROXY_CA` the proxy and its CA.
#[test]
#[ignore = "needs a real node behind scripts/tls-proxy; .ci/run runs it"]
fn real_node_through_a_tls_terminating_proxy_with_a_private_ca() {
    let var = |k: &str| {
        std::env::var(k)
            .unwrap_or_else(|_| panic!("{k} is not set: run scripts/tls-proxy start (see .ci/run)"))
    };
    let (node, proxy, ca) = (
        var("OPENSEARCH_URL"),
        var("INDEXSTREAM_TLS_PROXY_URL"),
        var("INDEXSTREAM_TLS_PROXY_CA"),
    );
    let home = TempDir::new(&unique("home"));
    let index = unique("proxied");
    produce(&node, &index, 200, &[], &[], home.path());
    let (code, out, n) = consume(&proxy, &index, &["--ca-cert", &ca], &[], home.path());
    assert_eq!((code, n), (0, 200), "{out}");
    let (code, out, n) = consume(&proxy, &index, &[], &[], home.path());
    assert_eq!((code, n), (2, 0), "{out}");
    assert!(
        out.contains("unknown issuer") && out.contains(proxy.trim_start_matches("https://")),
        "{out}"
    );
}

#[test]
fn tls_and_sigv4_settings_have_config_file_keys() {
    let pki = Pki::new();
    let server = pki.server("server", &[]);
    let home = TempDir::new(&unique("home"));
    let index = unique("tls-config");
    produce(&server.url, &index, 8, &["--insecure"], &[], home.path());
    let cfg = home.path().join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "ca-cert = \"{}\"\nca-cert-only = true\n",
            pki.path("ca.pem")
        ),
    )
    .unwrap();
    let (code, out, n) = consume(
        &server.url,
        &index,
        &["--config", cfg.to_str().unwrap()],
        &[],
        home.path(),
    );
    assert_eq!((code, n), (0, 8), "{out}");

    let aws = sigv4_server(&[]);
    produce(
        &aws.url,
        &index,
        6,
        &["--aws-sigv4", "es"],
        &keys_in_env(SECRET),
        home.path(),
    );
    let cfg = home.path().join("aws.toml");
    std::fs::write(
        &cfg,
        format!("aws-sigv4 = \"es\"\naws-region = \"{REGION}\"\n"),
    )
    .unwrap();
    let mut env = keys_in_env(SECRET);
    env.retain(|(k, _)| *k != "AWS_REGION");
    let (code, out, n) = consume(
        &aws.url,
        &index,
        &["--config", cfg.to_str().unwrap()],
        &env,
        home.path(),
    );
    assert_eq!((code, n), (0, 6), "{out}");
}

/// `index:URL/NAME` reaches the other cluster with its own TLS and authentication (sink
/// options), not the source's flags; a refused connection delivers and commits nothing.
#[test]
fn an_index_sink_on_another_cluster_connects_with_its_own_tls_and_auth() {
    let pki = Pki::new();
    let client_ca = pki.path("client-ca.pem");
    let target = pki.server("server", &["--tls-client-ca", &client_ca]);
    let source = DevServer::start(&["--refresh-interval", "100ms"]);
    let home = TempDir::new(&unique("home"));
    let src = unique("copy-src");
    produce(&source.url, &src, 50, &[], &[], home.path());
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client-key.pem"));
    let group = unique("g");
    let copy = |copy: &str, options: &[String]| {
        let sink = format!("index:{}/{copy}", target.url);
        let mut args = vec![
            "consume",
            &src,
            &group,
            "--url",
            &source.url,
            "--sink",
            &sink,
            "--until-idle",
            "1500ms",
        ];
        for o in options {
            args.extend_from_slice(&["--sink-option", o]);
        }
        let o = indexstream(&args, &[], home.path());
        (o.status.code(), text(&o))
    };
    let tls = [
        format!("ca-cert={ca}"),
        format!("client-cert={cert}"),
        format!("client-key={key}"),
    ];
    let read_target = [
        "--ca-cert",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];

    // Without the client certificate the target refuses; nothing is delivered or committed.
    let (code, out) = copy("copy-a", &tls[..1]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("client certificate"), "{out}");
    let (_, out, n) = consume(&target.url, "copy-a", &read_target, &[], home.path());
    assert_eq!(n, 0, "{out}");
    // With it, the same group copies every document.
    let (code, out) = copy("copy-b", &tls);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, n) = consume(&target.url, "copy-b", &read_target, &[], home.path());
    assert_eq!((code, n), (0, 50), "{out}");

    // The other cluster's API key goes to it as the cluster expects, and is never printed.
    let (recorder, rx) = authorization_recorder();
    let secret = "other-id:other-k3y-Zq8";
    let sink = format!("index:{recorder}/copy");
    let o = indexstream(
        &[
            "consume",
            &src,
            &unique("g"),
            "--url",
            &source.url,
            "--sink",
            &sink,
            "--sink-option",
            &format!("api-key={secret}"),
            "--until-idle",
            "1500ms",
        ],
        &[],
        home.path(),
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let header = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(header, "ApiKey b3RoZXItaWQ6b3RoZXItazN5LVpxOA==");
    assert!(!text(&o).contains("k3y"), "{}", text(&o));

    // Refused before anything is read: credentials in the URL (not echoed), connection
    // options on the source cluster's index:NAME, two logins, half a client certificate.
    let refused = |sink: &str, options: &[&str]| {
        let mut args = vec![
            "consume",
            &src,
            "g-refused",
            "--url",
            &source.url,
            "--sink",
            sink,
        ];
        for o in options {
            args.extend_from_slice(&["--sink-option", o]);
        }
        let o = indexstream(&args, &[], home.path());
        assert_eq!(o.status.code(), Some(2), "{sink} {options:?}: {}", text(&o));
        text(&o)
    };
    let out = refused("index:http://u:pa55word@127.0.0.1:9/copy", &[]);
    assert!(
        out.contains("basic-auth") && !out.contains("pa55word"),
        "{out}"
    );
    let out = refused("index:copy", &["api-key=k"]);
    assert!(out.contains("index:URL/NAME"), "{out}");
    let out = refused(&sink, &["api-key=k", "basic-auth=u:p"]);
    assert!(out.contains("give one of them"), "{out}");
    let cert_only = format!("client-cert={cert}");
    let out = refused(&sink, &[&cert_only]);
    assert!(out.contains("client-key"), "{out}");
}
