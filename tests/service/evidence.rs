//! The evidence log end to end: proofs checked by an independent RFC 6962 implementation
//! (the `ct-merkle` crate, not huaxing's code), the review workflow, offline verification,
//! tampering, and a crash in the middle of registrations.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::blocking::multipart::Form;
use serde_json::{Value, json};
use sha2_011::Sha256;

use crate::support::{
    ADMIN_TOKEN, Server, fixture, generated_print, huaxing, image_part,
    register_original_and_held_copy, top_id,
};

fn digest(text: &str) -> sha2_011::digest::Output<Sha256> {
    let bytes: [u8; 32] = hex::decode(text).unwrap().try_into().unwrap();
    bytes.into()
}

/// Checks a signed head with nothing but the published key and RFC 6962 §3.5's layout.
fn assert_head_signed(head: &Value, key: &VerifyingKey) {
    let mut signed = vec![0u8, 1];
    signed.extend_from_slice(&head["timestamp"].as_u64().unwrap().to_be_bytes());
    signed.extend_from_slice(&head["tree_size"].as_u64().unwrap().to_be_bytes());
    signed.extend_from_slice(&hex::decode(head["root_hash"].as_str().unwrap()).unwrap());
    let signature = BASE64.decode(head["signature"].as_str().unwrap()).unwrap();
    let signature = Signature::from_slice(&signature).unwrap();
    key.verify(&signed, &signature)
        .expect("the head's signature verifies with the published key");
}

fn published_key(server: &Server) -> VerifyingKey {
    let (_, key) = server.get("/api/v1/log/key");
    let bytes = BASE64.decode(key["public_key"].as_str().unwrap()).unwrap();
    VerifyingKey::from_bytes(&bytes.try_into().unwrap()).unwrap()
}

#[test]
fn an_independent_rfc6962_verifier_accepts_every_proof_and_consistency() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let key = published_key(&server);
    let mut ids = Vec::new();
    for seed in 0..5 {
        ids.push(server.register_id(generated_print(seed), &format!("print {seed}")));
    }
    let (_, first_head) = server.get("/api/v1/log/head");
    assert_eq!(first_head["tree_size"], 5);
    assert_head_signed(&first_head, &key);
    for seed in 5..11 {
        ids.push(server.register_id(generated_print(seed), &format!("print {seed}")));
    }
    for (index, id) in ids.iter().enumerate() {
        let (status, proof) = server.get(&format!("/api/v1/patterns/{id}/proof"));
        assert_eq!(status, 200);
        assert_eq!(proof["entry"]["pattern"]["id"], id.as_str());
        assert_eq!(proof["leaf_index"], index);
        let entry = BASE64
            .decode(proof["entry_bytes"].as_str().unwrap())
            .unwrap();
        let path: Vec<_> = proof["audit_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| digest(h.as_str().unwrap()))
            .collect();
        let size = proof["tree_size"].as_u64().unwrap();
        let root = RootHash::<Sha256>::new(digest(proof["root_hash"].as_str().unwrap()), size);
        root.verify_inclusion(&entry, index as u64, &InclusionProof::from_digests(&path))
            .expect("ct-merkle accepts the inclusion proof");
        let mut forged = entry.clone();
        forged[10] ^= 1;
        assert!(
            root.verify_inclusion(&forged, index as u64, &InclusionProof::from_digests(&path))
                .is_err()
        );
        assert_eq!(proof["signed_head"]["root_hash"], proof["root_hash"]);
        assert_head_signed(&proof["signed_head"], &key);
    }
    let (_, second_head) = server.get("/api/v1/log/head");
    assert_head_signed(&second_head, &key);
    let (status, consistency) = server.get("/api/v1/log/consistency?first=5&second=11");
    assert_eq!(status, 200);
    assert_eq!(consistency["first_root_hash"], first_head["root_hash"]);
    assert_eq!(consistency["second_root_hash"], second_head["root_hash"]);
    let path: Vec<_> = consistency["consistency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| digest(h.as_str().unwrap()))
        .collect();
    let old = RootHash::<Sha256>::new(digest(first_head["root_hash"].as_str().unwrap()), 5);
    let new = RootHash::<Sha256>::new(digest(second_head["root_hash"].as_str().unwrap()), 11);
    new.verify_consistency(&old, &ConsistencyProof::from_digests(&path))
        .expect("ct-merkle accepts the consistency proof");
    assert_eq!(
        server.get("/api/v1/log/consistency?first=3&second=99").0,
        400
    );
}

#[test]
fn a_copy_waits_for_a_clerk_and_every_decision_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (original, held) = register_original_and_held_copy(&server);
    let held_id = held["id"].as_str().unwrap().to_string();

    // Unpublished: searches never return it, the review queue shows it with its match.
    let found = server.search(fixture("print_a.jpg"));
    assert_eq!(top_id(&found), original);
    assert!(
        found["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != held_id.as_str())
    );
    let (_, queue) = server.get("/api/v1/review");
    assert_eq!(queue["pending"][0]["pattern"]["id"], held_id.as_str());
    assert_eq!(queue["pending"][0]["matches"][0]["id"], original.as_str());

    let decide =
        |id: &str, body: Value| server.post_json(&format!("/api/v1/patterns/{id}/status"), body);
    let (status, refused) = decide(&held_id, json!({"status": "rejected"}));
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("missing_reason"))
    );
    let (status, _) = decide(
        &held_id,
        json!({"status": "rejected", "reason": "copy of HX-1", "extra": 1}),
    );
    assert_eq!(status, 400, "unknown fields are refused");
    let (status, accepted) = decide(
        &held_id,
        json!({"status": "registered", "reason": "licensed colourway"}),
    );
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("registered"))
    );
    let (status, _) = decide(
        &held_id,
        json!({"status": "pending_review", "reason": "again"}),
    );
    assert_eq!(status, 409);
    assert!(
        server.get("/api/v1/review").1["pending"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Filed as public domain: still found, and said to be unprotectable.
    let (status, _) = decide(
        &original,
        json!({"status": "public_domain", "reason": "traditional peony motif"}),
    );
    assert_eq!(status, 200);
    let found = server.search(fixture("print_a_rot90.png"));
    let public = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == original.as_str())
        .unwrap();
    assert_eq!(public["note"], "public domain: not protectable");

    let (status, certificate) = server.get(&format!("/api/v1/patterns/{original}/certificate"));
    assert_eq!(status, 200);
    let kinds: Vec<&str> = certificate["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["registration", "public_domain_filing"]);
    assert_eq!(
        certificate["entries"][1]["reason"],
        "traditional peony motif"
    );
    let (_, held_certificate) = server.get(&format!("/api/v1/patterns/{held_id}/certificate"));
    assert_eq!(held_certificate["entries"][1]["kind"], "review_decision");
    assert_eq!(
        held_certificate["entries"][1]["previous_status"],
        "pending_review"
    );
}

#[test]
fn the_printable_certificate_carries_image_proof_and_instructions_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, record) = server.post(
        "/api/v1/patterns",
        Form::new()
            .part("image", image_part(fixture("print_b.png")))
            .text("title", "<script>alert(1)</script> Night garden")
            .text("owner", "Keqiao Prints"),
    );
    let id = record["id"].as_str().unwrap();
    let (status, html) = server.get_bytes(&format!("/api/v1/patterns/{id}/certificate.html"));
    assert_eq!(status, 200);
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains(record["registration_number"].as_str().unwrap()));
    assert!(
        html.contains("data:image/png;base64,"),
        "the image is inlined"
    );
    assert!(html.contains("huaxing verify-proof"));
    assert!(html.contains(record["sha256"].as_str().unwrap()));
    assert!(!html.contains("<script>"), "user text is escaped");
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        !html.contains("src=\"http"),
        "nothing is fetched from elsewhere"
    );
}

