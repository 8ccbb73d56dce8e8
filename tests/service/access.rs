//! Roles end to end: every endpoint asked by every kind of caller, what merchants may not see,
//! and the audit trail of it all.

use reqwest::Method;
use reqwest::blocking::multipart::Form;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Body, Server, fixture, generated_print, image_part};

const ALL: &[&str] = &["admin", "clerk", "court", "merchant"];
const STAFF: &[&str] = &["admin", "clerk", "court"];
const DESK: &[&str] = &["admin", "clerk"];
const ADMIN: &[&str] = &["admin"];
/// Open to anyone, with or without a token: the log's key, heads and consistency proofs.
const PUBLIC: &[&str] = &[];

struct Endpoint {
    method: Method,
    path: String,
    body: fn() -> Option<Body>,
    allowed: &'static [&'static str],
}

fn upload() -> Option<Body> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Some(Body::Form(
        Form::new()
            .part("image", image_part(generated_print(1000 + seed % 100_000)))
            .text("title", "matrix"),
    ))
}

fn search_form() -> Option<Body> {
    Some(Body::Form(
        Form::new().part("image", image_part(fixture("print_a_rot90.png"))),
    ))
}

fn none() -> Option<Body> {
    None
}

#[test]
fn every_endpoint_answers_each_role_as_the_role_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a = server.register_id(fixture("print_a.png"), "Peony toss");
    let b = server.register_id(fixture("print_b.png"), "Night garden");
    let tokens: Vec<(&str, String)> = ALL
        .iter()
        .map(|role| (*role, server.token(role, &format!("{role}-1"))))
        .collect();
    let endpoint = |method: Method, path: String, body: fn() -> Option<Body>, allowed| Endpoint {
        method,
        path,
        body,
        allowed,
    };
    let endpoints = vec![
        endpoint(Method::GET, "/api/v1/patterns".into(), none, ALL),
        endpoint(Method::GET, format!("/api/v1/patterns/{a}"), none, ALL),
        endpoint(
            Method::GET,
            format!("/api/v1/patterns/{a}/thumbnail"),
            none,
            ALL,
        ),
        endpoint(
            Method::GET,
            format!("/api/v1/patterns/{a}/image"),
            none,
            STAFF,
        ),
        endpoint(
            Method::GET,
            format!("/api/v1/patterns/{a}/proof"),
            none,
            STAFF,
        ),
        endpoint(
            Method::GET,
            format!("/api/v1/patterns/{a}/certificate"),
            none,
            STAFF,
        ),
        endpoint(
            Method::GET,
            format!("/api/v1/patterns/{a}/certificate.html"),
            none,
            STAFF,
        ),
        endpoint(Method::POST, "/api/v1/patterns".into(), upload, DESK),
        endpoint(
            Method::POST,
            "/api/v1/pre-registrations".into(),
            upload,
            &["admin", "clerk", "merchant"],
        ),
        endpoint(Method::POST, "/api/v1/search".into(), search_form, ALL),
        endpoint(
            Method::POST,
            "/api/v1/search/batch".into(),
            search_form,
            ALL,
        ),
        endpoint(
            Method::POST,
            "/api/v1/compare".into(),
            || Some(Body::Json(Value::Null)),
            STAFF,
        ),
        endpoint(Method::GET, "/api/v1/review".into(), none, DESK),
        endpoint(
            Method::POST,
            format!("/api/v1/patterns/{b}/status"),
            || {
                Some(Body::Json(
                    json!({"status": "public_domain", "reason": "traditional"}),
                ))
            },
            DESK,
        ),
        endpoint(Method::GET, "/api/v1/tokens".into(), none, ADMIN),
        endpoint(
            Method::POST,
            "/api/v1/tokens".into(),
            || Some(Body::Json(json!({"role": "court", "name": "judge"}))),
            ADMIN,
        ),
        endpoint(Method::DELETE, "/api/v1/tokens/999999".into(), none, ADMIN),
        endpoint(Method::GET, "/api/v1/audit".into(), none, ADMIN),
        endpoint(Method::GET, "/api/v1/log/key".into(), none, PUBLIC),
        endpoint(Method::GET, "/api/v1/log/head".into(), none, PUBLIC),
        endpoint(
            Method::GET,
            "/api/v1/log/consistency?first=1&second=2".into(),
            none,
            PUBLIC,
        ),
    ];
    for e in &endpoints {
        let public = e.allowed.is_empty();
        for (who, token) in [
            (None, None),
            (Some("bogus"), Some("hx_not_a_token_at_all_0000")),
        ] {
            let (status, body) = server.send_as(token, e.method.clone(), &e.path, (e.body)());
            let expected = if public { "not 401" } else { "401" };
            assert_eq!(
                status == 401,
                !public,
                "{} {} with {who:?} token: {status}, expected {expected}: {}",
                e.method,
                e.path,
                String::from_utf8_lossy(&body)
            );
        }
        for (role, token) in &tokens {
            let (status, body) = server.send_as(Some(token), e.method.clone(), &e.path, (e.body)());
            let allowed = public || e.allowed.contains(role);
            let body = String::from_utf8_lossy(&body);
            if allowed {
                assert!(
                    !matches!(status, 401 | 403) && status < 500,
                    "{} {} as {role}: {status} {body}",
                    e.method,
                    e.path
                );
            } else {
                assert_eq!(status, 403, "{} {} as {role}: {body}", e.method, e.path);
                assert!(body.contains("forbidden"), "{body}");
            }
        }
    }

    // Every one of those requests is in the audit trail, refused ones included.
    let (status, audit) = server.get("/api/v1/audit?limit=1000");
    assert_eq!(status, 200);
    let records = audit["records"].as_array().unwrap();
    let has = |action: &str, actor: &str, status: u64| {
        records.iter().any(|r| {
            r["action"] == action && r["actor"] == actor && r["status"].as_u64() == Some(status)
        })
    };
    assert!(has("upload", "clerk-1", 201));
    assert!(has("search", "merchant-1", 200));
    assert!(has("image_view", "court-1", 200));
    assert!(has("image_view", "merchant-1", 403));
    assert!(has("export", "court-1", 200));
    assert!(has("decision", "admin-1", 200));
    assert!(has("upload", "anonymous", 401));
    let upload = records
        .iter()
        .find(|r| r["action"] == "upload" && r["status"] == 201)
        .unwrap();
    assert!(
        upload["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(upload["detail"].as_str().unwrap().contains("sha256"));
}

#[test]
fn merchants_see_scores_and_titles_never_owners_originals_or_others_drafts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a = server.register_id(fixture("print_a.png"), "Peony toss");
    let merchant = server.token("merchant", "stall-7");
    let rival = server.token("merchant", "stall-9");

    let as_merchant = |token: &str, method: Method, path: &str, body: Option<Body>| {
        let (status, bytes) = server.send_as(Some(token), method, path, body);
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    let (status, found) = as_merchant(&merchant, Method::POST, "/api/v1/search", search_form());
    assert_eq!(status, 200);
    let top = &found["matches"][0];
    assert_eq!(
        (top["id"].as_str(), top["title"].as_str()),
        (Some(a.as_str()), Some("Peony toss"))
    );
    assert!(top["score"].as_f64().is_some() && top["registration_number"].is_string());
    for hidden in ["owner", "reference", "sha256", "submitted_by"] {
        assert!(top.get(hidden).is_none(), "a merchant sees {hidden}: {top}");
    }
    let (_, record) = as_merchant(
        &merchant,
        Method::GET,
        &format!("/api/v1/patterns/{a}"),
        None,
    );
    assert!(
        record.get("owner").is_none() && record["title"] == "Peony toss",
        "{record}"
    );
    let (status, _) = as_merchant(
        &merchant,
        Method::GET,
        &format!("/api/v1/patterns/{a}/image"),
        None,
    );
    assert_eq!(status, 403);
    let (status, thumbnail) = server.send_as(
        Some(&merchant),
        Method::GET,
        &format!("/api/v1/patterns/{a}/thumbnail"),
        None,
    );
    assert_eq!(status, 200);
    let thumbnail = image::load_from_memory(&thumbnail).unwrap();
    assert!(thumbnail.width() <= 256 && thumbnail.height() <= 256);

    // A pre-registration is the merchant's own: the rival neither finds nor lists it.
    let (status, draft) = as_merchant(
        &merchant,
        Method::POST,
        "/api/v1/pre-registrations",
        Some(Body::Form(
            Form::new()
                .part("image", image_part(fixture("print_b.png")))
                .text("title", "Next season"),
        )),
    );
    assert_eq!(
        (status, draft["status"].as_str()),
        (201, Some("pre_registered"))
    );
    let draft_id = draft["id"].as_str().unwrap();
    let listed = |token: &str| -> Vec<String> {
        let (_, page) = as_merchant(token, Method::GET, "/api/v1/patterns", None);
        page["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&merchant), vec![a.clone(), draft_id.to_string()]);
    assert_eq!(listed(&rival), vec![a.clone()]);
    // Sending the same picture tells the rival nothing about the draft or its owner.
    let (status, answer) = as_merchant(
        &rival,
        Method::POST,
        "/api/v1/pre-registrations",
        Some(Body::Form(
            Form::new().part("image", image_part(fixture("print_b.png"))),
        )),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(!answer.to_string().contains(draft_id), "{answer}");
    let (status, answer) = as_merchant(
        &merchant,
        Method::POST,
        "/api/v1/pre-registrations",
        Some(Body::Form(
            Form::new().part("image", image_part(fixture("print_a.png"))),
        )),
    );
    assert_eq!(status, 200, "a published picture answers with its record");
    assert!(
        answer.get("owner").is_none() && answer.get("sha256").is_none(),
        "{answer}"
    );
    let (status, _) = as_merchant(
        &rival,
        Method::GET,
        &format!("/api/v1/patterns/{draft_id}"),
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = as_merchant(
        &rival,
        Method::GET,
        &format!("/api/v1/patterns/{draft_id}/thumbnail"),
        None,
    );
    assert_eq!(status, 404);
    let (_, found) = as_merchant(
        &rival,
        Method::POST,
        "/api/v1/search",
        Some(Body::Form(
            Form::new().part("image", image_part(fixture("print_b.png"))),
        )),
    );
    assert!(
        found["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != draft_id),
        "an unpublished pre-registration turned up in a search: {found}"
    );
}

#[test]
fn tokens_are_made_on_the_command_line_and_the_admin_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let output = crate::support::huaxing()
        .args([
            "token",
            "create",
            "--role",
            "court",
            "--name",
            "Keqiao court",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("hx_"));
    let (status, _) = server.send_as(Some(&secret), Method::GET, "/api/v1/patterns", None);
    assert_eq!(
        status, 200,
        "a token made beside the running service works at once"
    );
    let (status, _) = server.send_as(Some(&secret), Method::GET, "/api/v1/audit", None);
    assert_eq!(status, 403);
    let (status, _) = server.send_as(Some(ADMIN_TOKEN), Method::GET, "/api/v1/audit", None);
    assert_eq!(status, 200);
    for name in ["Keqiao court", "import"] {
        let output = crate::support::huaxing()
            .args([
                "token", "create", "--role", "merchant", "--name", name, "--data",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "a second {name:?} token must be refused"
        );
    }
    let (_, listed) = server.get("/api/v1/tokens");
    let listed = listed.to_string();
    assert!(listed.contains("Keqiao court") && !listed.contains(&secret));
}

#[test]
fn the_first_start_prints_an_admin_token_once_and_open_access_is_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[], None);
    let printed = server.banner.join("\n");
    let token = printed
        .split_whitespace()
        .find(|word| word.starts_with("hx_"))
        .unwrap_or_else(|| panic!("no admin token printed: {printed}"))
        .to_string();
    let (status, _) = server.send_as(Some(&token), Method::GET, "/api/v1/audit", None);
    assert_eq!(status, 200);
    let (status, _) = server.send_as(None, Method::GET, "/api/v1/patterns", None);
    assert_eq!(status, 401);
    server.stop();

    let server = Server::start_with(dir.path(), &["--open"], None);
    assert!(
        !server.banner.iter().any(|line| line.contains("hx_")),
        "the admin token is shown only at the first start"
    );
    let (status, _) = server.send_as(None, Method::GET, "/api/v1/audit", None);
    assert_eq!(status, 200, "open access from loopback needs no token");
    server.stop();

    let output = crate::support::huaxing()
        .args(["serve", "--open", "--addr", "0.0.0.0:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[test]
fn a_browser_session_refuses_requests_from_other_sites() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--open"], Some(ADMIN_TOKEN));
    let host = server.url.trim_start_matches("http://").to_string();
    let client = reqwest::blocking::Client::new();
    let search = |origin: &str, cookie: bool| {
        let mut request = client
            .post(format!("{}/api/v1/search", server.url))
            .header("origin", origin)
            .multipart(Form::new().part("image", image_part(fixture("print_a.png"))));
        if cookie {
            request = request.header("cookie", format!("hx_token={ADMIN_TOKEN}"));
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(search(&format!("http://{host}"), true), 200);
    assert_eq!(
        search("http://evil.example", true),
        401,
        "cross-site with the cookie"
    );
    assert_eq!(
        search("http://evil.example", false),
        401,
        "cross-site under --open"
    );
    // A page that rebinds its own name to 127.0.0.1 still sends that name as Host.
    let rebound = client
        .get(format!("{}/api/v1/audit", server.url))
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 401);
    let local = client
        .get(format!("{}/api/v1/audit", server.url))
        .send()
        .unwrap();
    assert_eq!(
        local.status().as_u16(),
        200,
        "open access from this machine"
    );
    let signed_in_elsewhere = client
        .post(format!("{}/sign-in", server.url))
        .header("origin", "http://evil.example")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .unwrap();
    assert_eq!(signed_in_elsewhere.status().as_u16(), 403);
    assert!(signed_in_elsewhere.headers().get("set-cookie").is_none());
}