#[test]
fn a_saved_proof_verifies_offline_and_a_changed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let id = server.register_id(fixture("print_a.png"), "Peony toss");
    server.register_id(fixture("print_b.png"), "Night garden");
    let (_, proof) = server.get(&format!("/api/v1/patterns/{id}/proof"));
    let (_, key) = server.get("/api/v1/log/key");
    let key = key["public_key"].as_str().unwrap();
    server.stop();

    let file = dir.path().join("proof.json");
    std::fs::write(&file, proof.to_string()).unwrap();
    let verify = |extra: &[&str]| {
        huaxing()
            .arg("verify-proof")
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = verify(&["--key", key]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("OK: entry 0"));

    let mut changed = proof.clone();
    changed["entry"]["pattern"]["owner"] = json!("Someone Else");
    let bytes = serde_json::to_vec(&changed["entry"]).unwrap();
    changed["entry_bytes"] = json!(BASE64.encode(bytes));
    std::fs::write(&file, changed.to_string()).unwrap();
    let output = verify(&["--key", key]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not verify"));
}

#[test]
fn verify_log_names_a_changed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for seed in 0..3 {
        server.register_id(generated_print(seed), &format!("print {seed}"));
    }
    server.stop();
    let verify_log = || {
        huaxing()
            .args(["verify-log", "--data"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let output = verify_log();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("OK: 3 entries"));

    let database = rusqlite::Connection::open(dir.path().join("registry.sqlite")).unwrap();
    let mut entry: Vec<u8> = database
        .query_row(
            "SELECT entry FROM log_entries WHERE leaf_index = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let position = entry.len() / 2;
    entry[position] = if entry[position] == b'1' { b'2' } else { b'1' };
    database
        .execute(
            "UPDATE log_entries SET entry = ?1 WHERE leaf_index = 1",
            [entry],
        )
        .unwrap();
    let output = verify_log();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("entry 1 "), "{said}");
}

#[test]
fn kill_9_in_the_middle_of_registrations_leaves_log_registry_and_index_agreeing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let acknowledged = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..2u64 {
            let (url, acknowledged, stop) = (&server.url, &acknowledged, &stop);
            scope.spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                for n in 0..200u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let seed = 500 + worker * 1000 + n;
                    let form = Form::new().part("image", image_part(generated_print(seed)));
                    let Ok(response) = client
                        .post(format!("{url}/api/v1/patterns"))
                        .bearer_auth(ADMIN_TOKEN)
                        .multipart(form)
                        .send()
                    else {
                        break;
                    };
                    if response.status().as_u16() != 201 {
                        break;
                    }
                    let Ok(body) = response.json::<Value>() else {
                        break;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((seed, body["id"].as_str().unwrap().to_string()));
                }
            });
        }
        while acknowledged.lock().unwrap().len() < 8 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = std::process::Command::new("kill")
            .args(["-KILL", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        stop.store(true, Ordering::Relaxed);
    });
    drop(server);
    let acknowledged = acknowledged.into_inner().unwrap();

    let server = Server::start(dir.path());
    let patterns = server.get("/healthz").1["patterns"].as_u64().unwrap();
    assert!(patterns >= acknowledged.len() as u64);
    for (seed, id) in &acknowledged {
        assert_eq!(server.get(&format!("/api/v1/patterns/{id}")).0, 200);
        assert_eq!(top_id(&server.search(generated_print(*seed))), id);
    }
    let (_, head) = server.get("/api/v1/log/head");
    assert_eq!(
        head["tree_size"].as_u64(),
        Some(patterns),
        "one entry per pattern"
    );
    server.stop();
    let output = huaxing()
        .args(["verify-log", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
